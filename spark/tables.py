"""The lake's tables in Delta Lake: write, merge by key, read a version, know the current one.

A table is a folder under the lake (``lake/clean/<name>``) holding Parquet files and a
``_delta_log`` of numbered commits. A write or a merge is one commit: it adds files, then writes
the next log entry atomically; readers only ever see committed versions, so a run killed in the
middle leaves orphan files that no version references, and the next write simply goes on. Every
commit is a version that can be read again (time travel), which is how a model's training data can
be named: a table path and a version.

These helpers take paths, not catalog names: SCPro keeps no metastore, the lake folder is the
catalog (Spark reads a path table as ``delta.`<path>```, DuckDB as ``delta_scan('<path>')``).

Two writers, one protocol. Spark writes whole tables (a first build, a full refresh) and any merge
whose rows are many. A micro-batch's merge is small: its rows are collected to the driver as Arrow
(one Spark job) and committed there by delta-rs (the ``deltalake`` package, Delta Lake's Rust
implementation). Measured on the 2-core box (``infra/spark/README.md``, session 7): merging 50
rows into a 10k-row table took 1.4 s with Spark's ``MERGE`` (source materialization, a join to
find the touched files, the write: three jobs and the driver's planning) and 0.05 s with delta-rs
after a 0.3 s collect. Both write the same log, change data feed included, and Spark, DuckDB and
delta-rs read each other's commits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.table import TableMerger
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

#: How many offending keys a rejected merge names in its error.
_KEYS_SHOWN = 5

#: A merge whose source holds at most this many rows commits from the driver with delta-rs; a
#: larger one (a backlog after a long stop) stays a Spark ``MERGE`` on the executors. 200k event
#: rows are ~100 MB of Arrow in the driver's Python process.
DRIVER_MERGE_ROWS = 200_000

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def table_identifier(path: Path | str) -> str:
    """Name a path table in Spark SQL (``delta.`<path>```), backticks in the path escaped."""
    return "delta.`" + str(path).replace("`", "``") + "`"


def current_version(path: Path | str) -> int | None:
    """The table's latest committed version, or ``None`` when there is no table yet.

    Read from the commit log's file names (``_delta_log/<version>.json``), not through Spark: a
    commit *is* the atomic creation of that file, and listing a folder costs no Spark job.
    Writers' temporary files (``.<version>.json.<uuid>.tmp``) and checksums do not match.
    """
    log = Path(path) / "_delta_log"
    versions = [int(entry.stem) for entry in log.glob("*.json") if entry.stem.isdigit()]
    return max(versions, default=None)


def commit_metrics(path: Path | str, version: int) -> dict[str, int]:
    """The operation metrics Delta recorded with commit ``version`` (rows written, inserted...).

    Read from the commit's own log entry (its ``commitInfo`` action), not through Spark: counting
    what a write or a merge just did must not cost a job that reads the table again. A write
    records ``numOutputRows``; a merge ``numTargetRowsInserted``, ``numTargetRowsUpdated``, ...
    """
    entry = Path(path) / "_delta_log" / f"{version:020d}.json"
    for line in entry.read_text().splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            metrics = action["commitInfo"].get("operationMetrics", {})
            return {_camel(name): int(value) for name, value in metrics.items()}
    raise ValueError(f"{entry} holds no commitInfo: not a Delta commit SCPro can read")


def table_rows(path: Path | str, version: int | None = None) -> int | None:
    """Rows of the table at ``version`` (its latest by default), from the log alone.

    Each data file's row count is in the add action that committed it (its statistics), so the
    answer costs one read of the log, no scan and no Spark job. ``None`` when a file was committed
    without statistics: the count is then unknown.
    """
    table = DeltaTable(str(path), version=version)
    records = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    if records.null_count:
        return None
    return int(pc.sum(records).as_py() or 0)


#: delta-rs metrics whose Spark name is not just the camel-case spelling of theirs.
_SPARK_METRIC_NAMES = {"num_added_rows": "numOutputRows", "num_added_files": "numFiles"}


def _camel(name: str) -> str:
    if name in _SPARK_METRIC_NAMES:
        return _SPARK_METRIC_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def write_table(
    df: DataFrame, path: Path | str, partition_by: Sequence[str] = (), large: bool = False
) -> int:
    """Replace the table's rows with ``df`` in one commit (creating it); return the new version.

    The schema and partitioning may change with the rows (``overwriteSchema``): a rebuild is the
    new truth, and the previous version stays readable by :func:`read_table`. ``large`` says the
    caller expects more rows than the driver takes: Spark writes them at once, without first
    computing ``df`` to see whether they fit (:func:`_rows_for_driver`).
    """
    rows = None if large else _rows_for_driver(df)
    if rows is not None:
        return _write_from_driver(rows, path, partition_by)
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(str(path))
    version = current_version(path)
    assert version is not None  # the write above committed
    return version


def _write_from_driver(rows: pa.Table, path: Path | str, partition_by: Sequence[str]) -> int:
    """:func:`write_table` for rows collected to the driver: one delta-rs overwrite commit.

    Every column is written nullable, as Spark writes them, so that either engine's later
    commits fit the schema. A new table gets the change data feed, as Spark's do
    (``spark.session.SPARK_CONF``).
    """
    nullable = pa.schema([field.with_nullable(True) for field in rows.schema])
    write_deltalake(
        str(path),
        rows.cast(nullable),
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=_names(partition_by) or None,
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    version = current_version(path)
    assert version is not None  # the write above committed
    return version


def merge_by_key(df: DataFrame, path: Path | str, keys: Sequence[str]) -> int:
    """Upsert ``df`` into the table by ``keys`` in one commit; return the new version.

    A row whose key is in the table replaces it (every column), a new key is inserted, other rows
    are kept. The first merge into a missing table creates it. ``df`` must hold each key once and
    no null key: two source rows for one new key would both be inserted, and a null never equals
    anything, so either would duplicate rows. Such input is rejected with the keys named.
    """
    if not keys:
        raise ValueError("merge_by_key needs at least one key column")
    missing = [key for key in keys if key not in df.columns]
    if missing:
        raise ValueError(f"merge keys {missing} are not columns of the rows ({df.columns})")
    _reject_bad_keys(df, keys)
    if current_version(path) is None:
        return write_table(df, path)
    spark = df.sparkSession
    source = f"scpro_merge_source_{uuid4().hex}"
    df.createOrReplaceTempView(source)
    matched = " and ".join(f"t.`{key}` = s.`{key}`" for key in keys)
    try:
        spark.sql(
            f"merge into {table_identifier(path)} t using {source} s on {matched} "
            "when matched then update set * when not matched then insert *"
        )
    finally:
        spark.catalog.dropTempView(source)
    version = current_version(path)
    assert version is not None  # the merge above committed
    return version


def insert_new(
    df: DataFrame,
    path: Path | str,
    key: str,
    partition_by: str,
    large: bool = False,
) -> tuple[int | None, int]:
    """Insert the rows of ``df`` whose ``key`` the table does not hold yet; keep all others.

    One ``MERGE ... WHEN NOT MATCHED THEN INSERT`` commit (rows already stored are never
    rewritten), creating the table, partitioned by ``partition_by``, when it is missing. Only the
    partitions the rows fall in are searched for their keys (``t.<partition_by> IN (<the rows'
    values>)``), so the cost follows the batch, not the table's history: right only when a key
    always lands in the same partition (an event id and its event month). ``df`` must hold each
    key once and no null key (rejected, with the partitions named: both would insert duplicates).
    Returns ``(version, rows inserted)``, the count from the commit's own metrics
    (``numTargetRowsInserted``). A batch with no rows, or only rows already stored, commits nothing
    (Delta skips a merge that changes nothing): the version stays (``None`` for a missing table)
    and 0 rows are inserted. ``large``: as for :func:`write_table`, Spark merges at once.
    """
    version = current_version(path)
    if version is not None and not large:
        rows = _rows_for_driver(df)
        if rows is not None:
            return _insert_new_from_driver(rows, path, key, partition_by, version)
    partitions = (
        df.groupBy(partition_by)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct(key).alias("keys"),
            F.count(F.when(F.col(key).isNull(), F.lit(1))).alias("null_keys"),
        )
        .collect()
    )
    _reject_bad_partitions(
        {row[partition_by] for row in partitions if row["rows"] != row["keys"] + row["null_keys"]}
        | {row[partition_by] for row in partitions if row["null_keys"]},
        key,
        partition_by,
    )
    if not partitions:
        return version, 0
    if version is None:
        version = write_table(df, path, [partition_by], large)
        return version, commit_metrics(path, version).get("numOutputRows", 0)
    values = ", ".join(sorted(_sql_literal(row[partition_by]) for row in partitions))
    condition = f"t.`{key}` = s.`{key}` and t.`{partition_by}` in ({values})"
    source = f"scpro_insert_source_{uuid4().hex}"
    df.createOrReplaceTempView(source)
    try:
        spark = df.sparkSession
        spark.sql(
            f"merge into {table_identifier(path)} t using {source} s on {condition} "
            "when not matched then insert *"
        ).collect()
    finally:
        df.sparkSession.catalog.dropTempView(source)
    after = current_version(path)
    assert after is not None
    if after == version:  # every key was stored already: Delta commits no empty merge
        return version, 0
    return after, commit_metrics(path, after).get("numTargetRowsInserted", 0)


def _rows_for_driver(df: DataFrame) -> pa.Table | None:
    """``df``'s rows as Arrow when there are at most :data:`DRIVER_MERGE_ROWS` (one Spark job).

    ``None`` when there are more: the merge then runs in Spark, which computes ``df`` again
    (callers pass cached frames or small plans).
    """
    rows = df.limit(DRIVER_MERGE_ROWS + 1).toArrow()
    return None if rows.num_rows > DRIVER_MERGE_ROWS else rows


def _names(columns: Sequence[str]) -> list[str]:
    """The columns, checked to be plain lower-case names (delta-rs parses them as SQL)."""
    odd = [c for c in columns if not _NAME.fullmatch(c)]
    if odd:
        raise ValueError(f"columns {odd} are not plain lower-case names; the lake uses only those")
    return list(columns)


def _insert_new_from_driver(
    rows: pa.Table, path: Path | str, key: str, partition_by: str, version: int
) -> tuple[int, int]:
    """:func:`insert_new` for a batch collected to the driver: one delta-rs merge commit."""
    key, partition_by = _names([key, partition_by])
    if not rows.num_rows:
        return version, 0
    keys = rows.select([partition_by, key])
    null = pc.is_null(keys.column(key))
    per_key = (
        keys.filter(pc.invert(null)).group_by([partition_by, key]).aggregate([([], "count_all")])
    )
    repeated = per_key.filter(pc.greater(per_key.column("count_all"), 1)).column(partition_by)
    _reject_bad_partitions(
        set(repeated.to_pylist()) | set(keys.filter(null).column(partition_by).to_pylist()),
        key,
        partition_by,
    )
    months = pc.unique(keys.column(partition_by)).to_pylist()
    values = ", ".join(sorted(_sql_literal(value) for value in months))
    metrics = (
        _driver_merge(rows, path, f"t.{key} = s.{key} and t.{partition_by} in ({values})")
        .when_not_matched_insert_all()
        .execute()
    )
    inserted = int(metrics.get("num_target_rows_inserted", 0))
    # delta-rs, like Spark, commits nothing when the merge changes nothing.
    return (current_version(path) or version) if inserted else version, inserted


def _driver_merge(rows: pa.Table, path: Path | str, predicate: str) -> TableMerger:
    """A delta-rs merge of ``rows`` (alias ``s``) into the table (alias ``t``) on ``predicate``."""
    return DeltaTable(str(path)).merge(
        rows, predicate=predicate, source_alias="s", target_alias="t"
    )


def _reject_bad_partitions(bad: set, key: str, partition_by: str) -> None:
    """Refuse rows to insert by ``key`` when partitions ``bad`` hold a key twice or a null key.

    Either would insert duplicates.
    """
    if bad:
        raise ValueError(
            f"rows to insert by {key!r} must hold each key once and no null key; "
            f"partitions {partition_by}={sorted(bad, key=str)} do not"
        )


def _sql_literal(value: object) -> str:
    """A partition value as a SQL literal (strings quoted, quotes doubled; null as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _reject_bad_keys(df: DataFrame, keys: Sequence[str]) -> None:
    """Raise ``ValueError`` naming a few keys that are null or held by more than one row."""
    null_key = F.lit(False)
    for key in keys:
        null_key = null_key | F.col(key).isNull()
    offending = (
        df.groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("rows"), F.max(null_key).alias("null_key"))
        .where((F.col("rows") > 1) | F.col("null_key"))
        .limit(_KEYS_SHOWN)
        .collect()
    )
    if offending:
        shown = [tuple(row[key] for key in keys) for row in offending]
        raise ValueError(
            f"rows to merge by {list(keys)} must hold each key once and no null key; "
            f"offending keys (up to {_KEYS_SHOWN}): {shown}"
        )


