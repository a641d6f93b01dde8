"""Gaps: offset ranges that were requested but never landed are seen, requested again, alerted.

The sensor's cursor moves past a range when it asks for the run that lands it (with the other
partitions' ranges of the tick); the raw file is the range's commit record. A range whose runs
all fail (a broker that cannot serve it, a bug, a run deleted or lost) would otherwise stay
unlanded for good, below the cursor, with nothing asking for it again. So the sensor keeps each
requested range *open* in its cursor until raw files cover it, and on every tick:

- fails the raw asset's ``requested_ranges_landed`` check while a range stays unlanded past the
  deadline (:class:`~scpro_assets.settings.GapSettings`), listing the ranges and their age;
- requests an overdue range again, on its own, when no queued or running run holds it, with a run
  key that still names the range (``orders-0-100-199-retry2``), waiting twice as long after each
  attempt (deadline, 2x, 4x, ... capped): landing is idempotent, so a second run cannot
  duplicate anything;
- raises an alert once a range has failed ``alert_after_attempts`` attempts, once per band of
  that many attempts (the outbox deduplicates across restarts).

Offsets below the cursor that no open range and no raw file covers (a cursor written before
ranges were tracked, or state lost) are adopted as open ranges, so any gap is seen.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import dagster as dg

from scpro_assets.alerts import Alert, gap_status_dir
from scpro_assets.ingest.landing import OffsetRange
from scpro_assets.settings import GapSettings

#: The raw assets' check that the sensors evaluate every tick.
CHECK_NAME = "requested_ranges_landed"
#: Ranges listed in the check's metadata and the status file (the counts cover all of them).
LISTED_RANGES = 50


@dataclass(frozen=True)
class OpenRange:
    """A requested range without raw files (yet), and how often it was asked for."""

    partition: int
    start: int
    stop: int
    requested_at: float
    last_request: float
    attempts: int = 1
    alerted_band: int = 0

    @property
    def key(self) -> str:
        """``partition-first-last``: how the cursor names it."""
        return f"{self.partition}-{self.start}-{self.stop - 1}"

    def offset_range(self, topic: str) -> OffsetRange:
        """The range as landing knows it."""
        return OffsetRange(topic, self.partition, self.start, self.stop)


@dataclass(frozen=True)
class SensorState:
    """A Kafka sensor's cursor: the next offset to request per partition, and the open ranges.

    ``requested_at`` is when the sensor last asked for a landing run of new offsets (epoch
    seconds; ``None`` before the first): it paces landing while a cycle runs
    (:mod:`sensors.kafka_sensors`).
    """

    next_offsets: dict[int, int] = field(default_factory=dict)
    open_ranges: dict[str, OpenRange] = field(default_factory=dict)
    requested_at: float | None = None


def parse_state(cursor: str | None) -> SensorState:
    """The state in a cursor; the plain ``{partition: next_offset}`` of older versions too."""
    if not cursor:
        return SensorState()
    data = json.loads(cursor)
    if "next" not in data:
        return SensorState({int(p): int(o) for p, o in data.items()})
    return SensorState(
        {int(p): int(o) for p, o in data["next"].items()},
        {key: OpenRange(**value) for key, value in data.get("open", {}).items()},
        data.get("requested_at"),
    )


def dump_state(state: SensorState) -> str:
    """The JSON cursor, partitions and ranges in order."""
    data: dict[str, object] = {
        "next": {str(p): o for p, o in sorted(state.next_offsets.items())},
        "open": {
            r.key: asdict(r)
            for r in sorted(state.open_ranges.values(), key=lambda r: (r.partition, r.start))
        },
    }
    if state.requested_at is not None:
        data["requested_at"] = state.requested_at
    return json.dumps(data)


def uncovered(start: int, stop: int, landed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The half-open spans of ``[start, stop)`` that no landed ``(first, last)`` range covers."""
    spans, cursor = [], start
    for first, last in sorted(landed):
        if last < cursor or first >= stop:
            continue
        if first > cursor:
            spans.append((cursor, first))
        cursor = max(cursor, last + 1)
        if cursor >= stop:
            break
    if cursor < stop:
        spans.append((cursor, stop))
    return spans


