"""Raw landed rows built from source events without a broker, exactly as landing writes them.

Landing (:mod:`scpro_assets.ingest.landing`) stores each valid event with its Kafka coordinates and
the contract model's JSON in ``payload``. :func:`raw_rows_from_events` produces exactly that shape,
so transforms are tested on the rows they will really read: the payload is ``model_dump_json()``
of the validated contract event, not the producer's JSON (pydantic fills defaults and normalises
timestamps on the way). They lived in ``spark/raw.py``, which made the pure transforms import
landing, the contracts and the sources.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from scpro_assets.contracts.events import validate_event
from scpro_assets.ingest.landing import RAW_SCHEMA
from scpro_assets.sources.common import SourceEvent
from spark.schemas import RAW_SPARK_SCHEMA


def partition_for_key(key: str | None, partitions: int) -> int:
    """A stable partition for a message key (CRC-32, so it is the same in every process)."""
    if not key:
        return 0
    return zlib.crc32(key.encode()) % partitions


def raw_rows_from_events(
    events: Iterable[SourceEvent],
    partitions: int = 3,
    landed_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows in ``RAW_SCHEMA`` shape for ``events``, as landing would have written them.

    Each event is validated against its topic's contract (an invalid one raises ``ValueError``:
    landing would have quarantined it, so it never reaches a raw file). Partitions are a hash of
    the key, offsets count up per (topic, partition) in the order given, and the Kafka timestamp is
    the event time. Feeding the same event twice gives two rows with the same ``event_id``, like a
    producer retry.
    """
    stamp = landed_at or datetime.now(UTC)
    next_offset: dict[tuple[str, int], int] = {}
    rows: list[dict[str, Any]] = []
    for source_event in events:
        topic = source_event.topic
        result = validate_event(topic, source_event.payload)
        if result.event is None:
            raise ValueError(
                f"{source_event.event_id} breaks the {topic} contract: {result.reason}"
            )
        event = result.event
        partition = partition_for_key(source_event.key, partitions)
        offset = next_offset.get((topic, partition), 0)
        next_offset[(topic, partition)] = offset + 1
        rows.append(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "kafka_timestamp": event.event_time,
                "key": source_event.key,
                "event_id": event.event_id,
                "event_type": event.event_type,  # type: ignore[attr-defined]
                "event_time": event.event_time,
                "schema_version": event.schema_version,
                "source": event.source,
                "order_id": getattr(event, "order_id", None),
                "payload": event.model_dump_json(),
                "landed_at": stamp,
            }
        )
    return rows


def raw_dataframe(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """A Spark DataFrame of raw rows, typed like the landed Parquet files.

    Goes through an Arrow table in ``RAW_SCHEMA``: one columnar hand-over instead of pickling
    every row, and the same types the Parquet reader would give.
    """
    table = pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
    return spark.createDataFrame(table).select(
        *(F.col(f.name).cast(f.dataType) for f in RAW_SPARK_SCHEMA.fields)
    )
