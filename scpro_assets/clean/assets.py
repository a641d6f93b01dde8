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
    """Rebuild the event stores from every raw file, and every entity from every event, instead
    of merging only what the new ones touch (the feature table follows: it rebuilds when its
    entities were rewritten)."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            group_name="clean",
            kinds={"spark", "delta"},
            owners=[OWNER],
            description=ENTITY_DESCRIPTIONS[name]
            + f" Delta table at lake/clean/{name}, merged by key each cycle.",
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
    """Read new raw ranges into the event stores, then merge the keys they touch into the entities.

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
    build = build_entities(
        spark, lake.clean_dir, lake.quarantine_dir, in_flight, update.full_refresh
    )
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
                "event_store_versions": dg.MetadataValue.json(update.versions),
                "full_refresh": update.full_refresh,
                "full_rebuild": build.full_rebuild,
                "rebuild_reason": build.rebuild_reason or "none: merged the touched keys",
                "keys_recomputed": dg.MetadataValue.json(build.touched),
                "delta_version": build.versions[name],
                "quarantined_by_rules": dg.MetadataValue.json(build.quarantine_reasons),
                "watermark": watermark.isoformat() if watermark else "none",
                "events_after_watermark": dg.MetadataValue.json(build.watermark.after_watermark),
                "seconds": round(update.seconds + build.seconds, 2),
            },
        )


@dg.asset(
    group_name="clean",
    kinds={"spark", "delta"},
    owners=[OWNER],
    deps=["cleaned_orders", "cleaned_order_items", "cleaned_deliveries", "cleaned_incidents"],
    description=(
        "One row per order with only what is known when it is placed (promise, mode/carrier, "
        "distance, basket, calendar, the customer's history and the origin's load up to that "
        "moment, open incidents) and the labels (delivery days, late) once known. "
        "Point-in-time correct. Delta table at lake/clean/order_features, merged by order_id "
        "for the orders whose features the entities' changes can alter."
    ),
)
def order_features(pyspark: LazyPySparkResource, lake: LakeResource) -> dg.MaterializeResult:
    """Bring the order-time feature table up to the cleaned entities (merged by order_id)."""
    rows, path = build_features(pyspark.spark_session, lake.clean_dir)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            **parquet_column_schema_metadata(path),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


clean_assets = [clean_entities, order_features]