def wait_before_next_request(attempts: int, settings: GapSettings) -> float:
    """Seconds after the last request before a range is asked for again: deadline, 2x, 4x..."""
    return min(settings.backoff_cap_seconds, settings.deadline_seconds * 2 ** (attempts - 1))


def track_requested(
    open_ranges: dict[str, OpenRange], ranges: list[OffsetRange], now: float
) -> dict[str, OpenRange]:
    """``open_ranges`` with the ranges this tick requests for the first time."""
    tracked = dict(open_ranges)
    for rng in ranges:
        opened = OpenRange(rng.partition, rng.start, rng.stop, now, now)
        tracked.setdefault(opened.key, opened)
    return tracked


@dataclass(frozen=True)
class UnlandedRange:
    """An open range and the offsets of it that no raw file holds yet."""

    range: OpenRange
    spans: list[tuple[int, int]]
    age_seconds: float
    overdue: bool

    @property
    def offsets(self) -> int:
        """Offsets of the range not landed."""
        return sum(stop - start for start, stop in self.spans)

    def describe(self) -> dict[str, object]:
        """What the check's metadata, the status file and the alert say about it."""
        return {
            "partition": self.range.partition,
            "first_offset": self.range.start,
            "last_offset": self.range.stop - 1,
            "unlanded_offsets": self.offsets,
            "age_seconds": round(self.age_seconds, 1),
            "requested_at": self.range.requested_at,
            "attempts": self.range.attempts,
            "overdue": self.overdue,
        }


@dataclass
class GapReview:
    """What one tick found and decided about the open ranges of a topic."""

    topic: str
    open_ranges: dict[str, OpenRange]
    unlanded: list[UnlandedRange] = field(default_factory=list)
    retries: list[tuple[OffsetRange, int]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    landed_since: int = 0

    @property
    def overdue(self) -> list[UnlandedRange]:
        """Ranges unlanded past the deadline: each fails the check."""
        return [u for u in self.unlanded if u.overdue]

    @property
    def passed(self) -> bool:
        """No range is unlanded past the deadline."""
        return not self.overdue


def _adopt_untracked(
    open_ranges: dict[str, OpenRange],
    next_offsets: dict[int, int],
    offsets: dict[int, tuple[int, int]],
    landed: dict[int, list[tuple[int, int]]],
    now: float,
    max_events_per_run: int,
) -> dict[str, OpenRange]:
    """Open ranges for requested offsets (below the cursor) that no file or open range holds."""
    adopted = dict(open_ranges)
    for partition, next_offset in next_offsets.items():
        if partition not in offsets:
            continue
        beginning, end = offsets[partition]
        held = landed.get(partition, []) + [
            (r.start, r.stop - 1) for r in open_ranges.values() if r.partition == partition
        ]
        # Offsets that Kafka no longer holds (retention) or never held (a recreated topic)
        # cannot be landed: they are not gaps to heal.
        for start, stop in uncovered(beginning, min(next_offset, end), held):
            for piece in range(start, stop, max_events_per_run):
                opened = OpenRange(
                    partition, piece, min(stop, piece + max_events_per_run), now, now
                )
                adopted[opened.key] = opened
    return adopted


def review_gaps(
    topic: str,
    state: SensorState,
    offsets: dict[int, tuple[int, int]],
    landed: dict[int, list[tuple[int, int]]],
    now: float,
    settings: GapSettings,
    in_flight: Callable[[OffsetRange], bool],
    max_events_per_run: int,
) -> GapReview:
    """Close landed ranges, find the unlanded ones, decide retries and alerts (see the module)."""
    candidates = _adopt_untracked(
        state.open_ranges, state.next_offsets, offsets, landed, now, max_events_per_run
    )
    review = GapReview(topic, {})
    for key, open_range in sorted(candidates.items(), key=lambda kv: kv[1].start):
        spans = uncovered(open_range.start, open_range.stop, landed.get(open_range.partition, []))
        if not spans:
            review.landed_since += 1
            continue
        age = now - open_range.requested_at
        unlanded = UnlandedRange(open_range, spans, age, age >= settings.deadline_seconds)
        due = now - open_range.last_request >= wait_before_next_request(
            open_range.attempts, settings
        )
        if unlanded.overdue and due and not in_flight(open_range.offset_range(topic)):
            band = open_range.attempts // settings.alert_after_attempts
            if band > open_range.alerted_band:
                review.alerts.append(range_alert(topic, unlanded, band))
                open_range = replace(open_range, alerted_band=band)
            open_range = replace(open_range, attempts=open_range.attempts + 1, last_request=now)
            review.retries.append((open_range.offset_range(topic), open_range.attempts))
            unlanded = replace(unlanded, range=open_range)
        review.open_ranges[key] = open_range
        review.unlanded.append(unlanded)
    review.unlanded.sort(key=lambda u: (u.range.partition, u.range.start))
    return review


def range_alert(topic: str, unlanded: UnlandedRange, band: int) -> Alert:
    """The alert for a range that keeps failing to land."""
    rng = unlanded.range
    return Alert(
        id=f"range_unlanded:{topic}-{rng.key}:band{band}",
        kind="range_unlanded",
        severity="error",
        title=f"SCPro: {topic} offsets {rng.start}-{rng.stop - 1} (partition {rng.partition}) "
        f"not landed after {rng.attempts} attempts",
        body=(
            f"{unlanded.offsets} offsets of Kafka topic '{topic}', partition {rng.partition}, "
            f"range {rng.start}-{rng.stop - 1}, were requested {unlanded.age_seconds:.0f} s ago "
            f"and are still not in the lake after {rng.attempts} runs. SCPro keeps requesting "
            f"the range with backoff. Look at the failed runs tagged "
            f"scpro/partition-{rng.partition}={rng.start}-{rng.stop - 1} in the Dagster UI."
        ),
        subject={
            "topic": topic,
            "partition": str(rng.partition),
            "range": f"{rng.start}-{rng.stop - 1}",
            "attempts": str(rng.attempts),
        },
    )


def check_evaluation(review: GapReview, settings: GapSettings) -> dg.AssetCheckEvaluation:
    """The ``requested_ranges_landed`` check of ``raw_<topic>`` from one tick's review."""
    overdue = review.overdue
    description = (
        f"{sum(u.offsets for u in overdue)} offsets in {len(overdue)} ranges were requested "
        f"more than {settings.deadline_seconds:g} s ago and are not landed"
        if overdue
        else f"every range requested more than {settings.deadline_seconds:g} s ago is landed"
    )
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(f"raw_{review.topic}"),
        check_name=CHECK_NAME,
        passed=review.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "overdue_ranges": len(overdue),
            "overdue_offsets": sum(u.offsets for u in overdue),
            "open_ranges": len(review.unlanded),
            "deadline_seconds": settings.deadline_seconds,
            "unlanded_ranges": dg.MetadataValue.json(
                [u.describe() for u in review.unlanded[:LISTED_RANGES]]
            ),
        },
    )


