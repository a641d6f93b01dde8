"""Land one Kafka offset range as Parquet, idempotently, with a quarantine for bad events.

A range is ``[start, stop)`` of one partition. Landing reads exactly that range (assign + seek,
no consumer group), validates every event against its contract and writes two files named by
(topic, partition, first offset, last offset):

- ``lake/raw/<topic>/partition-<p>/<topic>-p<p>-<first>-<last>.parquet``: valid events;
- ``lake/quarantine/<topic>/partition-<p>/<same name>``: everything else, with the raw bytes and
  the reason.

Files are written to a temporary name and renamed atomically, so a reader never sees half a file.
The raw file is written last and always (even with no rows): it is the commit record of the range.
A run *ensures* its offsets are landed: re-landing the same range rewrites the same files, and a
range that overlaps ranges landed with other boundaries (two ticks that disagreed) lands only the
gaps, as files of their own. Whatever fails and is retried, every offset lands once.
Accounting always holds: ``landed + quarantined + expired + already_landed == stop - start``,
where ``expired`` counts offsets the broker no longer has (retention) and says so.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scpro_assets.contracts.events import validate_events
from scpro_assets.perf import paused_gc
from scpro_assets.settings import KafkaSettings

RAW_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.string()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("schema_version", pa.int16()),
        ("source", pa.string()),
        ("order_id", pa.string()),
        ("payload", pa.string()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.binary()),
        ("payload_raw", pa.binary()),
        ("payload_bytes", pa.int64()),
        ("reason", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)

_FILE_RE = re.compile(r"^(?P<topic>.+)-p(?P<p>\d+)-(?P<first>\d{12})-(?P<last>\d{12})\.parquet$")


class RangeUnavailableError(RuntimeError):
    """The broker did not deliver the whole range in time (it may be down): retry the run."""


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets ``[start, stop)`` of one partition of a logical topic."""

    topic: str
    partition: int
    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop <= self.start:
            raise ValueError(f"empty or negative offset range {self.start}..{self.stop}")

    @property
    def last(self) -> int:
        """Last offset in the range (inclusive)."""
        return self.stop - 1

    @property
    def size(self) -> int:
        """Number of offsets in the range."""
        return self.stop - self.start

    @property
    def run_key(self) -> str:
        """The Dagster run key: one run per range, ever."""
        return f"{self.topic}-{self.partition}-{self.start}-{self.last}"

    @property
    def file_name(self) -> str:
        """Name of the range's Parquet files (raw and quarantine)."""
        return f"{self.topic}-p{self.partition}-{self.start:012d}-{self.last:012d}.parquet"


@dataclass
class LandingResult:
    """What landing one range did; becomes the materialization's metadata."""

    range: OffsetRange
    landed: int = 0
    quarantined: int = 0
    expired: int = 0
    already_landed: int = 0
    pieces: list[OffsetRange] = field(default_factory=list)
    duplicates: int = 0
    bytes_read: int = 0
    raw_file: Path | None = None
    quarantine_file: Path | None = None
    raw_file_bytes: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    event_time_min: datetime | None = None
    event_time_max: datetime | None = None
    end_offset: int | None = None
    seconds: float = 0.0

    @property
    def accounted(self) -> int:
        """Offsets accounted for: must equal the range size."""
        return self.landed + self.quarantined + self.expired + self.already_landed


def partition_dir(base: Path, topic: str, partition: int) -> Path:
    """Folder of one partition's range files.

    Not ``partition=<p>``: Hive-style names would make Spark and DuckDB infer a ``partition``
    column that clashes with the one stored in the files.
    """
    return base / topic / f"partition-{partition}"


def landed_ranges(base: Path, topic: str) -> dict[int, list[tuple[int, int]]]:
    """``{partition: [(first, last), ...]}`` of the range files under ``base`` for ``topic``."""
    found: dict[int, list[tuple[int, int]]] = {}
    root = base / topic
    if not root.is_dir():
        return found
    for path in root.glob("partition-*/*.parquet"):
        match = _FILE_RE.match(path.name)
        if match and match["topic"] == topic:
            found.setdefault(int(match["p"]), []).append((int(match["first"]), int(match["last"])))
    for spans in found.values():
        spans.sort()
    return found


def landed_watermarks(raw_base: Path, topic: str) -> dict[int, int]:
    """Next offset after the contiguous landed prefix of each partition.

    Raw files are the commit records of ranges (quarantine files only accompany them).
    """
    marks = {}
    for p, ranges in landed_ranges(raw_base, topic).items():
        mark = min(first for first, _ in ranges)
        for first, last in sorted(ranges):
            if first > mark:
                break
            mark = max(mark, last + 1)
        marks[p] = mark
    return marks


