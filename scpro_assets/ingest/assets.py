"""Raw event assets: a run lands the new offset ranges of one topic (thin wrappers on landing.py).

``raw_<topic>`` is not partitioned: a run's config names its ranges (one per Kafka partition), and
each range becomes a raw file of its own. Dagster's dynamic partitions, one per range, would make a
backfill-like request per tick (one run, many partitions) and a partition per range for ever: the
asset's partition list would grow by thousands a day and every automation evaluation would walk
it. The range files are the commit records; the asset's materialization is the run's report.
Downstream, the automation sees one update of ``raw_<topic>`` per landing run
(``any_deps_updated``), however many partitions it covered.
"""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from scpro_assets.ingest.landing import LandingResult, OffsetRange, RunLanding, land_ranges
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import TOPICS

OWNER = "team:data-engineering"

TOPIC_DESCRIPTIONS = {
    "orders": "orders placed, with customer, promise, mode/carrier and items",
    "payments": "payments captured or refused",
    "shipments": "carrier tracking: shipped, in transit, delivered, exception, canceled",
    "ops_logs": "web access logs and warehouse/carrier incidents (opened, resolved)",
    "actions": "what people did about at-risk orders (acknowledge, assign, note, resolve)",
}


class PartitionRange(dg.Config):
    """The Kafka offsets ``[start, stop)`` of one partition."""

    partition: int
    start: int
    stop: int


class LandingConfig(dg.Config):
    """The offset ranges this run lands, one per partition (see ``scpro_assets.ingest.runs``)."""

    ranges: list[PartitionRange] = Field(
        default=[], description="The ranges to land, at most one per partition."
    )
    #: A single range, as runs requested by SCPro before one run per topic and tick; a run
    #: retried after an upgrade still carries it.
    partition: int | None = Field(default=None, description="Older runs' single range.")
    start: int | None = Field(default=None, description="Older runs' single range.")
    stop: int | None = Field(default=None, description="Older runs' single range.")
    timeout_seconds: float = Field(
        default=60.0,
        description="Fail a range (the run is retried) when the broker delivers nothing new for "
        "this long.",
    )

    def offset_ranges(self, topic: str) -> list[OffsetRange]:
        """The ranges to land, in partition order; a ``ValueError`` if there are none."""
        spans = [(r.partition, r.start, r.stop) for r in self.ranges]
        if self.partition is not None and self.start is not None and self.stop is not None:
            spans.append((self.partition, self.start, self.stop))
        if not spans:
            raise ValueError("the run config names no offset range to land")
        return sorted(OffsetRange(topic, p, start, stop) for p, start, stop in spans)


kafka_topic_specs = [
    dg.AssetSpec(
        key=dg.AssetKey(["kafka", topic]),
        description=f"Kafka topic '{topic}': {TOPIC_DESCRIPTIONS[topic]}. "
        "External: producers write it; its lag is observed by the topic's sensor.",
        group_name="ingest",
        kinds={"kafka"},
        owners=[OWNER],
    )
    for topic in TOPICS
]

_RANGE_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("partition", "int"),
        dg.TableColumn("first_offset", "int"),
        dg.TableColumn("last_offset", "int"),
        dg.TableColumn("events", "int"),
        dg.TableColumn("landed", "int"),
        dg.TableColumn("quarantined", "int"),
        dg.TableColumn("expired", "int"),
        dg.TableColumn("already_landed", "int"),
        dg.TableColumn("lag_at_landing", "int"),
        dg.TableColumn("seconds", "float"),
    ]
)


def _range_record(result: LandingResult) -> dg.TableRecord:
    rng = result.range
    end = result.end_offset if result.end_offset is not None else rng.stop
    return dg.TableRecord(
        {
            "partition": rng.partition,
            "first_offset": rng.start,
            "last_offset": rng.last,
            "events": rng.size,
            "landed": result.landed,
            "quarantined": result.quarantined,
            "expired": result.expired,
            "already_landed": result.already_landed,
            "lag_at_landing": max(0, end - rng.stop),
            "seconds": round(result.seconds, 3),
        }
    )