def read_table(spark: SparkSession, path: Path | str, version: int | None = None) -> DataFrame:
    """Read the table as of ``version`` (time travel), or its latest version."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


#: Operations that rewrite a whole table: the change feed across them is not a batch's changes.
_REWRITES = frozenset(
    {
        "WRITE",
        "CREATE TABLE AS SELECT",
        "REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE AS SELECT",
    }
)


def rewritten_since(path: Path | str, version: int) -> bool:
    """Whether a commit after ``version`` rewrote the table (a full refresh) or cannot be read.

    Read from the commits' own log entries. An overwrite is a new truth, not a batch of changes,
    so whoever follows the table's changes must rebuild from it; a log entry that is gone (cleaned
    up after its retention) says the same, since the changes since ``version`` are unknown.
    """
    latest = current_version(path)
    if latest is None or latest < version:
        return True
    log = Path(path) / "_delta_log"
    for number in range(version + 1, latest + 1):
        entry = log / f"{number:020d}.json"
        if not entry.is_file():
            return True
        for line in entry.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if action.get("commitInfo", {}).get("operation") in _REWRITES:
                return True
    return False


def read_changes(spark: SparkSession, path: Path | str, after: int, through: int) -> DataFrame:
    """The rows changed by commits ``after + 1 .. through`` (Delta's change data feed).

    Every row carries ``_change_type`` (``insert``, ``delete``, ``update_preimage``,
    ``update_postimage``), ``_commit_version`` and ``_commit_timestamp``: a replaced row shows up
    twice, as it was (deleted) and as it is (inserted). Needs the feed on (every table SCPro
    creates has it: ``spark.session.SPARK_CONF``) and ``after < through``.
    """
    if after >= through:
        raise ValueError(f"no commits after version {after} through {through}")
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after + 1)
        .option("endingVersion", through)
        .load(str(path))
    )


def replace_keys(
    rows: DataFrame,
    keys: DataFrame,
    path: Path | str,
    partition_by: Sequence[str] = (),
    match: str | None = None,
) -> int | None:
    """Replace every row of the table whose key is in ``keys`` by ``rows``, in one commit.

    The rows of a recomputed key set go in and everything the table held for those keys goes
    out, atomically (a ``MERGE`` whose source is the new rows plus one "delete" row per key): an
    order that became quarantined loses its lines, an order with a new line gains it. ``keys``
    holds the key columns; by default a target row matches a key when every key column is equal,
    nulls included (``is not distinct from``: a null order id is a key like any other). ``match``
    replaces that condition: SQL over ``t.<target column>`` and ``s._key_<key column>`` that both
    Spark and delta-rs (DataFusion) parse. ``rows`` should only
    hold rows of the keys (not checked). Creates the table, partitioned by ``partition_by``, when
    missing. Returns the version after (unchanged when nothing matched and nothing was new).
    """
    version = current_version(path)
    if version is None:
        return write_table(rows, path, partition_by)
    columns = rows.columns
    key_columns = keys.columns
    spark = rows.sparkSession
    inserts = rows.select(
        *columns,
        F.lit("insert").alias("_scpro_op"),
        *(F.lit(None).cast(keys.schema[k].dataType).alias(f"_key_{k}") for k in key_columns),
    )
    deletes = keys.distinct().select(
        *(F.lit(None).cast(rows.schema[c].dataType).alias(c) for c in columns),
        F.lit("delete").alias("_scpro_op"),
        *(F.col(k).alias(f"_key_{k}") for k in key_columns),
    )
    if match is None:
        match = " and ".join(f"t.{k} is not distinct from s._key_{k}" for k in key_columns)
    source_rows = inserts.unionByName(deletes)
    collected = _rows_for_driver(source_rows)
    if collected is not None:
        return _replace_keys_from_driver(collected, path, _names(columns), match)
    source = f"scpro_replace_source_{uuid4().hex}"
    source_rows.createOrReplaceTempView(source)
    names = ", ".join(f"`{c}`" for c in columns)
    values = ", ".join(f"s.`{c}`" for c in columns)
    try:
        spark.sql(
            f"merge into {table_identifier(path)} t using {source} s "
            f"on s._scpro_op = 'delete' and ({match}) "
            "when matched then delete "
            f"when not matched and s._scpro_op = 'insert' then insert ({names}) values ({values})"
        ).collect()
    finally:
        spark.catalog.dropTempView(source)
    return current_version(path)


def _replace_keys_from_driver(
    rows: pa.Table, path: Path | str, columns: list[str], match: str
) -> int | None:
    """:func:`replace_keys` for a source collected to the driver: one delta-rs merge commit."""
    if rows.num_rows:
        (
            _driver_merge(rows, path, f"s._scpro_op = 'delete' and ({match})")
            .when_matched_delete()
            .when_not_matched_insert(
                updates={column: f"s.{column}" for column in columns},
                predicate="s._scpro_op = 'insert'",
            )
            .execute()
        )
    return current_version(path)
