"""Build the clean lake straight from source events, without a broker.

The landed raw files are exactly what :mod:`scpro_assets.ingest` would have written for these
events (:func:`scpro_assets.testing.raw_rows.raw_rows_from_events` validates each one against its
contract), and the clean layer then runs the same :mod:`scpro_assets.clean.pipeline` functions as
the Dagster assets. This is how benchmarks, ML evaluation on the real datasets and tests of the
layers downstream of Spark get a realistic clean lake in seconds, while the tests of ingest itself
go through Kafka.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scpro_assets.settings import BUSINESS_TOPICS, Settings
from scpro_assets.sources.common import SourceEvent


@dataclass(frozen=True)
class OfflineBuild:
    """What :func:`build_clean_lake` wrote."""

    events: int
    raw_files: int
    rows: dict[str, int]
    feature_rows: int


def synthetic_events(count: int, seed: int) -> Iterator[SourceEvent]:
    """Exactly ``count`` synthetic events (benchmarks size by events, the generator by orders)."""
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    return itertools.islice(generate(SyntheticConfig(orders=count, seed=seed)), count)


def write_raw_lake(
    events: Iterable[SourceEvent],
    raw_dir: Path,
    chunk: int = 50_000,
    partitions: int = 1,
    first_offset: int = 0,
) -> tuple[int, int]:
    """Write ``events`` as landed raw range files; return (events, files) written.

    Offsets continue across chunks so file names and (partition, offset) pairs stay unique, as
    they would on a real topic; ``first_offset`` lands a later batch after earlier ones.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scpro_assets.ingest.landing import RAW_SCHEMA
    from scpro_assets.testing.raw_rows import raw_rows_from_events

    stream = iter(events)
    next_offset: dict[tuple[str, int], int] = {}
    written = files = 0
    while batch := list(itertools.islice(stream, chunk)):
        rows = raw_rows_from_events(batch, partitions=partitions)
        for topic in BUSINESS_TOPICS:
            for partition in range(partitions):
                mine = [r for r in rows if r["topic"] == topic and r["partition"] == partition]
                if not mine:
                    continue
                base = next_offset.get((topic, partition), first_offset)
                for row in mine:
                    row["offset"] += base
                first, last = mine[0]["offset"], mine[-1]["offset"]
                next_offset[(topic, partition)] = last + 1
                folder = raw_dir / topic / f"partition-{partition}"
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{topic}-p{partition}-{first:012d}-{last:012d}.parquet"
                pq.write_table(pa.Table.from_pylist(mine, schema=RAW_SCHEMA), folder / name)
                files += 1
        written += len(batch)
    return written, files


def build_clean_lake(
    events: Iterable[SourceEvent], settings: Settings, spark_master: str | None = None
) -> OfflineBuild:
    """Land ``events`` as raw files under ``settings.home``, then run the clean layer on them."""
    from scpro_assets.clean.pipeline import build_entities, build_features, update_event_stores
    from spark.session import build_spark_session

    count, files = write_raw_lake(events, settings.raw_dir)
    spark = build_spark_session(spark_master or settings.spark_master)
    update_event_stores(spark, settings.raw_dir, settings.clean_dir, full_refresh=False)
    build = build_entities(spark, settings.clean_dir, settings.quarantine_dir)
    feature_rows, _ = build_features(spark, settings.clean_dir)
    return OfflineBuild(events=count, raw_files=files, rows=build.rows, feature_rows=feature_rows)
