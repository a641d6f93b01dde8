"""Overview: the headline KPIs with their change against the previous period, and trends."""

from __future__ import annotations

import pandas as pd
import panel as pn

from panel_app import ui
from panel_app.store import DataStore, FilterState

KPIS: tuple[ui.Kpi, ...] = (
    ui.Kpi("late_rate", "Late deliveries", ui.pct, True, "share of delivered orders", True),
    ui.Kpi("mean_delay_days", "Mean delay", ui.days, True, "days past promise, delivered"),
    ui.Kpi("p90_delay_days", "P90 delay", ui.days, True, "9 in 10 deliveries do better"),
    ui.Kpi(
        "mean_prediction_gap_days", "Prediction error", ui.days, True, "mean |predicted - actual|"
    ),
    ui.Kpi("high_risk_open_share", "High-risk open orders", ui.pct, True, "of open orders", True),
    ui.Kpi("mean_resolution_hours", "Incident resolution", ui.hours, True, "mean, all regions"),
    ui.Kpi("orders", "Orders", ui.count, False, "placed in the period"),
    ui.Kpi("revenue", "Revenue", ui.money, False, "net, excluding canceled"),
    ui.Kpi("average_basket", "Average basket", ui.money, False, "revenue per order"),
)


def period_label(state: FilterState) -> str:
    """'previous 90 days' for 'Last 90 days'."""
    if state.period.startswith("Last "):
        return "previous " + state.period.removeprefix("Last ")
    return "all time"


def kpi_cards(store: DataStore, state: FilterState) -> str:
    """Two rows of KPI cards: delivery performance, then commercial figures."""
    figures = store.kpis(state)
    label = period_label(state)
    cards = [(kpi, figures.at[kpi.key, "current"], figures.at[kpi.key, "previous"]) for kpi in KPIS]
    return ui.kpi_grid(cards, label)


def action_line(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """What to do next: the open high-risk orders waiting on the At-risk page."""
    summary = store.at_risk_summary(state)
    if summary["open_scored"] == 0:
        return ui.notice("No scored open orders: the late-risk model has not scored any yet.")
    high = summary["high"]
    orders = "open order is" if high == 1 else "open orders are"
    return ui.notice(
        f"**{ui.count(high)} {orders} at high risk of being late** "
        f"({ui.money(summary['high_value'])} of revenue). See *At-risk orders* to act on them.",
        "warning" if high else "success",
    )


class Trends(pn.viewable.Viewer):
    """Volume and late rate over the period, per day (up to a month) or week.

    The two charts are built once per session and then only their data changes with the filters
    (see :func:`ui.show_over_time`), so a filter change does not rebuild figures.
    """

    def __init__(self, store: DataStore) -> None:
        super().__init__()
        self._store = store
        frame, grain = self._data(store.state)
        self._orders = ui.time_bars(frame, "period_start", "orders", "", money_axis=False)
        self._late = ui.time_rate_line(frame, "period_start", "late_rate", "")
        self._charts = pn.Row(self._orders, self._late, sizing_mode="stretch_width")
        self._empty = ui.notice("No orders match these filters in this period.")
        self._show(frame, grain)
        self._layout = pn.Column(self._empty, self._charts, sizing_mode="stretch_width")
        store.param.watch(lambda event: self._show(*self._data(event.new)), "state")

    def _data(self, state: FilterState) -> tuple[pd.DataFrame, str]:
        window_days = self._store.window(state).days
        grain = "day" if window_days is not None and window_days <= 31 else "week"
        return self._store.trend(state), grain

    def _show(self, frame: pd.DataFrame, grain: str) -> None:
        self._empty.visible = frame.empty
        self._charts.visible = not frame.empty
        ui.show_over_time(self._orders, frame, "period_start", "orders", f"Orders per {grain}")
        ui.show_over_time(
            self._late, frame, "period_start", "late_rate", f"Late deliveries per {grain} (%)"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def build(store: DataStore) -> pn.viewable.Viewable:
    """The overview page; its parts recompute when the filters change."""
    return pn.Column(
        ui.page_header(
            "Overview",
            "How deliveries and sales are doing in the selected period, "
            "and how that compares with the period before.",
        ),
        ui.live_cards(store, kpi_cards),
        ui.reactive(store, action_line),
        ui.static(store, Trends),
        sizing_mode="stretch_width",
    )
