"""``scpro ingest --once``: evaluate the Kafka sensors and run what they ask for, in-process.

A top-level tool beside the CLI (:mod:`scpro_assets.cli`), not part of a stage: it drives the
landing location's sensors and jobs (:mod:`scpro_assets.definitions.landing`), and its worker
processes build both locations (:func:`scpro_assets.definitions.platform.build_definitions`).

This is the daemon's code path without the daemon, for scripts, benchmarks and tests: the same
sensor function plans the same runs from the same cursor, and the same job lands them. Run keys
are honoured exactly as the daemon does (ranges that already have a run are never started again),
failed runs are retried with their original config (like Dagster's run retries; the ranges they
did land are not landed again), and the cursor
is written back to the sensor's state in the instance, so the daemon continues where this left off.
Ticks of one instance take turns, across processes, as the daemon's ticks of one sensor do: two
``scpro ingest`` started together would otherwise both see a range's run key unused and both run
it. Each run is tagged with the process that executes it: a run left "started" by an
``scpro ingest`` that was killed is failed by the next one (its process is gone) and retried,
never skipped as already run. Unlike the daemon's ticks, these are not paced while an automation
run is in flight (:func:`sensors.kafka_sensors.unpaced`): whoever calls them wants the events
landed now.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import socket
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from scpro_assets.instance import IN_FLIGHT
from scpro_assets.settings import TOPICS, Settings
from sensors.kafka_sensors import (
    CURSOR_KV_PREFIX,
    current_cursor,
    daemon_sensor_state,
    job_name,
    sensor_name,
    unpaced,
)

RUN_KEY_TAG = "dagster/run_key"
SENSOR_TAG = "dagster/sensor_name"
#: ``<host>:<pid>`` of the ``scpro ingest`` process executing a run (the daemon's runs have none).
PROCESS_TAG = "scpro/ingest_process"
MAX_ATTEMPTS = 4


class CursorStore:
    """A sensor's cursor, shared with the daemon (instigator state) or kept in the instance KV."""

    def __init__(self, instance: dg.DagsterInstance, name: str) -> None:
        self.instance = instance
        self.name = name
        self.kv_key = CURSOR_KV_PREFIX + name

    def get(self) -> str | None:
        """The cursor: the daemon's if it has one, else the one ``scpro ingest`` stored."""
        return current_cursor(self.instance, self.name)

    def set(self, cursor: str | None) -> None:
        """Store the cursor in both places, so either path continues from it.

        The daemon's state is updated through its own ``with_data`` and its data's
        ``_replace`` (see :func:`~sensors.kafka_sensors.daemon_sensor_state`).
        """
        if cursor is None:
            return
        self.instance.run_storage.set_cursor_values({self.kv_key: cursor})
        state = daemon_sensor_state(self.instance, self.name)
        if state is not None and hasattr(state.instigator_data, "cursor"):
            self.instance.update_instigator_state(
                state.with_data(state.instigator_data._replace(cursor=cursor))
            )


@dataclass
class TopicTick:
    """What one evaluation did for one topic."""

    topic: str
    requested: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None


def _runs_with_key(instance: dg.DagsterInstance, run_key: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key})))


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    topic: str,
    run_config: dict,
    tags: dict[str, str],
) -> bool:
    job = defs.resolve_job_def(job_name(topic))
    tags = {**tags, PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}
    result = job.execute_in_process(
        run_config=run_config, instance=instance, tags=tags, raise_on_error=False
    )
    return result.success