def pieces_to_land(rng: OffsetRange, landed: list[tuple[int, int]]) -> list[OffsetRange]:
    """The parts of ``rng`` to (re)write, given the ``(first, last)`` ranges already landed.

    A range landed with exactly these boundaries is rewritten whole; otherwise only the offsets
    no landed range covers are landed, each gap as a range of its own.
    """
    if (rng.start, rng.last) in landed:
        return [rng]
    pieces, cursor = [], rng.start
    for first, last in sorted(landed):
        if last < cursor or first > rng.last:
            continue
        if first > cursor:
            pieces.append(OffsetRange(rng.topic, rng.partition, cursor, first))
        cursor = max(cursor, last + 1)
        if cursor > rng.last:
            break
    if cursor <= rng.last:
        pieces.append(OffsetRange(rng.topic, rng.partition, cursor, rng.stop))
    return pieces


def _write_atomic(table: pa.Table, target: Path) -> int:
    """Write ``table`` to a temporary file beside ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        size = tmp.stat().st_size
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def read_range(
    kafka: KafkaSettings, rng: OffsetRange, timeout_s: float = 60.0
) -> tuple[list, int, int | None]:
    """Read exactly the records of ``rng``: the records, the expired count, the end offset.

    The end offset is the partition's after reading (for the lag metadata; ``None`` if the broker
    did not say).
    Offsets below the partition's beginning (deleted by retention) are reported as expired.
    Raises :class:`RangeUnavailableError` if the broker does not deliver up to ``stop`` in time.
    The end offset is asked of this consumer, so a run does not bootstrap a second client for it.
    """
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    from scpro_assets.kafka.clients import consumer

    tp = TopicPartition(kafka.topic_name(rng.topic), rng.partition)
    client = consumer(kafka)
    records: list = []
    try:
        client.assign([tp])
        beginning = client.beginning_offsets([tp])[tp]
        start = max(rng.start, beginning)
        expired = start - rng.start
        if start >= rng.stop:
            return records, rng.size, _end_offset(client, tp)
        client.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        position = start
        while position < rng.stop:
            if time.monotonic() > deadline:
                raise RangeUnavailableError(
                    f"{rng.run_key}: the broker delivered offsets up to {position} of "
                    f"{rng.start}..{rng.last} within {timeout_s:.0f}s"
                )
            try:
                batch = client.poll(timeout_ms=1000, max_records=20_000)
            except KafkaError as error:
                raise RangeUnavailableError(f"{rng.run_key}: {error}") from error
            for part in batch.values():
                for record in part:
                    if record.offset >= rng.stop:
                        position = rng.stop
                        break
                    if record.offset >= position:
                        records.append(record)
                        position = record.offset + 1
            if not batch:
                # The consumer may skip offsets that hold no record (e.g. transaction markers).
                current = client.position(tp)
                if current is not None and current > position:
                    expired += min(current, rng.stop) - position
                    position = min(current, rng.stop)
        return records, expired, _end_offset(client, tp)
    finally:
        client.close()


def _end_offset(client: object, tp: object) -> int | None:
    """The partition's end offset, or ``None``: the lag it feeds is informative only."""
    try:
        return int(client.end_offsets([tp])[tp])  # type: ignore[attr-defined]
    except Exception:  # the broker may be going away; landing itself has succeeded
        return None


def land_range(
    kafka: KafkaSettings,
    rng: OffsetRange,
    raw_base: Path,
    quarantine_base: Path,
    timeout_s: float = 60.0,
) -> LandingResult:
    """Ensure every offset of ``rng`` is landed once; see the module docstring."""
    started = time.perf_counter()
    landed = landed_ranges(raw_base, rng.topic).get(rng.partition, [])
    total = LandingResult(range=rng)
    for piece in pieces_to_land(rng, landed):
        part = _land_piece(kafka, piece, raw_base, quarantine_base, timeout_s)
        total.pieces.append(piece)
        total.landed += part.landed
        total.quarantined += part.quarantined
        total.expired += part.expired
        total.duplicates += part.duplicates
        total.bytes_read += part.bytes_read
        total.raw_file_bytes += part.raw_file_bytes
        total.reasons.update(part.reasons)
        total.raw_file = total.raw_file or part.raw_file
        total.quarantine_file = total.quarantine_file or part.quarantine_file
        if part.end_offset is not None:
            total.end_offset = max(total.end_offset or 0, part.end_offset)
        for attr, pick in (("event_time_min", min), ("event_time_max", max)):
            values = [v for v in (getattr(total, attr), getattr(part, attr)) if v is not None]
            setattr(total, attr, pick(values) if values else None)
    total.already_landed = rng.size - sum(p.size for p in total.pieces)
    total.seconds = time.perf_counter() - started
    return total


