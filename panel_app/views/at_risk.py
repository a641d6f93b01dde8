"""At-risk orders: the open orders most likely to be late, ready to be acted on or exported."""

from __future__ import annotations

import io
from datetime import date
from functools import partial
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import DateFormatter, NumberFormatter

from panel_app import ui
from panel_app.queue_store import queue_state, time_to_first_action, waited
from panel_app.store import DataStore, FilterState
from panel_app.views import alerts_panel
from panel_app.views.action_queue import ExceptionQueue

#: Between the first and last day of an ETA range (an en dash, as in "10-15 Mar" typeset).
DASH = "\u2013"
#: The table shows this many rows at most; the CSV export has every matching order.
TABLE_ROWS = 500
COLUMNS: dict[str, str] = {
    "risk_rank": "Rank",
    "order_id": "Order",
    "late_risk": "Late risk",
    "risk_band": "Band",
    "top_reasons": "Why (model's top reasons)",
    "promised_delivery_time": "Promised",
    "eta": "ETA (80% range)",
    "days_past_promise": "Days over promise",
    "customer_segment": "Segment",
    "region": "Region",
    "carrier_mode": "Carrier / mode",
    "main_category": "Category",
    "net_value": "Value",
    "status": "Status",
    # the exception queue: who is on it, and how long it has waited (wall clock)
    "queue_status": "Queue",
    "owner": "Owner",
    "waiting": "Waiting",
}


def _day(value: date) -> str:
    return f"{value.day} {value:%b}"


def eta_text(eta: Any, low: Any, high: Any) -> str:
    """``ETA 12 Mar (10-15 Mar)``: the predicted day and its 80% range, as an agent reads it.

    Months and years are written only where the range needs them (``30 Mar (28 Mar-2 Apr)``,
    ``31 Dec 2026 (29 Dec 2026-3 Jan 2027)``; the page writes an en dash); an order without a
    range shows its ETA alone, one not scored yet shows nothing. The text is made of dates only
    and the table escapes every cell (Tabulator's plain-text formatter), so nothing in it can
    become markup.
    """
    if eta is None or pd.isna(eta):
        return ""
    eta = pd.Timestamp(eta).date()
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"ETA {_day(eta)}"
    low, high = pd.Timestamp(low).date(), pd.Timestamp(high).date()
    if len({eta.year, low.year, high.year}) > 1:
        return f"ETA {_day(eta)} {eta.year} ({_day(low)} {low.year}{DASH}{_day(high)} {high.year})"
    if low.month == high.month:
        return f"ETA {_day(eta)} ({low.day}{DASH}{_day(high)})"
    return f"ETA {_day(eta)} ({_day(low)}{DASH}{_day(high)})"


def summary_cards(store: DataStore, state: FilterState) -> str:
    """How many open orders are scored, how many at high risk, and the revenue at stake."""
    summary = store.at_risk_summary(state)
    cards = [
        ui.Kpi("open_scored", "Open orders scored", ui.count, None),
        ui.Kpi("high", "At high risk", ui.count, True),
        ui.Kpi("high_value", "Revenue at high risk", ui.money, True),
    ]
    values = [(k, summary[k.key], None) for k in cards]
    response = time_to_first_action(store, state)
    first_action = ui.Kpi(
        "time_to_first_action",
        "High risk → first action",
        _minutes,
        True,
        hint=f"mean; {ui.count(response['acted'])} of {ui.count(response['high_risk'])} "
        "high-risk orders acted on",
    )
    values.append((first_action, response["mean_minutes"], None))
    return ui.kpi_grid(values, None, columns=4)


def _minutes(value: object) -> str:
    """37.5 -> '38 min'; 150 -> '2.5 h'."""
    if ui.is_missing(value):
        return "—"
    minutes = float(value)
    return f"{minutes:,.0f} min" if minutes < 120 else f"{minutes / 60:,.1f} h"


def with_queue(store: DataStore, frame: pd.DataFrame) -> pd.DataFrame:
    """The at-risk rows with their queue status, owner and waiting time (now, wall clock)."""
    state = queue_state(store)
    merged = frame.merge(state, on="order_id", how="left")
    merged["queue_status"] = merged["queue_status"].fillna("new")
    merged["owner"] = merged["owner"].fillna("")
    merged["waiting"] = [
        "resolved" if status == "resolved" else waited(since)
        for status, since in zip(merged["queue_status"], merged["queued_at"], strict=True)
    ]
    return merged


def risk_table(
    store: DataStore, state: FilterState, queue: ExceptionQueue | None = None
) -> pn.viewable.Viewable:
    """The riskiest open orders, formatted for reading, riskiest first; a click picks the order."""
    frame = store.at_risk(state, limit=TABLE_ROWS)
    if frame.empty:
        return ui.notice(
            "No open orders with a late-risk score match these filters. Either everything is "
            "delivered, or the risk model has not scored the open orders yet."
        )
    frame = with_queue(store, frame)
    frame = frame.assign(
        eta=[
            eta_text(*row)
            for row in zip(
                frame["predicted_delivery_date"], frame["eta_low"], frame["eta_high"], strict=True
            )
        ]
    )
    shown = frame[list(COLUMNS)].rename(columns=COLUMNS)
    stamp = DateFormatter(format="%Y-%m-%d %H:%M")
    table = ui.table(
        shown,
        pagination="local",
        page_size=15,
        # The reasons are what an agent acts on: kept next to the risk, wrapped, never cut off.
        widths={"Why (model's top reasons)": 360},
        formatters={
            "Late risk": NumberFormatter(format="0.0%"),
            "Promised": stamp,
            "Days over promise": NumberFormatter(format="+0.0"),
            "Value": NumberFormatter(format="$0,0.00"),
            "Why (model's top reasons)": {"type": "textarea"},
        },
        css_classes=["at-risk-table"],
        selectable=1,
    )
    if queue is not None:
        orders = list(frame["order_id"])
        table.param.watch(
            lambda event: event.new and queue.choose(orders[event.new[0]]), "selection"
        )
    return table


def export_csv(store: DataStore) -> io.StringIO:
    """Every open scored order matching the filters, with raw values for spreadsheets."""
    frame: pd.DataFrame = store.at_risk(store.state)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    return buffer


def build(store: DataStore) -> pn.viewable.Viewable:
    """The at-risk page."""
    download = pn.widgets.FileDownload(
        callback=lambda: export_csv(store),
        filename="scpro_at_risk_orders.csv",
        label="Download CSV (all matching orders)",
        width=300,
    )
    queue = ExceptionQueue(store)
    return pn.Column(
        ui.page_header(
            "At-risk orders",
            "Open orders ranked by the model's late risk: call, reroute or warn the customer "
            "before the promise is broken. Region, carrier/mode, category and segment filters "
            "apply; the period does not (an open order stays here until it is delivered).",
        ),
        ui.live_cards(store, summary_cards),
        alerts_panel.panel(store),
        download,
        ui.reactive(store, partial(risk_table, queue=queue)),
        queue,
        sizing_mode="stretch_width",
    )
