"""Customers: the ML segments, what they are worth and how well we deliver to them."""

from __future__ import annotations

import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from panel_app import ui
from panel_app.store import DataStore, FilterState


def performance(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Per segment in the selection: revenue, on-time rate and high-risk open orders."""
    frame = store.segment_performance(state)
    if frame.empty:
        return ui.notice("No orders match these filters in this period.")
    on_time = ui.hbar_rate(
        frame,
        "customer_segment",
        "on_time_rate",
        "On-time rate by segment (delivered orders)",
        "orders",
        higher_is_bad=False,
    )
    table = ui.table(
        frame.rename(
            columns={
                "customer_segment": "Segment",
                "customers": "Customers",
                "orders": "Orders",
                "revenue": "Revenue",
                "on_time_rate": "On-time rate",
                "high_risk_open_orders": "Open orders at high risk",
                "high_risk_open_value": "Value at high risk",
            }
        ),
        formatters={
            "Revenue": NumberFormatter(format="$0,0"),
            "On-time rate": NumberFormatter(format="0.0%"),
            "Value at high risk": NumberFormatter(format="$0,0"),
        },
        css_classes=["segment-performance"],
    )
    return pn.Column(table, on_time, sizing_mode="stretch_width")


def profiles(store: DataStore) -> pn.viewable.Viewable:
    """The segment profiles dbt publishes (all time), with what marketing should do."""
    frame = store.segment_profiles()
    if frame.empty:
        return ui.notice("Customers have not been segmented yet.")
    shown = frame[
        [
            "customer_segment",
            "description",
            "customers",
            "share_of_revenue",
            "avg_monetary",
            "avg_frequency",
            "avg_recency_days",
            "on_time_rate",
            "avg_delay_days",
        ]
    ].rename(
        columns={
            "customer_segment": "Segment",
            "customers": "Customers",
            "share_of_revenue": "Share of revenue",
            "avg_monetary": "Avg spend",
            "avg_frequency": "Orders / customer",
            "avg_recency_days": "Days since last order",
            "on_time_rate": "On-time rate",
            "avg_delay_days": "Avg delay (days)",
            "description": "What to do",
        }
    )
    return ui.table(
        shown,
        formatters={
            "Share of revenue": NumberFormatter(format="0.0%"),
            "Avg spend": NumberFormatter(format="$0,0"),
            "Orders / customer": NumberFormatter(format="0.0"),
            "Days since last order": NumberFormatter(format="0"),
            "On-time rate": NumberFormatter(format="0.0%"),
            "Avg delay (days)": NumberFormatter(format="0.0"),
        },
    )


def build(store: DataStore) -> pn.viewable.Viewable:
    """The customers page."""
    return pn.Column(
        ui.page_header(
            "Customers",
            "Segment performance in the selected period, then each segment's all-time profile "
            "and the action marketing should take.",
        ),
        ui.reactive(store, performance),
        pn.pane.Markdown("### Segment profiles (all time)", margin=(12, 8, 0, 8)),
        ui.static(store, profiles),
        sizing_mode="stretch_width",
    )
