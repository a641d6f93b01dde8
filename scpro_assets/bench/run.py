"""``make bench``: the chosen benchmarks, figures and side-by-side ratios, as markdown and JSON.

``scpro bench`` calls :func:`run_all` (importing it inside the command); each benchmark's module
is imported only when that benchmark is chosen.
Benchmarks use their own SCPRO_HOME and topic prefix under ``.scpro/bench``
(:func:`scpro_assets.bench.common.bench_settings`) and never touch the demo's data.
"""

from __future__ import annotations

import json
from pathlib import Path

from scpro_assets.bench.report import Report
from scpro_assets.settings import REPO_ROOT, Settings


def run_all(
    settings: Settings,
    which: tuple[str, ...],
    replay_orders: int,
    ingest_events: int,
    latency_samples: int,
    clean_sizes: tuple[int, ...] = (100_000, 1_000_000),
    out_dir: Path = REPO_ROOT,
    warehouse_events: int = 1_000_000,
    scoring_orders: int = 100_000,
    latency_seconds: float = 1200.0,
    chaos_repetitions: int = 3,
    incremental_sizes: tuple[int, ...] | None = None,
    latency_history: int = 1_000_000,
) -> Report:
    """Run the chosen benchmarks and write ``bench-report.md`` and ``bench-report.json``."""
    report = Report()
    if "replay" in which:
        from scpro_assets.bench.replay import bench_replay

        bench_replay(settings, report, replay_orders)
    if "ingest" in which:
        from scpro_assets.bench.ingest import bench_ingest
        from scpro_assets.bench.landing import bench_landing_runs

        bench_ingest(settings, report, ingest_events, latency_samples)
        bench_landing_runs(settings, report)
    if "clean" in which:
        from scpro_assets.bench.clean import bench_clean

        bench_clean(settings, report, clean_sizes)
    if "incremental" in which:
        from scpro_assets.bench.incremental import SIZES, bench_incremental

        bench_incremental(settings, report, incremental_sizes or SIZES)
    if "models" in which:
        from scpro_assets.bench.models import bench_models

        bench_models(settings, report)
    if "scoring" in which:
        from scpro_assets.bench.scoring import bench_scoring

        bench_scoring(settings, report, history=scoring_orders)
    if "warehouse" in which or "dashboard" in which:
        from scpro_assets.bench.warehouse import bench_warehouse

        def dashboard(run: Settings, label: str) -> None:
            if "dashboard" in which:
                from scpro_assets.bench.dashboard import bench_dashboard

                bench_dashboard(run.home, report, label)

        bench_warehouse(
            settings, report, synthetic_events=warehouse_events, after_publish=dashboard
        )
    if "latency" in which:
        from scpro_assets.bench.latency import bench_event_to_dashboard

        bench_event_to_dashboard(
            settings, report, steady_seconds=latency_seconds, history_events=latency_history
        )
    if "chaos" in which:
        from scpro_assets.bench.chaos import bench_chaos

        bench_chaos(settings, report, repetitions=chaos_repetitions)
    (out_dir / "bench-report.md").write_text(report.markdown())
    (out_dir / "bench-report.json").write_text(json.dumps(report.sections, indent=2, default=str))
    return report
