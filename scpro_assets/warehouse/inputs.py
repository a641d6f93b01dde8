"""What one warehouse build reads from the lake, pinned before dbt starts.

The clean layer's datasets ``lake/clean/<name>`` are Delta tables that Spark merges into while dbt
may be running, and a build reads them in several models, so a commit mid-build could join one
version of ``cleaned_orders`` with the next version of ``cleaned_deliveries``. The pre-step pins
each table's current version once; dbt reads exactly that version itself
(``delta_scan('<table>', version => n)``, ``dbt_project/macros/source.sql``), DuckDB's ``delta``
extension loaded from its wheel by the profile's plugin (:mod:`.delta_plugin`). Nothing is
copied. The staging models over those tables are tables, never views: the warehouse and the
serving snapshot must be readable without the extension (Evidence could not read them).

The ``actions`` topic is read by dbt straight from its landed raw ranges (``raw`` source; see
:data:`DBT_RAW_TOPICS`); while none has landed, a typed empty placeholder stands in for them.

The ML layer's score tables (``ml_assets.outputs.SCORE_OUTPUTS``) are Delta tables too, merged
into by every scoring cycle, and are pinned the same way.

The choices reach dbt as the ``scpro_inputs`` var (``{source table: path}``), and, in the
``SCPRO_DBT_BUILD`` environment variable (not vars: a change of vars makes dbt parse the whole
project again), ``scpro_versions`` (``{clean or score table: Delta version}``) and
``scpro_changes`` (what changed since the last complete build,
:mod:`scpro_assets.warehouse.changes`). The
``lake_inventory`` asset writes ``lake_inventory.parquet`` (rows, quarantined rows and last update
of every raw, quarantine, clean and ML dataset) for ``data_health``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ml_assets.outputs import (
    ML_OUTPUTS,
    SCHEMAS,
    SCORE_OUTPUTS,
    is_published,
    output_path,
    write_score_table,
)
from scpro_assets.clean.pipeline import ENTITIES, FEATURES, QUARANTINE
from scpro_assets.ingest.landing import RAW_SCHEMA
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql
from scpro_assets.settings import ACTIONS_TOPIC, TOPICS, Settings
from scpro_assets.warehouse.changes import ChangeSet, prepare_changes
from spark.tables import current_version

#: The clean datasets dbt reads (the ``clean`` source), each a Dagster asset of the same name.
CLEAN_DATASETS: tuple[str, ...] = (*ENTITIES, FEATURES)

#: Topics dbt reads from their landed raw ranges (the ``raw`` source, table ``raw_<topic>``),
#: without a Spark pass: the At-risk page's actions are a few events a minute.
DBT_RAW_TOPICS: tuple[str, ...] = (ACTIONS_TOPIC,)

#: Which clean dataset the clean layer's quarantine entity belongs to.
_QUARANTINE_ENTITY = {
    "orders": "cleaned_orders",
    "payments": "cleaned_payments",
    "deliveries": "cleaned_deliveries",
    "incidents": "cleaned_incidents",
}


@dataclass
class WarehouseInputs:
    """The path of every source table, the pinned version of each clean one, what was found."""

    paths: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)
    raw_placeholders: list[str] = field(default_factory=list)
    ml_placeholders: list[str] = field(default_factory=list)
    changes: ChangeSet | None = None
    #: The Delta version of each ML score table read (``versions`` holds the clean tables').
    ml_versions: dict[str, int] = field(default_factory=dict)

    def build_values(self) -> dict[str, object]:
        """What changes from one build to the next: the pinned versions and the change sets."""
        return {
            "scpro_versions": {**self.versions, **self.ml_versions},
            "scpro_changes": self.changes.changes if self.changes else {},
        }

    def dbt_vars(self, warehouse_path: Path) -> dict[str, object]:
        """The ``--vars`` of a dbt invocation that reads these inputs and writes ``warehouse``.

        Only what stays the same from one build to the next: dbt parses the whole project
        again whenever its vars change (partial parsing needs the same vars), which cost a
        cycle ~10 s. The rest reaches dbt in :meth:`dbt_env`, unless it is too large for an
        environment variable.
        """
        pins: dict[str, object] = {
            "scpro_inputs": self.paths,
            "warehouse_path": str(warehouse_path),
        }
        if not self.dbt_env():
            pins.update(self.build_values())
        return pins

    def dbt_env(self) -> dict[str, str]:
        """``SCPRO_DBT_BUILD``: :meth:`build_values` as JSON, for the macros at execution.

        The project's macros read it when they execute, never while dbt parses (``build_value``
        in ``macros/source.sql``). Empty when too large for one variable (the values then go in
        the vars).
        """
        values = json.dumps(self.build_values(), sort_keys=True)
        return {BUILD_ENV: values} if len(values) <= MAX_BUILD_ENV else {}


#: The environment variable a build's changing values reach dbt in
#: (:meth:`WarehouseInputs.dbt_env`).
BUILD_ENV = "SCPRO_DBT_BUILD"

#: Linux refuses a single environment string over 128 KiB.
MAX_BUILD_ENV = 100_000


def inputs_dir(settings: Settings) -> Path:
    """Where the pre-step keeps its placeholders and the lake inventory."""
    return settings.home / "warehouse_inputs"


def _rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def _pin_clean(settings: Settings, name: str, inputs: WarehouseInputs) -> None:
    """Pin the Delta table ``lake/clean/<name>`` at its current version for this build.

    Read from the table's log (no query): dbt then reads that version whatever Spark commits
    meanwhile. A table never published is an error naming it (the clean group comes first).
    """
    table = settings.clean_dir / name
    version = current_version(table)
    if version is None:
        raise FileNotFoundError(
            f"{table} has never been published: materialize the clean group "
            "(clean_entities, order_features) before the warehouse"
        )
    inputs.versions[name] = version
    inputs.paths[name] = str(table)


def _pin_raw(settings: Settings, topic: str, placeholders: Path, inputs: WarehouseInputs) -> None:
    """Point ``raw_<topic>`` at the topic's landed range files, or at an empty placeholder.

    Range files are immutable once renamed into place (temporary files end in ``.tmp``), so a
    glob is safe: a range landed during the build is read whole or not at all.
    """
    name = f"raw_{topic}"
    folder = settings.raw_dir / topic
    if any(folder.glob("partition-*/*.parquet")):
        inputs.paths[name] = f"{folder}/partition-*/*.parquet"
        return
    placeholder = placeholders / f"{name}.parquet"
    pq.write_table(RAW_SCHEMA.empty_table(), placeholder)
    inputs.paths[name] = str(placeholder)
    inputs.raw_placeholders.append(name)


def _pin_ml(settings: Settings, name: str, placeholders: Path, inputs: WarehouseInputs) -> None:
    """Point ``name`` at the ML layer's published output, or at a typed empty placeholder here.

    Each layer writes only its own outputs: the ML assets publish theirs (empty ones too, while no
    model serves), and until they first have, the warehouse reads a placeholder from its own
    folder instead of writing into the ML layer. A score table is pinned at its current Delta
    version (a scoring cycle may merge the next one during the build); its placeholder is an
    empty Delta table, since the source reads it with ``delta_scan``.
    """
    path = output_path(settings.ml_dir, name)
    if is_published(settings.ml_dir, name):
        inputs.paths[name] = str(path)
        if name in SCORE_OUTPUTS:
            version = current_version(path)
            assert version is not None  # published
            inputs.ml_versions[name] = version
        return
    if name in SCORE_OUTPUTS:
        placeholder = placeholders / name
        shutil.rmtree(placeholder, ignore_errors=True)
        write_score_table(placeholder, SCHEMAS[name].empty_table())
    else:
        placeholder = placeholders / f"{name}.parquet"
        pq.write_table(SCHEMAS[name].empty_table(), placeholder)
    inputs.paths[name] = str(placeholder)
    inputs.ml_placeholders.append(name)


def _clean_quarantine_counts(con: duckdb.DuckDBPyConnection, rules: Path) -> dict[str, int]:
    """Rows the clean layer quarantined by business rules, per clean dataset."""
    rows = con.execute(f"select entity, count(*) from {delta_scan_sql(rules)} group by 1")
    counts = dict(rows.fetchall())
    return {_QUARANTINE_ENTITY.get(entity, entity): count for entity, count in counts.items()}


def _table_facts(con: duckdb.DuckDBPyConnection, table: Path) -> tuple[datetime | None, int, str]:
    """A lake table's last commit time, row count and Delta version, for the inventory."""
    version = current_version(table)
    if version is None:
        return None, 0, "never published"
    count = con.execute(f"select count(*) from {delta_scan_sql(table, version)}").fetchone()
    committed = _mtime(table / "_delta_log" / f"{version:020d}.json")
    return committed, int(count[0]) if count else 0, f"Delta version {version}"


