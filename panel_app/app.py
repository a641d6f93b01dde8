"""The SCPro decision cockpit: one Panel app, six pages, global filters in the sidebar.

Served with ``panel serve panel_app/app.py`` (or :func:`panel_app.server.serve`). The page and the
filters live in the URL query string (``?page=at_risk&region=South+Asia``), so every view can be
bookmarked and shared. Each session builds its pages once, on first visit.

An open page follows the pipeline: every ``SCPRO_PANEL_REFRESH_SECONDS`` (3) each session looks
whether ``serving/current`` moved (:class:`LiveUpdates`) and, when it did, switches its store to
the new version, which re-runs the parts of the page on screen in place (no reload: the page,
the filters and the window's scroll stay). The header says when the session last updated and
how many orders newly turned high-risk.
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import panel as pn
import param

if __name__.startswith("bokeh"):
    # `panel serve panel_app/app.py` runs this file as a script: make the repo importable even
    # when the virtual environment's editable install predates this package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panel_app import ui
from panel_app.filters import Filters
from panel_app.store import DataStore, NoSnapshotError, Snapshot, resolve_snapshot
from panel_app.views import at_risk, customers, deliveries, demand, health, overview
from scpro_assets.settings import DashboardSettings, Settings

log = logging.getLogger(__name__)

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


def dashboard_settings(environ: Mapping[str, str] | None = None) -> DashboardSettings:
    """The dashboard's settings: read now, or from ``environ`` alone (a mapping of variables)."""
    return DashboardSettings() if environ is None else DashboardSettings.model_validate(environ)


def serving_current_from_env() -> Path:
    """``SCPRO_PANEL_SERVING_CURRENT``, else ``SCPRO_HOME/serving/current`` (from settings)."""
    return dashboard_settings().serving_current or Settings.from_env().serving_current


def refresh_seconds_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``SCPRO_PANEL_REFRESH_SECONDS`` (default 3): how often a session looks for a snapshot."""
    return dashboard_settings(environ).refresh_seconds


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LiveUpdates:
    """Keeps one session on the newest published snapshot, and says so in the header.

    :meth:`check` runs every few seconds in the session (a Panel periodic callback). While
    nothing is published it costs one ``realpath``. On a new version it first reads the new
    version's high-risk orders (which also proves the version readable), then switches the store,
    which re-runs the page on screen in place (:class:`Dashboard`), and refreshes the filters'
    choices. Whatever fails, the session keeps the last good data and the header says why
    (escaped); a version that failed to load is not tried again until another one is published.
    """

    def __init__(
        self, store: DataStore, filters: Filters, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._store = store
        self._filters = filters
        self._clock = clock
        self._updated_at = clock()
        self._newly_high_risk: list[str] | None = None
        self._as_of = store.as_of_text()
        self._problem: str | None = None
        self._refused: Path | None = None
        self.status = pn.pane.HTML(
            self._status_html(),
            stylesheets=[ui.LIVE_CSS],
            margin=(0, 10),
            css_classes=["scpro-live"],
        )

    @property
    def updated_at(self) -> datetime:
        """When this session last loaded a snapshot (opened, or switched to a new version)."""
        return self._updated_at

    @property
    def newly_high_risk(self) -> list[str] | None:
        """Orders that turned high-risk at the last switch (None before the first switch)."""
        return self._newly_high_risk

    @property
    def problem(self) -> str | None:
        """Why the session is not on the newest snapshot, if it is not."""
        return self._problem

    def check(self) -> bool:
        """Switch to a newly published snapshot if there is one; True when the session switched."""
        try:
            latest = self._store.newer_snapshot()
        except Exception as error:  # current gone or unreadable: never break the open page
            self._report(f"The published snapshot cannot be read now ({error})", error)
            return False
        if latest is None:
            self._report(None)
            return False
        if latest.path == self._refused:
            return False
        previous = self._store.snapshot()
        try:
            self._switch(previous, latest)
        except Exception as error:  # a broken version: back to the last good one
            self._refused = latest.path
            self._restore(previous)
            self._report(f"Snapshot {latest.version} could not be shown ({error})", error)
            return False
        self._refused = None
        self._updated_at = self._clock()
        self._report(None, force=True)
        return True

    def _switch(self, previous: Snapshot, latest: Snapshot) -> None:
        self._store.high_risk_order_ids(latest)  # unreadable: refused before anything changed
        try:
            newly: list[str] | None = self._store.newly_high_risk(previous, latest)
        except Exception:  # the previous version was pruned before this session compared
            newly = None
        self._store.switch_to(latest)
        self._filters.refresh_options()
        self._as_of = self._store.as_of_text()
        self._newly_high_risk = newly

    def _restore(self, previous: Snapshot) -> None:
        try:
            self._store.switch_to(previous)
            self._filters.refresh_options()
        except Exception:
            log.exception("dashboard: could not go back to snapshot %s", previous.version)

    def _report(
        self, problem: str | None, error: Exception | None = None, force: bool = False
    ) -> None:
        if error is not None and problem != self._problem:
            # A snapshot not there (yet, or any more) is a state of the pipeline, not a bug.
            trace = None if isinstance(error, NoSnapshotError) else error
            log.warning("dashboard: %s; showing the last good data", problem, exc_info=trace)
        if problem == self._problem and not force:
            return
        self._problem = problem
        self.status.object = self._status_html()

    def _status_html(self) -> str:
        """The header's HTML from what the session holds (no query: it must work when none can)."""
        snapshot = self._store.snapshot()
        problem = None if self._problem is None else f"{self._problem}; showing the last good data."
        return ui.live_status(
            self._updated_at, self._as_of, snapshot.version, self._newly_high_risk, problem
        )


