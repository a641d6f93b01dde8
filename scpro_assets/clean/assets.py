"""Spark assets (group ``clean``): cleaned entities and the order-time feature table."""

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from scpro_assets.clean.pipeline import (
    ENTITIES,
    build_entities,
    build_features,
    update_event_stores,
)
from scpro_assets.clean.spark_resource import SparkSessionResource
from scpro_assets.column_schema import parquet_column_schema_metadata
from scpro_assets.ingest.in_flight import partitions_in_flight
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import BUSINESS_TOPICS, Settings

OWNER = "team:data-engineering"

ENTITY_DESCRIPTIONS = {
    "cleaned_orders": "One row per order: customer (pseudonymised), market/region, mode/carrier, "
    "origin and destination, promise, basket value, weight and main category.",
    "cleaned_order_items": "One row per order line: product, category, seller, quantity, price, "
    "discount, freight, weight and line value.",
    "cleaned_payments": "One row per payment event: captured or refused, type, installments, "
    "amount.",
    "cleaned_shipments": "One row per carrier tracking event, deduplicated by event_id.",
    "cleaned_deliveries": "Latest delivery state per order (status precedence, not only time): "
    "shipped/delivered/canceled times, delivery days, late flag and delay days.",
    "cleaned_incidents": "One row per warehouse/carrier/system incident with its resolution time.",
    "cleaned_web_logs": "Web access logs with hashed clients.",
}


def spark_resource(settings: Settings) -> LazyPySparkResource:
    """Spark configured from ``settings``: where :func:`session_remote` says, when first used.

    A Spark Connect server (``SCPRO_SPARK_REMOTE``, or the embedded one while it runs) saves
    each run its own JVM start: the builder passes ``spark.remote`` on to pyspark, which then
    makes a Connect session. Otherwise Spark runs in the run's process on
    ``SCPRO_SPARK_MASTER`` (``local[*]`` by default, or any cluster master). Nothing is probed
    at import (:class:`SparkSessionResource`).
    """
    return SparkSessionResource.from_settings(settings)


class CleanConfig(dg.Config):
    """Run options for the clean layer."""

    full_refresh: bool = False
    """Rebuild the event stores from every raw file instead of only the new ones."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            group_name="clean",
            kinds={"spark", "parquet"},
            owners=[OWNER],
            description=ENTITY_DESCRIPTIONS[name]
            + f" Parquet at lake/clean/{name} (atomically swapped versions).",
            deps=[dg.AssetKey(f"raw_{t}") for t in BUSINESS_TOPICS],
        )
        for name in ENTITIES
    ],
    name="clean_entities",
    can_subset=False,
)
def clean_entities(
    context: dg.AssetExecutionContext,
    config: CleanConfig,
    pyspark: LazyPySparkResource,
    lake: LakeResource,
    kafka: KafkaResource,
):
    """Read new raw ranges into the event stores, then rebuild and publish the cleaned entities.

    The entities are cut at the event-time watermark; which partitions still have events in
    flight is asked of Kafka before the raw files are read (see :func:`partitions_in_flight`).
    """
    spark = pyspark.spark_session
    in_flight = partitions_in_flight(kafka.settings(), lake.raw_dir)
    update = update_event_stores(spark, lake.raw_dir, lake.clean_dir, config.full_refresh)
    context.log.info(
        f"event stores: {sum(update.raw_files_read.values())} new raw files, "
        f"{sum(update.new_events.values())} new events, "
        f"{sum(update.duplicates_dropped.values())} duplicates dropped in {update.seconds:.1f}s"
    )
    build = build_entities(spark, lake.clean_dir, lake.quarantine_dir, in_flight)
    watermark = build.watermark.time
    context.log.info(f"as of the watermark {watermark}: {build.watermark.after_watermark} wait")
    for name in ENTITIES:
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": build.rows[name],
                **parquet_column_schema_metadata(build.paths[name]),
                "path": dg.MetadataValue.path(str(build.paths[name])),
                "raw_files_read": dg.MetadataValue.json(update.raw_files_read),
                "new_events": dg.MetadataValue.json(update.new_events),
                "duplicates_dropped": dg.MetadataValue.json(update.duplicates_dropped),
                "full_refresh": update.full_refresh,
                "quarantined_by_rules": dg.MetadataValue.json(build.quarantine_reasons),
                "watermark": watermark.isoformat() if watermark else "none",
                "events_after_watermark": dg.MetadataValue.json(build.watermark.after_watermark),
                "seconds": round(update.seconds + build.seconds, 2),
            },
        )


@dg.asset(
    group_name="clean",
    kinds={"spark", "parquet"},
    owners=[OWNER],
    deps=["cleaned_orders", "cleaned_order_items", "cleaned_deliveries", "cleaned_incidents"],
    description=(
        "One row per order with only what is known when it is placed (promise, mode/carrier, "
        "distance, basket, calendar, the customer's history and the origin's load up to that "
        "moment, open incidents) and the labels (delivery days, late) once known. "
        "Point-in-time correct. Parquet at lake/clean/order_features."
    ),
)
def order_features(pyspark: LazyPySparkResource, lake: LakeResource) -> dg.MaterializeResult:
    """Rebuild the order-time feature table from the cleaned entities."""
    rows, path = build_features(pyspark.spark_session, lake.clean_dir)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            **parquet_column_schema_metadata(path),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


clean_assets = [clean_entities, order_features]
