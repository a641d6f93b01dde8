"""The clean layer as plain functions over a SparkSession (the Dagster assets only wrap these).

Two steps:

1. :func:`update_event_stores`: read only the raw range files not read before (the manifest), parse
   them against the contracts, keep one copy of each ``event_id`` within the batch, and insert the
   events a store does not hold yet into the Delta table ``lake/clean/events/<topic>`` (partitioned
   by ``event_month``) with one ``MERGE ... ON event_id WHEN NOT MATCHED THEN INSERT`` per topic.
   The merge only searches the months the batch falls in (an event id is one event, with one
   event time, so a retry or a replay lands in the same month), so a cycle never reads the whole
   history. The counts come from the commit's metrics, not a re-count. Crash-safe without
   coordination: a commit is atomic (a run killed mid-merge leaves the previous version), and the
   manifest is saved after it, so a run that dies in between re-reads its files next time and the
   merge on ``event_id`` inserts nothing twice. ``full_refresh`` rewrites the stores from every
   raw file in one commit each.
2. :func:`build_entities`: rebuild the cleaned entities and the order-time feature table from the
   event stores (columnar, already parsed: cheap next to parsing JSON) and publish each atomically.
   The stores are first cut at the event-time watermark (:mod:`spark.watermark`), so every entity
   is as of one business time; the later events wait in the stores for the next build. The
   watermark is kept in ``_state/watermark.json`` and published with the serving snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from scpro_assets.clean.lake import RawManifest, parquet_rows
from scpro_assets.clean.watermark import previous_watermark, save_watermark, watermark_path
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql
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
from spark.incremental import (
    ORDER_DEPENDENCY_COLUMNS,
    feature_context,
    orders_fed_by,
    with_keys,
)
from spark.raw import parse_raw
from spark.schemas import RAW_SPARK_SCHEMA
from spark.tables import (
    DRIVER_MERGE_ROWS,
    commit_metrics,
    current_version,
    insert_new,
    read_changes,
    read_table,
    replace_keys,
    rewritten_since,
    table_rows,
    write_table,
)
from spark.watermark import (
    Watermark,
    add_progress,
    before_watermark,
    partition_progress,
    watermark_of,
    with_waiting_counts,
)

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
#: The entities the feature table is computed from, in :func:`spark.features.order_features` order.
FEATURE_INPUTS = (
    "cleaned_orders",
    "cleaned_order_items",
    "cleaned_deliveries",
    "cleaned_incidents",
)
#: The rule quarantine's table, under ``lake/quarantine``.
QUARANTINE = "clean_rules"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Delta commits a cycle makes side by side, on different tables. A small merge is a chain of
#: small Spark jobs with driver work (planning, reading the log, committing) between them, so on
#: two cores one commit's driver work overlaps another's tasks: four event stores took 11-12 s
#: one after the other and 6-8 s side by side (load 7, ``infra/spark/README.md``).
SIDE_BY_SIDE = 4

T = TypeVar("T")


def _start(pool: ThreadPoolExecutor, tasks: Mapping[str, Callable[[], T]]) -> dict[str, Future[T]]:
    return {name: pool.submit(task) for name, task in tasks.items()}


def side_by_side(tasks: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent ``tasks`` (each writing tables no other one touches) in threads.

    Every task runs to its end; the first error is raised after all have finished, so no commit
    is left running behind a failed build. PySpark maps each thread to a JVM thread of its own,
    and Spark and Delta take concurrent jobs and commits on different tables.
    """
    if len(tasks) <= 1:
        return {name: task() for name, task in tasks.items()}
    with ThreadPoolExecutor(min(SIDE_BY_SIDE, len(tasks)), thread_name_prefix="scpro") as pool:
        futures = _start(pool, tasks)
    for future in futures.values():
        if future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return {name: future.result() for name, future in futures.items()}


