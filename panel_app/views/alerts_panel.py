"""The latest "newly at high risk" alerts, for the At-risk page.

Operations get one alert per snapshot listing the open orders that newly crossed into high late
risk (``scpro_assets.risk_alerts``); whether or not a channel is configured, every alert is in the
outbox, and this panel shows the newest ones, so the page says what changed since the last look.
It reads the outbox itself (live, not part of the snapshot), and every value is escaped: order ids
and reasons come from data.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pandas as pd
import panel as pn

from panel_app import ui
from panel_app.store import DataStore
from scpro_assets.alerts import outbox_path, read_outbox

#: The outbox kind of the alerts shown here.
KIND = "high_risk_orders"

#: Alerts shown, newest first.
SHOWN = 3

CSS = f"""
.risk-alerts {{ font-family: system-ui, sans-serif; display: grid; gap: 6px; }}
.risk-alert {{ border: 1px solid #e2e8f0; border-left: 4px solid {ui.SEVERITY["warning"]};
              border-radius: 6px; padding: 6px 10px; background: #fffbeb; }}
.risk-alert .when {{ color: #64748b; font-size: 12px; }}
.risk-alert .title {{ color: #0f172a; font-weight: 600; }}
.risk-alert .body {{ color: #334155; font-size: 13px; white-space: pre-line; }}
"""


def _when(stamp: object, now: datetime) -> str:
    """'12 min ago (2026-11-30 06:40 UTC)', or the raw value when it is not a time."""
    try:
        at = pd.Timestamp(stamp).tz_convert(UTC)
    except (TypeError, ValueError):
        return str(stamp)
    minutes = max((now - at.to_pydatetime()).total_seconds() / 60, 0)
    ago = f"{minutes:.0f} min ago" if minutes < 90 else f"{minutes / 60:.0f} h ago"
    return f"{ago} ({at:%Y-%m-%d %H:%M} UTC)"


def risk_alerts(records: list[dict], shown: int = SHOWN) -> list[dict]:
    """The newest ``shown`` alerts of ``KIND`` in ``records`` (outbox order: oldest first)."""
    return [r for r in records if r.get("kind") == KIND][-shown:][::-1]


def alerts_html(records: list[dict], now: datetime) -> str:
    """The alerts as a list; every value is escaped."""
    items = [
        '<div class="risk-alert">'
        f'<div class="when">{html.escape(_when(r.get("time"), now))}</div>'
        f'<div class="title">{html.escape(str(r.get("title", "")))}</div>'
        f'<div class="body">{html.escape(str(r.get("body", "")))}</div></div>'
        for r in records
    ]
    return '<div class="risk-alerts">' + "".join(items) + "</div>"


def latest(store: DataStore) -> pn.viewable.Viewable:
    """The newest alerts about orders newly at high risk, or a note that there is none."""
    now = datetime.now(UTC)
    records = risk_alerts(read_outbox(outbox_path(store.home())))
    if not records:
        return ui.notice("No order has newly crossed into high risk since alerts began.")
    return pn.pane.HTML(
        alerts_html(records, now),
        stylesheets=[CSS],
        sizing_mode="stretch_width",
        css_classes=["risk-alerts-panel"],
    )


def panel(store: DataStore) -> pn.viewable.Viewable:
    """The panel as the At-risk page includes it: a heading and the alerts, built when shown."""
    return pn.Column(
        pn.pane.Markdown("### Newly at high risk (alerts)", margin=(8, 8, 0, 8)),
        ui.static(store, latest),
        sizing_mode="stretch_width",
    )
