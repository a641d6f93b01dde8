"""How complete a snapshot is: events landed against events in Kafka at its cut, per topic.

Issue #14: a snapshot was published with a third of one partition missing, and nothing said so.
Every snapshot now carries ``snapshot_completeness``: per topic, the offsets Kafka held when the
snapshot was cut (end offsets read at publish time), the offsets raw range files cover, the
events landed and quarantined in them, and the offsets not landed. Counts come from the range
files' names and Parquet footers (no data is read). When Kafka does not answer, the Kafka
figures are recorded as unknown (null, ``kafka_status`` says why) and the publish goes on.

Issue #15: offsets Kafka holds but the lake does not yet are mostly in flight (the next landing
runs take them), not missing; a stuck range shows as a gap past its deadline. And events landed
after the snapshot's event-time watermark (:mod:`spark.watermark`) are in the lake but wait for
the next snapshot: each row says how many (``events_after_watermark``), how far the topic has
landed in business time (``latest_event_time``) and whether it is the one the watermark waits
for (``holds_watermark``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from scpro_assets.ingest.gaps import uncovered
from scpro_assets.ingest.landing import landed_ranges, partition_dir
from scpro_assets.settings import TOPICS, KafkaSettings

#: Seconds to wait for Kafka's answer at publish time; a snapshot is not held back longer.
KAFKA_TIMEOUT_S = 5.0

#: Column names and DuckDB types of ``snapshot_completeness``, in order.
COLUMNS: dict[str, str] = {
    "topic": "varchar",
    "kafka_status": "varchar",
    "partitions": "bigint",
    "offsets_in_kafka": "bigint",
    "offsets_landed": "bigint",
    "events_landed": "bigint",
    "events_quarantined": "bigint",
    "offsets_without_event": "bigint",
    "offsets_unlanded": "bigint",
    "is_complete": "boolean",
    "events_after_watermark": "bigint",
    "latest_event_time": "timestamp",
    "holds_watermark": "boolean",
}


@dataclass(frozen=True)
class TopicCompleteness:
    """One row of ``snapshot_completeness`` (see ``dbt_project/SERVING_CONTRACT.md``)."""

    topic: str
    kafka_status: str
    partitions: int | None
    offsets_in_kafka: int | None
    offsets_landed: int
    events_landed: int
    events_quarantined: int
    offsets_without_event: int
    offsets_unlanded: int | None
    is_complete: bool | None
    events_after_watermark: int | None = None
    latest_event_time: datetime | None = None
    holds_watermark: bool | None = None

    def row(self) -> tuple[object, ...]:
        """The values in :data:`COLUMNS` order."""
        return tuple(getattr(self, name) for name in COLUMNS)


def _reachable(bootstrap_servers: str, timeout_s: float) -> bool:
    """Whether any bootstrap server accepts a TCP connection (a stopped broker refuses at once)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_offsets(
    settings: KafkaSettings, topics: Iterable[str] = TOPICS, timeout_s: float = KAFKA_TIMEOUT_S
) -> dict[str, dict[int, tuple[int, int]]]:
    """``{topic: {partition: (beginning, end)}}`` now; raises when Kafka does not answer in time.

    librdkafka with a bounded timeout: kafka-python's client waits 30 s for an absent broker.
    """
    import confluent_kafka

    from scpro_assets.kafka.clients import rdkafka_config

    if not _reachable(settings.bootstrap_servers, timeout_s):
        raise ConnectionError(f"no Kafka broker answers at {settings.bootstrap_servers}")
    client = confluent_kafka.Consumer(
        {
            **rdkafka_config(settings),
            "group.id": "scpro-completeness-never-joined",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = client.list_topics(timeout=timeout_s)
        found: dict[str, dict[int, tuple[int, int]]] = {}
        for topic in topics:
            name = settings.topic_name(topic)
            described = metadata.topics.get(name)
            partitions = sorted(described.partitions) if described and not described.error else []
            found[topic] = {
                p: client.get_watermark_offsets(
                    confluent_kafka.TopicPartition(name, p), timeout=timeout_s
                )
                for p in partitions
            }
        return found
    finally:
        client.close()


class RowCounts:
    """Rows per range file, from Parquet footers, remembered by path, size and modification time.

    A stream lands thousands of small range files; reading every footer at every publish cost
    0.7 ms a file on two busy cores (4 s for 6,000 files), while a landed file only changes when
    its range is landed again. The counts are kept in a JSON file between publishes.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.known: dict[str, list[int]] = {}
        if path is not None and path.is_file():
            with contextlib.suppress(ValueError):
                self.known = json.loads(path.read_text())
        self.seen: dict[str, list[int]] = {}

    def rows_in(self, folder: Path) -> int:
        """Rows in the range files of one partition folder."""
        total = 0
        for file in folder.glob("*.parquet"):
            stat = file.stat()
            key = str(file)
            cached = self.known.get(key)
            if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
                rows = cached[2]
            else:
                rows = pq.read_metadata(file).num_rows
            self.seen[key] = [stat.st_size, stat.st_mtime_ns, rows]
            total += rows
        return total

    def save(self) -> None:
        """Keep the counts of the files seen this time (deleted files drop out), atomically."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.seen))
        os.replace(tmp, self.path)


def topic_completeness(
    topic: str,
    raw_dir: Path,
    quarantine_dir: Path,
    offsets: dict[int, tuple[int, int]] | None,
    kafka_status: str,
    counts: RowCounts | None = None,
) -> TopicCompleteness:
    """One topic's row, with Kafka's ``offsets`` (None when Kafka did not answer)."""
    counts = counts or RowCounts()
    landed = landed_ranges(raw_dir, topic)
    partitions = sorted(set(landed) | set(offsets or {}))
    covered = sum(last - first + 1 for spans in landed.values() for first, last in spans)
    events = sum(counts.rows_in(partition_dir(raw_dir, topic, p)) for p in partitions)
    quarantined = sum(counts.rows_in(partition_dir(quarantine_dir, topic, p)) for p in partitions)
    unlanded = None
    if offsets is not None:
        unlanded = sum(
            stop - start
            for p, (beginning, end) in offsets.items()
            for start, stop in uncovered(beginning, end, landed.get(p, []))
        )
    return TopicCompleteness(
        topic=topic,
        kafka_status=kafka_status,
        partitions=len(offsets) if offsets is not None else None,
        offsets_in_kafka=sum(e - b for b, e in offsets.values()) if offsets is not None else None,
        offsets_landed=covered,
        events_landed=events,
        events_quarantined=quarantined,
        offsets_without_event=covered - events - quarantined,
        offsets_unlanded=unlanded,
        is_complete=None if unlanded is None else unlanded == 0,
    )


def partitions_in_flight(
    kafka: KafkaSettings | None, raw_dir: Path, topics: Iterable[str] = TOPICS
) -> frozenset[tuple[str, int]] | None:
    """The (topic, partition) pairs with offsets in Kafka that no raw range file covers yet.

    These hold the clean layer's event-time watermark (:mod:`spark.watermark`): their events
    are on the way. Measured before the clean layer reads the raw files, so every file that
    makes a partition count as landed here is read by that build. None when Kafka is not
    configured or does not answer: then nothing can be landed either, what the lake holds is
    all there is for now, and the clean layer cuts nothing (a lake written without a broker,
    as benchmarks and tests do, is the same case).
    """
    topics = tuple(topics)
    if kafka is None:
        return None
    try:
        offsets = kafka_offsets(kafka, topics)
    except Exception:  # the clean layer must go on without Kafka's figures
        return None
    return frozenset(
        (topic, p)
        for topic, partitions in offsets.items()
        for p, (beginning, end) in partitions.items()
        if uncovered(beginning, end, landed_ranges(raw_dir, topic).get(p, []))
    )


def watermark_path(clean_dir: Path) -> Path:
    """Where the clean layer keeps its last watermark record (read when a snapshot is published)."""
    return clean_dir / "_state" / "watermark.json"


def save_watermark(path: Path, record: dict[str, object]) -> None:
    """Write the watermark record atomically (a reader sees the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def load_watermark(path: Path) -> dict[str, object] | None:
    """The last watermark record written, or None (none yet, or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def previous_watermark(path: Path) -> datetime | None:
    """The watermark of the last record written (aware, UTC), or None."""
    record = load_watermark(path)
    value = record.get("watermark") if record else None
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def with_watermark(
    rows: list[TopicCompleteness], record: Mapping[str, object] | None
) -> list[TopicCompleteness]:
    """``rows`` with the watermark record's per-topic figures (unchanged without a record)."""
    if not record:
        return rows
    topics = {t["topic"]: t for t in record.get("topics", [])}  # type: ignore[union-attr]
    merged = []
    for row in rows:
        topic = topics.get(row.topic, {})
        latest = topic.get("latest_event_time")
        merged.append(
            replace(
                row,
                events_after_watermark=int(topic.get("events_after_watermark", 0)),
                latest_event_time=None
                if latest is None
                else datetime.fromisoformat(str(latest)).replace(tzinfo=None),
                holds_watermark=bool(topic.get("holds_watermark", False)),
            )
        )
    return merged


def measure_completeness(
    kafka: KafkaSettings | None,
    raw_dir: Path,
    quarantine_dir: Path,
    row_counts: Path | None = None,
) -> list[TopicCompleteness]:
    """Every topic's row; Kafka's figures unknown when ``kafka`` is None or does not answer.

    ``row_counts`` is where the files' row counts are remembered between calls (see
    :class:`RowCounts`).
    """
    offsets: dict[str, dict[int, tuple[int, int]]] | None = None
    status = "unknown: no Kafka configured"
    if kafka is not None:
        try:
            offsets, status = kafka_offsets(kafka), "read"
        except Exception as error:  # the publish must go on: record why the figures are missing
            status = f"unknown: {type(error).__name__}: {error}"[:300]
    counts = RowCounts(row_counts)
    rows = [
        topic_completeness(
            topic,
            raw_dir,
            quarantine_dir,
            None if offsets is None else offsets[topic],
            status,
            counts,
        )
        for topic in TOPICS
    ]
    counts.save()
    return rows
