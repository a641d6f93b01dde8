"""The serving snapshot: a read-only view of the warehouse, published atomically, flat in cost.

DuckDB allows one writer per file, and dbt holds the warehouse's write lock for a whole build, so
readers (the Panel app, Evidence, analysts) never open ``warehouse.duckdb``. After a successful
build, :func:`publish_snapshot` writes a new version without copying the warehouse:

1. every table of schema ``main`` (the marts and ``kpi_*``; staging and intermediate models are
   not served) is published as Parquet: the large ones (:data:`PARTITIONS`: the facts and the
   KPI marts, growing with history) one file per month of their date column,
   ``parquet/<model>/<yyyy-mm>.parquet``, the others one file, ``parquet/<model>.parquet``.
   A whole-project build records which months of each large table it changed
   (:func:`changed_parts`: the days of the keys its incremental models replaced, taken from its
   change sets while they are there); the publication unites the records of the builds since
   the version before, rewrites those months from the warehouse and hard-links the others to
   the version before's files (no byte written, no row read). So a publication costs what the
   builds changed, whatever the history's size. When that is not known (a first publication, a
   full refresh, a partial dbt run since the last record, records that do not chain), each
   part's fingerprint (row count and the sum of its rows' hashes, computed in the warehouse) is
   compared with the version before's instead, and the small tables are always: a part is
   written only if it differs. Plain Parquet, DuckDB views: no table format of our own;
2. ``warehouse.duckdb`` is a small file of views, ``main.<model>`` over that version's own
   files (absolute paths), which any DuckDB (Evidence's Node driver included) reads with no
   extension. ``snapshot_completeness``: per topic, the events landed against the offsets Kafka
   held at the cut (:mod:`scpro_assets.warehouse.completeness`), so a snapshot says when it is
   missing data, and ``snapshot_watermark``: the business time the clean layer cut the data at
   (issue #15, :mod:`spark.watermark`), the dashboard's "Data as of", are small tables in it
   (and Parquet files beside the others),
3. writes ``published.json`` ``{version, published_at, watermark, tables: {name: rows}}`` last
   (atomically): the folder ``versions/<version>`` is written in place (the views name their
   files' final paths) and is a version only once that file is there,
4. swaps ``serving/current`` to it with ``os.replace`` of a fresh link: atomic on POSIX, so a
   reader resolves either the old version or the new one, never a half-written one,
5. prunes versions beyond the newest ``keep``, but never one that stopped being current less
   than :data:`PRUNE_GRACE_SECONDS` ago: a view opens its Parquet files when queried, so a reader
   that resolved a version just before it was replaced must still find its files for the rest of
   its query batch (a file already open survives its unlinking; the hard links of later versions
   keep shared data on disk).

Readers resolve ``current`` once per query batch and open the file ``read_only``
(:func:`open_snapshot`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from scpro_assets.clean.watermark import load_watermark, watermark_path
from scpro_assets.settings import Settings
from scpro_assets.warehouse.changes import ChangeSet, load_builds
from scpro_assets.warehouse.completeness import (
    COLUMNS,
    TopicCompleteness,
    measure_completeness,
    with_watermark,
)

#: The table each snapshot gets with its completeness per topic.
COMPLETENESS_TABLE = "snapshot_completeness"

#: The one-row table with the snapshot's event-time watermark.
WATERMARK_TABLE = "snapshot_watermark"

#: Published versions kept, the current one included.
KEEP_VERSIONS = 5

#: A version replaced less than this long ago is kept whatever ``keep`` says: readers that
#: resolved it just before may still be running their query batch on it.
PRUNE_GRACE_SECONDS = 600.0

#: What tells which days of a partitioned table a build changed (:func:`changed_parts`): the days
#: of the orders it recomputed, those days' ISO weeks, or the business times in a clean table's
#: change set. The same keys the incremental models replace
#: (``dbt_project/macros/incremental.sql``): a model replaces rows of those days and weeks only.
ORDER_DAYS, ORDER_WEEKS = "order days", "order weeks"

#: The change sets whose business times are the days of the orders a build recomputed
#: (``int_order_changes``: the clean orders, lines and deliveries; ``order_features``, whose
#: changes are the orders the scores were computed again for).
ORDER_DAY_DATASETS = (
    "cleaned_orders",
    "cleaned_order_items",
    "cleaned_deliveries",
    "order_features",
)

#: Change sets without business times that also recompute orders: the scores (a cycle re-scores
#: the orders in :data:`ORDER_DAY_DATASETS`; a new model re-scores all) and the segments.
ORDER_KEY_DATASETS = ("delivery_time_predictions", "late_risk_scores")

#: The served tables published one Parquet file per month of a date column (the ones that grow
#: with history), and what tells which of their days a build changed; the others are one file.
PARTITIONS: dict[str, tuple[str, str]] = {
    "fct_orders": ("order_date", ORDER_DAYS),
    "fct_deliveries": ("order_date", ORDER_DAYS),
    "fct_order_items": ("order_date", ORDER_DAYS),
    "fct_payments": ("paid_date", "cleaned_payments"),
    "fct_incidents": ("opened_date", "cleaned_incidents"),
    "kpi_basket_daily": ("period_start", ORDER_DAYS),
    "kpi_delivery_daily": ("period_start", ORDER_DAYS),
    "kpi_predictions_daily": ("period_start", ORDER_DAYS),
    "kpi_incidents_daily": ("period_start", "cleaned_incidents"),
    "kpi_delivery_weekly": ("period_start", ORDER_WEEKS),
    "kpi_delay_weekly": ("period_start", ORDER_WEEKS),
    "kpi_segments_weekly": ("period_start", ORDER_WEEKS),
    "kpi_categories_weekly": ("period_start", ORDER_WEEKS),
    "kpi_products_weekly": ("period_start", ORDER_WEEKS),
}

#: The file that makes a version complete (written last) and tells readers what it holds.
PUBLISHED = "published.json"

#: Each version's part fingerprints, which the next publication compares with.
FINGERPRINTS = "fingerprints.json"

#: Part names: a table published whole, rows without a date, an empty partitioned table.
WHOLE, NULL_PART, EMPTY_PART = "whole", "no-date", "empty"


@dataclass
class Publication:
    """What :func:`publish_snapshot` published."""

    version: str
    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    completeness: list[TopicCompleteness] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    parts_written: int = 0
    parts_linked: int = 0
    #: Each partitioned table's months the builds since the previous version changed, as the
    #: builds recorded them (None or missing: unknown, so the table was fingerprinted).
    changed: dict[str, list[str] | None] = field(default_factory=dict)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def served_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    """The tables of schema ``main`` of an attached database (the marts and KPI models)."""
    rows = con.execute(
        "select table_name from duckdb_tables() "
        "where database_name = ? and schema_name = 'main' order by table_name",
        [database],
    ).fetchall()
    return [name for (name,) in rows]


def _write_completeness(
    con: duckdb.DuckDBPyConnection, completeness: list[TopicCompleteness]
) -> None:
    """``snapshot_completeness``: one row per topic (see the serving contract)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    con.execute(f"create table main.{COMPLETENESS_TABLE} ({columns})")
    if completeness:
        marks = ", ".join("?" for _ in COLUMNS)
        con.executemany(
            f"insert into main.{COMPLETENESS_TABLE} values ({marks})",
            [list(row.row()) for row in completeness],
        )


