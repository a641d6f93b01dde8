"""The SCPro decision cockpit: one Panel app, six pages, global filters in the sidebar.

Served with ``panel serve panel_app/app.py`` (or :func:`panel_app.server.serve`). The page and the
filters live in the URL query string (``?page=at_risk&region=South+Asia``), so every view can be
bookmarked and shared. Each session builds its pages once, on first visit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import panel as pn
import param

if __name__.startswith("bokeh"):
    # `panel serve panel_app/app.py` runs this file as a script: make the repo importable even
    # when the virtual environment's editable install predates this package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panel_app.filters import Filters
from panel_app.store import DataStore, NoSnapshotError, resolve_snapshot
from panel_app.views import at_risk, customers, deliveries, demand, health, overview

TITLE = "SCPro · Delivery cockpit"
#: URL name -> (label in the navigation, page builder).
PAGES: dict[str, tuple[str, Callable[[DataStore], pn.viewable.Viewable]]] = {
    "overview": ("Overview", overview.build),
    "deliveries": ("Deliveries", deliveries.build),
    "at_risk": ("At-risk orders", at_risk.build),
    "customers": ("Customers", customers.build),
    "demand": ("Demand", demand.build),
    "health": ("Data health", health.build),
}
ACCENT = "#1e3a8a"


def serving_current_from_env() -> Path:
    """``SCPRO_HOME/serving/current``, from the one place settings are read."""
    from scpro_assets.settings import Settings

    return Settings.from_env().serving_current


class Dashboard(param.Parameterized):
    """The page switcher: builds a page the first time it is shown, then reuses it."""

    page = param.Selector(default="overview", objects={label: k for k, (label, _) in PAGES.items()})

    def __init__(self, store: DataStore, **params: object) -> None:
        super().__init__(**params)
        self._store = store
        self._built: dict[str, pn.viewable.Viewable] = {}
        self.main = pn.Column(sizing_mode="stretch_width", css_classes=["scpro-main"])
        self._show()

    @param.depends("page", watch=True)
    def _show(self) -> None:
        if self.page not in self._built:
            self._built[self.page] = PAGES[self.page][1](self._store)
        self.main.objects = [self._built[self.page]]

    def navigation(self) -> pn.widgets.RadioButtonGroup:
        """A vertical menu of the pages."""
        return pn.widgets.RadioButtonGroup.from_param(
            self.param.page,
            orientation="vertical",
            button_type="primary",
            button_style="outline",
            sizing_mode="stretch_width",
            name="",
        )


def _template(sidebar: list[object], main: list[object]) -> pn.template.BaseTemplate:
    # Bootstrap, not Fast: the Fast design always asks Google Fonts for Open Sans (a request
    # outside this machine on every page load) and adds 0.9 MB of web components to parse.
    return pn.template.BootstrapTemplate(
        title=TITLE,
        sidebar=sidebar,
        main=main,
        header_background=ACCENT,
        sidebar_width=270,
        main_max_width="1500px",
    )


def no_data_page(reason: str) -> pn.template.BaseTemplate:
    """What a user sees before the pipeline has published anything: what to do, no traceback."""
    message = pn.pane.Alert(
        "## No data published yet\n\n"
        "SCPro is landing the stream; the first snapshot appears after the first Spark, model "
        "and dbt cycle (a few minutes after the stream starts), with nobody clicking. "
        "Reload this page then.\n\n"
        "The dashboard reads the warehouse snapshot the platform publishes after each "
        "successful dbt build, and there is none yet.\n\n"
        f"<small>Details: {reason}</small>",
        alert_type="info",
        sizing_mode="stretch_width",
        css_classes=["no-data"],
    )
    return _template([], [message])


def create_app(serving_current: Path | None = None) -> pn.template.BaseTemplate:
    """Build one session's page: the store, the filters, the navigation and the first page."""
    serving_current = serving_current or serving_current_from_env()
    try:
        resolve_snapshot(serving_current)
        store = DataStore(serving_current=serving_current)
        filters = Filters(store)
    except NoSnapshotError as error:
        return no_data_page(str(error))
    dashboard = Dashboard(store)
    if pn.state.location is not None:
        pn.state.location.sync(dashboard, {"page": "page"})
        pn.state.location.sync(
            filters,
            {name: name for name in ("period", "region", "carrier_mode", "category", "segment")},
        )
    snapshot = store.snapshot()
    sidebar = [
        pn.pane.Markdown("### Pages", margin=(0, 10)),
        dashboard.navigation(),
        pn.pane.Markdown("### Filters", margin=(10, 10, 0, 10)),
        filters,
        pn.pane.Markdown(
            f"<small>Data as of **{store.as_of_text()}** · snapshot {snapshot.version}</small>",
            margin=(10, 10),
        ),
    ]
    return _template(sidebar, [dashboard.main])


if __name__.startswith("bokeh"):
    pn.extension("tabulator", notifications=False, loading_indicator=True)
    _current = os.environ.get("SCPRO_PANEL_SERVING_CURRENT")
    create_app(Path(_current) if _current else None).servable(title=TITLE)
