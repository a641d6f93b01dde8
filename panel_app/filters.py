"""The global filters: one set of widgets shared by every page of a session."""

from __future__ import annotations

import panel as pn
import param

from panel_app.store import ALL, DEFAULT_PERIOD, PERIODS, DataStore, FilterState

#: Filter param -> label shown next to its widget.
LABELS: dict[str, str] = {
    "period": "Period (by order date)",
    "region": "Region",
    "carrier_mode": "Carrier / mode",
    "category": "Category",
    "segment": "Customer segment",
}


class Filters(pn.viewable.Viewer):
    """Period, region, carrier/mode, category and segment; they push one FilterState to the store.

    Keeping the selection in params (not in widgets) lets the app mirror it in the URL query
    string, so a filtered page can be bookmarked or sent to a colleague.
    """

    period = param.Selector(default=DEFAULT_PERIOD, objects=list(PERIODS))
    region = param.Selector(default=ALL, objects=[ALL])
    carrier_mode = param.Selector(default=ALL, objects=[ALL])
    category = param.Selector(default=ALL, objects=[ALL])
    segment = param.Selector(default=ALL, objects=[ALL])

    def __init__(self, store: DataStore, **params: object) -> None:
        super().__init__(**params)
        self._store = store
        self.refresh_options()
        self._store.state = self.state()

    def refresh_options(self) -> None:
        """Offer the values of the snapshot the store reads (a newly published one adds some).

        A selected value the snapshot no longer has stays selected (and offered): the user
        chose it, and the pages say that nothing matches.
        """
        for name, values in self._store.options().items():
            selected = getattr(self, name)
            kept = [] if selected == ALL or selected in values else [selected]
            self.param[name].objects = [ALL, *values, *kept]

    def state(self) -> FilterState:
        """The current selection as an immutable value."""
        return FilterState(
            period=self.period,
            region=self.region,
            carrier_mode=self.carrier_mode,
            category=self.category,
            segment=self.segment,
        )

    @param.depends("period", "region", "carrier_mode", "category", "segment", watch=True)
    def _push(self) -> None:
        self._store.state = self.state()

    def reset(self, _event: object = None) -> None:
        """Back to the last 90 days, everything included."""
        self.param.update(
            period=DEFAULT_PERIOD, region=ALL, carrier_mode=ALL, category=ALL, segment=ALL
        )

    def __panel__(self) -> pn.viewable.Viewable:
        widgets = [
            pn.widgets.Select.from_param(
                self.param[name], name=label, sizing_mode="stretch_width", css_classes=[name]
            )
            for name, label in LABELS.items()
        ]
        reset = pn.widgets.Button(name="Reset filters", button_type="light")
        reset.on_click(self.reset)
        return pn.Column(*widgets, reset, sizing_mode="stretch_width")
