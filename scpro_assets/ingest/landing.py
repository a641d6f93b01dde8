"""Land one Kafka offset range as Parquet, idempotently, with a quarantine for bad events.

A range is ``[start, stop)`` of one partition. Landing reads exactly that range with librdkafka
(assigned at its first offset; nothing is ever committed to a consumer group), validates every
event against its contract and writes two files named by (topic, partition, first offset, last
offset):

- ``lake/raw/<topic>/partition-<p>/<topic>-p<p>-<first>-<last>.parquet``: valid events;
- ``lake/quarantine/<topic>/partition-<p>/<same name>``: everything else, with the raw bytes and
  the reason.

Files are written to a temporary name and renamed atomically, so a reader never sees half a file.
The raw file is renamed last and always (even with no rows): it is the commit record of the range.
A range is streamed in chunks of :data:`CHUNK_EVENTS` (one Parquet row group each), so a run's
memory does not grow with the range: ranges can be large, and Dagster's fixed cost per run is paid
by fewer runs.
A run *ensures* its offsets are landed: a range already landed is not landed again (it counts as
``already_landed``), and a range that overlaps ranges landed with other boundaries (two ticks that
disagreed) lands only the gaps, as files of their own. A run lands the ranges of several
partitions one after another (:func:`land_ranges`); when one fails the others still land, and the
retried run lands only what is missing. Whatever fails and is retried, every offset lands once.
Accounting always holds: ``landed + quarantined + expired + already_landed == stop - start``,
where ``expired`` counts offsets that hold no record to land (deleted by retention or
compaction, or transaction markers) and says so.

Landing never raises on a record's content: :func:`chunk_rows`, the pure step from a chunk of
records to its two tables, puts every record in exactly one of them, whatever its bytes (a
poison message that failed the run would fail every retry too, and stall its partition). An
event whose ``event_time`` cannot be true (later than its Kafka timestamp by more than a
tolerance, or before a floor; see :class:`~scpro_assets.settings.LandingSettings`) is
quarantined too, so it cannot move the data's clock. Only the broker (or the disk) can fail a
run, and a failed run is retried.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from scpro_assets.contracts.events import printable_reason, validate_events
from scpro_assets.kafka.clients import range_consumer
from scpro_assets.perf import paused_gc
from scpro_assets.settings import KafkaSettings, LandingSettings

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

#: Events read, validated and written per step of a range (one Parquet row group each). Bounds a
#: landing run's memory whatever the range's size: validating a chunk of orders peaks at about
#: 12 KB an event (pydantic-core parses the whole batch before building models). Measured on the
#: synthetic mix, a landing process peaks at 830 MB with 50k-event chunks, 640 MB with 20k and
#: 550 MB with 10k, for the same CPU per event; 20k keeps row groups of a few MB for readers.
CHUNK_EVENTS = 20_000

T = TypeVar("T")
_DONE = object()

_FILE_RE = re.compile(r"^(?P<topic>.+)-p(?P<p>\d+)-(?P<first>\d{12})-(?P<last>\d{12})\.parquet$")


class RangeUnavailableError(RuntimeError):
    """The broker did not deliver the whole range in time (it may be down): retry the run."""


class KafkaMessage(Protocol):
    """What landing reads from a record: confluent-kafka's ``Message``, or a test's stand-in."""

    def value(self) -> bytes | None:
        """The record's value."""

    def key(self) -> bytes | None:
        """The record's key."""

    def offset(self) -> int:
        """The record's offset in its partition."""

    def timestamp(self) -> tuple[int, int]:
        """``(timestamp type, milliseconds)``; type 0 means the record has no timestamp."""


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
    #: Seconds spent reading, validating, converting and writing: where landing's time goes.
    stage_seconds: Counter[str] = field(default_factory=Counter)
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


