"""The model registry: one JSON entry next to each artifact, compiled into ``model_registry``.

Every trained candidate (TensorFlow network, gradient-boosting challenger, baselines) gets a
version folder ``models/<model_name>/<version>/`` with its artifact and ``registry.json``. The
entry says what code and data made it (code version, upstream datasets' versions and row counts,
time ranges), with which features and hyper-parameters, how it scored on the time-split test,
whether it serves and why, and the artifact's SHA-256, so any score row's ``model_version`` leads
to the exact file that produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ml_assets.outputs import SCHEMAS

ENTRY_FILE = "registry.json"
_PACKAGE = Path(__file__).resolve().parent


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (a folder artifact hashes its files in name order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with f.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def code_version() -> str:
    """The git commit (``+dirty`` when uncommitted changes exist) and a hash of ml_assets' code.

    The source hash identifies the training code even when git is unavailable or the tree is dirty.
    """
    source = hashlib.sha256()
    for f in sorted(_PACKAGE.glob("*.py")):
        source.update(f.read_bytes())
    commit = "nogit"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=_PACKAGE,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(_PACKAGE)],
            cwd=_PACKAGE,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        commit = head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"git:{commit} src:{source.hexdigest()[:12]}"


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id: UTC time plus a random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def version_dir(models_dir: Path, model_name: str, version: str) -> Path:
    """Where one model version's artifact and entry live."""
    return models_dir / model_name / version


def _json_default(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:  # a missing value in a nullable column: null
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def write_entry(folder: Path, entry: dict[str, Any]) -> Path:
    """Write ``registry.json`` atomically, with the artifact's path and hash filled in."""
    artifact = Path(entry["artifact_path"])
    entry = {**entry, "artifact_sha256": file_sha256(artifact)}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ENTRY_FILE
    tmp = folder / f".{ENTRY_FILE}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(entry, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, path)
    return path


def read_entries(models_dir: Path) -> list[dict[str, Any]]:
    """Every registry entry under ``models_dir``, oldest first."""
    entries = [json.loads(p.read_text()) for p in models_dir.glob(f"*/*/{ENTRY_FILE}")]
    return sorted(entries, key=lambda e: (e["trained_at"], e["model_name"]))


def has_serving_model(models_dir: Path, task: str) -> bool:
    """Whether some training of ``task`` has registered a serving model."""
    return any(e["task"] == task and e["is_serving"] for e in read_entries(models_dir))


def serving_entry(models_dir: Path, task: str) -> dict[str, Any]:
    """The entry of the model serving ``task`` (the latest training run's chosen candidate)."""
    chosen = [e for e in read_entries(models_dir) if e["task"] == task and e["is_serving"]]
    if not chosen:
        raise LookupError(f"no serving model for {task!r} under {models_dir}: train it first")
    return chosen[-1]


def registry_table(entries: list[dict[str, Any]]) -> pa.Table:
    """Entries as the ``model_registry`` dataset (JSON columns for nested values)."""
    schema = SCHEMAS["model_registry"]
    json_columns = {"data_version", "features", "hyperparameters", "metrics"}
    time_columns = {"trained_at", "train_start", "train_end", "test_start", "test_end"}
    rows = []
    for entry in entries:
        row: dict[str, Any] = {}
        for name in schema.names:
            value = entry.get(name)
            if name in json_columns:
                value = json.dumps(value, sort_keys=True, default=_json_default)
            elif name in time_columns and value is not None:
                value = pd.Timestamp(value).tz_convert("UTC").to_pydatetime()
            row[name] = value
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def save_pickle(obj: Any, folder: Path) -> Path:
    """Pickle a scikit-learn model (or any object) as ``folder/model.pkl``."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=5)
    return path


def register_model(
    models_dir: Path,
    name: str,
    task: str,
    algorithm: str,
    model: Any,
    data_version: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """Save ``model`` as a new serving version of ``name`` and write its registry entry.

    For the one-candidate scikit-learn models (segments, demand), which serve as soon as they are
    trained; ``fields`` are the entry's remaining columns (rows, time ranges, features,
    hyper-parameters, metrics, serving reason...). Returns the entry.
    """
    trained_at = datetime.now(UTC)
    version = new_version(trained_at)
    folder = version_dir(models_dir, name, version)
    entry = {
        "model_name": name,
        "model_version": version,
        "task": task,
        "framework": "scikit-learn",
        "algorithm": algorithm,
        "code_version": code_version(),
        "trained_at": trained_at.isoformat(),
        "data_version": data_version,
        "is_serving": True,
        "artifact_path": str(save_pickle(model, folder)),
        **fields,
    }
    write_entry(folder, entry)
    return entry
