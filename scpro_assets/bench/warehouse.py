"""Warehouse benchmark: dbt build time per dataset and the heaviest dashboard query's latency.

``dbt build`` runs on the DataCo and Olist replays and on 1M synthetic events. Each dataset is
first turned into a clean lake offline (``build_clean_lake``, Spark; not part of the dbt figure),
then ``dbt build`` runs every model and test (:func:`scpro_assets.warehouse.build.run_dbt`, the
same pinned inputs the Dagster asset uses), the snapshot is published, and the heaviest query is
timed on it, read-only.
"""

from __future__ import annotations

import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from scpro_assets.bench.report import Report
from scpro_assets.settings import REPO_ROOT, Settings
from scpro_assets.sources.common import SourceEvent
from scpro_assets.testing.warehouse import settings_for
from scpro_assets.warehouse.build import run_dbt
from scpro_assets.warehouse.serving import open_snapshot, publish_snapshot

SECTION = "warehouse: dbt build and snapshot queries"

#: The dashboard's heaviest query: late rate, mean and p90 delay per week and region over
#: fct_deliveries (p90 is not additive, so it cannot come from the KPI marts), with filters.
HEAVIEST_QUERY = """
select
    order_week,
    region,
    count(*) as delivered_orders,
    count(*) filter (where is_late) / count(*) as late_rate,
    avg(delay_days) as mean_delay_days,
    quantile_cont(delay_days, 0.9) as p90_delay_days,
    avg(abs(prediction_gap_days)) as mean_abs_gap_days
from main.fct_deliveries
where delivered_at is not null
    and carrier_mode in (select carrier_mode from main.dim_carriers where orders > 0)
    and customer_segment in (select customer_segment from main.customer_segment_profiles)
    and order_date >= (select min(order_date) + 7 from main.fct_deliveries)
group by order_week, region
order by order_week, region
"""


def _query_latency(settings: Settings, runs: int) -> tuple[float, float, int]:
    """(first, median of the rest) seconds and rows of :data:`HEAVIEST_QUERY` on the snapshot."""
    _, con = open_snapshot(settings)
    times = []
    with con:
        for _ in range(runs):
            started = time.perf_counter()
            rows = con.execute(HEAVIEST_QUERY).fetchall()
            times.append(time.perf_counter() - started)
    return times[0], statistics.median(times[1:]), len(rows)


def bench_dataset(
    settings: Settings,
    report: Report,
    label: str,
    events: Iterable[SourceEvent],
    runs: int = 20,
    after_publish: Callable[[Settings, str], None] | None = None,
) -> None:
    """Build a clean lake from ``events``, then time dbt build, publish and the heaviest query.

    ``after_publish`` gets the run's settings while its snapshot still exists (the dashboard
    benchmark measures itself on the same warehouse).
    """
    from scpro_assets.testing.offline import build_clean_lake

    home = settings.home / "bench" / f"warehouse-{uuid.uuid4().hex[:8]}"
    run = settings_for(home)
    started = time.perf_counter()
    lake = build_clean_lake(events, run)
    lake_s = time.perf_counter() - started
    started = time.perf_counter()
    code = run_dbt(run, ["--quiet", "build"])
    dbt_s = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"dbt build failed on {label} (exit {code})")
    publication = publish_snapshot(run)
    first, median, rows = _query_latency(run, runs)
    report.add(
        SECTION,
        **{
            f"{label}: events": lake.events,
            f"{label}: orders": lake.rows["cleaned_orders"],
            f"{label}: clean lake (Spark, not in dbt time) s": lake_s,
            f"{label}: dbt build s (40 models, data and unit tests)": dbt_s,
            f"{label}: publish snapshot s": publication.seconds,
            f"{label}: snapshot MB": (publication.path / "warehouse.duckdb").stat().st_size / 1e6,
            f"{label}: heaviest KPI query first run ms": first * 1000,
            f"{label}: heaviest KPI query median ms ({runs - 1} runs)": median * 1000,
            f"{label}: heaviest KPI query rows": rows,
        },
    )
    if after_publish is not None:
        after_publish(run, label)
    shutil.rmtree(home, ignore_errors=True)


def bench_warehouse(
    settings: Settings,
    report: Report,
    synthetic_events: int = 1_000_000,
    data_dir: Path | None = None,
    after_publish: Callable[[Settings, str], None] | None = None,
) -> None:
    """Run the benchmark on DataCo and Olist (when ../shared/data has them) and synthetic events."""
    from scpro_assets.sources import dataco, olist
    from scpro_assets.testing.offline import synthetic_events as offline_synthetic_events

    print(f"\n{SECTION}", flush=True)
    data_dir = data_dir or REPO_ROOT.parent / "shared" / "data"
    for name, module in (("DataCo", dataco), ("Olist", olist)):
        folder = data_dir / name.lower()
        if folder.is_dir():
            events, _ = module.load(folder)
            bench_dataset(settings, report, f"{name} replay", events, after_publish=after_publish)
        else:
            report.add(SECTION, **{f"{name} replay": f"skipped: {folder} is missing"})
    events = offline_synthetic_events(synthetic_events, seed=3)
    label = f"synthetic {synthetic_events:,} events"
    bench_dataset(settings, report, label, events, after_publish=after_publish)


if __name__ == "__main__":
    import sys

    sizes = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    report = Report()
    bench_warehouse(Settings.from_env(), report, synthetic_events=sizes)
