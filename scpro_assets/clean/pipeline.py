"""The clean layer as plain functions over a SparkSession (the Dagster assets only wrap these).

Two steps:

1. :func:`update_event_stores`: read only the raw range files not read before (the manifest), parse
   them against the contracts, drop events whose ``event_id`` is already stored, and append the rest
   to ``lake/clean/events/<topic>``. Crash-safe without coordination: the manifest is saved last,
   so a failed run re-reads its files next time and the anti-join on ``event_id`` keeps that
   idempotent. ``full_refresh`` rebuilds the stores from every raw file.
2. :func:`build_entities`: rebuild the cleaned entities and the order-time feature table from the
   event stores (columnar, already parsed: cheap next to parsing JSON) and publish each atomically.
   The stores are first cut at the event-time watermark (:mod:`spark.watermark`), so every entity
   is as of one business time; the later events wait in the stores for the next build. The
   watermark is kept in ``_state/watermark.json`` and published with the serving snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from scpro_assets.clean.lake import RawManifest, parquet_rows, publish, published_rows, read
from scpro_assets.clean.watermark import previous_watermark, save_watermark, watermark_path
from scpro_assets.settings import BUSINESS_TOPICS
from spark.cleaning import (
    clean_incidents,
    clean_order_items,
    clean_orders,
    clean_payments,
    clean_shipments,
    clean_web_logs,
    deduplicate,
    order_delivery_state,
)
from spark.features import order_features
from spark.raw import parse_raw
from spark.schemas import RAW_SPARK_SCHEMA
from spark.watermark import Watermark, before_watermark, event_watermark, with_waiting_counts

#: Cleaned entities published by :func:`build_entities`, with the column each is partitioned by.
ENTITIES: dict[str, str | None] = {
    "cleaned_orders": "order_month",
    "cleaned_order_items": "order_month",
    "cleaned_payments": "paid_month",
    "cleaned_shipments": "event_month",
    "cleaned_deliveries": None,
    "cleaned_incidents": None,
    "cleaned_web_logs": "event_month",
}
FEATURES = "order_features"


@dataclass
class EventStoreUpdate:
    """What one incremental read of the raw layer did, per topic."""

    raw_files_read: dict[str, int] = field(default_factory=dict)
    raw_rows_read: dict[str, int] = field(default_factory=dict)
    new_events: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    full_refresh: bool = False
    seconds: float = 0.0


@dataclass
class EntityBuild:
    """Rows published per entity and rows quarantined by business rules."""

    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    watermark: Watermark = field(default_factory=lambda: Watermark(None))
    seconds: float = 0.0


def _events_base(clean_dir: Path) -> Path:
    return clean_dir / "events"


def update_event_stores(
    spark: SparkSession,
    raw_dir: Path,
    clean_dir: Path,
    full_refresh: bool = False,
    topics: tuple[str, ...] = BUSINESS_TOPICS,
) -> EventStoreUpdate:
    """Append the events of new raw files to the per-topic event stores (see module docstring)."""
    started = time.perf_counter()
    manifest = RawManifest(clean_dir / "_state" / "raw_manifest.json")
    if full_refresh:
        manifest.reset()
    update = EventStoreUpdate(full_refresh=full_refresh)
    base = _events_base(clean_dir)
    for topic in topics:
        files = manifest.new_files(raw_dir, topic)
        update.raw_files_read[topic] = len(files)
        if not files:
            update.raw_rows_read[topic] = update.new_events[topic] = 0
            update.duplicates_dropped[topic] = 0
            continue
        raw = spark.read.schema(RAW_SPARK_SCHEMA).parquet(*map(str, files))
        parsed = deduplicate(parse_raw(raw, topic)).cache()
        store = None if full_refresh else read(spark, base, topic)
        fresh = (
            parsed
            if store is None
            else parsed.join(store.select("event_id"), "event_id", "left_anti")
        )
        fresh = fresh.select(*parsed.columns).withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        )
        combined = fresh if store is None else store.unionByName(fresh)
        stored_before = 0 if store is None else published_rows(base, topic)
        publish(combined, base, topic, "event_month")
        # Counted from Parquet footers: the raw files as landed, the store before and after.
        update.raw_rows_read[topic] = parquet_rows(files)
        update.new_events[topic] = published_rows(base, topic) - stored_before
        update.duplicates_dropped[topic] = update.raw_rows_read[topic] - update.new_events[topic]
        parsed.unpersist()
        manifest.mark(raw_dir, files)
        manifest.save()
    update.seconds = time.perf_counter() - started
    return update


def _empty_events(spark: SparkSession, topic: str) -> DataFrame:
    empty = spark.createDataFrame([], RAW_SPARK_SCHEMA)
    return parse_raw(empty, topic).withColumn("event_month", F.lit(None).cast("string"))


def load_event_stores(spark: SparkSession, clean_dir: Path) -> dict[str, DataFrame]:
    """The current event store of every topic (empty frames for topics with no data yet)."""
    base = _events_base(clean_dir)
    return {t: read(spark, base, t) or _empty_events(spark, t) for t in BUSINESS_TOPICS}


def build_entities(
    spark: SparkSession,
    clean_dir: Path,
    quarantine_dir: Path,
    in_flight: Collection[tuple[str, int]] | None = None,
) -> EntityBuild:
    """Rebuild and publish every cleaned entity from the event stores, as of their watermark.

    ``in_flight`` names the (topic, partition) pairs with offsets in Kafka not landed yet (see
    :func:`spark.watermark.event_watermark`); None means everything is landed, so nothing is cut.
    The watermark never goes back from the previous build's.
    """
    started = time.perf_counter()
    stores = load_event_stores(spark, clean_dir)
    previous = previous_watermark(watermark_path(clean_dir))
    watermark = with_waiting_counts(stores, event_watermark(stores, in_flight, previous))
    events = {topic: before_watermark(df, watermark) for topic, df in stores.items()}
    orders, orders_q = clean_orders(events["orders"])
    orders = orders.withColumn("order_month", F.date_format("order_time", "yyyy-MM")).cache()
    items = clean_order_items(events["orders"]).withColumn(  # lines of clean orders only
        "order_month", F.date_format("order_time", "yyyy-MM")
    )
    payments, payments_q = clean_payments(events["payments"])
    payments = payments.withColumn("paid_month", F.date_format("paid_at", "yyyy-MM"))
    shipments = clean_shipments(events["shipments"]).cache()
    deliveries, deliveries_q = order_delivery_state(shipments, orders)
    incidents, incidents_q = clean_incidents(events["ops_logs"])
    web_logs = clean_web_logs(events["ops_logs"])
    outputs = {
        "cleaned_orders": orders,
        "cleaned_order_items": items,
        "cleaned_payments": payments,
        "cleaned_shipments": shipments.withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        ),
        "cleaned_deliveries": deliveries,
        "cleaned_incidents": incidents,
        "cleaned_web_logs": web_logs.withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        ),
    }
    build = EntityBuild()
    for name, df in outputs.items():
        build.paths[name] = publish(df, clean_dir, name, ENTITIES[name])
        build.rows[name] = published_rows(clean_dir, name)
    quarantine = orders_q.unionByName(payments_q).unionByName(deliveries_q)
    quarantine = quarantine.unionByName(incidents_q)
    target = publish(quarantine, quarantine_dir, "clean_rules")
    # The rule quarantine is small: its reasons are counted with pyarrow, not another Spark job.
    files = sorted(target.glob("part-*.parquet"))
    if files:
        counted = pq.read_table(files, columns=["entity", "reason"]).group_by(["entity", "reason"])
        for row in counted.aggregate([("reason", "count")]).to_pylist():
            entity, reason, count = row["entity"], row["reason"], row["reason_count"]
            build.quarantined[entity] = build.quarantined.get(entity, 0) + count
            build.quarantine_reasons.setdefault(entity, {})[reason] = count
    orders.unpersist()
    shipments.unpersist()
    build.watermark = watermark
    save_watermark(watermark_path(clean_dir), watermark.record(BUSINESS_TOPICS))
    build.seconds = time.perf_counter() - started
    return build


def build_features(spark: SparkSession, clean_dir: Path) -> tuple[int, Path]:
    """Rebuild and publish the order-time feature table from the published entities."""
    names = ("cleaned_orders", "cleaned_order_items", "cleaned_deliveries", "cleaned_incidents")
    frames = [read(spark, clean_dir, n) for n in names]
    if any(f is None for f in frames):
        raise RuntimeError("order_features needs the cleaned entities: materialize them first")
    features = order_features(*frames).withColumn(
        "order_month", F.date_format("order_time", "yyyy-MM")
    )
    path = publish(features, clean_dir, FEATURES, "order_month")
    return published_rows(clean_dir, FEATURES), path
