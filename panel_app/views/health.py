"""Data health: is what the dashboard shows fresh, complete and produced by the right models."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from panel_app import ui
from panel_app.store import DataStore


def _age(stamp: object, now: pd.Timestamp) -> str:
    """'25 min ago', '3 h ago', '2 days ago'."""
    if ui.is_missing(stamp):
        return "never"
    minutes = (now - pd.Timestamp(stamp)).total_seconds() / 60
    if minutes < 90:
        return f"{max(minutes, 0):.0f} min ago"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h ago"
    return f"{minutes / 1440:.0f} days ago"


def snapshot_line(store: DataStore) -> pn.viewable.Viewable:
    """Which published version the dashboard is reading."""
    snapshot = store.snapshot()
    return pn.pane.Markdown(
        f"Reading snapshot **{snapshot.version}**, published "
        f"{snapshot.published_at or 'at an unknown time'} (UTC).",
        margin=(0, 8),
    )


def layers(store: DataStore) -> pn.viewable.Viewable:
    """Freshness, rows and quarantine per layer."""
    frame = store.health()
    if frame.empty:
        return ui.notice("The pipeline has not reported any layer yet.")
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    frame = frame.assign(age=[_age(s, now) for s in frame["last_updated_at"]])
    shown = frame[
        ["layer", "dataset", "age", "last_updated_at", "row_count", "quarantined", "detail"]
    ].rename(
        columns={
            "layer": "Layer",
            "dataset": "Dataset",
            "age": "Updated",
            "last_updated_at": "Last update (UTC)",
            "row_count": "Rows",
            "quarantined": "Quarantined",
            "detail": "Detail",
        }
    )
    return ui.table(
        shown,
        formatters={
            "Rows": NumberFormatter(format="0,0"),
            "Quarantined": NumberFormatter(format="0,0"),
        },
        css_classes=["health-table"],
    )


def models(store: DataStore) -> pn.viewable.Viewable:
    """The models in service (and the ones they replaced) with their headline metric."""
    frame = store.models()
    if frame.empty:
        return ui.notice("No model has been registered yet.")
    frame = frame.assign(is_serving=frame["is_serving"].map({True: "in service", False: "retired"}))
    return ui.table(
        frame.rename(
            columns={
                "model_name": "Model",
                "model_version": "Version",
                "is_serving": "Status",
                "primary_metric": "Metric",
                "primary_metric_value": "Value",
                "trained_at": "Trained (UTC)",
                "train_rows": "Train rows",
                "test_rows": "Test rows",
                "serving_reason": "Why",
            }
        )[
            [
                "Model",
                "Version",
                "Status",
                "Metric",
                "Value",
                "Trained (UTC)",
                "Train rows",
                "Test rows",
                "framework",
                "algorithm",
                "Why",
            ]
        ],
        formatters={
            "Value": NumberFormatter(format="0.000"),
            "Train rows": NumberFormatter(format="0,0"),
            "Test rows": NumberFormatter(format="0,0"),
        },
        css_classes=["models-table"],
    )


def build(store: DataStore) -> pn.viewable.Viewable:
    """The data-health page (filters do not apply: it describes the pipeline itself)."""
    return pn.Column(
        ui.page_header(
            "Data health",
            "How fresh each layer is, what was quarantined, and which models are in service. "
            "Filters do not apply here.",
        ),
        ui.static(store, snapshot_line),
        pn.pane.Markdown("### Layers", margin=(8, 8, 0, 8)),
        ui.static(store, layers),
        pn.pane.Markdown("### Models", margin=(8, 8, 0, 8)),
        ui.static(store, models),
        sizing_mode="stretch_width",
    )