@dataclass
class EventStoreUpdate:
    """What one incremental read of the raw layer did, per topic."""

    raw_files_read: dict[str, int] = field(default_factory=dict)
    raw_rows_read: dict[str, int] = field(default_factory=dict)
    new_events: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    #: Each store's Delta table version after the update (``None``: no event of it yet).
    versions: dict[str, int | None] = field(default_factory=dict)
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
    #: Each entity's Delta table version after the build.
    versions: dict[str, int | None] = field(default_factory=dict)
    #: Whether every entity was rebuilt from all events (else only the touched keys were merged).
    full_rebuild: bool = False
    #: Why the build rebuilt every entity (see :func:`_rebuild_reason`); "" when it merged.
    rebuild_reason: str = ""
    #: Keys recomputed per keyed entity (orders, deliveries, incidents) by an incremental build.
    touched: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _events_base(clean_dir: Path) -> Path:
    return clean_dir / "events"


def _legacy_stores(base: Path, topics: tuple[str, ...]) -> list[Path]:
    """Event stores in the layout before Delta (a link to a Parquet version folder)."""
    return [
        base / t
        for t in topics
        if (base / t).is_symlink() or ((base / t).exists() and current_version(base / t) is None)
    ]


def _drop_legacy_stores(base: Path, stores: list[Path]) -> None:
    """Remove the pre-Delta stores and their version folders (rebuilt from the raw files)."""
    for store in stores:
        if store.is_symlink():
            store.unlink()
        else:
            shutil.rmtree(store)
    shutil.rmtree(base / ".versions", ignore_errors=True)


def update_event_stores(
    spark: SparkSession,
    raw_dir: Path,
    clean_dir: Path,
    full_refresh: bool = False,
    topics: tuple[str, ...] = BUSINESS_TOPICS,
) -> EventStoreUpdate:
    """Insert the events of new raw files into the per-topic event stores (see module docstring).

    Stores left by a version of SCPro before Delta are rebuilt from every raw file, as a full
    refresh: the raw layer is the record, the stores only a parsed copy of it.
    """
    started = time.perf_counter()
    manifest = RawManifest(clean_dir / "_state" / "raw_manifest.json")
    base = _events_base(clean_dir)
    legacy = _legacy_stores(base, topics)
    if legacy:
        _drop_legacy_stores(base, legacy)
        full_refresh = True
    if full_refresh:
        manifest.reset()
    update = EventStoreUpdate(full_refresh=full_refresh)
    files = {topic: manifest.new_files(raw_dir, topic) for topic in topics}

    def insert(topic: str) -> int:
        """Parse the topic's new files and commit their unseen events; return how many."""
        raw = spark.read.schema(RAW_SPARK_SCHEMA).parquet(*map(str, files[topic]))
        batch = deduplicate(parse_raw(raw, topic)).withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        )
        store = base / topic
        # The files' own row counts (footers) bound the batch: a large one goes to Spark at once
        # (collecting 200k wide events of each topic side by side to see whether they fit the
        # driver ran the 4 GB heap out on a 5M-event history, 2026-12-01).
        large = parquet_rows(files[topic]) > DRIVER_MERGE_ROWS
        if full_refresh:
            version = write_table(batch, store, ["event_month"], large)
            return commit_metrics(store, version)["numOutputRows"]
        batch = batch.cache()  # parsed once for the key check and the merge
        try:
            return insert_new(batch, store, "event_id", "event_month", large)[1]
        finally:
            batch.unpersist()

    busy = [topic for topic in topics if files[topic]]
    with ThreadPoolExecutor(
        max(1, min(SIDE_BY_SIDE, len(busy))), thread_name_prefix="scpro"
    ) as pool:
        inserted = _start(pool, {topic: lambda topic=topic: insert(topic) for topic in busy})
    for topic, future in inserted.items():
        if future.exception() is None:
            # Marked after the store's commit: a run that dies in between reads these files
            # again, and the merge on event_id inserts nothing twice.
            manifest.mark(raw_dir, files[topic])
    manifest.save()
    for future in inserted.values():
        if future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    for topic in topics:
        update.raw_files_read[topic] = len(files[topic])
        update.raw_rows_read[topic] = parquet_rows(files[topic])  # as landed (footers)
        update.new_events[topic] = inserted[topic].result() if topic in inserted else 0
        update.duplicates_dropped[topic] = update.raw_rows_read[topic] - update.new_events[topic]
        update.versions[topic] = current_version(base / topic)
    update.seconds = time.perf_counter() - started
    return update


