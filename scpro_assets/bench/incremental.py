"""Incremental benchmark (issue #17): what one cycle costs on 0.1M, 1M and 5M events of history.

For each history size, on a home of its own:

1. **History**: ``size`` synthetic events written as landed raw range files (offline, like
   :func:`scpro_assets.bench.clean.bench_clean`; landing them through Kafka would take longer
   than the rest of the benchmark), then every asset downstream materialized once: the full
   build the cycle is then measured on top of. The models are trained on the first (smallest)
   history only and their registry entries copied to the larger ones: a cycle scores with the
   models in service and never trains, so training at 5M events would cost the benchmark
   minutes without changing the figure.
2. **The cycle**, twice (the first warms the Spark session's compiled classes and dbt's parse,
   as a running platform has them; the second is the figure): the next ``batch`` events of the
   same stream produced to Kafka and landed by the real landing runs
   (:func:`scpro_assets.runner.ingest_until_caught_up`), then one materialization of the clean
   layer, the scores, dbt and the serving snapshot, the way the automation's run carries them.
   Each stage's seconds come from Dagster's step events.

The history's raw files are numbered from :data:`HISTORY_FIRST_OFFSET`, far above the new
topics' offsets, so the files the landing writes never take a history file's name.

``incremental.cycle_seconds`` maps each history size to its cycle's seconds (landing included),
and ``incremental.ratio_largest_to_smallest`` is the issue's goal (at most 1.3).
"""

from __future__ import annotations

import itertools
import shutil
from collections import defaultdict
from pathlib import Path

from scpro_assets.bench.common import bench_settings, timed
from scpro_assets.bench.report import Report
from scpro_assets.settings import Settings

SECTION = "incremental"

#: History sizes (events) and the batch a cycle lands on top of each.
SIZES = (100_000, 1_000_000, 5_000_000)
BATCH = 10_000

#: Offsets the offline history's raw files start at (see the module docstring).
HISTORY_FIRST_OFFSET = 10**12

#: Dagster asset groups, in cycle order, and the stage name each is reported under.
STAGES = {"clean": "clean", "ml": "scores", "warehouse": "dbt", "serving": "snapshot"}


def _stage_seconds(instance, run_id: str, group_of_step: dict[str, str]) -> dict[str, float]:
    """Seconds per stage of one run: each step's start to its end, summed per asset group."""
    import dagster as dg

    started: dict[str, float] = {}
    seconds: dict[str, float] = defaultdict(float)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif (
            event.event_type
            in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            )
            and event.step_key in started
        ):
            stage = STAGES.get(group_of_step.get(event.step_key, ""), "other")
            seconds[stage] += entry.timestamp - started[event.step_key]
    return dict(seconds)


def _groups_of_steps(defs) -> dict[str, str]:
    """The asset group each step (an asset's op) belongs to."""
    import dagster as dg

    groups = {}
    for asset in defs.assets or []:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_materializable:
            names = set(asset.group_names_by_key.values())
            groups[asset.node_def.name] = names.pop() if len(names) == 1 else "other"
    return groups


def _materialize(defs, instance, selection):
    import dagster as dg

    result = dg.materialize(
        [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_materializable],
        selection=selection,
        instance=instance,
        resources=defs.resources,
        raise_on_error=True,
    )
    return result


def _copy_models(trained: Path, run: Settings) -> None:
    """Serve the first history's models in ``run`` (entries point at the same artifacts)."""
    shutil.copytree(trained, run.models_dir, dirs_exist_ok=True)


def _cycle_on_history(
    settings: Settings, report: Report, size: int, batch: int, trained: Path | None
) -> tuple[float, Path, Path]:
    """Build ``size`` events of history, then time one cycle of ``batch`` more on top of it.

    Returns the cycle's seconds, the run's models folder and its home (removed by the caller).
    """
    run = bench_settings(settings)
    try:
        return _timed_cycle(run, report, size, batch, trained)
    except BaseException:  # a failed size leaves no gigabytes of history behind
        shutil.rmtree(run.home, ignore_errors=True)
        raise