def _write_watermark(con: duckdb.DuckDBPyConnection, record: dict[str, object] | None) -> None:
    """``snapshot_watermark``: one row, the watermark and the topics holding it (or no row)."""
    con.execute(
        f"create table main.{WATERMARK_TABLE} "
        "(watermark timestamp, held_by varchar, computed_at timestamp)"
    )
    if record and record.get("watermark"):
        held = [t["topic"] for t in record.get("topics", []) if t.get("holds_watermark")]  # type: ignore[union-attr]
        con.execute(
            f"insert into main.{WATERMARK_TABLE} values "
            "(cast(cast(? as timestamptz) at time zone 'UTC' as timestamp), ?, "
            "cast(cast(? as timestamptz) at time zone 'UTC' as timestamp))",
            [record["watermark"], ", ".join(held) or None, record.get("computed_at")],
        )


def _partition_column(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The date column ``name`` is published by month on, if it is a large table that has it."""
    column = PARTITIONS[name][0] if name in PARTITIONS else None
    found = con.execute(
        "select count(*) from duckdb_columns() where database_name = 'built' "
        "and schema_name = 'main' and table_name = ? and column_name = ?",
        [name, column],
    ).fetchone()
    return column if column and found and found[0] else None


def _order_days_known(con: duckdb.DuckDBPyConnection, changes: ChangeSet) -> bool:
    """Whether the change sets tell the days of every order a build recomputed.

    Not when a change set is unknown (the models re-read everything), or when orders were
    re-scored beyond those whose features or delivery changed (a new serving model re-scores
    every order). Customers whose segment changed: see :func:`_resegmented_days`.
    """
    names = (*ORDER_DAY_DATASETS, *ORDER_KEY_DATASETS, "customer_segments")
    if any(name not in changes.changes for name in names):
        return False
    scored = _change_files(changes, ORDER_KEY_DATASETS)
    if not scored:
        return True
    (beyond,) = con.execute(
        f"select count(*) from (select key from read_parquet([{scored}]) except "
        f"select key from read_parquet([{_change_files(changes, ORDER_DAY_DATASETS)}]))"
    ).fetchone()
    return beyond == 0


def _resegmented_days(con: duckdb.DuckDBPyConnection, changes: ChangeSet, clean_dir: Path) -> str:
    """``select business_time`` of every order of the customers whose segment changed.

    Their orders of every month carry the new segment. Read from the clean orders at the version
    the build pinned (two columns, filtered in Arrow), not from the warehouse, which a Dagster
    step's process still holds open with dbt's settings.
    """
    change = changes.changes["customer_segments"]
    version = changes.state["clean"].get("cleaned_orders")
    if not change.get("rows") or version is None:
        return "select cast(null as timestamp) as business_time where false"
    customers = pq.read_table(change["path"], columns=["key"]).column("key")
    orders = DeltaTable(str(clean_dir / "cleaned_orders"), version=int(version))
    times = orders.to_pyarrow_dataset().to_table(columns=["customer_id", "order_time"])
    moved = pc.is_in(times.column("customer_id").cast(pa.string()), value_set=customers)
    con.register("_resegmented", times.filter(moved))
    return "select cast(order_time as timestamp) as business_time from _resegmented"


def _change_files(changes: ChangeSet, names: tuple[str, ...]) -> str:
    """The change-set files of ``names`` that hold rows, for ``read_parquet([...])``."""
    paths = [
        _sql_string(str(changes.changes[n]["path"]))
        for n in names
        if changes.changes[n].get("rows")
    ]
    return ", ".join(paths)


def changed_parts(
    changes: ChangeSet, clean_dir: Path, full_refresh: bool = False
) -> dict[str, list[str] | None]:
    """The parts (months) of each partitioned table that a whole-project build changed.

    Read from the build's change sets alone (small files; the warehouse is neither opened nor
    read), when the build has succeeded:
    :func:`scpro_assets.warehouse.changes.commit_changes` records the result with the build, and
    the next publication rewrites those months and links the others. ``None`` for a table means
    every part may have changed (a full refresh, a change set unknown, see
    :func:`_order_days_known`).
    """
    if full_refresh:
        return dict.fromkeys(PARTITIONS)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        orders_known = _order_days_known(con, changes)
        resegmented = _resegmented_days(con, changes, clean_dir) if orders_known else ""
        months: dict[str, list[str] | None] = {}  # per driver: tables sharing one are one query
        for driver in dict.fromkeys(driver for _, driver in PARTITIONS.values()):
            if driver in (ORDER_DAYS, ORDER_WEEKS):
                names = ORDER_DAY_DATASETS if orders_known else None
            else:
                names = (driver,) if driver in changes.changes else None
            months[driver] = (
                None if names is None else _months(con, changes, names, driver, resegmented)
            )
    return {name: months[driver] for name, (_, driver) in PARTITIONS.items()}


def _months(
    con: duckdb.DuckDBPyConnection,
    changes: ChangeSet,
    names: tuple[str, ...],
    driver: str,
    resegmented: str,
) -> list[str]:
    """The parts (months) of the business times in the change sets ``names``.

    For the order drivers, with the resegmented customers' orders; weeks for :data:`ORDER_WEEKS`.
    """
    files = _change_files(changes, names)
    times = [f"select business_time from read_parquet([{files}])"] if files else []
    if driver in (ORDER_DAYS, ORDER_WEEKS):
        times.append(resegmented)
    if not times:
        return []
    day = "cast(business_time as date)"
    if driver == ORDER_WEEKS:
        day = f"cast(date_trunc('week', {day}) as date)"
    union = " union all ".join(f"({select})" for select in times)
    rows = con.execute(
        f"select distinct {_part_sql('day')} from (select {day} as day from ({union})) order by 1"
    ).fetchall()
    return [part for (part,) in rows]


def _part_files(name: str, column: str | None, parts: list[str]) -> dict[str, str]:
    """Each part of table ``name`` and its file, relative to the version's folder."""
    if column is None:
        return {WHOLE: f"parquet/{name}.parquet"}
    return {part: f"parquet/{name}/{part}.parquet" for part in sorted(parts)}