def landed_watermarks(
    raw_base: Path, topic: str, beginnings: dict[int, int] | None = None
) -> dict[int, int]:
    """Next offset after the contiguous landed prefix of each partition.

    Raw files are the commit records of ranges (quarantine files only accompany them). The prefix
    starts at the partition's beginning offset where ``beginnings`` gives it, so a range missing
    before the landed ones (its run died and is not retried yet) counts as not landed instead of
    being hidden by them; otherwise it starts at the first landed offset.
    """
    marks = {}
    for p, ranges in landed_ranges(raw_base, topic).items():
        mark = min(first for first, _ in ranges)
        if beginnings is not None and p in beginnings:
            mark = beginnings[p]
        for first, last in sorted(ranges):
            if first > mark:
                break
            mark = max(mark, last + 1)
        marks[p] = mark
    return marks


def pieces_to_land(rng: OffsetRange, landed: list[tuple[int, int]]) -> list[OffsetRange]:
    """The parts of ``rng`` to write, given the ``(first, last)`` ranges already landed.

    Only the offsets no landed range covers are landed, each gap as a range of its own; a range
    landed whole is left alone. A run that lands several partitions' ranges and fails on one of
    them is retried whole: rewriting the ranges it did land would read them from Kafka again and
    change their files, which the clean layer would then read again, for nothing.
    """
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


