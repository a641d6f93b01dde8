"""Demand: forecast against actual orders per category, and what is coming next."""

from __future__ import annotations

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.models.widgets.tables import NumberFormatter

from panel_app import ui
from panel_app.store import ALL, DataStore, FilterState


def forecast_chart(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Actual orders, the model's forecast and the naive baseline, future dashed."""
    frame = store.demand(state)
    if frame.empty:
        return ui.notice("No demand forecast has been published yet.")
    frame = frame.assign(period_start=pd.to_datetime(frame["period_start"]))
    past = frame[~frame["is_future"]]
    future = frame[frame["is_future"]]
    title = "all categories" if state.category == ALL else state.category
    plot = ui._figure(f"Orders per week: forecast vs actual ({title})", 320, x_axis_type="datetime")
    plot.vbar(
        x="period_start",
        top="actual",
        width=5 * 86400000,
        color=ui.GREY,
        alpha=0.6,
        source=ColumnDataSource(past),
        legend_label="actual orders",
    )
    plot.line(
        x="period_start",
        y="forecast",
        color=ui.BLUE,
        line_width=2.5,
        source=ColumnDataSource(past),
        legend_label="forecast",
    )
    plot.line(
        x="period_start",
        y="forecast",
        color=ui.BLUE,
        line_width=2.5,
        line_dash="dashed",
        source=ColumnDataSource(pd.concat([past.tail(1), future])),
        legend_label="forecast (future)",
    )
    plot.line(
        x="period_start",
        y="baseline",
        color=ui.ORANGE,
        line_width=1.5,
        line_dash="dotted",
        source=ColumnDataSource(frame),
        legend_label="baseline",
    )
    plot.y_range.start = 0
    plot.legend.location = "top_left"
    plot.legend.orientation = "horizontal"
    plot.add_tools(
        HoverTool(
            tooltips=[
                ("week of", "@period_start{%F}"),
                ("actual", "@actual{0,0}"),
                ("forecast", "@forecast{0,0}"),
            ],
            formatters={"@period_start": "datetime"},
        )
    )
    return ui.bokeh(plot)


def category_table(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Per category: orders vs forecast in the period, forecast error, next week's forecast."""
    frame = store.demand_by_category(state)
    if frame.empty:
        return ui.notice("No demand forecast has been published yet.")
    return ui.table(
        frame.rename(
            columns={
                "category": "Category",
                "actual": "Actual orders (period)",
                "forecast": "Forecast (period)",
                "mape": "Mean abs. error",
                "next_forecast": "Next week forecast",
            }
        ),
        formatters={
            "Actual orders (period)": NumberFormatter(format="0,0"),
            "Forecast (period)": NumberFormatter(format="0,0"),
            "Mean abs. error": NumberFormatter(format="0.0%"),
            "Next week forecast": NumberFormatter(format="0,0"),
        },
        css_classes=["demand-table"],
    )


def build(store: DataStore) -> pn.viewable.Viewable:
    """The demand page."""
    return pn.Column(
        ui.page_header(
            "Demand",
            "Weekly orders against the forecast, per category (the category filter and period "
            "apply; forecasts are made per category only).",
        ),
        ui.reactive(store, forecast_chart),
        ui.reactive(store, category_table),
        sizing_mode="stretch_width",
    )