def _part_sql(column: str | None) -> str:
    """The part a row belongs to: the month of its date ``column``, or the whole table."""
    if column is None:
        return f"'{WHOLE}'"
    return f"coalesce(strftime({_quote(column)}, '%Y-%m'), '{NULL_PART}')"


def _fingerprints(
    con: duckdb.DuckDBPyConnection, name: str, column: str | None
) -> dict[str, tuple[int, str]]:
    """Each part's row count and fingerprint (count and sum of the rows' hashes) in the build."""
    rows = con.execute(
        f"select {_part_sql(column)} as part, count(*), "
        "cast(sum(cast(hash(*columns(*)) as hugeint)) as varchar)"
        f" from built.main.{_quote(name)} group by all"
    ).fetchall()
    if not rows:  # an empty table is one empty file (a view needs a file for its columns)
        return {WHOLE if column is None else EMPTY_PART: (0, "0:None")}
    return {str(p): (int(n), f"{n}:{h}") for p, n, h in rows}


def _part_where(column: str, part: str) -> str:
    """The rows of ``part`` (a month, or no date) of date ``column``.

    A range on the column, which DuckDB prunes row groups by (their min and max), not a
    function of it on every row.
    """
    if part == NULL_PART:
        return f"{_quote(column)} is null"
    first = f"date {_sql_string(part + '-01')}"
    return f"{_quote(column)} >= {first} and {_quote(column)} < {first} + interval 1 month"


