"""What every benchmark run shares: its own home and topic prefix, and a stopwatch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from scpro_assets.settings import TOPICS, Settings


def bench_settings(base: Settings) -> Settings:
    """A fresh home and topic prefix for one benchmark run, on the configured broker.

    Under ``.scpro/bench``, so a benchmark never touches the demo's data.
    """
    run = uuid.uuid4().hex[:8]
    home = base.home / "bench" / run
    kafka = base.kafka.model_copy(update={"topic_prefix": f"{base.kafka.topic_prefix}bench-{run}."})
    return base.model_copy(update={"home": home, "kafka": kafka})


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the wall-clock seconds it took."""
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def landing_metadata(instance: Any) -> list[dict]:
    """The metadata of every raw landing materialization recorded in a Dagster ``instance``."""
    import dagster as dg

    return [
        r.asset_materialization.metadata
        for topic in TOPICS
        for r in instance.fetch_materializations(dg.AssetKey(f"raw_{topic}"), limit=10_000).records
    ]
