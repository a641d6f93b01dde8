"""Clean benchmark: the Spark clean layer's full build, and one micro-batch on top of it."""

from __future__ import annotations

import itertools
import os
import shutil

from scpro_assets.bench.common import bench_settings, timed
from scpro_assets.bench.report import Report
from scpro_assets.settings import Settings


def bench_clean(
    settings: Settings, report: Report, sizes: tuple[int, ...], batch: int = 10_000
) -> None:
    """Issues 4 and 17: the clean layer's full build, and one micro-batch on top of it.

    For each size: ``size`` synthetic events of history built from scratch (the full build),
    then the next ``batch`` events of the same stream landed and cleaned incrementally (event
    stores, entities and features merged by key): what a cycle costs on that much history.
    """
    from scpro_assets.clean.pipeline import build_entities, build_features, update_event_stores
    from scpro_assets.spark_server import session_remote
    from scpro_assets.testing.offline import synthetic_events, write_raw_lake
    from spark.session import build_spark_session

    remote = session_remote(settings)  # a Connect server when configured or running
    section = f"spark: clean layer on synthetic events ({remote or settings.spark_master})"
    print(f"\n{section}", flush=True)
    spark = build_spark_session(settings.spark_master, remote=remote)
    times, increments = {}, {}

    def cycle(run: Settings) -> tuple[float, float, float, object, int]:
        _update, clean_s = timed(lambda: update_event_stores(spark, run.raw_dir, run.clean_dir))
        build, entities_s = timed(lambda: build_entities(spark, run.clean_dir, run.quarantine_dir))
        (feature_rows, _path), features_s = timed(lambda: build_features(spark, run.clean_dir))
        return clean_s, entities_s, features_s, build, feature_rows

    for size in sizes:
        run = bench_settings(settings)
        stream = synthetic_events(size + batch, seed=3)
        written, _ = write_raw_lake(itertools.islice(stream, size), run.raw_dir)
        clean_s, entities_s, features_s, build, feature_rows = cycle(run)
        times[size] = clean_s + entities_s + features_s
        new, _ = write_raw_lake(stream, run.raw_dir, first_offset=written)
        load = os.getloadavg()[0]
        stores_s, merge_s, merged_features_s, merged, _rows = cycle(run)
        increments[size] = stores_s + merge_s + merged_features_s
        report.add(
            section,
            **{
                f"{size:,} events: raw events read": written,
                f"{size:,} events: cleaning events/s (parse, dedup, entities)": written
                / (clean_s + entities_s),
                f"{size:,} events: feature rows/s": feature_rows / features_s,
                f"{size:,} events: orders": build.rows["cleaned_orders"],
                f"{size:,} events: seconds in all": times[size],
                f"{size:,} events + {new:,}: batch seconds (stores, entities, features)": (
                    f"{increments[size]:.1f} ({stores_s:.1f}, {merge_s:.1f}, "
                    f"{merged_features_s:.1f})"
                ),
                f"{size:,} events + {new:,}: batch merged incrementally": not merged.full_rebuild,
                f"{size:,} events + {new:,}: keys recomputed": merged.touched,
                f"{size:,} events + {new:,}: load average at the batch's start": round(load, 1),
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
                f"batch time ratio on {large:,} / {small:,} events of history": (
                    increments[large] / increments[small]
                ),
            },
        )