class _AtomicParquet:
    """A Parquet file written chunk by chunk (one row group each) under a temporary name.

    Nothing appears at ``target`` until :meth:`commit` renames the finished file into place, so a
    reader never sees a partial file; :meth:`discard` removes what an interrupted write left.
    """

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self.target = target
        self.schema = schema
        self.tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` as one row group (the file is created on the first write)."""
        if self._writer is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def commit(self) -> int:
        """Rename the finished file into place; returns its size in bytes.

        A file that received no rows still gets one empty row group, as ``pq.write_table`` writes
        for an empty table, so readers see the same file whatever the write path.
        """
        if self._writer is None:
            self.write(self.schema.empty_table())
        self._writer.close()  # type: ignore[union-attr]
        self._writer = None
        size = self.tmp.stat().st_size
        os.replace(self.tmp, self.target)
        return size

    def discard(self) -> None:
        """Remove the temporary file, if any (a no-op after :meth:`commit`).

        Best effort: it runs while another error propagates (perhaps the writer's own, such as a
        full disk), which must not be masked by a failure to close.
        """
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self.tmp.unlink(missing_ok=True)


class RangeReader:
    """Read exactly the records of one range with librdkafka, in chunks of bounded size.

    Use as a context manager and iterate: each item is a list of at most ``chunk_events``
    confluent-kafka messages, in offset order. After iterating, :attr:`expired` counts the offsets
    of the range that hold no record to land: below the partition's beginning (retention), or
    skipped inside it (compaction gaps, transaction markers), each detected from the offsets the
    broker does deliver and its end-of-partition events. :attr:`end_offset` is the partition's
    high watermark as of the last fetch (for the lag metadata; ``None`` if unknown), taken from
    librdkafka's fetch state rather than a second round trip.

    Raises :class:`RangeUnavailableError` if the broker delivers nothing new for ``timeout_s``
    (it may be down): the clock restarts whenever the range progresses, so a long range is not
    failed for the time landing spends between chunks.
    """

    def __init__(
        self, kafka: KafkaSettings, rng: OffsetRange, timeout_s: float, chunk_events: int
    ) -> None:
        self.rng = rng
        self.timeout_s = timeout_s
        self.chunk_events = chunk_events
        self.expired = 0
        self.end_offset: int | None = None
        self._tp = TopicPartition(kafka.topic_name(rng.topic), rng.partition)
        self._client = range_consumer(kafka)

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _unavailable(self, position: int, why: str) -> RangeUnavailableError:
        rng = self.rng
        return RangeUnavailableError(
            f"{rng.run_key}: the broker delivered offsets up to {position} of "
            f"{rng.start}..{rng.last}, then nothing for {self.timeout_s:.0f}s ({why})"
        )

    def __iter__(self) -> Iterator[list]:
        rng, tp = self.rng, self._tp
        try:
            beginning, end = self._client.get_watermark_offsets(
                tp, timeout=min(self.timeout_s, 15.0), cached=False
            )
        except KafkaException as error:
            raise RangeUnavailableError(f"{rng.run_key}: {error}") from error
        self.end_offset = end
        position = max(rng.start, beginning)
        self.expired = position - rng.start
        if position >= rng.stop:
            return
        self._client.assign([TopicPartition(tp.topic, tp.partition, position)])
        chunk: list = []
        last_error = "no error reported"
        deadline = time.monotonic() + self.timeout_s
        while position < rng.stop:
            if time.monotonic() > deadline:
                raise self._unavailable(position, last_error)
            # consume() waits for all `num_messages` (or the timeout), so never ask for more than
            # the range can still deliver: a small range returns at once.
            wanted = min(rng.stop - position, self.chunk_events - len(chunk))
            before = position
            for message in self._client.consume(num_messages=wanted, timeout=1.0):
                error = message.error()
                if error is None:
                    offset = message.offset()
                elif error.code() == KafkaError._PARTITION_EOF:
                    offset = message.offset()  # the end offset: all before it was delivered
                else:
                    if error.fatal():
                        raise RangeUnavailableError(f"{rng.run_key}: {error}")
                    last_error = str(error)  # transient (broker restarting): keep waiting
                    continue
                if offset > position:  # offsets without a record to land
                    self.expired += min(offset, rng.stop) - position
                    position = min(offset, rng.stop)
                if error is None and offset == position < rng.stop:
                    chunk.append(message)
                    position = offset + 1
            if position > before:
                deadline = time.monotonic() + self.timeout_s
            if len(chunk) >= self.chunk_events:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        _low, high = self._client.get_watermark_offsets(tp, cached=True)
        if high is not None and high >= 0:
            self.end_offset = high


def land_range(
    kafka: KafkaSettings,
    rng: OffsetRange,
    raw_base: Path,
    quarantine_base: Path,
    timeout_s: float = 60.0,
    landing: LandingSettings | None = None,
) -> LandingResult:
    """Ensure every offset of ``rng`` is landed once; see the module docstring.

    ``landing`` says which event times are plausible (default: from the environment).
    """
    started = time.perf_counter()
    landing = landing or LandingSettings.from_env()
    landed = landed_ranges(raw_base, rng.topic).get(rng.partition, [])
    total = LandingResult(range=rng)
    for piece in pieces_to_land(rng, landed):
        part = _land_piece(kafka, piece, raw_base, quarantine_base, timeout_s, landing)
        total.pieces.append(piece)
        total.landed += part.landed
        total.quarantined += part.quarantined
        total.expired += part.expired
        total.duplicates += part.duplicates
        total.bytes_read += part.bytes_read
        total.raw_file_bytes += part.raw_file_bytes
        total.reasons.update(part.reasons)
        total.stage_seconds.update(part.stage_seconds)
        total.raw_file = total.raw_file or part.raw_file
        total.quarantine_file = total.quarantine_file or part.quarantine_file
        if part.end_offset is not None:
            total.end_offset = max(total.end_offset or 0, part.end_offset)
        _widen_event_times(total, part.event_time_min, part.event_time_max)
    total.already_landed = rng.size - sum(p.size for p in total.pieces)
    total.seconds = time.perf_counter() - started
    return total


@dataclass
class RunLanding:
    """What one landing run did: the result of each range landed, and each range that failed."""

    results: list[LandingResult] = field(default_factory=list)
    failures: list[tuple[OffsetRange, Exception]] = field(default_factory=list)


def land_ranges(
    kafka: KafkaSettings,
    ranges: Sequence[OffsetRange],
    raw_base: Path,
    quarantine_base: Path,
    timeout_s: float = 60.0,
    landing: LandingSettings | None = None,
) -> RunLanding:
    """Land each of ``ranges`` once (:func:`land_range`), one after another.

    A range that fails (its partition's leader unreachable, the disk) does not stop the others:
    they are committed, and the caller fails the run, whose retry lands only what is missing
    (already landed ranges count as ``already_landed``). Landing the ranges in one process, one
    at a time, costs a consumer per range (a few milliseconds) instead of a run per range (seconds
    of Dagster's per-run cost).
    """
    landing = landing or LandingSettings.from_env()
    done = RunLanding()
    for rng in ranges:
        try:
            done.results.append(
                land_range(kafka, rng, raw_base, quarantine_base, timeout_s, landing)
            )
        except Exception as error:  # the broker or the disk; the other partitions may still land
            done.failures.append((rng, error))
    return done


def _text_column(values: list[bytes | None]) -> pa.Array:
    """UTF-8 bytes as an Arrow string column, checked in C; invalid bytes become U+FFFD."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in values], pa.string()
        )


_ENVELOPE = attrgetter("event_id", "event_type", "event_time", "schema_version", "source")


def _raw_table(
    rng: OffsetRange, messages: Sequence[KafkaMessage], events: list, now: datetime
) -> pa.Table:
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
        pa.array([m.offset() for m in messages], pa.int64()),
        pa.array(_timestamps(messages), pa.timestamp("ms", tz="UTC")),
        _text_column([m.key() or None for m in messages]),
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


def _timestamps(messages: Sequence[KafkaMessage]) -> list[int | None]:
    """Kafka timestamps in ms; ``None`` where the record has none (type 0, value -1)."""
    return [ts if kind else None for kind, ts in (m.timestamp() for m in messages)]


def _quarantine_table(
    rng: OffsetRange, bad: list[tuple[KafkaMessage, str]], now: datetime
) -> pa.Table:
    """The quarantine rows for ``(message, reason)`` pairs, in :data:`QUARANTINE_SCHEMA`."""
    messages = [m for m, _why in bad]
    values = [m.value() for m in messages]
    return pa.table(
        {
            "topic": [rng.topic] * len(bad),
            "partition": [rng.partition] * len(bad),
            "offset": [m.offset() for m in messages],
            "kafka_timestamp": _timestamps(messages),
            "key": [m.key() for m in messages],
            "payload_raw": values,
            "payload_bytes": [len(v) if v else 0 for v in values],
            "reason": [why for _m, why in bad],
            "quarantined_at": [now] * len(bad),
        },
        schema=QUARANTINE_SCHEMA,
    )


@dataclass(frozen=True)
class ChunkRows:
    """One chunk of records as rows: raw rows for valid events, quarantine rows for the rest."""

    raw: pa.Table
    quarantine: pa.Table
    bytes_read: int

    @property
    def reasons(self) -> Counter[str]:
        """Quarantined records by reason category (the text before the first colon)."""
        return Counter(why.split(":")[0] for why in self.quarantine.column("reason").to_pylist())


#: Errors converting a valid event to Arrow or JSON can raise because of what it holds (a value
#: Arrow cannot represent, a string UTF-8 cannot encode); never the broker's or the disk's.
_CONTENT_ERRORS = (ValueError, TypeError, ArithmeticError, pa.ArrowNotImplementedError)


def chunk_rows(
    rng: OffsetRange,
    messages: Sequence[KafkaMessage],
    now: datetime,
    landing: LandingSettings,
    stages: Counter[str] | None = None,
) -> ChunkRows:
    """The raw and quarantine rows of one chunk of records; never raises on their content.

    Pure (no broker, no files), so it is tested with stand-in records. Each record ends in exactly
    one of the two tables, in offset order: valid events in ``raw``; in ``quarantine``, with the
    reason, the records that break their contract, the events Arrow or the serializer cannot
    store (``unstorable``), and the events whose ``event_time`` cannot be true (``event_time in
    the future``, ``event_time before floor``; see :func:`_implausible_event_times`). ``now`` is
    the landing time written on every row.
    """
    stages = stages if stages is not None else Counter()
    values = [m.value() for m in messages]
    with _stage(stages, "validate"):
        events, reasons = validate_events(rng.topic, values)
    bad = [(messages[i], why) for i, why in reasons.items()]
    if reasons:
        good = [i for i, e in enumerate(events) if e is not None]
        good_messages, good_events = [messages[i] for i in good], [events[i] for i in good]
    else:
        good_messages, good_events = list(messages), events
    with _stage(stages, "convert"):
        raw, kept, unstorable = _storable_rows(rng, good_messages, good_events, now)
        raw, implausible = _implausible_event_times(raw, kept, now, landing)
    bad += unstorable + implausible
    bad.sort(key=lambda pair: pair[0].offset())
    return ChunkRows(
        raw=raw,
        quarantine=_quarantine_table(rng, bad, now),
        bytes_read=sum(len(v) for v in values if v),
    )


def _storable_rows(
    rng: OffsetRange, messages: list[KafkaMessage], events: list, now: datetime
) -> tuple[pa.Table, list[KafkaMessage], list[tuple[KafkaMessage, str]]]:
    """``_raw_table`` of the events, with the records it cannot convert set aside and why.

    The chunk is converted whole (the fast path); only when that fails is it halved, again and
    again, so a bad row costs about ``2 log2(chunk)`` conversions and the good rows still land.
    Returns the table, the messages of its rows (in order) and the rejected records.
    """
    try:
        return _raw_table(rng, messages, events, now), messages, []
    except _CONTENT_ERRORS as error:
        if len(events) <= 1:
            why = printable_reason(f"unstorable: {type(error).__name__}: {error}")
            return RAW_SCHEMA.empty_table(), [], [(m, why) for m in messages]
    half = len(events) // 2
    table_1, kept_1, bad_1 = _storable_rows(rng, messages[:half], events[:half], now)
    table_2, kept_2, bad_2 = _storable_rows(rng, messages[half:], events[half:], now)
    return pa.concat_tables([table_1, table_2]), kept_1 + kept_2, bad_1 + bad_2


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Reference times are clamped here (in ms) so that converting them to microseconds cannot
#: overflow int64, whatever timestamp a record claims.
_EARLIEST_REFERENCE_MS = -(2**62) // 1000


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch (Arrow's ``timestamp('us')`` value) of an aware datetime."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _iso_from_micros(micros: int) -> str:
    """An Arrow microsecond timestamp as ISO-8601, or as a number where ``datetime`` cannot go."""
    try:
        return (_EPOCH + timedelta(microseconds=micros)).isoformat()
    except OverflowError:
        return f"{micros} µs from 1970-01-01"


def _implausible_event_times(
    table: pa.Table, messages: list[KafkaMessage], now: datetime, landing: LandingSettings
) -> tuple[pa.Table, list[tuple[KafkaMessage, str]]]:
    """Split off the raw rows whose ``event_time`` cannot be true, with the reason.

    An event cannot have happened after it was produced: it is quarantined when its event time is
    later than its record's Kafka timestamp, or the landing time if that is earlier (a producer's
    clock can be wrong too) or the record has none, by more than the tolerance. An event before
    the floor is quarantined as well. One vectorised pass over the chunk; reasons are written only
    for the rows that fail.
    """
    if table.num_rows == 0:
        return table, []
    now_ms = _micros(now) // 1000
    stamps = pc.cast(table.column("kafka_timestamp"), pa.int64())
    reference = pc.min_element_wise(pc.fill_null(stamps, now_ms), now_ms)
    reference = pc.max_element_wise(reference, _EARLIEST_REFERENCE_MS)
    tolerance_us = round(landing.event_time_tolerance_hours * 3_600_000_000)
    event_us = pc.cast(table.column("event_time"), pa.int64())
    future = pc.greater(event_us, pc.add(pc.multiply(reference, 1000), tolerance_us))
    early = pc.less(event_us, _micros(landing.event_time_floor))
    implausible = pc.or_(future, early)
    if not pc.any(implausible).as_py():
        return table, []
    rows = [k for k, flag in enumerate(implausible.to_pylist()) if flag]
    future_rows, times = future.to_pylist(), event_us.to_pylist()
    stamp_ms, reference_ms = stamps.to_pylist(), reference.to_pylist()
    floor = landing.event_time_floor.isoformat()
    bad = []
    for k in rows:
        when = _iso_from_micros(times[k])
        if future_rows[k]:
            has_stamp = stamp_ms[k] is not None and stamp_ms[k] <= now_ms
            against = "its Kafka timestamp" if has_stamp else "the landing time"
            why = (
                f"event_time in the future: {when} is more than "
                f"{landing.event_time_tolerance_hours:g} h after {against} "
                f"{_iso_from_micros(reference_ms[k] * 1000)}"
            )
        else:
            why = f"event_time before floor: {when} is before {floor}"
        bad.append((messages[k], why))
    return table.filter(pc.invert(implausible)), bad


def _land_piece(
    kafka: KafkaSettings,
    rng: OffsetRange,
    raw_base: Path,
    quarantine_base: Path,
    timeout_s: float,
    landing: LandingSettings,
) -> LandingResult:
    """Land one range that no landed file overlaps, streaming it chunk by chunk.

    Memory is bounded by :data:`CHUNK_EVENTS`, whatever the range's size: each chunk is read,
    validated, converted and appended to the temporary files as one row group, then dropped.
    Only the event ids are kept for the whole range (about 40 bytes an event, in Arrow), because
    duplicates must be counted across chunks. The quarantine file is renamed into place before
    the raw file, which is the range's commit record.
    """
    result = LandingResult(range=rng)
    raw = _AtomicParquet(
        partition_dir(raw_base, rng.topic, rng.partition) / rng.file_name, RAW_SCHEMA
    )
    quarantine = _AtomicParquet(
        partition_dir(quarantine_base, rng.topic, rng.partition) / rng.file_name,
        QUARANTINE_SCHEMA,
    )
    event_ids: list[pa.Array] = []
    stages = result.stage_seconds
    now = datetime.now(UTC)
    try:
        # The collector stays paused from the fetch to the tables: each chunk allocates a few
        # objects per record, all acyclic (see `paused_gc`); reference counting frees them.
        with paused_gc(), RangeReader(kafka, rng, timeout_s, CHUNK_EVENTS) as reader:
            for messages in _timed_iter(reader, stages, "read"):
                rows = chunk_rows(rng, messages, now, landing, stages)
                result.bytes_read += rows.bytes_read
                if rows.quarantine.num_rows:
                    with _stage(stages, "write"):
                        quarantine.write(rows.quarantine)
                    result.reasons.update(rows.reasons)
                if rows.raw.num_rows:
                    with _stage(stages, "convert"):
                        event_ids.append(rows.raw.column("event_id").combine_chunks())
                        times = pc.min_max(rows.raw.column("event_time"))
                    with _stage(stages, "write"):
                        raw.write(rows.raw)
                    _widen_event_times(result, times["min"].as_py(), times["max"].as_py())
            result.expired = reader.expired
            result.end_offset = reader.end_offset
        result.landed = raw.rows
        result.quarantined = quarantine.rows
        if result.accounted != rng.size:
            raise RangeUnavailableError(
                f"{rng.run_key}: accounted for {result.accounted} of {rng.size} offsets"
            )
        if event_ids:
            distinct = pc.count_distinct(pa.chunked_array(event_ids)).as_py()
            result.duplicates = result.landed - distinct
        if quarantine.rows:
            quarantine.commit()
            result.quarantine_file = quarantine.target
        else:
            quarantine.target.unlink(missing_ok=True)
        # Renamed last, and even when empty: the raw file is the range's commit record.
        with _stage(stages, "write"):
            result.raw_file_bytes = raw.commit()
        result.raw_file = raw.target
    finally:
        quarantine.discard()
        raw.discard()
    return result


@contextlib.contextmanager
def _stage(stages: Counter[str], name: str) -> Iterator[None]:
    """Add the time the block takes to ``stages[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[name] += time.perf_counter() - started


def _timed_iter(items: Iterable[T], stages: Counter[str], name: str) -> Iterator[T]:
    """Yield from ``items``, adding the time spent producing each item to ``stages[name]``."""
    iterator = iter(items)
    while True:
        with _stage(stages, name):
            item = next(iterator, _DONE)
        if item is _DONE:
            return
        yield item  # type: ignore[misc]


def _widen_event_times(result: LandingResult, low: datetime | None, high: datetime | None) -> None:
    """Extend ``result``'s event-time span to cover ``[low, high]`` (``None`` is no bound)."""
    for attr, value, pick in (("event_time_min", low, min), ("event_time_max", high, max)):
        values = [v for v in (getattr(result, attr), value) if v is not None]
        setattr(result, attr, pick(values) if values else None)
