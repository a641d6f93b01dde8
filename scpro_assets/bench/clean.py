"""Clean benchmark: the Spark clean layer's throughput, and how its time grows with volume."""

from __future__ import annotations

import shutil

from scpro_assets.bench.common import bench_settings, timed
from scpro_assets.bench.report import Report
from scpro_assets.settings import Settings


def bench_clean(settings: Settings, report: Report, sizes: tuple[int, ...]) -> None:
    """Issue 4: Spark cleaning and feature-table throughput, and how time grows with volume."""
    from scpro_assets.clean.pipeline import build_entities, build_features, update_event_stores
    from scpro_assets.spark_server import session_remote
    from scpro_assets.testing.offline import synthetic_events, write_raw_lake
    from spark.session import build_spark_session

    remote = session_remote(settings)  # a Connect server when configured or running
    section = f"spark: clean layer on synthetic events ({remote or settings.spark_master})"
    print(f"\n{section}", flush=True)
    spark = build_spark_session(settings.spark_master, remote=remote)
    times = {}
    for size in sizes:
        run = bench_settings(settings)
        written, _ = write_raw_lake(synthetic_events(size, seed=3), run.raw_dir)
        _update, clean_s = timed(
            lambda run=run: update_event_stores(spark, run.raw_dir, run.clean_dir)
        )
        build, entities_s = timed(
            lambda run=run: build_entities(spark, run.clean_dir, run.quarantine_dir)
        )
        (feature_rows, _path), features_s = timed(
            lambda run=run: build_features(spark, run.clean_dir)
        )
        times[size] = clean_s + entities_s + features_s
        report.add(
            section,
            **{
                f"{size:,} events: raw events read": written,
                f"{size:,} events: cleaning events/s (parse, dedup, entities)": written
                / (clean_s + entities_s),
                f"{size:,} events: feature rows/s": feature_rows / features_s,
                f"{size:,} events: orders": build.rows["cleaned_orders"],
                f"{size:,} events: seconds in all": times[size],
            },
        )
        shutil.rmtree(run.home, ignore_errors=True)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        report.add(
            section,
            **{
                f"time ratio {large:,} / {small:,} events": times[large] / times[small],
                "volume ratio": large / small,
            },
        )
