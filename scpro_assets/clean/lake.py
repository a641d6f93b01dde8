"""Which raw range files the clean layer has already read, and their rows from Parquet footers.

The clean layer's own datasets are Delta tables (:mod:`spark.tables`): a commit is atomic, so
readers see one version or the next, never half of either, and every version stays readable.
What the raw layer holds is immutable range files, so remembering which were read (by name and
size) is all an incremental read needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq


def parquet_rows(files: list[Path]) -> int:
    """Rows in Parquet ``files``, from their footers (no Spark job, no data read)."""
    return sum(pq.read_metadata(f).num_rows for f in files)


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
