"""Warehouse cycle benchmark: dbt and publishing for one micro-batch, at two history sizes.

For a clean lake already built (``build_clean_lake`` of N synthetic events, e.g. by
``scpro_assets.bench.clean``), on a private copy: a first build in full and its publication,
then one micro-batch (new orders copied from the latest ones, deliveries done;
:func:`scpro_assets.testing.lake_updates.add_latest_orders`) built incrementally as the
automation's cycle builds it (guard tests only) and published, then the hourly schedule's build
with every test. Prints, as JSON: each step's seconds, the parts a publication wrote and linked,
and where each build's time went (models, data tests, unit tests, the slowest nodes), from dbt's
``run_results.json``.

    python -m scpro_assets.bench.incremental_warehouse /path/to/home-with-lake [batch orders]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from scpro_assets.settings import Settings
from scpro_assets.testing.lake_updates import add_latest_orders
from scpro_assets.testing.warehouse import copy_lake, settings_for
from scpro_assets.warehouse.assets import SCHEDULED_TESTS
from scpro_assets.warehouse.build import CLI_TARGET, run_dbt
from scpro_assets.warehouse.serving import publish_snapshot


def _dbt_seconds(settings: Settings, args: list[str]) -> float:
    started = time.perf_counter()
    code = run_dbt(settings, ["--quiet", *args])
    if code != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed (exit {code})")
    return time.perf_counter() - started


def where_time_went(run_results: Path, slowest: int = 8) -> dict[str, object]:
    """The seconds dbt spent per kind of node, and its slowest nodes, in its last invocation."""
    results = json.loads(run_results.read_text())["results"]
    per_kind: dict[str, float] = defaultdict(float)
    for result in results:
        per_kind[result["unique_id"].split(".")[0]] += result["execution_time"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:slowest]
    return {
        "seconds_by_kind": {k: round(v, 2) for k, v in sorted(per_kind.items())},
        "nodes_by_kind": {
            k: sum(1 for r in results if r["unique_id"].startswith(k + ".")) for k in per_kind
        },
        "slowest": {r["unique_id"]: round(r["execution_time"], 2) for r in ranked},
    }


def bench_cycle(lake_home: Path, batch_orders: int = 1800) -> dict[str, object]:
    """One full build and one incremental micro-batch cycle on a copy of ``lake_home``'s lake."""
    work = Path(tempfile.mkdtemp(prefix="scpro-bench-incremental-"))
    try:
        settings = copy_lake(settings_for(lake_home), work / "home")
        figures: dict[str, object] = {"full_dbt_build_s": _dbt_seconds(settings, ["build"])}
        first = publish_snapshot(settings)
        figures["first_publish_s"] = first.seconds
        started = time.perf_counter()
        figures["batch_orders"] = add_latest_orders(settings, batch_orders, "bench")
        figures["batch_commit_s"] = time.perf_counter() - started
        # the automation's cycle: the guard tests only (the others are on their schedule)
        cycle = ["build", "--exclude", " ".join(SCHEDULED_TESTS)]
        figures["incremental_dbt_cycle_s"] = _dbt_seconds(settings, cycle)
        target = Path(os.environ.get("DBT_TARGET_PATH") or CLI_TARGET)
        figures["incremental_cycle"] = where_time_went(target / "run_results.json")
        publication = publish_snapshot(settings)
        figures["incremental_publish_s"] = publication.seconds
        figures["incremental_publish_parts"] = {
            "written": publication.parts_written,
            "linked": publication.parts_linked,
        }
        # the hourly schedule's build: every test (the models have nothing new to do)
        figures["all_tests_dbt_build_s"] = _dbt_seconds(settings, ["build"])
        figures["all_tests_build"] = where_time_went(target / "run_results.json")
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    orders = int(sys.argv[2]) if len(sys.argv) > 2 else 1800
    print(json.dumps(bench_cycle(Path(sys.argv[1]), orders), indent=1))