def _text_column(values: list[bytes | None]) -> pa.Array:
    """UTF-8 bytes as an Arrow string column, checked in C; invalid bytes become U+FFFD."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in values], pa.string()
        )


_ENVELOPE = attrgetter("event_id", "event_type", "event_time", "schema_version", "source")


def _raw_table(rng: OffsetRange, records: list, events: list, now: datetime) -> pa.Table:
    """The raw rows of valid events, in :data:`RAW_SCHEMA`, built column by column.

    Per-event Python work is what landing costs next to a bare consumer (see `make bench`), so
    each column is one C-level pass (``map``/``attrgetter``, typed by Arrow) and ``payload`` is the
    event's own pydantic-core serializer output (exactly ``model_dump_json()``, without the Python
    wrapper or a str round-trip): ``spark/raw.py`` parses it with the contract's schema.
    """
    n = len(events)
    if n:
        envelope = list(zip(*map(_ENVELOPE, events), strict=True))
        event_id, event_type, event_time, schema_version, source = envelope
    else:
        event_id = event_type = event_time = schema_version = source = ()
    columns = [
        pa.repeat(pa.scalar(rng.topic, pa.string()), n),
        pa.repeat(pa.scalar(rng.partition, pa.int32()), n),
        pa.array([r.offset for r in records], pa.int64()),
        pa.array([r.timestamp for r in records], pa.timestamp("ms", tz="UTC")),
        _text_column([r.key or None for r in records]),
        pa.array(event_id, pa.string()),
        pa.array(event_type, pa.string()),
        pa.array(event_time, pa.timestamp("us", tz="UTC")),
        pa.array(schema_version, pa.int16()),
        pa.array(source, pa.string()),
        pa.array([getattr(e, "order_id", None) for e in events], pa.string()),
        pa.array([e.__pydantic_serializer__.to_json(e) for e in events], pa.string()),
        pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
    ]
    return pa.Table.from_arrays(columns, schema=RAW_SCHEMA)


def _land_piece(
    kafka: KafkaSettings,
    rng: OffsetRange,
    raw_base: Path,
    quarantine_base: Path,
    timeout_s: float,
) -> LandingResult:
    # The collector stays paused from the fetch to the tables: the fetch alone allocates a few
    # objects per record, all acyclic (see `paused_gc`).
    with paused_gc():
        records, expired, end = read_range(kafka, rng, timeout_s)
        result = LandingResult(range=rng, expired=expired, end_offset=end)
        now = datetime.now(UTC)
        values = [r.value for r in records]
        events, reasons = validate_events(rng.topic, values)
        if reasons:
            good_records = [r for r, e in zip(records, events, strict=True) if e is not None]
            good_events = [e for e in events if e is not None]
            bad = [(records[i], why) for i, why in sorted(reasons.items())]
        else:
            good_records, good_events, bad = records, events, []
        result.bytes_read = sum(len(v) for v in values if v is not None)
        good_table = _raw_table(rng, good_records, good_events, now)
        if good_events:
            distinct = pc.count_distinct(good_table.column("event_id")).as_py()
            result.duplicates = len(good_events) - distinct
        bad_table = pa.table(
            {
                "topic": [rng.topic] * len(bad),
                "partition": [rng.partition] * len(bad),
                "offset": [r.offset for r, _why in bad],
                "kafka_timestamp": [r.timestamp for r, _why in bad],
                "key": [r.key for r, _why in bad],
                "payload_raw": [r.value for r, _why in bad],
                "payload_bytes": [len(r.value) if r.value else 0 for r, _why in bad],
                "reason": [why for _r, why in bad],
                "quarantined_at": [now] * len(bad),
            },
            schema=QUARANTINE_SCHEMA,
        )
        for _r, why in bad:
            result.reasons[(why or "").split(":")[0]] += 1
        if good_events:
            times = pc.min_max(good_table.column("event_time"))
            result.event_time_min = times["min"].as_py()
            result.event_time_max = times["max"].as_py()

    result.landed = len(good_events)
    result.quarantined = len(bad)
    if result.accounted != rng.size:
        raise RangeUnavailableError(
            f"{rng.run_key}: accounted for {result.accounted} of {rng.size} offsets"
        )

    raw_target = partition_dir(raw_base, rng.topic, rng.partition) / rng.file_name
    quarantine_target = partition_dir(quarantine_base, rng.topic, rng.partition) / rng.file_name
    if result.quarantined:
        _write_atomic(bad_table, quarantine_target)
        result.quarantine_file = quarantine_target
    else:
        quarantine_target.unlink(missing_ok=True)
    # Written last, and even when empty: the raw file is the range's commit record.
    result.raw_file_bytes = _write_atomic(good_table, raw_target)
    result.raw_file = raw_target
    return result
