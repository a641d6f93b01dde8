"""The demo's status line: what a person watching ``make demo`` wants to know, read cheaply.

Issue #15: the demo's terminal was flooded with Dagster's debug lines, so the addresses scrolled
away and nobody could tell whether anything reached the dashboard. Dagster's and the dashboard's
output now goes to ``SCPRO_HOME/logs/``; the terminal gets one line every few seconds, read from
what the platform already writes:

- events landed: offsets covered by the raw range files, from their names (no file is opened),
- the last snapshot: ``serving/current/published.json`` (publish time and event-time watermark),
- open orders, scored and at high risk: one query of the snapshot's ``fct_deliveries``, made only
  when a new version is published,
- alerts: lines of the outbox ``SCPRO_HOME/outbox/alerts.ndjson``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scpro_assets.alerts import outbox_path
from scpro_assets.ingest.landing import landed_ranges
from scpro_assets.settings import TOPICS, Settings


@dataclass(frozen=True)
class SnapshotFigures:
    """One published snapshot, as the status line shows it."""

    version: str
    published_at: str | None
    watermark: str | None
    open_orders: int | None
    scored_open_orders: int | None
    high_risk_open_orders: int | None


def events_landed(raw_dir: Path) -> int:
    """Offsets covered by raw range files (events landed, quarantined or expired)."""
    return sum(
        last - first + 1
        for topic in TOPICS
        for spans in landed_ranges(raw_dir, topic).values()
        for first, last in spans
    )


def alerts_sent(home: Path) -> int:
    """Alerts in the outbox (one JSON object a line)."""
    path = outbox_path(home)
    try:
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())
    except OSError:
        return 0


def _open_orders(db_path: Path) -> tuple[int | None, int | None, int | None]:
    """(open, scored open, high-risk open) orders of a snapshot's ``fct_deliveries``."""
    import duckdb

    try:
        with duckdb.connect(str(db_path), read_only=True) as con:
            row = con.execute(
                "select count(*) filter (where is_open), "
                "count(*) filter (where is_open and late_risk is not null), "
                "count(*) filter (where is_open and is_high_risk) from fct_deliveries"
            ).fetchone()
    except duckdb.Error:
        return None, None, None
    return (int(row[0]), int(row[1]), int(row[2])) if row else (None, None, None)


def read_snapshot(serving_current: Path) -> SnapshotFigures | None:
    """The snapshot ``current`` names now, or None before the first one."""
    if not serving_current.exists():
        return None
    version_dir = serving_current.resolve()
    meta: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((version_dir / "published.json").read_text())
    open_orders, scored, high = _open_orders(version_dir / "warehouse.duckdb")
    return SnapshotFigures(
        version=str(meta.get("version") or version_dir.name),
        published_at=meta.get("published_at"),  # type: ignore[arg-type]
        watermark=meta.get("watermark"),  # type: ignore[arg-type]
        open_orders=open_orders,
        scored_open_orders=scored,
        high_risk_open_orders=high,
    )


def _clock(iso: str | None, with_date: bool = False) -> str:
    if not iso:
        return "?"
    value = datetime.fromisoformat(iso)
    return f"{value:%Y-%m-%d %H:%M}" if with_date else f"{value:%H:%M:%S}"


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


@dataclass
class DemoStatus:
    """Builds the demo's status lines, and notes the first snapshot and the first scores."""

    settings: Settings
    started: float
    snapshot: SnapshotFigures | None = None
    first_snapshot_s: float | None = None
    first_scores_s: float | None = None
    open_orders_seen: list[int] = field(default_factory=list)

    def refresh(self, now: float) -> list[str]:
        """Read what changed; the milestone lines reached since the last call."""
        milestones = []
        current = self.settings.serving_current
        version = current.resolve().name if current.exists() else None
        if version and (self.snapshot is None or version != self.snapshot.version):
            figures = read_snapshot(current)
            if figures is not None:
                self.snapshot = figures
                if figures.open_orders is not None:
                    self.open_orders_seen.append(figures.open_orders)
                if self.first_snapshot_s is None:
                    self.first_snapshot_s = now - self.started
                    milestones.append(
                        f"first snapshot after {_elapsed(self.first_snapshot_s)}: "
                        f"data as of {_clock(figures.watermark, with_date=True)}"
                    )
                if self.first_scores_s is None and figures.scored_open_orders:
                    self.first_scores_s = now - self.started
                    milestones.append(
                        f"first scored open orders after {_elapsed(self.first_scores_s)}: "
                        f"{figures.scored_open_orders} scored, "
                        f"{figures.high_risk_open_orders} at high risk (see the At-risk page)"
                    )
        return milestones

    def line(self, now: float, published: int) -> str:
        """One status line."""
        parts = [
            f"[{_elapsed(now - self.started)}] published {published:,}",
            f"landed {events_landed(self.settings.raw_dir):,}",
        ]
        snap = self.snapshot
        if snap is None:
            parts.append("no snapshot yet (first Spark, model and dbt cycle running)")
        else:
            parts.append(
                f"snapshot {_clock(snap.published_at)} UTC, "
                f"data as of {_clock(snap.watermark, with_date=True)}"
            )
            if snap.open_orders is not None:
                parts.append(
                    f"open orders {snap.open_orders:,} ({snap.scored_open_orders:,} scored, "
                    f"{snap.high_risk_open_orders:,} high risk)"
                )
        parts.append(f"alerts {alerts_sent(self.settings.home)}")
        return " · ".join(parts)
