"""Incremental benchmark (issue #17): what one cycle costs on 0.1M, 1M and 5M events of history.

One platform home grows its history as a running platform does, and a cycle is timed at each
size:

1. **History**: the events up to each size are written as landed raw range files (offline, like
   :func:`scpro_assets.bench.clean.bench_clean`; landing them through Kafka would take longer
   than the rest of the benchmark), then materialized on top of what the home already holds, as
   the first run after a long stop of the platform meets them: a backlog larger than the history
   (0.9M on 0.1M, 4M on 1M), which the clean layer rebuilds in full
   (:data:`scpro_assets.clean.pipeline.BACKLOG_REBUILD_RATIO`). The first size's build trains
   the models; the later ones keep them in service (a cycle scores with them and never trains).
2. **The cycle** at each size: the next ``batch`` events of the same stream produced to Kafka
   and landed by the real landing runs (:func:`scpro_assets.runner.ingest_until_caught_up`), then
   one materialization of the clean layer, the scores, dbt and the serving snapshot, the way the
   automation's run carries them. Each stage's seconds come from Dagster's step events. At the
   first size one cycle runs before the timed one: it warms what a running platform has warm (the
   Spark session's compiled classes, dbt's partial parse), and the later sizes keep them, as the
   same platform would.

The history's raw files are numbered from :data:`HISTORY_FIRST_OFFSET`, far above the new
topics' offsets, so the files the landing writes never take a history file's name.

``incremental.cycle_seconds`` maps each history size to its cycle's seconds (landing included),
and ``incremental.ratio_largest_to_smallest`` is the issue's goal (at most 1.3).
"""

from __future__ import annotations

import itertools
import shutil
from collections import defaultdict

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


def _grow_history(
    run: Settings,
    defs,
    instance,
    stream,
    events: int,
    first_offset: int,
    selection,
    figures: dict[str, float],
) -> int:
    """Write ``events`` more events of ``stream`` as raw files and carry them through every asset.

    Returns the offset the next files start at.
    """
    from scpro_assets.testing.offline import write_raw_lake

    (written, _files), write_s = timed(
        lambda: write_raw_lake(
            itertools.islice(stream, events), run.raw_dir, first_offset=first_offset
        )
    )
    result, build_s = timed(lambda: _materialize(defs, instance, selection))
    done = first_offset - HISTORY_FIRST_OFFSET
    name = f"history {done:,}..{done + written:,} events"
    figures[f"{name}: written s"] = write_s
    figures[f"{name}: built s"] = build_s
    stages = _stage_seconds(instance, result.run_id, _groups_of_steps(defs))
    figures.update({f"{name}: {stage} s": sec for stage, sec in stages.items()})
    return first_offset + written  # per-topic offsets stay below the event count


def _timed_cycle(
    defs, instance, run: Settings, stream, batch: int, selection, label: str
) -> tuple[float, dict]:
    """Produce ``batch`` events, land them and carry them to the snapshot; seconds and figures.

    ``selection`` is what the automation's run carries: every asset from the clean layer on,
    training aside.
    """
    from scpro_assets.replay import replay
    from scpro_assets.runner import ingest_until_caught_up

    new_events = list(itertools.islice(stream, batch))
    label = f"{label} of {len(new_events):,}"
    figures: dict[str, float] = {}
    _, figures[f"{label}: produce to Kafka s"] = timed(lambda: replay(new_events, run.kafka))
    _, landing_s = timed(lambda: ingest_until_caught_up(defs, instance))
    result, run_s = timed(lambda: _materialize(defs, instance, selection))
    stages = _stage_seconds(instance, result.run_id, _groups_of_steps(defs))
    figures[f"{label}: landing s"] = landing_s
    figures.update({f"{label}: {stage} s": sec for stage, sec in stages.items()})
    figures[f"{label}: run s (clean to snapshot)"] = run_s
    figures[f"{label}: s in all"] = landing_s + run_s
    return landing_s + run_s, figures


def bench_incremental(
    settings: Settings,
    report: Report,
    sizes: tuple[int, ...] = SIZES,
    batch: int = BATCH,
) -> None:
    """Time one full cycle of ``batch`` new events on each history size (module docstring)."""
    import dagster as dg

    from scpro_assets.automation import TRAINING_ASSETS
    from scpro_assets.definitions.platform import build_definitions
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.testing.offline import synthetic_events

    print(f"\n{SECTION}: one cycle of {batch:,} events on {len(sizes)} history sizes", flush=True)
    sizes = tuple(sorted(sizes))
    run = bench_settings(settings)
    downstream = dg.AssetSelection.groups("clean", "ml", "warehouse", "serving")
    no_training = downstream - dg.AssetSelection.assets(*TRAINING_ASSETS)
    stream = synthetic_events(sizes[-1] + (len(sizes) + 1) * batch, seed=3)
    cycle_seconds: dict[int, float] = {}
    history, offset = 0, HISTORY_FIRST_OFFSET
    (run.home / "dagster").mkdir(parents=True, exist_ok=True)
    try:
        with dg.instance_for_test(temp_dir=str(run.home / "dagster")) as instance:
            defs = build_definitions(run)
            ensure_topics(run.kafka)
            for size in sizes:
                figures: dict[str, float] = {}
                try:
                    # The first size trains; the later ones score with the models in service.
                    selection = downstream if history == 0 else no_training
                    offset = _grow_history(
                        run, defs, instance, stream, size - history, offset, selection, figures
                    )
                    history = size
                    if not cycle_seconds:
                        _, warm = _timed_cycle(
                            defs,
                            instance,
                            run,
                            stream,
                            batch,
                            no_training,
                            f"{size:,} events, warm-up cycle",
                        )
                        figures.update(warm)
                    seconds, timed_figures = _timed_cycle(
                        defs, instance, run, stream, batch, no_training, f"{size:,} events, cycle"
                    )
                    figures.update(timed_figures)
                except Exception as error:  # report the sizes before it; the later ones need it
                    failure = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                    print(f"{SECTION}: {size:,} events failed: {failure}", flush=True)
                    report.add(SECTION, **figures, **{f"{size:,} events: failed": failure})
                    break
                cycle_seconds[size] = seconds
                report.add(SECTION, **figures)
    finally:  # 5M events of history take gigabytes
        shutil.rmtree(run.home, ignore_errors=True)
    report.add(SECTION, cycle_seconds={str(k): v for k, v in cycle_seconds.items()})
    if len(cycle_seconds) >= 2:
        smallest, largest = min(cycle_seconds), max(cycle_seconds)
        report.add(
            SECTION,
            ratio_largest_to_smallest=cycle_seconds[largest] / cycle_seconds[smallest],
            goal_ratio_at_most=1.3,
        )
