"""Deliveries: how good the promises and the predictions are, and where lateness comes from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.palettes import Cividis256

from panel_app import ui
from panel_app.store import DataStore, FilterState


def summary(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """One sentence with the page's headline numbers."""
    frame = store.delay_distribution(state)
    delivered = int(frame["orders"].sum())
    late = int(frame.loc[frame["days_late"] > 0, "orders"].sum())
    share = late / delivered if delivered else None
    return pn.pane.HTML(
        f'<div class="deliveries-summary" style="font-family:system-ui;font-size:15px">'
        f'<b data-figure="delivered">{ui.count(delivered)}</b> delivered orders in this '
        f'selection, <b data-figure="late">{ui.count(late)}</b> late '
        f"({ui.pct(share)}).</div>",
        sizing_mode="stretch_width",
        margin=(0, 8),
    )


def predicted_vs_actual(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Actual delivery days per predicted-days bin, with the 10-90% band and the ideal line."""
    frame = store.predicted_vs_actual(state)
    if frame.empty:
        return ui.notice("No delivered orders with a prediction in this selection yet.")
    source = ColumnDataSource(
        {
            "predicted": frame["predicted_days"].astype(float),
            "actual": frame["actual_days"].astype(float),
            "low": frame["actual_p10"].astype(float),
            "high": frame["actual_p90"].astype(float),
            "orders": frame["orders"].astype(float),
            "size": 6 + 18 * np.sqrt(frame["orders"] / frame["orders"].max()),
        }
    )
    top = float(max(frame["actual_p90"].max(), frame["predicted_days"].max())) + 1
    plot = ui._figure(
        "Predicted vs actual delivery time (days)", 300, x_range=(-0.5, top), y_range=(-0.5, top)
    )
    plot.line([0, top], [0, top], color=ui.GREY, line_dash="dashed", legend_label="perfect")
    plot.segment(
        "predicted",
        "low",
        "predicted",
        "high",
        color=ui.BLUE,
        alpha=0.35,
        line_width=3,
        source=source,
        legend_label="actual 10-90%",
    )
    plot.scatter(
        "predicted", "actual", size="size", color=ui.BLUE, source=source, legend_label="actual mean"
    )
    plot.xaxis.axis_label = "predicted days"
    plot.yaxis.axis_label = "actual days"
    plot.legend.location = "top_left"
    plot.add_tools(
        HoverTool(
            tooltips=[
                ("predicted", "@predicted{0} d"),
                ("actual mean", "@actual{0.0} d"),
                ("orders", "@orders{0,0}"),
            ]
        )
    )
    return ui.bokeh(plot)


def delay_distribution(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Delivered orders by days late; on-time in green."""
    frame = store.delay_distribution(state)
    if frame.empty:
        return ui.notice("No delivered orders in this selection.")
    labels = ["on time" if d <= 0 else f"{d} d" for d in frame["days_late"]]
    source = ColumnDataSource(
        {
            "label": labels,
            "orders": frame["orders"].astype(float),
            "share": frame["orders"] / frame["orders"].sum(),
            "color": [ui.GOOD if d <= 0 else ui.BAD for d in frame["days_late"]],
        }
    )
    plot = ui._figure("Delay distribution (delivered orders)", 300, x_range=labels)
    plot.vbar(x="label", top="orders", width=0.8, color="color", source=source)
    plot.y_range.start = 0
    plot.xaxis.axis_label = "days past the promise"
    plot.add_tools(
        HoverTool(tooltips=[("", "@label"), ("orders", "@orders{0,0}"), ("share", "@share{0.0%}")])
    )
    return ui.bokeh(plot)


def breakdowns(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Late rate by region, carrier/mode and category, worst first."""
    charts = []
    for dimension, title in (
        ("region", "Late rate by region"),
        ("carrier_mode", "Late rate by carrier / mode"),
        ("category", "Late rate by category"),
    ):
        frame = store.late_rate_by(dimension, state)
        if frame.empty:
            charts.append(ui.notice(f"{title}: no delivered orders."))
        else:
            charts.append(ui.hbar_rate(frame, "value", "late_rate", title, "delivered"))
    return pn.Row(*charts, sizing_mode="stretch_width")


def _mercator(lat: pd.Series, lon: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Web-mercator metres, the projection map tiles use."""
    x = lon.to_numpy(float) * 20037508.34 / 180
    clipped = np.clip(lat.to_numpy(float), -85, 85)
    y = np.log(np.tan((90 + clipped) * np.pi / 360)) * 6378137
    return x, y


def delivery_map(store: DataStore, state: FilterState) -> pn.viewable.Viewable:
    """Where delivered orders go, coloured by late rate; only when coordinates exist."""
    frame = store.map_points(state)
    if frame.empty:
        return ui.notice("No customer coordinates in this data: the map is not available.")
    x, y = _mercator(frame["lat"], frame["lon"])
    source = ColumnDataSource(
        {
            "x": x,
            "y": y,
            "late": frame["late_rate"].astype(float),
            "delivered": frame["delivered"].astype(float),
            "size": 6 + 20 * np.sqrt(frame["delivered"] / frame["delivered"].max()),
        }
    )
    plot = ui._figure(
        "Where deliveries are late, by customer location (circle size = delivered orders)",
        380,
        x_axis_type="mercator",
        y_axis_type="mercator",
        match_aspect=True,
    )
    plot.tools = []
    # Cividis: perceptually uniform and readable with colour-vision deficiencies (late = yellow).
    mapper = LinearColorMapper(palette=list(Cividis256), low=0, high=1)
    plot.scatter(
        "x",
        "y",
        size="size",
        source=source,
        alpha=0.8,
        line_color="#334155",
        fill_color={"field": "late", "transform": mapper},
    )
    plot.add_layout(ColorBar(color_mapper=mapper, title="late rate", width=8), "right")
    plot.add_tools(HoverTool(tooltips=[("late", "@late{0%}"), ("delivered", "@delivered{0,0}")]))
    return ui.bokeh(plot)


def build(store: DataStore) -> pn.viewable.Viewable:
    """The deliveries page."""
    return pn.Column(
        ui.page_header(
            "Deliveries",
            "Are we keeping our promises, are the predictions right, and where does lateness "
            "come from? Orders placed in the selected period.",
        ),
        ui.reactive(store, summary),
        pn.Row(
            ui.reactive(store, predicted_vs_actual),
            ui.reactive(store, delay_distribution),
            sizing_mode="stretch_width",
        ),
        ui.reactive(store, breakdowns),
        ui.reactive(store, delivery_map),
        sizing_mode="stretch_width",
    )
