"""Publishing Spark outputs into the lake atomically, and remembering which raw files were read.

A dataset ``lake/clean/<name>`` is a symbolic link to an immutable version folder
``lake/clean/.versions/<name>/<version>``. Publishing writes the new version completely, then swaps
the link with one ``rename`` (atomic on POSIX), so a reader (dbt, DuckDB, a dashboard) sees the old
version or the new one, never half of either. A few old versions are kept for readers that are
still scanning them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

KEEP_VERSIONS = 3


def dataset_path(base: Path, name: str) -> Path:
    """Stable path readers use for ``name``."""
    return base / name


def publish(df: DataFrame, base: Path, name: str, partition_by: str | None = None) -> Path:
    """Write ``df`` as a new version of ``name`` and switch readers to it atomically."""
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    versions = base / ".versions" / name
    target = versions / version
    versions.mkdir(parents=True, exist_ok=True)
    writer_df = df.repartition(partition_by) if partition_by else df.coalesce(4)
    # "error" (a synonym of "errorifexists", the one Spark Connect's client accepts): a new
    # version never overwrites anything.
    writer = writer_df.write.mode("error")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(str(target))
    # An empty partitioned frame writes no Parquet file: keep the schema so readers still work.
    (target / "_schema.json").write_text(df.schema.json())
    link = dataset_path(base, name)
    tmp_link = base / f".{name}.{uuid.uuid4().hex}.link"
    os.symlink(os.path.relpath(target, base), tmp_link)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a plain folder from an older layout
    os.replace(tmp_link, link)
    for old in sorted(p for p in versions.iterdir() if p.is_dir())[:-KEEP_VERSIONS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def parquet_rows(files: list[Path]) -> int:
    """Rows in Parquet ``files``, from their footers (no Spark job, no data read)."""
    return sum(pq.read_metadata(f).num_rows for f in files)


def published_rows(base: Path, name: str) -> int:
    """Rows in the current version of ``name`` (0 if never published), from Parquet footers.

    Counting a dataset just written with Spark is a job that reads it again; on a stream's small
    increments each such job costs more than the data, and the footers hold the exact count.
    """
    path = dataset_path(base, name)
    if not path.exists():
        return 0
    return parquet_rows(sorted(path.resolve().glob("**/part-*.parquet")))


def read(spark: SparkSession, base: Path, name: str) -> DataFrame | None:
    """The current version of ``name``, or None if it was never published."""
    path = dataset_path(base, name)
    if not path.exists():
        return None
    version = path.resolve()
    schema = StructType.fromJson(json.loads((version / "_schema.json").read_text()))
    return spark.read.schema(schema).parquet(str(version))


class RawManifest:
    """Which raw range files the clean layer has already read (by name and size)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}

    def new_files(self, raw_dir: Path, topic: str) -> list[Path]:
        """Raw files of ``topic`` not read yet (or rewritten with another size)."""
        files = sorted((raw_dir / topic).glob("partition-*/*.parquet"))
        return [f for f in files if self.files.get(self._key(raw_dir, f)) != f.stat().st_size]

    def all_files(self, raw_dir: Path, topic: str) -> list[Path]:
        """Every raw file of ``topic``."""
        return sorted((raw_dir / topic).glob("partition-*/*.parquet"))

    def mark(self, raw_dir: Path, files: list[Path]) -> None:
        """Remember ``files`` as read."""
        for f in files:
            self.files[self._key(raw_dir, f)] = f.stat().st_size

    def reset(self) -> None:
        """Forget everything (full rebuild)."""
        self.files = {}

    def save(self) -> None:
        """Write the manifest atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.files, indent=0, sort_keys=True))
        os.replace(tmp, self.path)

    @staticmethod
    def _key(raw_dir: Path, f: Path) -> str:
        return str(f.relative_to(raw_dir))
