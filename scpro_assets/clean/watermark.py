"""The clean layer's watermark record: written by each build, read by the next and by the publish.

The clean layer cuts its stores at an event-time watermark (:mod:`spark.watermark`) and keeps
the record under ``lake/clean/_state``; the next build starts from it, and the serving snapshot
(:mod:`scpro_assets.warehouse.serving`) states its as-of time and per-topic figures from it.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path


def watermark_path(clean_dir: Path) -> Path:
    """Where the clean layer keeps its last watermark record (read when a snapshot is published)."""
    return clean_dir / "_state" / "watermark.json"


def save_watermark(path: Path, record: dict[str, object]) -> None:
    """Write the watermark record atomically (a reader sees the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def load_watermark(path: Path) -> dict[str, object] | None:
    """The last watermark record written, or None (none yet, or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def previous_watermark(path: Path) -> datetime | None:
    """The watermark of the last record written (aware, UTC), or None."""
    record = load_watermark(path)
    value = record.get("watermark") if record else None
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