def _empty_events(spark: SparkSession, topic: str) -> DataFrame:
    empty = spark.createDataFrame([], RAW_SPARK_SCHEMA)
    return parse_raw(empty, topic).withColumn("event_month", F.lit(None).cast("string"))


def load_event_stores(spark: SparkSession, clean_dir: Path) -> dict[str, DataFrame]:
    """The current event store of every topic (empty frames for topics with no data yet)."""
    base = _events_base(clean_dir)
    return {
        t: _empty_events(spark, t)
        if current_version(base / t) is None
        else read_table(spark, base / t)
        for t in BUSINESS_TOPICS
    }


def _state_path(clean_dir: Path, name: str) -> Path:
    return clean_dir / "_state" / f"{name}.json"


def _load_state(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _save_state(path: Path, state: dict) -> None:
    """Write a build's state atomically, after every table it describes has committed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _drop_unversioned(path: Path) -> None:
    """Remove a dataset left in the layout before Delta (a link to a Parquet version folder)."""
    if path.is_symlink():
        path.unlink()
    elif path.exists() and current_version(path) is None:
        shutil.rmtree(path)
    shutil.rmtree(path.parent / ".versions" / path.name, ignore_errors=True)


def _outputs(events: dict[str, DataFrame]) -> tuple[dict[str, DataFrame], DataFrame]:
    """Every cleaned entity of ``events`` (cut at the watermark) and the rule quarantine."""
    orders, orders_q = clean_orders(events["orders"])
    orders = orders.withColumn("order_month", F.date_format("order_time", "yyyy-MM"))
    items = clean_order_items(events["orders"]).withColumn(  # lines of clean orders only
        "order_month", F.date_format("order_time", "yyyy-MM")
    )
    payments, payments_q = clean_payments(events["payments"])
    shipments = clean_shipments(events["shipments"])
    deliveries, deliveries_q = order_delivery_state(shipments, orders)
    incidents, incidents_q = clean_incidents(events["ops_logs"])
    outputs = {
        "cleaned_orders": orders,
        "cleaned_order_items": items,
        "cleaned_payments": payments.withColumn("paid_month", F.date_format("paid_at", "yyyy-MM")),
        "cleaned_shipments": shipments.withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        ),
        "cleaned_deliveries": deliveries,
        "cleaned_incidents": incidents,
        "cleaned_web_logs": clean_web_logs(events["ops_logs"]).withColumn(
            "event_month", F.date_format("event_time", "yyyy-MM")
        ),
    }
    quarantine = orders_q.unionByName(payments_q).unionByName(deliveries_q)
    return outputs, quarantine.unionByName(incidents_q)


def _rebuild_entities(
    events: dict[str, DataFrame], clean_dir: Path, quarantine_dir: Path, large: bool
) -> None:
    """Write every entity and the rule quarantine from all the events (a full rebuild).

    ``large``: the stores hold more events than the driver takes, so Spark writes every table
    at once instead of computing each first to see whether it fits
    (:func:`spark.tables.write_table`).
    """
    outputs, quarantine = _outputs(events)
    for name, df in outputs.items():
        _drop_unversioned(clean_dir / name)
        partition = ENTITIES[name]
        write_table(df, clean_dir / name, [partition] if partition else [], large)
    _drop_unversioned(quarantine_dir / QUARANTINE)
    write_table(quarantine, quarantine_dir / QUARANTINE, large=large)


#: A build whose event stores gained more events since the last build than this many times the
#: events they held then rebuilds every entity from all the events instead of merging the keys
#: the new events touch. Merging costs per touched key, a rebuild per event held: with 0.9M new
#: events on 0.1M of history (a platform back from a long stop, a history loaded at once),
#: merging ~163k orders took 574 s and their features 415 s, where a full build of the 1M events
#: takes 98 s and 28 s (``infra/spark/README.md``, "Session 11"). A stream's cycle adds a few
#: percent of the history, and merges.
BACKLOG_REBUILD_RATIO = 1.0


def _backlog(base: Path, before: dict[str, int | None], versions: dict[str, int | None]) -> str:
    """Why the stores' gain since the last build calls for a rebuild ("" when it does not).

    Counted from the stores' logs (:func:`spark.tables.table_rows`), no scan: the stores only
    ever gain rows. A count the log does not hold (files without statistics) rebuilds nothing.
    """
    gained = held = 0
    for topic, version in versions.items():
        last = before.get(topic)
        then = 0 if last is None else table_rows(base / topic, last)
        if version == last:
            now = then
        else:
            now = 0 if version is None else table_rows(base / topic, version)
        if now is None or then is None:
            return ""
        gained, held = gained + now - then, held + then
    if gained > BACKLOG_REBUILD_RATIO * held:
        return f"a backlog of {gained:,} new events on {held:,} held"
    return ""


def _rebuild_reason(
    state: dict | None, versions: dict[str, int | None], base: Path, tables: list[Path]
) -> str:
    """Why this build must rebuild every entity ("" when it can merge what changed since the last).

    When there is no state (first build, or a lake from before), when a table the build writes
    is missing, when a store was rewritten (a full refresh) or went back since, and when the
    stores gained more than they held (:data:`BACKLOG_REBUILD_RATIO`).
    """
    if state is None:
        return "no earlier build"
    if any(current_version(t) is None for t in tables):
        return "a table is missing"
    for topic, version in versions.items():
        before = state["stores"].get(topic)
        if before is None:
            continue  # the store is new since (or still empty): all of it is new
        if version is None or version < before or rewritten_since(base / topic, before):
            return f"the {topic} store was rewritten"
    return _backlog(base, state["stores"], versions)


def _new_events(
    spark: SparkSession,
    store: Path,
    events: DataFrame,
    before: int | None,
    version: int | None,
    previous_micros: int | None,
    watermark: Watermark,
) -> DataFrame:
    """The events of ``store`` that enter this build: not in the last build, now before the cut.

    Those the store gained since the last build's version (its change feed), and those it held
    then but beyond the last watermark (they waited for this cut), all cut at ``watermark``.
    """
    if version is None:
        return events.limit(0)
    if before is None:
        return events  # already cut at the watermark
    waited = events.limit(0)
    if previous_micros is not None:
        month = f"{(_EPOCH + timedelta(microseconds=previous_micros)):%Y-%m}"
        waited = events.where(
            (F.col("event_month") >= month) & (F.unix_micros("event_time") > F.lit(previous_micros))
        )
    if version == before:
        return waited
    inserted = (
        read_changes(spark, store, before, version)
        .where(F.col("_change_type") == "insert")
        .select(*events.columns)
    )
    return before_watermark(inserted, watermark).unionByName(waited).dropDuplicates(["event_id"])


def _inserted_since(
    spark: SparkSession,
    base: Path,
    before: dict[str, int | None],
    versions: dict[str, int | None],
    stores: dict[str, DataFrame],
) -> dict[str, DataFrame]:
    """Per topic, the events its store gained since version ``before`` (its change feed).

    A store new since the last build is new as a whole; one without a new commit adds nothing.
    """
    gained = {}
    for topic, version in versions.items():
        last = before.get(topic)
        if version is None or version == last:
            continue
        if last is None:
            gained[topic] = stores[topic]
            continue
        gained[topic] = (
            read_changes(spark, base / topic, last, version)
            .where(F.col("_change_type") == "insert")
            .select(*stores[topic].columns)
        )
    return gained


def _row_counts(frames: dict[str, DataFrame]) -> dict[str, int]:
    """Rows of every frame, in one Spark job (a cached frame's cache is filled on the way)."""
    labelled = [df.select(F.lit(name).alias("_frame")) for name, df in frames.items()]
    union = labelled[0]
    for frame in labelled[1:]:
        union = union.unionByName(frame)
    counts = {row["_frame"]: int(row["count"]) for row in union.groupBy("_frame").count().collect()}
    return {name: counts.get(name, 0) for name in frames}


def _merge_entities(
    spark: SparkSession,
    events: dict[str, DataFrame],
    new: dict[str, DataFrame],
    clean_dir: Path,
    quarantine_dir: Path,
) -> dict[str, int]:
    """Recompute and merge only the keys the new events touch (see :mod:`spark.incremental`).

    Orders, incidents and deliveries are recomputed from all the events of their touched keys
    and replace them (a key's rows go out, its new rows in); payments, shipments and web logs are
    one row per event, so the new events' rows are inserted. The rule quarantine's rows of the
    touched keys are replaced the same way, so it stays complete. A topic without new events
    costs nothing. Returns the keys recomputed per keyed entity.
    """
    month = F.date_format("order_time", "yyyy-MM")
    event_month = F.date_format("event_time", "yyyy-MM")
    is_incident = F.col("event_type").isin("incident_opened", "incident_resolved")
    order_keys = new["orders"].select("order_id").distinct().cache()
    delivery_keys = new["shipments"].select("order_id").unionByName(order_keys).distinct().cache()
    incident_keys = new["ops_logs"].where(is_incident).select("incident_id").distinct().cache()
    cached: list[DataFrame] = [order_keys, delivery_keys, incident_keys]
    # One job counts the new events and the touched keys (and fills all their caches): a topic
    # or key set that is empty costs no merge at all.
    sizes = _row_counts(
        {
            **new,
            "orders_touched": order_keys,
            "deliveries_touched": delivery_keys,
            "incidents_touched": incident_keys,
        }
    )
    touched = {key: sizes[f"{key}_touched"] for key in ("orders", "deliveries", "incidents")}
    quarantined: list[tuple[DataFrame, DataFrame]] = []  # (rows, the keys they replace)

    def keys_of(df: DataFrame, entity: str, by: str) -> DataFrame:
        return df.select(F.lit(entity).alias("entity"), F.col(by).alias("value"))

    # Independent commits side by side: orders, then deliveries (a delivery state reads its
    # order's merged row), then the rule quarantine (which holds the deliveries' rows) in one
    # chain, started first as the longest; order lines, the one-row-per-event entities and the
    # incidents beside it.
    commits: dict[str, Callable[[], object]] = {}
    if touched["orders"]:  # orders and their lines: every event of a touched order id
        order_events = with_keys(events["orders"], order_keys, ["order_id"]).cache()
        cached.append(order_events)
        orders, orders_q = clean_orders(order_events)
        items = clean_order_items(order_events).withColumn("order_month", month)
        commits["order_items"] = lambda: replace_keys(
            items, order_keys, clean_dir / "cleaned_order_items", ["order_month"]
        )
        quarantined.append((orders_q, keys_of(order_events, "orders", "event_id")))

    def orders_deliveries_quarantine() -> None:
        if touched["orders"]:
            path = clean_dir / "cleaned_orders"
            replace_keys(orders.withColumn("order_month", month), order_keys, path, ["order_month"])
        if touched["deliveries"]:  # deliveries: from all their tracking events
            tracking = clean_shipments(with_keys(events["shipments"], delivery_keys, ["order_id"]))
            orders_now = read_table(spark, clean_dir / "cleaned_orders")  # as just merged
            deliveries, deliveries_q = order_delivery_state(
                tracking, with_keys(orders_now, delivery_keys, ["order_id"])
            )
            replace_keys(deliveries, delivery_keys, clean_dir / "cleaned_deliveries")
            quarantined.append((deliveries_q, keys_of(delivery_keys, "deliveries", "order_id")))
        if quarantined:
            rows, keys = quarantined[0]
            for more_rows, more_keys in quarantined[1:]:
                rows, keys = rows.unionByName(more_rows), keys.unionByName(more_keys)
            replace_keys(
                rows,
                keys,
                quarantine_dir / QUARANTINE,
                # An equi-join on (entity, the entity's key): deliveries are keyed by order, the
                # others by event.
                match="t.entity = s._key_entity and (case when t.entity = 'deliveries' "
                "then t.order_id else t.event_id end) is not distinct from s._key_value",
            )

    # One row per event: the new events' rows go in (only their months are searched).
    if sizes["payments"]:
        payments, payments_q = clean_payments(new["payments"])
        payments = payments.withColumn("paid_month", F.date_format("paid_at", "yyyy-MM"))
        commits["payments"] = lambda: insert_new(
            payments, clean_dir / "cleaned_payments", "event_id", "paid_month"
        )
        quarantined.append((payments_q, keys_of(new["payments"], "payments", "event_id")))
    if sizes["shipments"]:
        shipments = clean_shipments(new["shipments"]).withColumn("event_month", event_month)
        commits["shipments"] = lambda: insert_new(
            shipments, clean_dir / "cleaned_shipments", "event_id", "event_month"
        )
    if sizes["ops_logs"]:
        web_logs = clean_web_logs(new["ops_logs"]).withColumn("event_month", event_month)
        commits["web_logs"] = lambda: insert_new(
            web_logs, clean_dir / "cleaned_web_logs", "event_id", "event_month"
        )

    if touched["incidents"]:  # incidents: every opening and resolution of a touched incident id
        incident_events = with_keys(
            events["ops_logs"].where(is_incident), incident_keys, ["incident_id"]
        )
        incidents, incidents_q = clean_incidents(incident_events)
        commits["incidents"] = lambda: replace_keys(
            incidents, incident_keys, clean_dir / "cleaned_incidents"
        )
        quarantined.append((incidents_q, keys_of(incident_events, "incidents", "event_id")))
    side_by_side({"orders_deliveries_quarantine": orders_deliveries_quarantine, **commits})
    for df in cached:
        df.unpersist()
    return touched


def build_entities(
    spark: SparkSession,
    clean_dir: Path,
    quarantine_dir: Path,
    in_flight: Collection[tuple[str, int]] | None = None,
    full_refresh: bool = False,
) -> EntityBuild:
    """Bring every cleaned entity up to the event stores, as of their watermark.

    ``in_flight`` names the (topic, partition) pairs with offsets in Kafka not landed yet (see
    :func:`spark.watermark.event_watermark`); None means everything is landed, so nothing is cut.
    The watermark never goes back from the previous build's. The entities (Delta tables) are
    merged for the keys the new events touch (:func:`_merge_entities`); ``full_refresh``, a first
    build, or stores rewritten since the last build rebuild them all from every event. The stores
    are read at the versions recorded afterwards (``_state/entities.json``, with the watermark),
    so a run killed before that record just recomputes the same keys next time.
    """
    started = time.perf_counter()
    base = _events_base(clean_dir)
    versions = {t: current_version(base / t) for t in BUSINESS_TOPICS}
    stores = {
        t: _empty_events(spark, t) if v is None else read_table(spark, base / t, v)
        for t, v in versions.items()
    }
    state_path = _state_path(clean_dir, "entities")
    state = None if full_refresh else _load_state(state_path)
    tables = [clean_dir / name for name in ENTITIES] + [quarantine_dir / QUARANTINE]
    reason = "full refresh" if full_refresh else _rebuild_reason(state, versions, base, tables)
    incremental = not reason
    if incremental and state is not None and "progress" in state:
        # The stores only gained rows since the last build: its progress plus the new rows'.
        progress = add_progress(
            [tuple(p) for p in state["progress"]],
            partition_progress(_inserted_since(spark, base, state["stores"], versions, stores)),
        )
    else:
        progress = partition_progress(stores)
    previous = previous_watermark(watermark_path(clean_dir))
    watermark = with_waiting_counts(stores, watermark_of(progress, in_flight, previous))
    events = {topic: before_watermark(df, watermark) for topic, df in stores.items()}
    build = EntityBuild()
    if incremental:
        assert state is not None
        new = {
            t: _new_events(
                spark,
                base / t,
                events[t],
                state["stores"].get(t),
                versions[t],
                state.get("watermark_micros"),
                watermark,
            ).cache()
            for t in BUSINESS_TOPICS
        }
        build.touched = _merge_entities(spark, events, new, clean_dir, quarantine_dir)
        for df in new.values():
            df.unpersist()
    else:
        build.full_rebuild, build.rebuild_reason = True, reason
        held = [table_rows(base / t, v) for t, v in versions.items() if v is not None]
        _rebuild_entities(
            events, clean_dir, quarantine_dir, sum(n or 0 for n in held) > DRIVER_MERGE_ROWS
        )
    _save_state(
        state_path,
        {"stores": versions, "watermark_micros": watermark.micros, "progress": progress},
    )
    rows, reasons = _counts(
        {name: clean_dir / name for name in ENTITIES}, quarantine_dir / QUARANTINE
    )
    for name in ENTITIES:
        build.paths[name] = clean_dir / name
        build.rows[name] = rows[name]
        build.versions[name] = current_version(clean_dir / name)
    for entity, reason, count in reasons:
        build.quarantined[entity] = build.quarantined.get(entity, 0) + count
        build.quarantine_reasons.setdefault(entity, {})[reason] = count
    build.watermark = watermark
    save_watermark(watermark_path(clean_dir), watermark.record(BUSINESS_TOPICS))
    build.seconds = time.perf_counter() - started
    return build


def _counts(
    tables: dict[str, Path], quarantine: Path | None = None
) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    """Rows per table and the rule quarantine's rows per (entity, reason), read with DuckDB.

    DuckDB answers these from the tables' current versions in milliseconds; on a stream's small
    increments a Spark job per count would cost more than the merges themselves.
    """
    with connect_lake() as con:
        rows = {}
        for name, path in tables.items():
            found = con.execute(f"select count(*) from {delta_scan_sql(path)}").fetchone()
            rows[name] = int(found[0]) if found else 0
        reasons = []
        if quarantine is not None:
            reasons = con.execute(
                f"select entity, reason, count(*) from {delta_scan_sql(quarantine)} group by all"
            ).fetchall()
    return rows, [(entity, reason, int(count)) for entity, reason, count in reasons]


def _feature_inputs(
    spark: SparkSession, clean_dir: Path, versions: dict[str, int]
) -> list[DataFrame]:
    return [read_table(spark, clean_dir / name, versions[name]) for name in FEATURE_INPUTS]


def _changed_rows(
    spark: SparkSession, path: Path, before: int, version: int, columns: list[str], like: DataFrame
) -> DataFrame:
    """``columns`` of the rows changed since ``before``, as they were and as they are."""
    if version == before:
        return like.select(*columns).limit(0)
    return read_changes(spark, path, before, version).select(*columns)


#: Orders whose features one merge recomputes at most. A cycle touches a few thousand; a backlog
#: (a platform back from a long stop, a history loaded at once) touches most of the table, and
#: as one Spark ``MERGE`` that ran out of the driver's 4 GB heap: 0.9M new events on 0.1M of
#: history (~170k orders to recompute, ``scpro bench --only incremental``, 2026-12-01). In chunks
#: of this many, memory follows the chunk, and each chunk's merge source (rows plus one delete
#: row per key) stays under :data:`spark.tables.DRIVER_MERGE_ROWS`, so it commits from the
#: driver.
FEATURE_CHUNK_ORDERS = 50_000


def _feature_chunks(targets: DataFrame) -> list[DataFrame]:
    """``targets`` (order ids) cut into parts of about :data:`FEATURE_CHUNK_ORDERS` each.

    Parts by a hash of the order id (a null id hashes too), so every target is in exactly one;
    each part is merged on its own, and a run that dies between two merges leaves the state
    unsaved: the next one recomputes every target again from the same versions.
    """
    count = targets.count()
    parts = max(1, -(-count // FEATURE_CHUNK_ORDERS))
    if parts == 1:
        return [targets]
    bucket = F.pmod(F.xxhash64("order_id"), F.lit(parts))
    return [targets.where(bucket == part) for part in range(parts)]


def build_features(
    spark: SparkSession, clean_dir: Path, full_refresh: bool = False
) -> tuple[int, Path]:
    """Bring the order-time feature table up to the cleaned entities; return its rows and path.

    Merged by ``order_id`` for the orders whose features the entities' changes since the last
    build can alter (their change data feed, :func:`spark.incremental.orders_fed_by`), computed
    from those orders' whole context (:func:`spark.incremental.feature_context`). A first build,
    ``full_refresh``, or entities rewritten since rebuild it whole.
    """
    versions: dict[str, int] = {}
    for name in FEATURE_INPUTS:
        version = current_version(clean_dir / name)
        if version is None:
            raise RuntimeError("order_features needs the cleaned entities: materialize them first")
        versions[name] = version
    orders, items, deliveries, incidents = _feature_inputs(spark, clean_dir, versions)
    path = clean_dir / FEATURES
    state_path = _state_path(clean_dir, "features")
    state = None if full_refresh else _load_state(state_path)
    month = F.date_format("order_time", "yyyy-MM")
    if (
        state is None
        or current_version(path) is None
        or any(
            name not in state["entities"]
            or versions[name] < state["entities"][name]
            or rewritten_since(clean_dir / name, state["entities"][name])
            for name in FEATURE_INPUTS
        )
    ):
        _drop_unversioned(path)
        features = order_features(orders, items, deliveries, incidents)
        large = (table_rows(clean_dir / "cleaned_orders", versions["cleaned_orders"]) or 0) > (
            DRIVER_MERGE_ROWS
        )
        write_table(features.withColumn("order_month", month), path, ["order_month"], large)
    elif versions != state["entities"]:  # else nothing changed since the last build
        before = state["entities"]
        # Each input is read by several joins below (the changed orders' dependants, the
        # context, the features): cached, each Delta table is scanned once, not once per join.
        inputs = [df.cache() for df in (orders, items, deliveries, incidents)]
        orders, items, deliveries, incidents = inputs
        dependency = list(ORDER_DEPENDENCY_COLUMNS)
        changed_orders = _changed_rows(
            spark,
            clean_dir / "cleaned_orders",
            before["cleaned_orders"],
            versions["cleaned_orders"],
            dependency,
            orders,
        )
        changed_lines = _changed_rows(
            spark,
            clean_dir / "cleaned_order_items",
            before["cleaned_order_items"],
            versions["cleaned_order_items"],
            ["order_id"],
            items,
        )
        changed = changed_orders.unionByName(
            with_keys(orders.select(*dependency), changed_lines, ["order_id"])
        )
        delivered = with_keys(
            orders,
            _changed_rows(
                spark,
                clean_dir / "cleaned_deliveries",
                before["cleaned_deliveries"],
                versions["cleaned_deliveries"],
                ["order_id"],
                deliveries,
            ),
            ["order_id"],
        ).select("order_id", "customer_id", "order_time")
        changed_incidents = _changed_rows(
            spark,
            clean_dir / "cleaned_incidents",
            before["cleaned_incidents"],
            versions["cleaned_incidents"],
            ["opened_at", "resolved_at"],
            incidents,
        )
        targets = orders_fed_by(orders, changed.cache(), delivered, changed_incidents).cache()
        for part in _feature_chunks(targets):
            context = feature_context(orders, part)
            features = with_keys(
                order_features(
                    context,
                    with_keys(items, part, ["order_id"]),
                    with_keys(deliveries, context.select("order_id"), ["order_id"]),
                    incidents,
                ),
                part,
                ["order_id"],
            )
            replace_keys(features.withColumn("order_month", month), part, path, ["order_month"])
        for df in (targets, changed, *inputs):
            df.unpersist()
    _save_state(state_path, {"entities": versions})
    rows, _ = _counts({FEATURES: path})
    return rows[FEATURES], path