def _write_part(con: duckdb.DuckDBPyConnection, name: str, where: str, path: Path) -> int:
    select = f"select * from built.main.{_quote(name)} where {where}"
    copy = f"copy ({select}) to {_sql_string(str(path))} (format parquet)"
    (rows,) = con.execute(copy).fetchone()
    return int(rows)


def _publish_changed_parts(
    con: duckdb.DuckDBPyConnection,
    name: str,
    column: str,
    target: Path,
    previous: Path,
    previous_prints: dict[str, str],
    changed: list[str],
) -> tuple[dict[str, str], int] | None:
    """Write the ``changed`` months of ``name``, link its others: ``(prints, parts written)``.

    None when the previous version cannot be built on (no parts, or a part's file missing): the
    caller then fingerprints the table.
    """
    kept = {p: f for p, f in previous_prints.items() if p not in changed}
    if changed:  # an empty table's one file goes if a changed month has rows (else rewritten)
        kept.pop(EMPTY_PART, None)
    files = _part_files(name, column, list(kept))
    if not previous_prints or not all((previous / f).is_file() for f in files.values()):
        return None
    (target / "parquet" / name).mkdir(parents=True, exist_ok=True)
    for relative in files.values():
        os.link(previous / relative, target / relative)
    prints, written = dict(kept), 0
    for part, relative in _part_files(name, column, changed).items():
        rows = _write_part(con, name, _part_where(column, part), target / relative)
        if rows:  # a month the build emptied is no part any more
            prints[part], written = f"{rows}:written in {target.name}", written + 1
        else:
            (target / relative).unlink()
    if not prints:
        _write_part(con, name, "false", target / f"parquet/{name}/{EMPTY_PART}.parquet")
        prints[EMPTY_PART], written = "0:None", written + 1
    return prints, written


def _fingerprinted_parts(
    con: duckdb.DuckDBPyConnection,
    name: str,
    column: str | None,
    target: Path,
    previous: Path | None,
    previous_prints: dict[str, str],
) -> tuple[dict[str, str], int]:
    """Fingerprint every part of ``name``; write the changed ones, link the others."""
    found = _fingerprints(con, name, column)
    prints = {part: fingerprint for part, (_, fingerprint) in found.items()}
    written = 0
    for part, relative in _part_files(name, column, list(prints)).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        before = previous / relative if previous else None
        if before is not None and prints[part] == previous_prints.get(part) and before.is_file():
            os.link(before, path)
            continue
        where = "false" if part == EMPTY_PART else f"{_part_sql(column)} = {_sql_string(part)}"
        _write_part(con, name, where, path)
        written += 1
    return prints, written


