"""The lake's open table format (Delta Lake): Spark merges by key, time-travels, survives a merge
killed half-way, and DuckDB reads exactly Spark's rows through the PyPI extension, with no network;
the clean layer's event stores are Delta tables that a micro-batch only inserts into, and its
entities and features, merged only for the keys each micro-batch touches, come out exactly as a
full refresh's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

import spark.tables as spark_tables
from scpro_assets.clean.pipeline import (
    ENTITIES,
    FEATURES,
    QUARANTINE,
    build_entities,
    build_features,
    load_event_stores,
    update_event_stores,
)
from scpro_assets.lake_duckdb import (
    NO_DOWNLOAD_CONFIG,
    connect_lake,
    delta_extension_path,
    delta_scan_sql,
)
from scpro_assets.settings import BUSINESS_TOPICS, REPO_ROOT
from scpro_assets.sources.common import SourceEvent, iso, stable_event_id
from scpro_assets.testing.offline import synthetic_events, write_raw_lake
from spark.session import SPARK_CONF
from spark.tables import (
    commit_metrics,
    current_version,
    insert_new,
    merge_by_key,
    read_changes,
    read_table,
    replace_keys,
    rewritten_since,
    table_rows,
    write_table,
)

SCHEMA = (
    "order_id long, customer string, amount decimal(18,2), placed_at timestamp, "
    "delivery_date date, late boolean"
)
# One canonical row shape for both engines: timestamps as UTC epoch microseconds.
SPARK_ROWS_SQL = (
    "select order_id, customer, amount, unix_micros(placed_at) as placed_us, delivery_date, late "
    "from {table} order by order_id"
)
DUCKDB_ROWS_SQL = (
    "select order_id, customer, amount, epoch_us(placed_at) as placed_us, delivery_date, late "
    "from {table} order by order_id"
)


def order(order_id: int, customer: str, amount: str, late: bool | None = False) -> tuple:
    return (
        order_id,
        customer,
        Decimal(amount),
        datetime(2024, 3, order_id % 28 + 1, 13, 45, 7, 123456, tzinfo=UTC),
        date(2024, 3, order_id % 28 + 1),
        late,
    )


def orders_df(spark: SparkSession, rows: list[tuple]):
    return spark.createDataFrame(rows, SCHEMA)


def spark_rows(spark: SparkSession, path: Path, version: int | None = None) -> list[tuple]:
    read_table(spark, path, version).createOrReplaceTempView("lake_rows")
    return [tuple(row) for row in spark.sql(SPARK_ROWS_SQL.format(table="lake_rows")).collect()]


def duckdb_rows(path: Path, version: int | None = None) -> list[tuple]:
    with connect_lake() as con:
        return con.execute(DUCKDB_ROWS_SQL.format(table=delta_scan_sql(path, version))).fetchall()


def test_session_carries_the_table_format():
    assert SPARK_CONF["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    jars = SPARK_CONF["spark.jars"].split(",")
    assert any(Path(jar).name.startswith("delta-spark_2.13-") for jar in jars), (
        "Delta's jars are missing: run `make setup`"
    )
    assert all(Path(jar).is_file() for jar in jars)


def test_merge_upserts_by_key_and_time_travel_reads_each_version(spark, tmp_path):
    table = tmp_path / "cleaned_orders"
    first = [order(1, "ada", "10.00"), order(2, "bob", "20.50"), order(3, "cy", "7.25", None)]
    assert current_version(table) is None
    v0 = merge_by_key(orders_df(spark, first), table, ["order_id"])  # creates the table
    changes = [order(2, "bob", "99.99", True), order(4, "dee", "1.00")]
    v1 = merge_by_key(orders_df(spark, changes), table, ["order_id"])
    assert (v0, v1) == (0, 1) and current_version(table) == 1
    assert (table_rows(table), table_rows(table, 0)) == (4, 3)  # from the log's file statistics

    latest, first_version = spark_rows(spark, table), spark_rows(spark, table, version=0)
    assert [row[0] for row in latest] == [1, 2, 3, 4]  # inserted once, updated in place
    assert latest[1][1:3] == ("bob", Decimal("99.99")) and latest[1][5] is True
    assert latest[0][2] == Decimal("10.00") and latest[2][5] is None  # untouched rows kept
    assert [row[0] for row in first_version] == [1, 2, 3]  # time travel: the rows before
    assert first_version[1][1:3] == ("bob", Decimal("20.50")) and first_version[1][5] is False

    # DuckDB, through the PyPI extension, reads exactly Spark's rows, at each version.
    assert duckdb_rows(table) == latest
    assert duckdb_rows(table, version=0) == first_version

    # The same merge again commits a version and changes no row: idempotent by key.
    assert merge_by_key(orders_df(spark, changes), table, ["order_id"]) == 2
    assert duckdb_rows(table) == latest


def test_merge_rejects_duplicate_and_null_keys_and_changes_nothing(spark, tmp_path):
    table = tmp_path / "cleaned_orders"
    write_table(orders_df(spark, [order(1, "ada", "10.00")]), table)
    twice = [order(5, "eve", "1.00"), order(5, "eve", "2.00"), order(6, "fay", "3.00")]
    with pytest.raises(ValueError, match=r"each key once.*\(5,\)"):
        merge_by_key(orders_df(spark, twice), table, ["order_id"])
    with pytest.raises(ValueError, match=r"null key.*\(None,\)"):
        merge_by_key(
            orders_df(spark, [order(7, "gus", "1.00")]).selectExpr(
                "cast(null as long) as order_id",
                "customer",
                "amount",
                "placed_at",
                "delivery_date",
                "late",
            ),
            table,
            ["order_id"],
        )
    with pytest.raises(ValueError, match="not columns"):
        merge_by_key(orders_df(spark, [order(8, "hal", "1.00")]), table, ["order_key"])
    assert current_version(table) == 0
    assert [row[0] for row in spark_rows(spark, table)] == [1]


EVENT_SCHEMA = "event_id string, event_month string, payload string"


def events_df(spark: SparkSession, ids: list[int], month: str = "2024-03", payload: str = "p"):
    return spark.createDataFrame([(f"e{n}", month, payload) for n in ids], EVENT_SCHEMA)


def event_rows(spark: SparkSession, path: Path, version: int | None = None) -> list[tuple]:
    frame = read_table(spark, path, version)
    return sorted(
        tuple(row) for row in frame.select("event_id", "event_month", "payload").collect()
    )


LINE_SCHEMA = "order_id string, item int, qty int"


@pytest.fixture(params=["delta-rs", "Apache-Spark"])
def merge_engine(request, monkeypatch) -> str:
    """Who commits a merge: delta-rs from the driver (a micro-batch's few rows), or Spark's
    ``MERGE`` (more rows than :data:`spark.tables.DRIVER_MERGE_ROWS`, here forced by a limit
    of 0). Both must give the same table, versions and counts."""
    if request.param == "Apache-Spark":
        monkeypatch.setattr(spark_tables, "DRIVER_MERGE_ROWS", 0)
    return request.param


def committed_by(table: Path, version: int) -> str:
    """The engine that wrote commit ``version`` (its commitInfo's ``engineInfo``)."""
    entry = table / "_delta_log" / f"{version:020d}.json"
    for line in entry.read_text().splitlines():
        if '"commitInfo"' in line:
            return json.loads(line)["commitInfo"]["engineInfo"]
    raise AssertionError(f"{entry} has no commitInfo")


def test_replace_keys_swaps_every_row_of_the_keys_in_one_commit_with_its_change_feed(
    spark, tmp_path, merge_engine
):
    """The clean layer's merge: a key's rows go out and its new rows in, null keys included."""
    table = tmp_path / "lines"
    lines = [("a", 1, 1), ("a", 2, 1), ("b", 1, 5), (None, 1, 7), ("c", 1, 9)]
    assert write_table(spark.createDataFrame(lines, LINE_SCHEMA), table) == 0
    # Order a now has one line (its second went), b is gone (quarantined), the null-keyed
    # rows are recomputed, d is new; c is not touched.
    rows = spark.createDataFrame([("a", 1, 2), (None, 1, 8), ("d", 1, 1)], LINE_SCHEMA)
    keys = spark.createDataFrame([("a",), ("b",), (None,), ("d",), ("a",)], "order_id string")
    assert replace_keys(rows, keys, table) == 1
    assert committed_by(table, 1).startswith(merge_engine)
    got = read_table(spark, table).collect()
    assert sorted(map(tuple, got), key=str) == sorted(
        [("a", 1, 2), (None, 1, 8), ("d", 1, 1), ("c", 1, 9)], key=str
    )
    changes = read_changes(spark, table, 0, 1).collect()
    deleted = sorted((r.order_id or "-", r.item) for r in changes if r._change_type == "delete")
    inserted = sorted((r.order_id or "-", r.item) for r in changes if r._change_type == "insert")
    assert deleted == [("-", 1), ("a", 1), ("a", 2), ("b", 1)]
    assert inserted == [("-", 1), ("a", 1), ("d", 1)]
    assert not rewritten_since(table, 0)
    write_table(spark.createDataFrame(lines, LINE_SCHEMA), table)  # a full refresh
    assert rewritten_since(table, 1) and not rewritten_since(table, 2)


def test_insert_new_adds_only_unseen_keys_and_counts_from_the_commit(spark, tmp_path, merge_engine):
    table = tmp_path / "events"
    assert insert_new(events_df(spark, []), table, "event_id", "event_month") == (None, 0)
    assert insert_new(events_df(spark, [1, 2, 3]), table, "event_id", "event_month") == (0, 3)
    assert (table / "event_month=2024-03").is_dir()  # partitioned by month
    # A replay of e2/e3 with other payloads and two new events: the stored copies stay as they
    # were (never rewritten), the count is the commit's numTargetRowsInserted.
    replay = events_df(spark, [2, 3, 4], payload="replayed").unionByName(
        events_df(spark, [5], month="2024-04")
    )
    assert insert_new(replay, table, "event_id", "event_month") == (1, 2)
    assert committed_by(table, 1).startswith(merge_engine)
    assert commit_metrics(table, 1)["numTargetRowsInserted"] == 2
    # The same batch again inserts nothing, and Delta commits no empty merge: not the previous
    # commit's count.
    assert insert_new(replay, table, "event_id", "event_month") == (1, 0)
    assert event_rows(spark, table) == [
        ("e1", "2024-03", "p"),
        ("e2", "2024-03", "p"),
        ("e3", "2024-03", "p"),
        ("e4", "2024-03", "replayed"),
        ("e5", "2024-04", "p"),
    ]
    with pytest.raises(ValueError, match=r"each key once.*2024-03"):
        insert_new(events_df(spark, [7, 7]), table, "event_id", "event_month")
    null_key = events_df(spark, [8], month="2024-05").unionByName(
        spark.createDataFrame([(None, "2024-06", "p")], EVENT_SCHEMA)
    )
    with pytest.raises(ValueError, match=r"each key once.*\['2024-06'\]"):
        insert_new(null_key, table, "event_id", "event_month")
    assert current_version(table) == 1


KILLED_MERGE = """
import sys
from spark.session import build_spark_session
from spark.tables import table_identifier

# Files must appear while the merge runs, task by task: the source is not materialized first
# (Delta would compute all of it before writing a file), and the rows are not shuffled by the
# table's partition column before the write (Delta's repartitionBeforeWrite: every task of the
# 2e9-row source would have to finish before the first file, so none ever appeared).
spark = build_spark_session("local[2]", app_name="scpro-killed-merge",
                            extra_conf={"spark.sql.shuffle.partitions": "2",
                                        "spark.databricks.delta.merge.materializeSource": "none",
                                        "spark.databricks.delta.merge.repartitionBeforeWrite.enabled":
                                            "false"})
# Far more new events than can be merged before the test kills this process, in small tasks
# (100k rows each) so the first files appear within seconds of the merge starting.
(spark.range(0, 2_000_000_000, numPartitions=20_000)
    .selectExpr("concat('new', id) as event_id", "'2024-03' as event_month", "'k' as payload")
    .createOrReplaceTempView("batch"))
spark.sql(f"merge into {table_identifier(sys.argv[1])} t using batch s "
          "on t.event_id = s.event_id and t.event_month in ('2024-03') "
          "when not matched then insert *").collect()
print("the merge finished before it was killed", flush=True)
"""

KILLED_DRIVER_MERGE = """
import sys
import pyarrow as pa
from deltalake import DeltaTable

# The driver's path (delta-rs): an endless stream of new events, merged as it comes, so files
# are written long before the merge could commit. Payloads are random (1.2 kB each, nothing to
# compress), so a data file fills up to its target size within seconds.
import os
schema = pa.schema([("event_id", pa.string()), ("event_month", pa.string()),
                    ("payload", pa.string())])
def batches():
    for start in range(0, 2_000_000_000, 20_000):
        ids = pa.array([f"new{n}" for n in range(start, start + 20_000)])
        payloads = pa.array([os.urandom(600).hex() for _ in range(20_000)])
        yield pa.record_batch([ids, pa.array(["2024-03"] * 20_000), payloads], schema=schema)
(DeltaTable(sys.argv[1])
    .merge(pa.RecordBatchReader.from_batches(schema, batches()), source_alias="s",
           target_alias="t", streamed_exec=True,
           predicate="t.event_id = s.event_id and t.event_month in ('2024-03')")
    .when_not_matched_insert_all()
    .execute())
print("the merge finished before it was killed", flush=True)
"""


def _data_files(table: Path) -> set[str]:
    return {str(path.relative_to(table)) for path in table.rglob("*.parquet")}


@pytest.mark.parametrize(
    "merger_script", [KILLED_MERGE, KILLED_DRIVER_MERGE], ids=["spark", "driver"]
)
def test_a_merge_killed_in_the_middle_leaves_the_previous_version(spark, tmp_path, merger_script):
    """SIGKILL mid-MERGE, by either engine: orphan files, no commit; Spark and DuckDB read the
    previous version, and the next merge commits the next version with exactly its rows."""
    table = tmp_path / "events"
    assert insert_new(events_df(spark, [1, 2, 3]), table, "event_id", "event_month") == (0, 3)
    committed_rows, committed_files = event_rows(spark, table), _data_files(table)

    log = tmp_path / "merger.log"  # its stderr, shown if it never gets to write
    with log.open("wb") as stderr:
        merger = subprocess.Popen(
            [sys.executable, "-c", merger_script, str(table)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # the JVM joins the merger's process group: one kill ends both
        )
    try:
        deadline = time.monotonic() + 300
        while not _data_files(table) - committed_files:  # the merge has started its files
            if merger.poll() is not None or time.monotonic() > deadline:
                why = "died" if merger.poll() is not None else "was still running"
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"the merger {why} without writing a file in 300 s:\n{tail}")
            time.sleep(0.05)
        os.killpg(merger.pid, signal.SIGKILL)
    finally:
        if merger.poll() is None:
            os.killpg(merger.pid, signal.SIGKILL)
        merger.wait(timeout=60)
    assert merger.stdout is not None and b"finished" not in merger.stdout.read()
    assert merger.returncode == -signal.SIGKILL

    assert _data_files(table) - committed_files, "no orphan file: it was not killed mid-merge"
    assert current_version(table) == 0
    assert event_rows(spark, table) == committed_rows  # orphan files are in no version
    with connect_lake() as con:
        got = con.execute(
            f"select event_id, event_month, payload from {delta_scan_sql(table)} order by 1"
        ).fetchall()
    assert got == committed_rows

    # The next run converges: its batch (a retry of e3 and a new e4) commits version 1.
    assert insert_new(events_df(spark, [3, 4]), table, "event_id", "event_month") == (1, 1)
    assert event_rows(spark, table) == [*committed_rows, ("e4", "2024-03", "p")]


def _land(events: list, raw: Path, prefix: str) -> None:
    """Land ``events`` as raw range files named with ``prefix`` (a later landing of the same
    offsets, as a replay lands them again)."""
    staging = raw.parent / f"staging-{prefix}"
    write_raw_lake(events, staging, chunk=100)
    for landed in staging.rglob("*.parquet"):
        target = raw / landed.relative_to(staging).parent / f"{prefix}-{landed.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        landed.rename(target)


def _ids_by_topic(events: list) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {topic: set() for topic in BUSINESS_TOPICS}
    for event in events:
        ids[event.topic].add(event.event_id)
    return ids


def _stored_ids(spark: SparkSession, clean: Path) -> dict[str, list[str]]:
    stores = load_event_stores(spark, clean)
    return {
        t: sorted(r.event_id for r in stores[t].select("event_id").collect())
        for t in BUSINESS_TOPICS
    }


def test_event_stores_merge_only_new_events_and_a_lost_manifest_inserts_nothing_twice(
    spark, tmp_path
):
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    events = list(synthetic_events(300, seed=5))
    first, second = events[:200], events[100:]  # the second batch replays 100 events
    _land(first, raw, "a")
    update_event_stores(spark, raw, clean)
    manifest = clean / "_state" / "raw_manifest.json"
    after_first = manifest.read_text()
    _land(second, raw, "b")
    update = update_event_stores(spark, raw, clean)
    ids = _ids_by_topic(events)
    new = {t: len(_ids_by_topic(second)[t] - _ids_by_topic(first)[t]) for t in BUSINESS_TOPICS}
    landed = {t: sum(e.topic == t for e in second) for t in BUSINESS_TOPICS}
    assert update.new_events == new  # numTargetRowsInserted of each topic's merge
    assert update.duplicates_dropped == {t: landed[t] - new[t] for t in BUSINESS_TOPICS}
    assert sum(update.duplicates_dropped.values()) >= 100  # the replayed events at least
    assert _stored_ids(spark, clean) == {t: sorted(ids[t]) for t in BUSINESS_TOPICS}
    assert update.versions == dict.fromkeys(BUSINESS_TOPICS, 1)  # created, then one merge each
    assert all(current_version(clean / "events" / t) == 1 for t in BUSINESS_TOPICS)

    # A run that committed its merges and died before saving the manifest: the next run reads
    # the same files again, and the merge on event_id inserts none of them twice.
    manifest.write_text(after_first)
    again = update_event_stores(spark, raw, clean)
    assert sum(again.raw_files_read.values()) > 0 and again.new_events == dict.fromkeys(
        BUSINESS_TOPICS, 0
    )
    assert _stored_ids(spark, clean) == {t: sorted(ids[t]) for t in BUSINESS_TOPICS}

    # A store in the layout before Delta (a link to a Parquet folder) is rebuilt from every raw
    # file, as a full refresh: the same events, each once.
    legacy = clean / "events" / "orders"
    shutil.rmtree(legacy)
    legacy.symlink_to(raw / "orders")
    rebuilt = update_event_stores(spark, raw, clean)
    assert rebuilt.full_refresh and rebuilt.new_events == {t: len(ids[t]) for t in BUSINESS_TOPICS}
    assert _stored_ids(spark, clean) == {t: sorted(ids[t]) for t in BUSINESS_TOPICS}


NO_NETWORK_READER = """
import sys
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql

with connect_lake() as con:
    loaded = con.execute(
        "select loaded from duckdb_extensions() where extension_name = 'delta'"
    ).fetchone()
    rows = con.execute(f"select count(*) from {delta_scan_sql(sys.argv[1])}").fetchone()
print(loaded[0], rows[0])
"""


def test_duckdb_reads_the_lake_without_network(spark, tmp_path):
    table = tmp_path / "cleaned_orders"
    write_table(orders_df(spark, [order(n, "x", "1.00") for n in range(1, 8)]), table)
    # A fresh process in a network namespace of its own: no interface but loopback, so any
    # attempt to fetch an extension would fail the read.
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NO_NETWORK_READER, str(table)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "7"]
    assert not (tmp_path / ".duckdb").exists()  # nothing installed into DuckDB's home folder
    assert NO_DOWNLOAD_CONFIG == {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    with connect_lake() as con:
        settings = dict(
            con.execute(
                "select name, value from duckdb_settings() where name like 'auto%_known_extensions'"
            ).fetchall()
        )
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }
    assert delta_extension_path().is_file()


# --- the incremental clean layer equals a full refresh (issue #17 item 8) ---------------------


def _placed_again(event: SourceEvent, hours_earlier: float) -> SourceEvent:
    """Another event placing the same order, dated earlier: it becomes the order's first one."""
    when = event.event_time - timedelta(hours=hours_earlier)
    event_id = stable_event_id("test", "placed-again", event.event_id)
    payload = {**event.payload, "event_id": event_id, "event_time": iso(when)}
    return SourceEvent(when, event_id, event.topic, event.key, payload)


def _clean_tables(spark: SparkSession, clean: Path, quarantine: Path) -> dict[str, list[tuple]]:
    """Every row of every clean table and of the rule quarantine, sorted (exact values)."""
    paths = {name: clean / name for name in (*ENTITIES, FEATURES)}
    paths[QUARANTINE] = quarantine / QUARANTINE
    return {
        name: sorted(
            (tuple(row) for row in read_table(spark, path).collect()),
            key=lambda row: tuple((value is None, str(value)) for value in row),
        )
        for name, path in paths.items()
    }


# Twenty Spark builds: ~300 s on an idle 2-core box, 601 s on one at half its speed (2026-12-01).
@pytest.mark.timeout(1200)
def test_ten_micro_batches_give_the_full_refresh_tables_row_for_row(spark, tmp_path, monkeypatch):
    from scpro_assets.clean import pipeline

    # Feature merges in chunks of at most 20 orders here (50k in production): the batches whose
    # changes reach more orders merge them in several commits, as a backlog does.
    monkeypatch.setattr(pipeline, "FEATURE_CHUNK_ORDERS", 20)
    # Every build after the first merges here, however large its batch is next to the history
    # (a backlog larger than the history is rebuilt in full: the test after this one).
    monkeypatch.setattr(pipeline, "BACKLOG_REBUILD_RATIO", float("inf"))
    events = list(synthetic_events(360, seed=11))
    orders = [e for e in events if e.topic == "orders"]
    # Hostile arrivals: an order placed again, earlier, landing late (its first event changes and
    # the old one is quarantined as a duplicate), and a replay of a whole earlier batch.
    late = [_placed_again(orders[3], 2.0), _placed_again(orders[-5], 0.5)]
    batches = [events[i * 36 : (i + 1) * 36] for i in range(10)]
    batches[6] += late
    batches[7] += batches[2]
    # While other partitions have events in flight, the cut holds events back for later builds.
    in_flight = [{("shipments", 0)}, None, {("orders", 0)}, None, {("payments", 0)}] * 2
    in_flight[-1] = None

    raw, clean, quarantine = tmp_path / "raw", tmp_path / "clean", tmp_path / "quarantine"
    rebuilt = []
    for number, (batch, waiting) in enumerate(zip(batches, in_flight, strict=True)):
        _land(batch, raw, f"b{number:02d}")
        update_event_stores(spark, raw, clean)
        build = build_entities(spark, clean, quarantine, waiting)
        build_features(spark, clean)
        rebuilt.append(build.full_rebuild)
    assert rebuilt == [True] + [False] * 9  # only the first build saw no earlier state
    # One commit per build at most, unless a build merged its features in chunks: some did.
    assert current_version(clean / FEATURES) > 9
    assert build.touched["orders"] > 0

    full_clean, full_quarantine = tmp_path / "full" / "clean", tmp_path / "full" / "quarantine"
    update_event_stores(spark, raw, full_clean, full_refresh=True)
    full = build_entities(spark, full_clean, full_quarantine, full_refresh=True)
    build_features(spark, full_clean, full_refresh=True)
    assert full.full_rebuild and full.watermark.micros == build.watermark.micros
    # The incremental builds added each batch's progress to the last one's instead of scanning
    # the stores: every partition's count and latest event time come out as a full scan's.
    assert build.watermark.partitions == full.watermark.partitions

    incremental = _clean_tables(spark, clean, quarantine)
    expected = _clean_tables(spark, full_clean, full_quarantine)
    assert {n: len(rows) for n, rows in incremental.items()} == {
        n: len(rows) for n, rows in expected.items()
    }
    for name, rows in expected.items():
        assert incremental[name] == rows, name
    reasons = {row[3] for row in expected[QUARANTINE]}
    assert any(r.startswith("duplicate order_id") for r in reasons)


def test_a_backlog_larger_than_the_history_is_rebuilt_and_a_small_batch_merged(spark, tmp_path):
    """The stores' gain since the last build, counted from their logs, picks merge or rebuild."""
    events = list(synthetic_events(400, seed=5))
    raw, clean, quarantine = tmp_path / "raw", tmp_path / "clean", tmp_path / "quarantine"
    builds = []
    for number, batch in enumerate((events[:100], events[100:360], events[360:])):
        _land(batch, raw, f"b{number}")
        update = update_event_stores(spark, raw, clean)
        builds.append(build_entities(spark, clean, quarantine))
        build_features(spark, clean)
        assert sum(update.new_events.values()) == len(batch)
    first, backlog, cycle = builds
    assert (first.full_rebuild, first.rebuild_reason) == (True, "no earlier build")
    # 260 new events on the 100 held: merging them key by key would cost more than a rebuild.
    assert backlog.full_rebuild
    assert backlog.rebuild_reason == "a backlog of 260 new events on 100 held"
    assert not backlog.touched
    # 40 on 360: merged, only the keys they touch.
    assert (cycle.full_rebuild, cycle.rebuild_reason) == (False, "")
    assert cycle.touched["orders"] > 0

    full_clean, full_quarantine = tmp_path / "full" / "clean", tmp_path / "full" / "quarantine"
    update_event_stores(spark, raw, full_clean, full_refresh=True)
    build_entities(spark, full_clean, full_quarantine, full_refresh=True)
    build_features(spark, full_clean, full_refresh=True)
    assert _clean_tables(spark, clean, quarantine) == _clean_tables(
        spark, full_clean, full_quarantine
    )