def _inventory(settings: Settings, now: datetime) -> pa.Table:
    rows: list[dict[str, object]] = []

    def add(layer: str, dataset: str, files: list[Path], quarantined: int, detail: str) -> None:
        updated = max((_mtime(f) for f in files), default=None)
        add_row(layer, dataset, updated, _rows(files), quarantined, detail)

    def add_row(
        layer: str,
        dataset: str,
        updated: datetime | None,
        count: int,
        quarantined: int,
        detail: str,
    ) -> None:
        rows.append(
            {
                "layer": layer,
                "dataset": dataset,
                "last_updated_at": updated,
                "row_count": count,
                "quarantined": quarantined,
                "detail": detail,
                "inventoried_at": now,
            }
        )

    for topic in TOPICS:
        raw = sorted((settings.raw_dir / topic).glob("partition-*/*.parquet"))
        bad = sorted((settings.quarantine_dir / topic).glob("partition-*/*.parquet"))
        add("ingest", f"raw_{topic}", raw, _rows(bad), f"{len(raw)} landed range files")
        add("quarantine", f"quarantine_{topic}", bad, 0, "events that failed their contract")
    rules = settings.quarantine_dir / QUARANTINE
    with connect_lake() as con:
        updated, count, _ = _table_facts(con, rules)
        quarantined = _clean_quarantine_counts(con, rules) if count else {}
        add_row("quarantine", QUARANTINE, updated, count, 0, "rows the clean layer's rules refused")
        for name in CLEAN_DATASETS:
            updated, count, detail = _table_facts(con, settings.clean_dir / name)
            add_row("clean", name, updated, count, quarantined.get(name, 0), detail)
    for name in ML_OUTPUTS:
        path = output_path(settings.ml_dir, name)
        if not is_published(settings.ml_dir, name):
            add("ml", name, [], 0, "no model output yet")
            continue
        if name in SCORE_OUTPUTS:
            with connect_lake() as con:
                updated, count, _ = _table_facts(con, path)
                found = con.execute(
                    f"select distinct model_version from {delta_scan_sql(path)} "
                    "where model_version is not null order by 1"
                ).fetchall()
            versions = [str(row[0]) for row in found]
            detail = ", ".join(versions) if versions else "no model output yet"
            add_row("ml", name, updated, count, 0, detail)
            continue
        table = pq.read_table(path, columns=["model_version"])
        versions = sorted({v for v in table.column("model_version").to_pylist() if v})
        add("ml", name, [path], 0, ", ".join(versions) if versions else "no model output yet")
    schema = pa.schema(
        [
            ("layer", pa.string()),
            ("dataset", pa.string()),
            ("last_updated_at", pa.timestamp("us")),
            ("row_count", pa.int64()),
            ("quarantined", pa.int64()),
            ("detail", pa.string()),
            ("inventoried_at", pa.timestamp("us")),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def prepare_inputs(settings: Settings) -> WarehouseInputs:
    """Pin the clean tables' versions, fill raw gaps, inventory the lake."""
    work = inputs_dir(settings)
    placeholders = work / "empty"
    placeholders.mkdir(parents=True, exist_ok=True)
    # Parquet copies of clean versions, pinned so by SCPro before dbt read the tables itself.
    shutil.rmtree(work / "clean", ignore_errors=True)
    inputs = WarehouseInputs()
    for name in CLEAN_DATASETS:
        _pin_clean(settings, name, inputs)
    for topic in DBT_RAW_TOPICS:
        _pin_raw(settings, topic, placeholders, inputs)
    for name in ML_OUTPUTS:
        _pin_ml(settings, name, placeholders, inputs)
    inventory_path = work / "lake_inventory.parquet"
    if not inventory_path.exists():  # a build without the lake_inventory asset upstream
        write_lake_inventory(settings)
    inputs.paths["lake_inventory"] = str(inventory_path)
    ml_paths = {name: inputs.paths[name] for name in ML_OUTPUTS}
    inputs.changes = prepare_changes(settings, inputs.versions, ml_paths, inputs.ml_versions)
    return inputs


def write_lake_inventory(settings: Settings) -> tuple[Path, int]:
    """Write ``lake_inventory.parquet`` atomically; return its path and row count."""
    work = inputs_dir(settings)
    work.mkdir(parents=True, exist_ok=True)
    inventory = _inventory(settings, datetime.now(UTC).replace(tzinfo=None))
    path = work / "lake_inventory.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(inventory, tmp)
    tmp.replace(path)
    return path, inventory.num_rows