def _publish_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    target: Path,
    previous: Path | None,
    previous_prints: dict[str, str],
    changed: list[str] | None,
) -> tuple[int, dict[str, str], int]:
    """Write or link the parts of ``name``; create its view. Return rows, prints, parts written.

    ``changed``: the months the builds since the previous version changed (None: unknown; the
    table is then fingerprinted part by part).
    """
    column = _partition_column(con, name)
    found = None
    if column is not None and changed is not None and previous is not None:
        found = _publish_changed_parts(
            con, name, column, target, previous, previous_prints, changed
        )
    prints, written = found or _fingerprinted_parts(
        con, name, column, target, previous, previous_prints
    )
    files = _part_files(name, column, list(prints))
    paths = ", ".join(_sql_string(str(target / relative)) for relative in files.values())
    con.execute(f"create view main.{_quote(name)} as select * from read_parquet([{paths}])")
    return sum(int(p.split(":", 1)[0]) for p in prints.values()), prints, written


def _publish_tables(
    warehouse: Path,
    target: Path,
    previous: Path | None,
    completeness: list[TopicCompleteness],
    watermark: dict[str, object] | None = None,
    changed: dict[str, list[str] | None] | None = None,
) -> tuple[dict[str, int], dict[str, dict[str, str]], int]:
    """Publish the served tables into the version folder ``target``: Parquet files and views.

    ``changed``: each partitioned table's months changed since ``previous`` (None: unknown).
    Returns each table's rows, each table's part fingerprints, and how many parts were written
    (the others were linked from ``previous``).
    """
    (target / "parquet").mkdir(parents=True)
    previous_prints = _load_prints(previous)[1] if previous is not None else {}
    changed = changed or {}
    tables: dict[str, int] = {}
    prints: dict[str, dict[str, str]] = {}
    written = 0
    with duckdb.connect(str(target / "warehouse.duckdb")) as con:
        con.execute(f"attach {_sql_string(str(warehouse))} as built (read_only)")
        written_here = (COMPLETENESS_TABLE, WATERMARK_TABLE)
        names = [n for n in served_tables(con, "built") if n not in written_here]
        for name in names:
            tables[name], prints[name], parts = _publish_table(
                con, name, target, previous, previous_prints.get(name, {}), changed.get(name)
            )
            written += parts
        con.execute("detach built")
        _write_completeness(con, completeness)
        _write_watermark(con, watermark)
        for name in written_here:
            (rows,) = con.execute(f"select count(*) from main.{_quote(name)}").fetchone()
            tables[name] = int(rows)
            out = _sql_string(str(target / "parquet" / f"{name}.parquet"))
            con.execute(f"copy main.{_quote(name)} to {out} (format parquet)")
        con.execute("checkpoint")
    return dict(sorted(tables.items())), prints, written


def _load_prints(version: Path) -> tuple[str | None, dict[str, dict[str, str]]]:
    """The build a version published and its tables' part fingerprints (none: nothing known)."""
    path = version / FINGERPRINTS
    if not path.is_file():
        return None, {}
    stored = json.loads(path.read_text())
    return stored.get("build"), stored.get("tables", {})


def _builds_since(
    settings: Settings, published: str | None
) -> tuple[str | None, dict[str, list[str] | None]]:
    """The build the warehouse holds now and the months changed since build ``published``.

    The builds' records chain (each names the build before it) from the latest to
    ``published``; their months are united. Nothing is known (every table fingerprinted) when
    the warehouse file changed after the latest record (a partial dbt run), or the chain does
    not reach ``published`` (a build published by no version, records lost): the first value
    then says which build the warehouse holds, if known, for the next publication to chain to.
    """
    builds = load_builds(settings)
    stat = settings.warehouse_path.stat()
    if not builds or builds[-1].get("warehouse") != [stat.st_mtime_ns, stat.st_size]:
        return None, {}
    latest = str(builds[-1]["id"])
    changed: dict[str, set[str] | None] = {name: set() for name in PARTITIONS}
    for record in reversed(builds):
        if record["id"] == published:
            return latest, {n: sorted(p) if p is not None else None for n, p in changed.items()}
        parts = record.get("parts") or {}
        for name, months in changed.items():
            found = parts.get(name)  # type: ignore[union-attr]
            changed[name] = None if months is None or found is None else months | set(found)
    return latest, {}