def landing_metadata(results: list[LandingResult]) -> dict[str, object]:
    """The run's materialization metadata: totals over its ranges, and a row per range.

    Totals keep the accounting of every range: ``landed + quarantined + expired_before_landing +
    already_landed = events_in_ranges``. The ``offset_ranges`` table is what the Dagster UI shows
    per partition.
    """
    records = [_range_record(r) for r in results]
    stages: dict[str, float] = {}
    reasons: dict[str, int] = {}
    for result in results:
        for stage, seconds in result.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
        for reason, count in result.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    metadata: dict[str, object] = {
        "ranges": len(results),
        "partitions": ",".join(str(r.range.partition) for r in results),
        "events_in_ranges": sum(r.range.size for r in results),
        "landed": sum(r.landed for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "expired_before_landing": sum(r.expired for r in results),
        "already_landed": sum(r.already_landed for r in results),
        "files_written": sum(len(r.pieces) for r in results),
        "duplicates_by_event_id": sum(r.duplicates for r in results),
        "bytes_read": sum(r.bytes_read for r in results),
        "parquet_bytes": sum(r.raw_file_bytes for r in results),
        "lag_at_landing": sum(int(rec.data["lag_at_landing"]) for rec in records),
        "landed_at": datetime.now(UTC).isoformat(),
        "seconds": round(sum(r.seconds for r in results), 3),
        "seconds_by_stage": dg.MetadataValue.json(
            {stage: round(s, 3) for stage, s in sorted(stages.items())}
        ),
        "offset_ranges": dg.MetadataValue.table(records, schema=_RANGE_COLUMNS),
    }
    if reasons:
        metadata["quarantine_reasons"] = dg.MetadataValue.json(reasons)
    raw_files = [r.raw_file for r in results if r.raw_file]
    if len(raw_files) == 1:
        metadata["path"] = dg.MetadataValue.path(str(raw_files[0]))
    event_times = [r.event_time_max for r in results if r.event_time_max]
    if event_times:
        metadata["event_time_max"] = max(event_times).isoformat()
    return metadata


def _log_landing(context: dg.AssetExecutionContext, landing: RunLanding) -> None:
    for result in landing.results:
        context.log.info(
            f"{result.range.run_key}: landed {result.landed}, quarantined {result.quarantined}, "
            f"expired {result.expired}, already landed {result.already_landed}, "
            f"duplicates {result.duplicates} in {result.seconds:.2f}s"
        )
    for rng, error in landing.failures:
        context.log.error(f"{rng.run_key}: not landed ({type(error).__name__}: {error})")


def build_raw_asset(topic: str) -> dg.AssetsDefinition:
    """``raw_<topic>``: land the run's offset ranges of ``topic`` as Parquet, with quarantine."""

    @dg.asset(
        name=f"raw_{topic}",
        group_name="ingest",
        kinds={"kafka", "parquet"},
        owners=[OWNER],
        deps=[dg.AssetKey(["kafka", topic])],
        description=(
            f"Raw {TOPIC_DESCRIPTIONS[topic]}, landed from Kafka: each run lands the new offset "
            f"range of every partition, each range as "
            f"`lake/raw/{topic}/partition-N/{topic}-pN-FIRST-LAST.parquet`; invalid events go "
            f"to `lake/quarantine/{topic}/` with the reason. A range already landed is not "
            "landed again."
        ),
    )
    def _raw(
        context: dg.AssetExecutionContext,
        config: LandingConfig,
        kafka: KafkaResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        landing = land_ranges(
            kafka.settings(),
            config.offset_ranges(topic),
            lake.raw_dir,
            lake.quarantine_dir,
            config.timeout_seconds,
            lake.landing_settings(),
        )
        _log_landing(context, landing)
        if landing.failures:
            # The ranges that landed are committed; the run's retry lands only the others.
            failed = ", ".join(rng.run_key for rng, _error in landing.failures)
            raise dg.Failure(
                description=f"{len(landing.failures)} of "
                f"{len(landing.failures) + len(landing.results)} ranges not landed: {failed}",
                metadata={
                    "not_landed": dg.MetadataValue.json(
                        {rng.run_key: f"{type(e).__name__}: {e}" for rng, e in landing.failures}
                    ),
                    "landed": dg.MetadataValue.json([r.range.run_key for r in landing.results]),
                },
            )
        return dg.MaterializeResult(metadata=landing_metadata(landing.results))

    return _raw


raw_assets = [build_raw_asset(topic) for topic in TOPICS]

land_jobs = [
    dg.define_asset_job(
        f"land_{topic}",
        # Without the gap check: the sensor evaluates it every tick, a landing run need not.
        selection=dg.AssetSelection.assets(f"raw_{topic}").without_checks(),
        description=f"Land the new offset ranges of '{topic}', one per partition (requested by its "
        "sensor).",
        tags={"scpro/kind": "landing"},
    )
    for topic in TOPICS
]