def _process_gone(process: str) -> bool:
    """Whether the ``<host>:<pid>`` process has ended; ``False`` when it cannot be told here."""
    host, _, pid = process.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fail_orphaned_runs(instance: dg.DagsterInstance, topic: str) -> list[str]:
    """Fail the runs of ``topic`` left queued or started by an ``scpro ingest`` that died.

    A process killed in the middle of a range (SIGKILL, OOM, a reboot) cannot report its run's
    end, so the run stays "started" and its run key would make every later tick skip the range:
    its offsets would never land. Failing it lets :func:`retry_failed_ranges` land the range.
    Returns the run keys failed.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name(topic), statuses=IN_FLIGHT))
    orphaned = []
    for run in runs:
        process = run.tags.get(PROCESS_TAG)
        if process and _process_gone(process):
            instance.report_run_failed(
                run, f"the scpro ingest process {process} that executed this run is gone"
            )
            orphaned.append(run.tags.get(RUN_KEY_TAG, run.run_id))
    return orphaned


_WORKER: dict[str, object] = {}


def _worker_init(settings: Settings, instance_ref: str) -> None:
    """Build the definitions and open the instance once per worker process.

    The instance is always reopened from its ref (its own storage connections), never inherited;
    the ref travels as Dagster's serialized JSON (``dg.serialize_value``).
    """
    from scpro_assets.definitions.platform import build_definitions

    _WORKER["defs"] = build_definitions(settings)
    _WORKER["instance"] = dg.DagsterInstance.from_ref(dg.deserialize_value(instance_ref))


def _worker_execute(topic: str, run_config: dict, tags: dict[str, str]) -> bool:
    return _execute(_WORKER["defs"], _WORKER["instance"], topic, run_config, tags)  # type: ignore[arg-type]


def _worker_ready() -> bool:
    """A no-op task: submitting one per worker starts them all before the first range."""
    return "defs" in _WORKER


def _start_method(settings: Settings) -> str:
    """``fork`` where the platform has it, else ``spawn``.

    A spawned worker re-imports Dagster and every asset module before its first range: measured
    17 s of a 63 s, 200k-event ingest on the 2-core bench box (no bytecode cache there), against
    milliseconds for a forked one, which inherits the imported modules. Forking is safe here
    because the parent forks before a tick's ranges run, with no Kafka client open and no
    storage connection handed down: each worker opens its own instance from the ref.
    ``SCPRO_INGEST_START_METHOD`` overrides the choice (e.g. ``spawn`` on macOS-like setups).
    """
    if settings.ingest_start_method:
        return settings.ingest_start_method
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def range_executor(
    settings: Settings, instance: dg.DagsterInstance, workers: int
) -> ProcessPoolExecutor | None:
    """Worker processes that land ranges concurrently, like the daemon's concurrent runs.

    ``None`` (land in this process, one range at a time) for one worker or an instance without
    shared storage. All workers are started (and their definitions built) right away, so their
    start-up overlaps the first sensor evaluation instead of delaying the first ranges.
    """
    if workers <= 1 or instance.is_ephemeral:
        return None
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(_start_method(settings)),
        initializer=_worker_init,
        initargs=(settings, dg.serialize_value(instance.get_ref())),
    )
    for _ in range(workers):
        executor.submit(_worker_ready)
    return executor


def retry_failed_ranges(
    defs: dg.Definitions, instance: dg.DagsterInstance, topic: str
) -> tuple[list[str], list[str]]:
    """Re-run ranges whose every attempt failed (up to :data:`MAX_ATTEMPTS` in all).

    Runs whose ``scpro ingest`` process died are failed first (:func:`fail_orphaned_runs`).
    """
    fail_orphaned_runs(instance, topic)
    failed = instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name(topic), statuses=[dg.DagsterRunStatus.FAILURE])
    )
    retried, still_failing = [], []
    for run_key in sorted({r.tags.get(RUN_KEY_TAG) for r in failed} - {None}):
        attempts = _runs_with_key(instance, run_key)
        if any(r.status != dg.DagsterRunStatus.FAILURE for r in attempts):
            continue
        if len(attempts) >= MAX_ATTEMPTS:
            still_failing.append(run_key)
            continue
        latest = attempts[0]
        tags = {**latest.tags, "scpro/retry_of": latest.run_id}
        ok = _execute(defs, instance, topic, dict(latest.run_config), tags)
        (retried if ok else still_failing).append(run_key)
    return retried, still_failing


def ingest_once(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    topics: tuple[str, ...] = TOPICS,
    executor: Executor | None = None,
) -> list[TopicTick]:
    """Evaluate each topic's sensor once and execute the runs it requests.

    With an ``executor`` (see :func:`range_executor`) the requested ranges land concurrently;
    cursors are stored once every topic's ranges have been requested, as the daemon does.
    One evaluation at a time per instance (:func:`tick_lock`).
    """
    with tick_lock(instance), unpaced():
        return _ingest_once(defs, instance, topics, executor)


@contextlib.contextmanager
def tick_lock(instance: dg.DagsterInstance) -> Iterator[None]:
    """Hold the instance's ingest lock: one ``scpro ingest`` tick at a time, across processes.

    Between "has this range's run key run?" and the run's creation there is a window: two ticks
    on one cursor inside it both run the range (measured: two ``scpro ingest --once`` started
    together ran a range twice). The daemon never does this because it evaluates a sensor's
    ticks one after another; the lock gives ``scpro ingest`` the same guarantee. It is an
    ``flock`` on a file in the instance's folder, released by the kernel if the process dies.
    """
    path = Path(instance.root_directory) / ".scpro-ingest.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def evaluate_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, store: CursorStore
) -> Any:
    """Evaluate sensor ``name`` once from its stored cursor, recording its asset events.

    As the daemon does; the caller runs what it asks for and stores the new cursor. Returns
    Dagster's tick data (``run_requests``, ``asset_events``, ``cursor``, ``skip_message``), whose
    class is not in Dagster's public API.
    """
    with dg.build_sensor_context(
        instance=instance,
        cursor=store.get(),
        definitions=defs,
        sensor_name=name,
        resources=defs.resources,
    ) as context:
        data = defs.resolve_sensor_def(name).evaluate_tick(context)
    for event in data.asset_events or []:
        instance.report_runless_asset_event(event)
    return data


def _ingest_once(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    topics: tuple[str, ...],
    executor: Executor | None,
) -> list[TopicTick]:
    ticks = []
    pending: list[tuple[TopicTick, str, object]] = []
    for topic in topics:
        name = sensor_name(topic)
        tick = TopicTick(topic)
        tick.retried, retry_failures = retry_failed_ranges(defs, instance, topic)
        tick.failed += retry_failures
        store = CursorStore(instance, name)
        data = evaluate_sensor(defs, instance, name, store)
        tick.skip_reason = data.skip_message
        for request in data.run_requests or []:
            tick.requested.append(request.run_key)
            if _runs_with_key(instance, request.run_key):
                tick.skipped_existing.append(request.run_key)
                continue
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_TAG: name}
            if executor is None:
                ok = _execute(defs, instance, topic, dict(request.run_config), tags)
                (tick.succeeded if ok else tick.failed).append(request.run_key)
            else:
                future = executor.submit(_worker_execute, topic, dict(request.run_config), tags)
                pending.append((tick, request.run_key, future))
        store.set(data.cursor)
        tick.cursor = data.cursor
        ticks.append(tick)
    for tick, run_key, future in pending:
        (tick.succeeded if future.result() else tick.failed).append(run_key)  # type: ignore[attr-defined]
    return ticks


def ingest_until_caught_up(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    topics: tuple[str, ...] = TOPICS,
    max_ticks: int = 1000,
    settings: Settings | None = None,
    workers: int = 1,
) -> list[TopicTick]:
    """Tick until no topic has anything new to request (backlogs take several ticks).

    ``workers`` > 1 lands ranges in that many processes (needs ``settings`` to rebuild the
    definitions there).
    """
    executor = range_executor(settings, instance, workers) if settings else None
    all_ticks: list[TopicTick] = []
    try:
        for _ in range(max_ticks):
            ticks = ingest_once(defs, instance, topics, executor)
            all_ticks += ticks
            if not any(t.requested or t.retried for t in ticks):
                break
    finally:
        if executor is not None:
            executor.shutdown()
    return all_ticks
