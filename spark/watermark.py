"""One as-of time per snapshot: the event-time watermark, and the cut of the event stores at it.

Issue #15: the four topics land independently (one landing run per partition and offset range),
so at a demo's pace the shipments were landed days of business time ahead of the orders, and
every order in a snapshot was already delivered or canceled: no order was ever open. A snapshot
is now a consistent cut at one business time, the **watermark**: the latest event time up to
which every topic partition has landed.

- Per (topic, partition), the latest event time in the event store. The watermark is the
  minimum of these over the partitions that still have events **in flight** (offsets in Kafka
  that are not landed yet): such a partition may still bring events up to its own latest time.
- A partition with nothing in flight (caught up, or quiet: its producer has nothing to say) does
  not hold the watermark back, and a partition or topic with no event at all carries no business
  time yet and is left out. A quiet topic therefore never freezes the dashboard, while a topic
  whose landing lags (or is stuck on a gap) holds it, as it should: its events are on the way.
- When no partition has events in flight (a bulk load, or a stream that ended and is all
  landed), the watermark is the latest event time of all: nothing is cut.
- It never goes back from the previous build's: after a quiet spell, new events may arrive on a
  partition that had landed less far, and a snapshot must not reopen an order an earlier one
  showed delivered. Such events enter the next build as they land.

Every event later than the watermark waits in the event store for the next snapshot: orders
placed after it are absent, and tracking, payments and incidents after it have not happened yet
as of the watermark (so an order delivered after it is open). Times are compared as epoch
microseconds, exact and independent of the session's time zone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=int(micros))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class PartitionProgress:
    """How far one topic partition has landed, in business time."""

    topic: str
    partition: int
    events: int
    latest_event_micros: int
    in_flight: bool


@dataclass(frozen=True)
class TopicProgress:
    """One topic's row of the snapshot's watermark record."""

    topic: str
    events: int
    events_after_watermark: int
    latest_event_time: str | None
    partitions_in_flight: int
    holds_watermark: bool


@dataclass(frozen=True)
class Watermark:
    """The business time a snapshot is cut at, and how far each partition has landed."""

    micros: int | None
    partitions: tuple[PartitionProgress, ...] = ()
    after_watermark: dict[str, int] = field(default_factory=dict)

    @property
    def time(self) -> datetime | None:
        """The watermark (UTC); None when nothing has been landed yet."""
        return _from_micros(self.micros)

    def holds(self, topic: str) -> bool:
        """Whether a partition of ``topic`` is the one the watermark waits for."""
        return any(
            p.topic == topic and p.in_flight and p.latest_event_micros == self.micros
            for p in self.partitions
        )

    def topics(self, topics: Collection[str]) -> list[TopicProgress]:
        """One row per topic, in the order given (topics without events included)."""
        rows = []
        for topic in topics:
            mine = [p for p in self.partitions if p.topic == topic]
            latest = max((p.latest_event_micros for p in mine), default=None)
            rows.append(
                TopicProgress(
                    topic=topic,
                    events=sum(p.events for p in mine),
                    events_after_watermark=self.after_watermark.get(topic, 0),
                    latest_event_time=_iso(_from_micros(latest)),
                    partitions_in_flight=sum(p.in_flight for p in mine),
                    holds_watermark=self.holds(topic),
                )
            )
        return rows

    def record(self, topics: Collection[str]) -> dict[str, object]:
        """The JSON record kept beside the clean layer and published with the snapshot."""
        return {
            "watermark": _iso(self.time),
            "computed_at": datetime.now(UTC).isoformat(),
            "topics": [asdict(t) for t in self.topics(topics)],
        }


#: Per (topic, partition): events stored and the latest event time (epoch micros; None when
#: every event of the partition lacks one). Summable: two batches' progress adds up.
Progress = list[tuple[str, int, int, int | None]]


def partition_progress(stores: Mapping[str, DataFrame]) -> Progress:
    """How far each partition of ``{topic: events}`` goes, in one small Spark job."""
    frames = [
        df.groupBy("partition")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.max(F.unix_micros("event_time")).alias("latest"),
        )
        .select(F.lit(topic).alias("topic"), "partition", "events", "latest")
        for topic, df in stores.items()
    ]
    if not frames:
        return []
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return sorted(
        (
            (row["topic"], int(row["partition"]), int(row["events"]), row["latest"])
            for row in union.collect()
        ),
        key=lambda p: (p[0], p[1]),
    )


def add_progress(before: Progress, batch: Progress) -> Progress:
    """The progress of ``before`` and a batch of new events together (counts add, latest max)."""
    total: dict[tuple[str, int], tuple[int, int | None]] = {}
    for topic, partition, events, latest in [*before, *batch]:
        count, known = total.get((topic, partition), (0, None))
        later = latest if known is None else (known if latest is None else max(known, latest))
        total[(topic, partition)] = (count + events, later)
    return [(t, p, events, latest) for (t, p), (events, latest) in sorted(total.items())]


def watermark_of(
    progress: Progress,
    in_flight: Collection[tuple[str, int]] | None = None,
    not_before: datetime | None = None,
) -> Watermark:
    """The watermark of partitions that went as far as ``progress`` says (module docstring).

    ``in_flight`` names the (topic, partition) pairs with offsets in Kafka not landed yet; None
    means none (everything is landed: a bulk load, the tests). ``not_before`` is the previous
    build's watermark: it never goes back, so a snapshot never reopens an order an earlier one
    showed delivered (after a quiet spell, new events may arrive on a partition that had landed
    less far). A partition without any event time carries no business time and is left out.
    """
    waiting = set(in_flight or ())
    partitions = tuple(
        PartitionProgress(
            topic=topic,
            partition=partition,
            events=events,
            latest_event_micros=int(latest),
            in_flight=(topic, partition) in waiting,
        )
        for topic, partition, events, latest in progress
        if latest is not None
    )
    holding = [p.latest_event_micros for p in partitions if p.in_flight]
    everything = [p.latest_event_micros for p in partitions]
    micros = min(holding) if holding else max(everything, default=None)
    if micros is not None and not_before is not None:
        micros = max(micros, (not_before - _EPOCH) // timedelta(microseconds=1))
    return Watermark(micros, partitions)


def event_watermark(
    stores: Mapping[str, DataFrame],
    in_flight: Collection[tuple[str, int]] | None = None,
    not_before: datetime | None = None,
) -> Watermark:
    """The watermark of the event stores ``{topic: events}``, read whole (:func:`watermark_of`).

    An incremental build adds its new events' progress to the last build's instead
    (:func:`add_progress`), so it does not scan the stores' history.
    """
    return watermark_of(partition_progress(stores), in_flight, not_before)


def before_watermark(events: DataFrame, watermark: Watermark) -> DataFrame:
    """The events at or before the watermark (all of them when nothing was landed yet)."""
    if watermark.micros is None:
        return events
    return events.where(F.unix_micros("event_time") <= F.lit(watermark.micros))


def with_waiting_counts(stores: Mapping[str, DataFrame], watermark: Watermark) -> Watermark:
    """The watermark with, per topic, the events landed after it (they wait for the next cut).

    No Spark job when no partition has landed beyond the watermark (nothing in flight: the cut
    is the latest event of all); else one, reading only the months from the watermark's on when
    the stores are partitioned by ``event_month`` (a later event cannot be in an earlier month).
    """
    if watermark.micros is None or not stores:
        return watermark
    if all(p.latest_event_micros <= watermark.micros for p in watermark.partitions):
        waiting = {p.topic: 0 for p in watermark.partitions}
        return Watermark(watermark.micros, watermark.partitions, waiting)
    month = f"{_from_micros(watermark.micros):%Y-%m}"
    frames = [
        (df.where(F.col("event_month") >= month) if "event_month" in df.columns else df).select(
            F.lit(topic).alias("topic"),
            (F.unix_micros("event_time") > F.lit(watermark.micros)).cast("long").alias("late"),
        )
        for topic, df in stores.items()
    ]
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    counts = {
        row["topic"]: int(row["waiting"] or 0)
        for row in union.groupBy("topic").agg(F.sum("late").alias("waiting")).collect()
    }
    return Watermark(watermark.micros, watermark.partitions, counts)