class Dashboard(param.Parameterized):
    """The page switcher: builds a page the first time it is shown, then reuses it.

    Each page reads through its own store (:meth:`DataStore.for_page`), kept in line with the
    session's store (filters, snapshot version) while the page is shown and brought in line
    when it is shown again. So a filter change or a new snapshot re-runs the parts of the page
    on screen only: with three pages visited on a 100k-order snapshot, a new version cost one
    session 4.4 s of server time when every page followed it (rebuilding the hidden Deliveries
    page's figures was 3.2 s of it), 1.5 s when only the page on screen does.
    """

    page = param.Selector(default="overview", objects={label: k for k, (label, _) in PAGES.items()})

    def __init__(self, store: DataStore, **params: object) -> None:
        super().__init__(**params)
        self._store = store
        self._built: dict[str, tuple[DataStore, pn.viewable.Viewable]] = {}
        self.main = pn.Column(sizing_mode="stretch_width", css_classes=["scpro-main"])
        store.param.watch(self._follow, ["state", "version"])
        self._show()

    def _follow(self, *_events: object) -> None:
        """Bring the page on screen in line with the session's filters and version."""
        self._built[self.page][0].align_with(self._store)

    @param.depends("page", watch=True)
    def _show(self) -> None:
        if self.page not in self._built:
            page_store = self._store.for_page()
            self._built[self.page] = (page_store, PAGES[self.page][1](page_store))
        page_store, view = self._built[self.page]
        page_store.align_with(self._store)
        self.main.objects = [view]

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


def _template(
    sidebar: list[object], main: list[object], header: list[object] | None = None
) -> pn.template.BaseTemplate:
    # Bootstrap, not Fast: the Fast design always asks Google Fonts for Open Sans (a request
    # outside this machine on every page load) and adds 0.9 MB of web components to parse.
    return pn.template.BootstrapTemplate(
        title=TITLE,
        sidebar=sidebar,
        main=main,
        header=header or [],
        header_background=ACCENT,
        sidebar_width=270,
        main_max_width="1500px",
    )


def no_data_page(reason: str) -> pn.template.BaseTemplate:
    """What a user sees before the pipeline has published anything: what to do, no traceback."""
    message = pn.pane.Alert(
        # A heading in HTML, not Markdown: Panel's Markdown gives headings a "¶" anchor link.
        "<h3>No data published yet</h3>\n\n"
        "SCPro is landing the stream; the first snapshot appears after the first Spark, model "
        "and dbt cycle (a few minutes after the stream starts), with nobody clicking. "
        "Reload this page then.\n\n"
        "The dashboard reads the warehouse snapshot the platform publishes after each "
        "successful dbt build, and there is none yet.\n\n"
        f"<small>Details: {html.escape(reason)}</small>",
        alert_type="info",
        sizing_mode="stretch_width",
        css_classes=["no-data"],
    )
    return _template([], [message])


def _in_served_session() -> bool:
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def _open_when_published(
    page: pn.template.BaseTemplate, serving_current: Path, refresh_seconds: float
) -> None:
    """On the "no data yet" page: load the dashboard by itself once a snapshot is published.

    The page has no store to switch, so the browser reloads it: the server changes a hidden
    widget's value and a JavaScript callback on that change reloads the page.
    """
    if not _in_served_session():
        return
    signal = pn.widgets.TextInput(value="", visible=False, css_classes=["scpro-reload"])
    signal.jscallback(value="window.location.reload()")
    page.main.append(signal)

    def look() -> None:
        try:
            resolve_snapshot(serving_current)
        except NoSnapshotError:
            return
        callback.stop()
        signal.value = "published"

    callback = pn.state.add_periodic_callback(look, period=round(refresh_seconds * 1000))


def create_app(
    serving_current: Path | None = None, refresh_seconds: float | None = None
) -> pn.template.BaseTemplate:
    """Build one session's page: the store, the filters, the navigation and the first page.

    In a served session the page then follows newly published snapshots (:class:`LiveUpdates`).
    """
    serving_current = serving_current or serving_current_from_env()
    refresh_seconds = refresh_seconds or refresh_seconds_from_env()
    try:
        resolve_snapshot(serving_current)
        store = DataStore(serving_current=serving_current)
        filters = Filters(store)
    except NoSnapshotError as error:
        page = no_data_page(str(error))
        _open_when_published(page, serving_current, refresh_seconds)
        return page
    dashboard = Dashboard(store)
    if pn.state.location is not None:
        pn.state.location.sync(dashboard, {"page": "page"})
        pn.state.location.sync(
            filters,
            {name: name for name in ("period", "region", "carrier_mode", "category", "segment")},
        )
    live = LiveUpdates(store, filters)
    if _in_served_session():
        # Scoped to the session: Panel stops it when the browser tab goes away.
        pn.state.add_periodic_callback(live.check, period=round(refresh_seconds * 1000))
    sidebar = [
        pn.pane.Markdown("### Pages", margin=(0, 10)),
        dashboard.navigation(),
        pn.pane.Markdown("### Filters", margin=(10, 10, 0, 10)),
        filters,
    ]
    return _template(sidebar, [dashboard.main], header=[live.status])


if __name__.startswith("bokeh"):
    pn.extension("tabulator", notifications=False, loading_indicator=True)
    create_app().servable(title=TITLE)
