"""What one warehouse build reads from the lake, pinned before dbt starts.

dbt's sources read Parquet through DuckDB's ``read_parquet``. Two things make the lake's stable
paths unsafe to hand to dbt as they are:

- ``lake/clean/<name>`` is a link Spark swaps atomically. Staging views are read several times in
  one build, so a swap mid-build could join one version of ``cleaned_orders`` with the next version
  of ``cleaned_deliveries``. The pre-step resolves every link once, and the whole build reads those
  immutable version folders.
- A published dataset with no rows (an empty partitioned frame) holds no Parquet file at all, only
  Spark's ``_schema.json``, and ``read_parquet`` on a glob that matches nothing fails. The pre-step
  writes a typed, empty placeholder file from that schema, so the models build and are empty.

The ``actions`` topic is read by dbt straight from its landed raw ranges (``raw`` source; see
:data:`DBT_RAW_TOPICS`); while none has landed, a typed empty placeholder stands in for them too.

The choices reach dbt as the ``scpro_inputs`` var (``{source table: read_parquet path}``). The
``lake_inventory`` asset writes ``lake_inventory.parquet`` (rows, quarantined rows and last update
of every raw, quarantine, clean and ML dataset, from Parquet footers) for ``data_health``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml_assets.outputs import ML_OUTPUTS, SCHEMAS, output_path
from scpro_assets.clean.pipeline import ENTITIES, FEATURES
from scpro_assets.ingest.landing import RAW_SCHEMA
from scpro_assets.settings import ACTIONS_TOPIC, TOPICS, Settings

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

_SPARK_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    # Spark writes INT96 timestamps, which DuckDB reads as a naive (UTC) timestamp.
    "timestamp": pa.timestamp("us"),
    "timestamp_ntz": pa.timestamp("us"),
    "date": pa.date32(),
    "binary": pa.binary(),
}


@dataclass
class WarehouseInputs:
    """The ``read_parquet`` path of every source table, and what was found in the lake."""

    paths: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)
    raw_placeholders: list[str] = field(default_factory=list)
    ml_placeholders: list[str] = field(default_factory=list)

    def dbt_vars(self, warehouse_path: Path) -> dict[str, object]:
        """The ``--vars`` of a dbt invocation that reads these inputs and writes ``warehouse``."""
        return {"scpro_inputs": self.paths, "warehouse_path": str(warehouse_path)}


def inputs_dir(settings: Settings) -> Path:
    """Where the pre-step keeps its placeholders and the lake inventory."""
    return settings.home / "warehouse_inputs"


def spark_type_to_arrow(spark_type: object) -> pa.DataType:
    """The Arrow type of a Spark schema JSON type (complex types become JSON strings)."""
    if isinstance(spark_type, str):
        if spark_type.startswith("decimal("):
            precision, scale = spark_type[len("decimal(") : -1].split(",")
            return pa.decimal128(int(precision), int(scale))
        return _SPARK_TYPES.get(spark_type, pa.string())
    return pa.string()


def spark_schema_to_arrow(schema_json: str) -> pa.Schema:
    """The Arrow schema of a Spark ``StructType.json()`` document."""
    fields = json.loads(schema_json)["fields"]
    return pa.schema([pa.field(f["name"], spark_type_to_arrow(f["type"])) for f in fields])


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith((".", "_")))


def _rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def _pin_clean(settings: Settings, name: str, placeholders: Path, inputs: WarehouseInputs) -> Path:
    """Resolve ``lake/clean/<name>`` to its version folder, or write an empty placeholder."""
    link = settings.clean_dir / name
    if not link.exists():
        raise FileNotFoundError(
            f"{link} has never been published: materialize the clean group "
            "(clean_entities, order_features) before the warehouse"
        )
    version = link.resolve()
    inputs.versions[name] = str(version)
    if _parquet_files(version):
        inputs.paths[name] = f"{version}/**/*.parquet"
    else:
        schema = spark_schema_to_arrow((version / "_schema.json").read_text())
        placeholder = placeholders / f"{name}.parquet"
        pq.write_table(schema.empty_table(), placeholder)
        inputs.paths[name] = str(placeholder)
        inputs.placeholders.append(name)
    return version


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
    """Point ``name`` at the ML layer's published file, or at a typed empty placeholder here.

    Each layer writes only its own outputs: the ML assets publish theirs (empty ones too, while no
    model serves), and until they first have, the warehouse reads a placeholder from its own
    folder instead of writing into the ML layer.
    """
    path = output_path(settings.ml_dir, name)
    if path.exists():
        inputs.paths[name] = str(path)
        return
    placeholder = placeholders / f"{name}.parquet"
    pq.write_table(SCHEMAS[name].empty_table(), placeholder)
    inputs.paths[name] = str(placeholder)
    inputs.ml_placeholders.append(name)


def _clean_quarantine_counts(settings: Settings) -> dict[str, int]:
    """Rows the clean layer quarantined by business rules, per clean dataset."""
    files = _parquet_files((settings.quarantine_dir / "clean_rules").resolve())
    counts: dict[str, int] = {}
    for f in files:
        for entity in pq.read_table(f, columns=["entity"]).column("entity").to_pylist():
            dataset = _QUARANTINE_ENTITY.get(entity, entity)
            counts[dataset] = counts.get(dataset, 0) + 1
    return counts


def _inventory(settings: Settings, now: datetime) -> pa.Table:
    rows: list[dict[str, object]] = []

    def add(layer: str, dataset: str, files: list[Path], quarantined: int, detail: str) -> None:
        rows.append(
            {
                "layer": layer,
                "dataset": dataset,
                "last_updated_at": max((_mtime(f) for f in files), default=None),
                "row_count": _rows(files),
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
    rules = settings.quarantine_dir / "clean_rules"
    quarantined = _clean_quarantine_counts(settings) if rules.exists() else {}
    rule_files = _parquet_files(rules.resolve()) if rules.exists() else []
    add("quarantine", "clean_rules", rule_files, 0, "rows the clean layer's rules refused")
    for name in CLEAN_DATASETS:
        link = settings.clean_dir / name
        version = link.resolve()
        files = _parquet_files(version) if link.exists() else []
        detail = version.name if link.exists() else "never published"
        add("clean", name, files, quarantined.get(name, 0), detail)
    for name in ML_OUTPUTS:
        path = output_path(settings.ml_dir, name)
        if not path.exists():
            add("ml", name, [], 0, "no model output yet")
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
    """Pin the clean versions, fill the gaps with typed placeholders, inventory the lake."""
    work = inputs_dir(settings)
    placeholders = work / "empty"
    placeholders.mkdir(parents=True, exist_ok=True)
    inputs = WarehouseInputs()
    for name in CLEAN_DATASETS:
        _pin_clean(settings, name, placeholders, inputs)
    for topic in DBT_RAW_TOPICS:
        _pin_raw(settings, topic, placeholders, inputs)
    for name in ML_OUTPUTS:
        _pin_ml(settings, name, placeholders, inputs)
    inventory_path = work / "lake_inventory.parquet"
    if not inventory_path.exists():  # a build without the lake_inventory asset upstream
        write_lake_inventory(settings)
    inputs.paths["lake_inventory"] = str(inventory_path)
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