def _swap_current(serving_dir: Path, target: Path) -> None:
    link = serving_dir / "current"
    tmp_link = serving_dir / f".current.{uuid.uuid4().hex}"
    os.symlink(os.path.relpath(target, serving_dir), tmp_link)
    os.replace(tmp_link, link)


def _published_at(version: str) -> float:
    """When version ``version`` was published (its name starts with the UTC time)."""
    stamp = version.split("-", 1)[0]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).timestamp()


def _prune(versions_dir: Path, current: Path, keep: int, grace: float) -> list[str]:
    published = sorted(
        p for p in versions_dir.iterdir() if p.is_dir() and (p / PUBLISHED).is_file()
    )
    pruned = []
    now = time.time()
    for index, old in enumerate(published[:-keep]):
        # current until its successor was published: readers may still be on it for `grace`
        replaced_at = _published_at(published[index + 1].name)
        if old.resolve() != current and now - replaced_at >= grace:
            shutil.rmtree(old, ignore_errors=True)
            pruned.append(old.name)
    for stale in versions_dir.iterdir():  # a publication that died half-way (no published.json)
        if not (stale / PUBLISHED).is_file() and now - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return pruned


def publish_snapshot(
    settings: Settings,
    keep: int = KEEP_VERSIONS,
    completeness: list[TopicCompleteness] | None = None,
    grace_seconds: float = PRUNE_GRACE_SECONDS,
) -> Publication:
    """Publish the warehouse's marts as a new read-only version (see the module docstring).

    ``completeness`` is measured by the caller that can reach Kafka (the ``serving_snapshot``
    asset); without it, the lake's side is measured and Kafka's figures are unknown.
    """
    started = time.perf_counter()
    if not settings.warehouse_path.exists():
        raise FileNotFoundError(f"{settings.warehouse_path} is missing: run the dbt build first")
    if completeness is None:
        completeness = measure_completeness(None, settings.raw_dir, settings.quarantine_dir)
    watermark = load_watermark(watermark_path(settings.clean_dir))
    completeness = with_watermark(completeness, watermark)
    now = datetime.now(UTC)
    version = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    versions_dir = settings.serving_dir / "versions"
    versions_dir.mkdir(parents=True, exist_ok=True)
    # Written in place (the views name their files' final paths), invisible until `current`
    # points at it, and complete once published.json is there (written last, atomically).
    target = versions_dir / version
    target.mkdir()
    previous = settings.serving_current.resolve() if settings.serving_current.exists() else None
    published = _load_prints(previous)[0] if previous is not None else None
    build, changed = _builds_since(settings, published)
    try:
        tables, prints, written = _publish_tables(
            settings.warehouse_path, target, previous, completeness, watermark, changed
        )
        (target / FINGERPRINTS).write_text(
            json.dumps({"build": build, "tables": prints}, indent=1, sort_keys=True)
        )
        manifest = {
            "version": version,
            "published_at": now.replace(tzinfo=None).isoformat(),
            "watermark": (watermark or {}).get("watermark"),
            "tables": tables,
        }
        pending = target / f".{PUBLISHED}.tmp"
        pending.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(pending, target / PUBLISHED)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    _swap_current(settings.serving_dir, target)
    pruned = _prune(versions_dir, target.resolve(), keep, grace_seconds)
    return Publication(
        version=version,
        path=target,
        tables=tables,
        completeness=completeness,
        pruned=pruned,
        seconds=time.perf_counter() - started,
        parts_written=written,
        parts_linked=sum(len(p) for p in prints.values()) - written,
        changed=changed,
    )


def current_version(settings: Settings) -> Path:
    """The published version folder readers should use now."""
    current = settings.serving_current
    if not current.exists():
        raise FileNotFoundError(f"nothing published yet at {current}")
    return current.resolve()


def open_snapshot(settings: Settings) -> tuple[Path, duckdb.DuckDBPyConnection]:
    """Resolve ``current`` once and open that version's warehouse read-only."""
    version = current_version(settings)
    return version, duckdb.connect(str(version / "warehouse.duckdb"), read_only=True)
