"""The serving snapshot: a read-only copy of the warehouse, published atomically.

DuckDB allows one writer per file, and dbt holds the warehouse's write lock for a whole build, so
readers (the Panel app, Evidence, analysts) never open ``warehouse.duckdb``. After a successful
build, :func:`publish_snapshot`:

1. copies every table of schema ``main`` (the marts and ``kpi_*``) into a new file
   ``serving/versions/.<version>.tmp/warehouse.duckdb`` (ATTACH the warehouse read-only, CREATE
   TABLE AS per table: staging and intermediate views, which read lake paths, are not served),
2. exports each of them as ``parquet/<model>.parquet`` (so a bigger engine can take the marts),
   and adds ``snapshot_completeness``: per topic, the events landed against the offsets Kafka
   held at the cut (:mod:`scpro_assets.warehouse.completeness`), so a snapshot says when it
   is missing data,
   With them ``snapshot_watermark``: the business time the clean layer cut the data at (issue
   #15, :mod:`spark.watermark`), the dashboard's "Data as of",
3. writes ``published.json`` ``{version, published_at, watermark, tables: {name: rows}}``,
4. renames the folder to ``versions/<version>`` (complete before anyone can see it), then swaps
   ``serving/current`` to it with ``os.replace`` of a fresh link: atomic on POSIX, so a reader
   resolves either the old version or the new one, never a half-written one,
5. prunes versions beyond the newest ``keep`` (a reader mid-query on an old version keeps its
   open file: unlinking does not cut it off).

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

from scpro_assets.clean.watermark import load_watermark, watermark_path
from scpro_assets.settings import Settings
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


@dataclass
class Publication:
    """What :func:`publish_snapshot` published."""

    version: str
    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    completeness: list[TopicCompleteness] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


def _copy_warehouse(
    warehouse: Path,
    target: Path,
    completeness: list[TopicCompleteness],
    watermark: dict[str, object] | None = None,
) -> dict[str, int]:
    """Copy the served tables into ``target/warehouse.duckdb`` and export them as Parquet."""
    parquet_dir = target / "parquet"
    parquet_dir.mkdir(parents=True)
    tables: dict[str, int] = {}
    with duckdb.connect(str(target / "warehouse.duckdb")) as con:
        con.execute(f"attach {_sql_string(str(warehouse))} as built (read_only)")
        written_here = (COMPLETENESS_TABLE, WATERMARK_TABLE)
        names = [n for n in served_tables(con, "built") if n not in written_here]
        for name in names:
            table = _quote(name)
            con.execute(f"create table main.{table} as select * from built.main.{table}")
        con.execute("detach built")
        _write_completeness(con, completeness)
        _write_watermark(con, watermark)
        for name in sorted([*names, *written_here]):
            (rows,) = con.execute(f"select count(*) from main.{_quote(name)}").fetchone()
            tables[name] = int(rows)
            out = _sql_string(str(parquet_dir / f"{name}.parquet"))
            con.execute(f"copy main.{_quote(name)} to {out} (format parquet)")
        con.execute("checkpoint")
    return tables


def _swap_current(serving_dir: Path, target: Path) -> None:
    link = serving_dir / "current"
    tmp_link = serving_dir / f".current.{uuid.uuid4().hex}"
    os.symlink(os.path.relpath(target, serving_dir), tmp_link)
    os.replace(tmp_link, link)


def _prune(versions_dir: Path, current: Path, keep: int) -> list[str]:
    published = sorted(
        p for p in versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    pruned = []
    for old in published[:-keep]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
            pruned.append(old.name)
    for stale in versions_dir.glob(".*.tmp"):  # a publication that died half-way
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return pruned


def publish_snapshot(
    settings: Settings,
    keep: int = KEEP_VERSIONS,
    completeness: list[TopicCompleteness] | None = None,
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
    staging = versions_dir / f".{version}.tmp"
    staging.mkdir()
    try:
        tables = _copy_warehouse(settings.warehouse_path, staging, completeness, watermark)
        manifest = {
            "version": version,
            "published_at": now.replace(tzinfo=None).isoformat(),
            "watermark": (watermark or {}).get("watermark"),
            "tables": tables,
        }
        (staging / "published.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        target = versions_dir / version
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_current(settings.serving_dir, target)
    pruned = _prune(versions_dir, target.resolve(), keep)
    return Publication(
        version=version,
        path=target,
        tables=tables,
        completeness=completeness,
        pruned=pruned,
        seconds=time.perf_counter() - started,
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