def _timed_cycle(
    run: Settings, report: Report, size: int, batch: int, trained: Path | None
) -> tuple[float, Path, Path]:
    """:func:`_cycle_on_history` on the benchmark home ``run``."""
    import dagster as dg

    from scpro_assets.automation import TRAINING_ASSETS
    from scpro_assets.definitions.platform import build_definitions
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.replay import replay
    from scpro_assets.runner import ingest_until_caught_up
    from scpro_assets.testing.offline import synthetic_events, write_raw_lake

    downstream = dg.AssetSelection.groups("clean", "ml", "warehouse", "serving")
    no_training = downstream - dg.AssetSelection.assets(*TRAINING_ASSETS)
    stream = synthetic_events(size + 2 * batch, seed=3)
    (written, _files), raw_s = timed(
        lambda: write_raw_lake(
            itertools.islice(stream, size), run.raw_dir, first_offset=HISTORY_FIRST_OFFSET
        )
    )
    (run.home / "dagster").mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    with dg.instance_for_test(temp_dir=str(run.home / "dagster")) as instance:
        defs = build_definitions(run)
        if trained is not None:
            _copy_models(trained, run)
        first = no_training if trained is not None else downstream
        _, figures[f"{written:,} events: full build of the history s"] = timed(
            lambda: _materialize(defs, instance, first)
        )
        ensure_topics(run.kafka)
        # Two cycles: the first warms what a running platform has warm (the Spark session's
        # compiled classes, dbt's parse); the second is the figure.
        for name in ("warm-up cycle", "cycle"):
            new_events = list(itertools.islice(stream, batch))
            label = f"{written:,} events, {name} of {len(new_events):,}"
            _, figures[f"{label}: produce to Kafka s"] = timed(
                lambda new_events=new_events: replay(new_events, run.kafka)
            )
            _, landing_s = timed(lambda: ingest_until_caught_up(defs, instance))
            result, run_s = timed(lambda: _materialize(defs, instance, no_training))
            stages = _stage_seconds(instance, result.run_id, _groups_of_steps(defs))
            figures[f"{label}: landing s"] = landing_s
            figures.update({f"{label}: {stage} s": sec for stage, sec in stages.items()})
            figures[f"{label}: run s (clean to snapshot)"] = run_s
            figures[f"{label}: s in all"] = landing_s + run_s
    report.add(SECTION, **{f"{written:,} events: history written s": raw_s, **figures})
    return landing_s + run_s, run.models_dir, run.home


def bench_incremental(
    settings: Settings,
    report: Report,
    sizes: tuple[int, ...] = SIZES,
    batch: int = BATCH,
) -> None:
    """Time one full cycle of ``batch`` new events on each history size (module docstring)."""
    print(f"\n{SECTION}: one cycle of {batch:,} events on {len(sizes)} history sizes", flush=True)
    cycle_seconds: dict[int, float] = {}
    first_home: Path | None = None  # its models serve every later size
    trained: Path | None = None
    try:
        for size in sizes:
            try:
                seconds, models, home = _cycle_on_history(settings, report, size, batch, trained)
            except Exception as error:  # one size failing still reports the others
                failure = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                print(f"{SECTION}: {size:,} events failed: {failure}", flush=True)
                report.add(SECTION, **{f"{size:,} events: failed": failure})
                continue
            cycle_seconds[size] = seconds
            if trained is None:
                first_home, trained = home, models
            else:  # 5M events of history take gigabytes: gone before the next size
                shutil.rmtree(home, ignore_errors=True)
    finally:
        if first_home is not None:
            shutil.rmtree(first_home, ignore_errors=True)
    report.add(SECTION, cycle_seconds={str(k): v for k, v in cycle_seconds.items()})
    if len(cycle_seconds) >= 2:
        smallest, largest = min(cycle_seconds), max(cycle_seconds)
        report.add(
            SECTION,
            ratio_largest_to_smallest=cycle_seconds[largest] / cycle_seconds[smallest],
            goal_ratio_at_most=1.3,
        )
