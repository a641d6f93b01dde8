"""Data health: is what the dashboard shows fresh, complete and produced by the right models."""

from __future__ import annotations

import html
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


ALERT_CSS = f"""
.alert-list {{ font-family: system-ui, sans-serif; display: grid; gap: 6px; }}
.alert-item {{ border: 1px solid #e2e8f0; border-left: 4px solid {ui.SEVERITY["info"]};
              border-radius: 6px; padding: 6px 10px; background: #fff; }}
.alert-item.error {{ border-left-color: {ui.SEVERITY["error"]}; }}
.alert-item.warning {{ border-left-color: {ui.SEVERITY["warning"]}; border-left-style: dashed; }}
.alert-item .when {{ color: #64748b; font-size: 12px; }}
.alert-item .title {{ color: #0f172a; font-weight: 600; }}
.alert-item .body {{ color: #334155; font-size: 13px; white-space: pre-line; }}
"""


def alert_html(frame: pd.DataFrame, now: pd.Timestamp) -> str:
    """The alerts as a list; every value is escaped (titles and bodies quote what failed)."""
    items = []
    for alert in frame.itertuples(index=False):
        severity = alert.severity if alert.severity in ("info", "warning", "error") else "info"
        items.append(
            f'<div class="alert-item {severity}" data-kind="{html.escape(alert.kind)}">'
            f'<div class="when">{html.escape(_age(alert.time, now))} · '
            f"{html.escape(alert.severity)} · {html.escape(alert.kind)}</div>"
            f'<div class="title">{html.escape(alert.title)}</div>'
            f'<div class="body">{html.escape(alert.body)}</div></div>'
        )
    return '<div class="alert-list">' + "".join(items) + "</div>"


def alerts(store: DataStore) -> pn.viewable.Viewable:
    """The newest alerts of every kind.

    For data engineers: ranges that keep failing to land, failed runs and checks, stale marts;
    for operations: orders newly at high risk (also on the At-risk page).
    """
    frame = store.alerts()
    if frame.empty:
        return ui.notice("No alert has been raised.", kind="success")
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    return pn.pane.HTML(
        alert_html(frame, now),
        stylesheets=[ALERT_CSS],
        sizing_mode="stretch_width",
        css_classes=["alerts"],
    )


def gaps(store: DataStore) -> pn.viewable.Viewable:
    """Offset ranges requested from Kafka but not landed yet, as the sensors last saw them."""
    frame = store.gaps()
    if frame.empty:
        return ui.notice("Every requested offset range is landed.", kind="success")
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    frame = frame.assign(
        age=[_age(s, now) for s in frame["requested_at"]],
        overdue=frame["overdue"].map({True: "past deadline", False: "in progress"}),
    )
    return ui.table(
        frame[
            [
                "topic",
                "partition",
                "first_offset",
                "last_offset",
                "unlanded_offsets",
                "attempts",
                "age",
                "overdue",
            ]
        ].rename(
            columns={
                "topic": "Topic",
                "partition": "Partition",
                "first_offset": "First offset",
                "last_offset": "Last offset",
                "unlanded_offsets": "Not landed",
                "attempts": "Attempts",
                "age": "Requested",
                "overdue": "State",
            }
        ),
        formatters={"Not landed": NumberFormatter(format="0,0")},
        css_classes=["gaps-table"],
    )


def completeness(store: DataStore) -> pn.viewable.Viewable:
    """Per topic: landed against Kafka at the cut, and what waits for the next snapshot.

    Offsets Kafka holds but the lake does not yet are in flight ("landing"), not missing: the
    next landing runs take them, and a range stuck past its deadline is listed under the gaps.
    Events landed after the snapshot's watermark wait for the next snapshot (issue #15).
    """
    frame = store.completeness()
    if frame.empty:
        return ui.notice("This snapshot was published without a completeness record.")
    for column in ("events_after_watermark", "latest_event_time", "holds_watermark"):
        if column not in frame:  # snapshots published before the watermark
            frame[column] = None
    frame = frame.assign(
        is_complete=frame["is_complete"]
        .map({True: "landed", False: "landing (events in flight)"})
        .fillna("unknown (Kafka did not answer)"),
        holds_watermark=frame["holds_watermark"].map({True: "yes", False: ""}).fillna(""),
    )
    shown = frame[
        [
            "topic",
            "is_complete",
            "offsets_in_kafka",
            "events_landed",
            "events_quarantined",
            "offsets_without_event",
            "offsets_unlanded",
            "latest_event_time",
            "events_after_watermark",
            "holds_watermark",
            "kafka_status",
        ]
    ].rename(
        columns={
            "topic": "Topic",
            "is_complete": "State at the cut",
            "offsets_in_kafka": "In Kafka",
            "events_landed": "Landed",
            "events_quarantined": "Quarantined",
            "offsets_without_event": "No event (markers, expired)",
            "offsets_unlanded": "Not landed yet",
            "latest_event_time": "Latest event landed",
            "events_after_watermark": "Waiting (after the watermark)",
            "holds_watermark": "Holds the watermark",
            "kafka_status": "Kafka",
        }
    )
    counts = [
        "In Kafka",
        "Landed",
        "Quarantined",
        "No event (markers, expired)",
        "Not landed yet",
        "Waiting (after the watermark)",
    ]
    watermark = store.watermark()
    note = ui.notice(
        "This snapshot is cut at the watermark "
        f"**{watermark:%d %b %Y %H:%M} UTC**: every topic had landed up to it. Events landed "
        "after it wait for the next snapshot; offsets not landed yet are in flight."
        if watermark is not None
        else "This snapshot was published before SCPro recorded its watermark."
    )
    return pn.Column(
        note,
        ui.table(
            shown,
            formatters={c: NumberFormatter(format="0,0") for c in counts},
            css_classes=["completeness-table"],
        ),
        sizing_mode="stretch_width",
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
            "How fresh each layer is, what was quarantined, what is missing, the alerts, and "
            "which models are in service. Filters do not apply here.",
        ),
        ui.static(store, snapshot_line),
        pn.pane.Markdown("### Alerts", margin=(8, 8, 0, 8)),
        ui.static(store, alerts),
        pn.pane.Markdown("### Offset ranges not landed yet", margin=(8, 8, 0, 8)),
        ui.static(store, gaps),
        pn.pane.Markdown("### Completeness of this snapshot", margin=(8, 8, 0, 8)),
        ui.static(store, completeness),
        pn.pane.Markdown("### Layers", margin=(8, 8, 0, 8)),
        ui.static(store, layers),
        pn.pane.Markdown("### Models", margin=(8, 8, 0, 8)),
        ui.static(store, models),
        sizing_mode="stretch_width",
    )
