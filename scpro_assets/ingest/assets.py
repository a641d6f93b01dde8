"""Raw event assets: each run lands one Kafka offset range (thin wrappers over landing.py)."""

from datetime import UTC, datetime

import dagster as dg

from scpro_assets.ingest.landing import OffsetRange, land_range
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


class RangeConfig(dg.Config):
    """The Kafka offset range ``[start, stop)`` of one partition that this run lands."""

    partition: int
    start: int
    stop: int
    #: Fail the run (to be retried) when the broker delivers nothing new for this long.
    timeout_seconds: float = 60.0


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


def build_raw_asset(topic: str) -> dg.AssetsDefinition:
    """``raw_<topic>``: land one offset range of ``topic`` as Parquet, with quarantine."""

    @dg.asset(
        name=f"raw_{topic}",
        group_name="ingest",
        kinds={"kafka", "parquet"},
        owners=[OWNER],
        deps=[dg.AssetKey(["kafka", topic])],
        description=(
            f"Raw {TOPIC_DESCRIPTIONS[topic]}, landed from Kafka one offset range per run "
            f"as `lake/raw/{topic}/partition-N/{topic}-pN-FIRST-LAST.parquet`; invalid events go "
            f"to `lake/quarantine/{topic}/` with the reason. Re-running a range rewrites its files."
        ),
    )
    def _raw(
        context: dg.AssetExecutionContext,
        config: RangeConfig,
        kafka: KafkaResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        rng = OffsetRange(topic, config.partition, config.start, config.stop)
        result = land_range(
            kafka.settings(),
            rng,
            lake.raw_dir,
            lake.quarantine_dir,
            config.timeout_seconds,
            lake.landing_settings(),
        )
        # The end offset comes from landing's own consumer: a second client per run would cost a
        # bootstrap and a metadata round trip for a figure that is informative only.
        end = result.end_offset if result.end_offset is not None else rng.stop
        context.log.info(
            f"{rng.run_key}: landed {result.landed}, quarantined {result.quarantined}, "
            f"expired {result.expired}, already landed {result.already_landed}, "
            f"duplicates {result.duplicates} in {result.seconds:.2f}s"
        )
        metadata: dict[str, object] = {
            "partition": rng.partition,
            "first_offset": rng.start,
            "last_offset": rng.last,
            "events_in_range": rng.size,
            "landed": result.landed,
            "quarantined": result.quarantined,
            "expired_before_landing": result.expired,
            "already_landed": result.already_landed,
            "files_written": len(result.pieces),
            "duplicates_by_event_id": result.duplicates,
            "bytes_read": result.bytes_read,
            "parquet_bytes": result.raw_file_bytes,
            "lag_at_landing": max(0, end - rng.stop),
            "landed_at": datetime.now(UTC).isoformat(),
            "seconds": round(result.seconds, 3),
        }
        metadata["seconds_by_stage"] = dg.MetadataValue.json(
            {stage: round(s, 3) for stage, s in sorted(result.stage_seconds.items())}
        )
        if result.reasons:
            metadata["quarantine_reasons"] = dg.MetadataValue.json(dict(result.reasons))
        if result.raw_file:
            metadata["path"] = dg.MetadataValue.path(str(result.raw_file))
        if result.event_time_max:
            metadata["event_time_max"] = result.event_time_max.isoformat()
        return dg.MaterializeResult(metadata=metadata)

    return _raw


raw_assets = [build_raw_asset(topic) for topic in TOPICS]

land_jobs = [
    dg.define_asset_job(
        f"land_{topic}",
        # Without the gap check: the sensor evaluates it every tick, a landing run need not.
        selection=dg.AssetSelection.assets(f"raw_{topic}").without_checks(),
        description=f"Land one Kafka offset range of '{topic}' (requested by its sensor).",
        tags={"scpro/kind": "landing"},
    )
    for topic in TOPICS
]