def gap_status_path(home: Path, topic: str) -> Path:
    """``SCPRO_HOME/outbox/gaps/<topic>.json``: the topic's unlanded ranges, for the dashboard."""
    return gap_status_dir(home) / f"{topic}.json"


def write_gap_status(home: Path, review: GapReview) -> None:
    """Record the topic's unlanded ranges for the Data health page, when they changed.

    Written atomically (temporary file and rename) so the page never reads half a file.
    """
    path = gap_status_path(home, review.topic)
    status = {
        "topic": review.topic,
        "ranges": [
            {k: v for k, v in u.describe().items() if k != "age_seconds"}
            for u in review.unlanded[:LISTED_RANGES]
        ],
        "open_ranges": len(review.unlanded),
        "unlanded_offsets": sum(u.offsets for u in review.unlanded),
    }
    text = json.dumps(status, sort_keys=True)
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class GapPolicy(dg.ConfigurableResource):
    """The gap deadline, backoff cap and alert threshold (``SCPRO_GAP_*``) for the sensors."""

    deadline_seconds: float = 600.0
    alert_after_attempts: int = 3
    backoff_cap_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: GapSettings) -> GapPolicy:
        """Build from :class:`GapSettings` (itself read from the environment)."""
        return cls(**settings.model_dump())

    def settings(self) -> GapSettings:
        """As plain settings for the pure functions above."""
        return GapSettings(
            deadline_seconds=self.deadline_seconds,
            alert_after_attempts=self.alert_after_attempts,
            backoff_cap_seconds=self.backoff_cap_seconds,
        )
