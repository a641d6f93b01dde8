"""Reading the Spark clean lake into pandas, and naming the exact data a model was trained on.

The ML assets only read ``lake/clean/<name>``: each is a symbolic link to an immutable version
folder (:mod:`scpro_assets.clean.lake`), so the folder the link points to *is* the data version.
Recording it with the row count in the model registry links every model to the bytes it saw.
These tables are single-machine sized (one row per order or per line), so pyarrow reads them
directly; Spark is only needed to build them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds


@dataclass(frozen=True)
class LakeTable:
    """One clean dataset as read, with the version it came from."""

    name: str
    frame: pd.DataFrame
    version: str
    rows: int

    def lineage(self) -> dict[str, object]:
        """What the registry records about this input."""
        return {"version": self.version, "rows": self.rows}


def _schema(version_dir: Path) -> pa.Schema | None:
    """The Spark schema saved next to the data (partitioned frames may hold no file at all)."""
    path = version_dir / "_schema.json"
    if not path.exists():
        return None
    spark_types = {
        "string": pa.string(),
        "double": pa.float64(),
        "float": pa.float32(),
        "integer": pa.int32(),
        "long": pa.int64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }
    fields = []
    for f in json.loads(path.read_text())["fields"]:
        kind = f["type"]
        if isinstance(kind, str) and kind in spark_types:
            fields.append(pa.field(f["name"], spark_types[kind]))
    return pa.schema(fields)


def read_clean(clean_dir: Path, name: str, columns: list[str] | None = None) -> LakeTable:
    """Read ``lake/clean/<name>`` (hive partitions included) into pandas.

    Raises ``FileNotFoundError`` with the asset to materialize when the dataset is missing, since
    an empty model would be worse than a clear failure.
    """
    link = clean_dir / name
    if not link.exists():
        raise FileNotFoundError(
            f"{link} does not exist: materialize the Spark asset {name!r} first"
        )
    version_dir = link.resolve()
    files = sorted(str(p) for p in version_dir.rglob("*.parquet") if not p.name.startswith("."))
    if files:
        dataset = ds.dataset(
            files, format="parquet", partitioning="hive", partition_base_dir=str(version_dir)
        )
        table = dataset.to_table(columns=columns)
    else:
        schema = _schema(version_dir) or pa.schema([])
        table = schema.empty_table()
        if columns:
            table = table.select([c for c in columns if c in table.column_names])
    frame = table.to_pandas()
    for column in frame.columns:
        # Spark writes UTC instants without a zone: make them explicit so comparisons are exact.
        if pd.api.types.is_datetime64_dtype(frame[column]):
            frame[column] = frame[column].dt.tz_localize("UTC")
    return LakeTable(name=name, frame=frame, version=version_dir.name, rows=len(frame))
