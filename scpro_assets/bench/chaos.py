"""Chaos against the real broker, real Dagster runs and the real snapshot readers.

Each scenario produces known events, injects one fault at a moment it makes sure of (a landing
run is *in the middle* of writing its temporary Parquet file, or a publication is swapping
``current`` under readers), lets SCPro recover the way it does in production (run retries, the
next sensor tick, a restarted daemon), and then accounts for every produced offset by reading
the lake back: each one must be in ``raw`` or ``quarantine`` exactly once. The outcome carries
the figures ``scpro bench --only chaos`` reports (``chaos.faults_survived``, ``events_lost``,
``reader_errors``); ``tests/test_chaos.py`` runs small versions of the same scenarios.

Faults are injected, never simulated: processes are killed with SIGKILL, the broker is stopped and
started, the raw folder is a size-limited tmpfs. The only instrumentation is
:func:`slow_landing_writes`, which pauses after each chunk a landing run writes so that a kill
lands mid-write on a machine of any speed instead of racing a sub-second run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from scpro_assets.settings import REPO_ROOT, Settings

SECTION = "chaos"
TOPIC = "payments"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
#: Every poison message lands in quarantine, so scenarios check both halves of the accounting.
POISON = b'{"event_id": '


@dataclass
class FaultOutcome:
    """What one fault did to the produced events, read back from the lake."""

    fault: str
    produced: int = 0
    landed: int = 0
    quarantined: int = 0
    lost: int = 0
    duplicates: int = 0
    wrong_event: int = 0
    reader_errors: int = 0
    reads: int = 0
    #: Why the scenario itself could not finish (it then did not survive).
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        """Every event accounted for exactly once, and every read answered."""
        return (
            self.error is None
            and self.lost == 0
            and self.duplicates == 0
            and self.wrong_event == 0
            and self.reader_errors == 0
        )

    def figures(self) -> dict[str, Any]:
        """The outcome as flat figures for the report."""
        return {
            "produced": self.produced,
            "landed": self.landed,
            "quarantined": self.quarantined,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reader_errors": self.reader_errors,
            "survived": self.survived,
            **({"error": self.error} if self.error else {}),
            **self.detail,
        }


# --- events and accounting ----------------------------------------------------------------------


def payment(i: int) -> bytes:
    """The ``i``-th payment event, with an event id of its own."""
    from scpro_assets.sources.common import make_event

    event = make_event(
        "chaos",
        "payment_captured",
        T0 + timedelta(seconds=i),
        (i,),
        f"order-{i}",
        order_id=f"order-{i}",
        payment_type="card",
        amount=float(i % 500) + 0.5,
    )
    return event.to_json()


def produce(
    settings: Settings, first: int, count: int, poison_every: int = 0, partition: int = 0
) -> dict[int, str | None]:
    """Publish payments ``first .. first+count-1`` to one partition, acknowledged by the broker.

    Every ``poison_every``-th message is undecodable instead. Returns ``{index: event_id}``
    (``None`` for poison), where ``index`` is the offset when the partition started empty at
    ``first``.
    """
    from scpro_assets.kafka.clients import producer

    sender = producer(settings.kafka)
    produced: dict[int, str | None] = {}
    topic = settings.kafka.topic_name(TOPIC)
    for i in range(first, first + count):
        if poison_every and i % poison_every == poison_every - 1:
            value, event_id = POISON, None
        else:
            value = payment(i)
            event_id = json.loads(value)["event_id"]
        sender.send(topic, value=value, partition=partition)
        produced[i] = event_id
    sender.flush()
    sender.close()
    return produced


def lake_rows(base: Path, columns: list[str]) -> list[dict]:
    """Rows of every committed range file of the topic under ``base`` (raw or quarantine).

    Globs exactly as readers do (``partition-*/*.parquet``): a temporary file is not data.
    """
    files = sorted((base / TOPIC).glob("partition-*/*.parquet"))
    return [row for f in files for row in pq.read_table(f, columns=columns).to_pylist()]


def account(settings: Settings, produced: dict[int, str | None], outcome: FaultOutcome) -> None:
    """Fill ``outcome`` from the lake: each produced offset must be landed or quarantined once.

    ``produced`` is ``{offset: event_id}`` of partition 0. A landed row must carry the event id
    produced at its offset (``wrong_event`` otherwise); an offset seen twice, or one never
    produced, is a duplicate.
    """
    raw = lake_rows(settings.raw_dir, ["partition", "offset", "event_id"])
    bad = lake_rows(settings.quarantine_dir, ["partition", "offset"])
    seen = Counter((r["partition"], r["offset"]) for r in raw + bad)
    outcome.produced = len(produced)
    outcome.landed, outcome.quarantined = len(raw), len(bad)
    outcome.lost = sum(1 for offset in produced if (0, offset) not in seen)
    outcome.duplicates = sum(n - 1 for n in seen.values()) + sum(
        1 for (p, o) in seen if p != 0 or o not in produced
    )
    outcome.wrong_event = sum(1 for r in raw if produced.get(r["offset"]) != r["event_id"])
    landed_ids = Counter(r["event_id"] for r in raw)
    outcome.duplicates += sum(n - 1 for n in landed_ids.values())
    outcome.detail["temp_files_left"] = len(temp_files(settings))


def temp_files(settings: Settings) -> list[Path]:
    """Temporary Parquet files under the lake (what an interrupted write leaves)."""
    found: list[Path] = []
    for base in (settings.raw_dir, settings.quarantine_dir):
        if base.is_dir():
            found += base.rglob(".*.tmp")
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.02)


def slow_landing_writes(chunk_events: int, pause_s: float) -> None:
    """Land in chunks of ``chunk_events`` and pause ``pause_s`` after writing each one.

    Instrumentation for the kill scenarios only (imported by their subprocesses and by the chaos
    code location): a landing run stays in the middle of its write long enough for a kill to
    land there on a fast machine, as it would on a slow disk.
    """
    from scpro_assets.ingest import landing

    landing.CHUNK_EVENTS = chunk_events
    write = landing._AtomicParquet.write

    def paused_write(self: landing._AtomicParquet, table: Any) -> None:
        write(self, table)
        time.sleep(pause_s)

    landing._AtomicParquet.write = paused_write  # type: ignore[method-assign]


def _child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a child process working on ``settings``' home and topics."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "SCPRO_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "SCPRO_KAFKA_BOOTSTRAP": settings.kafka.bootstrap_servers,
        "SCPRO_TOPIC_PREFIX": settings.kafka.topic_prefix,
        **extra,
    }


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a child started in its own session, and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def _instance(settings: Settings) -> contextlib.AbstractContextManager[dg.DagsterInstance]:
    """A throwaway Dagster instance (sqlite) under ``settings``' home."""
    folder = settings.home / "dagster-chaos"
    folder.mkdir(parents=True, exist_ok=True)
    return dg.instance_for_test(temp_dir=str(folder))


def _ingest_defs(settings: Settings, max_events_per_run: int | None = None) -> dg.Definitions:
    """The landing code location on ``settings``, optionally with smaller ranges."""
    from scpro_assets.definitions.landing import build_ingest_definitions, ingest_resources

    resources = ingest_resources(settings)
    if max_events_per_run is not None:
        kafka = resources["kafka"]
        resources["kafka"] = kafka.model_copy(update={"max_events_per_run": max_events_per_run})
    return build_ingest_definitions(settings, resources)


def _catch_up(settings: Settings, instance: dg.DagsterInstance) -> list:
    """``scpro ingest``'s loop: retry failed ranges and land what the sensor asks for."""
    from scpro_assets.runner import ingest_until_caught_up

    return ingest_until_caught_up(_ingest_defs(settings), instance, topics=(TOPIC,), max_ticks=20)


# --- (1) kill -9 a landing run in the middle of its write ----------------------------------------

#: ``scpro ingest --once`` with slowed writes: argv = chunk events, pause seconds.
_INGEST_CHILD = (
    "import sys\n"
    "from scpro_assets.bench.chaos import slow_landing_writes\n"
    "slow_landing_writes(int(sys.argv[1]), float(sys.argv[2]))\n"
    "from scpro_assets.cli import main\n"
    "main(['ingest', '--once', '--topic', 'payments'])\n"
)


def kill_landing_mid_write(
    settings: Settings, events: int, chunk_events: int = 200, pause_s: float = 0.05
) -> FaultOutcome:
    """SIGKILL ``scpro ingest --once`` while its run writes a range, then run ``scpro ingest``.

    The kill comes once the run's temporary raw file exists and before the range's commit record
    (the raw file) does. The killed run stays "started" in the instance: the next ingest must
    see that its process is gone, fail it and retry the range, never skip it as already run.
    """
    from scpro_assets.ingest.landing import OffsetRange, partition_dir
    from scpro_assets.kafka.clients import ensure_topics

    outcome = FaultOutcome("kill -9 a landing run mid-write")
    ensure_topics(settings.kafka, partitions=1)
    produced = produce(settings, 0, events, poison_every=97)
    committed = (
        partition_dir(settings.raw_dir, TOPIC, 0) / OffsetRange(TOPIC, 0, 0, events).file_name
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    with (settings.home / "killed-ingest.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", _INGEST_CHILD, str(chunk_events), str(pause_s)],
            env=_child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: bool(temp_files(settings)) or child.poll() is not None, 120, "write")
            outcome.detail["killed_mid_write"] = child.poll() is None and not committed.exists()
            outcome.detail["temp_files_at_kill"] = len(temp_files(settings))
            _kill_group(child)
        finally:
            _kill_group(child)
    outcome.detail["exit_signal"] = -child.returncode if child.returncode else 0
    outcome.detail["committed_before_retry"] = committed.exists()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        ticks = _catch_up(settings, instance)
        outcome.detail["ranges_retried"] = sum(len(t.retried) for t in ticks)
        outcome.detail["runs_failed"] = sum(len(t.failed) for t in ticks)
        outcome.detail["runs_left_in_flight"] = _runs_in_flight(instance)
    account(settings, produced, outcome)
    return outcome


def _runs_in_flight(instance: dg.DagsterInstance) -> int:
    from scpro_assets.instance import IN_FLIGHT

    return instance.get_runs_count(filters=dg.RunsFilter(statuses=IN_FLIGHT))


# --- (2) kill -9 the Dagster daemon in the middle of a landing run ------------------------------

#: The chaos code location: SCPro's landing location with slowed writes (argv-free: a file).
_CHAOS_LOCATION = """\
from scpro_assets.bench.chaos import slow_landing_writes

slow_landing_writes({chunk_events}, {pause_s})

from scpro_assets.definitions.landing import defs  # noqa: E402
"""

_CHAOS_WORKSPACE = """\
load_from:
  - python_file:
      relative_path: chaos_location.py
      attribute: defs
      location_name: scpro_ingest
      working_directory: {home}
"""


def _scale_run_monitoring(config: Path, max_runtime_s: int) -> None:
    """Shorten run monitoring's limits in SCPro's ``dagster.yaml`` (and make the file ours)."""
    from scpro_assets.instance import MARKER

    lines = [line for line in config.read_text().splitlines() if not line.startswith(MARKER)]
    text = "\n".join(lines) + "\n"
    for key, value in (("max_runtime_seconds", max_runtime_s), ("poll_interval_seconds", 2)):
        text = re.sub(rf"{key}: \d+", f"{key}: {value}", text)
    config.write_text(text)


def _start_daemon(settings: Settings, log_name: str) -> subprocess.Popen:
    """``dagster-daemon run`` on the chaos workspace, in its own session (killable as a group)."""
    with (settings.home / log_name).open("wb") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-daemon")),
                "run",
                "-w",
                "chaos-workspace.yaml",
            ],
            cwd=settings.home,
            env=_child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def daemon_killed_mid_run(
    settings: Settings,
    events: int,
    chunk_events: int = 200,
    pause_s: float = 0.05,
    whole_group: bool = False,
    max_runtime_s: int | None = None,
    timeout_s: float = 240.0,
) -> FaultOutcome:
    """SIGKILL ``dagster-daemon`` while a landing run it launched writes its range; restart it.

    The daemon runs the Kafka sensors and the run queue of SCPro's instance (``dagster.yaml``
    as ``scpro`` writes it, run retries on) on the landing code location. It is killed once the
    run's temporary raw file exists. More events are produced while it is down; the restarted
    daemon must carry on from the sensor's cursor. ``whole_group`` kills the daemon's code
    server and the run's process with it (a crash of the whole machine's Dagster), else only the
    daemon's own process: the run it was writing can then only end by run monitoring's
    ``max_runtime_seconds`` (``max_runtime_s`` scales SCPro's three hours down for a test) and
    be retried. Ends when every offset has landed and no run is in flight.
    """
    from scpro_assets.ingest.landing import OffsetRange, landed_watermarks, partition_dir
    from scpro_assets.instance import prepare_dagster_home
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.runner import RUN_KEY_TAG

    outcome = FaultOutcome("kill -9 the Dagster daemon mid-run")
    ensure_topics(settings.kafka, partitions=1)
    config = prepare_dagster_home(settings) / "dagster.yaml"
    if max_runtime_s is not None:
        _scale_run_monitoring(config, max_runtime_s)
    location = _CHAOS_LOCATION.format(chunk_events=chunk_events, pause_s=pause_s)
    (settings.home / "chaos_location.py").write_text(location)
    workspace = _CHAOS_WORKSPACE.format(home=settings.home)
    (settings.home / "chaos-workspace.yaml").write_text(workspace)
    produced = produce(settings, 0, events, poison_every=97)
    committed = (
        partition_dir(settings.raw_dir, TOPIC, 0) / OffsetRange(TOPIC, 0, 0, events).file_name
    )
    daemons = [_start_daemon(settings, "daemon-1.log")]
    try:
        wait_for(lambda: bool(temp_files(settings)), timeout_s, "the daemon's landing run")
        outcome.detail["killed_mid_write"] = not committed.exists()
        if whole_group:
            os.killpg(daemons[0].pid, signal.SIGKILL)
        else:
            os.kill(daemons[0].pid, signal.SIGKILL)
        daemons[0].wait(timeout=30)
        produced |= produce(settings, events, events, poison_every=97)
        daemons.append(_start_daemon(settings, "daemon-2.log"))
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:

            def settled() -> bool:
                landed = landed_watermarks(settings.raw_dir, TOPIC, {0: 0}).get(0, 0)
                return landed >= 2 * events and _runs_in_flight(instance) == 0

            started = time.monotonic()
            wait_for(settled, timeout_s, "every range landed after the restart")
            outcome.detail["converged_s"] = round(time.monotonic() - started, 1)
            runs = instance.get_runs(filters=dg.RunsFilter(job_name=f"land_{TOPIC}"))
            statuses = Counter(r.status.value for r in runs)
            per_key = Counter(
                r.tags.get(RUN_KEY_TAG) for r in runs if "dagster/parent_run_id" not in r.tags
            )
    finally:
        for daemon in daemons:
            _kill_group(daemon)
    outcome.detail["runs"] = dict(statuses)
    outcome.detail["run_keys_requested_twice"] = sum(1 for n in per_key.values() if n > 1)
    account(settings, produced, outcome)
    return outcome


# --- (3) broker restart in the middle of a large range -----------------------------------------


def broker_restart_mid_range(
    settings: Settings, broker: Any, events: int, chunk_events: int = 100
) -> FaultOutcome:
    """Restart the broker while a landing run is half-way through a range of several chunks.

    Half the range is published first: the run lands it chunk by chunk and then waits for the
    rest, so it is provably in the middle of its range when the broker stops. The rest is
    published once the broker is back. The run either waits the restart out or fails and is
    retried with the same range, as the instance's run retries do; either way it lands once.
    """
    from scpro_assets.ingest import landing, runs
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.runner import retry_failed_ranges

    outcome = FaultOutcome("broker restart mid-range")
    ensure_topics(settings.kafka, partitions=1)
    half = events // 2
    produced = produce(settings, 0, half, poison_every=89)
    defs = _ingest_defs(settings)
    job = defs.resolve_job_def(f"land_{TOPIC}")
    whole = [landing.OffsetRange(TOPIC, 0, 0, events)]
    config = runs.run_config(whole)
    tags = {"dagster/run_key": runs.run_key(whole), **runs.run_tags(whole)}
    previous_chunk = landing.CHUNK_EVENTS
    landing.CHUNK_EVENTS = chunk_events
    try:
        with _instance(settings) as instance:
            with ThreadPoolExecutor(1) as pool:
                run = pool.submit(
                    job.execute_in_process,
                    run_config=config,
                    instance=instance,
                    tags=tags,
                    raise_on_error=False,
                )
                wait_for(lambda: bool(temp_files(settings)) or run.done(), 120, "a landing write")
                outcome.detail["stopped_mid_range"] = not run.done()
                started = time.monotonic()
                try:
                    broker.stop()
                finally:
                    broker.start()
                outcome.detail["broker_down_s"] = round(time.monotonic() - started, 1)
                produced |= produce(settings, half, events - half, poison_every=89)
                first_ok = run.result().success
            outcome.detail["first_run_succeeded"] = first_ok
            if not first_ok:
                retried, failing = retry_failed_ranges(defs, instance, TOPIC)
                outcome.detail["retried"] = len(retried)
                outcome.detail["still_failing"] = len(failing)
    finally:
        landing.CHUNK_EVENTS = previous_chunk
    account(settings, produced, outcome)
    return outcome


# --- (4) disk full during a Parquet write -------------------------------------------------------


@contextlib.contextmanager
def size_limited_folder(path: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` (needs root); unmount it afterwards.

    Raises ``subprocess.CalledProcessError`` if the mount is not permitted: a disk-full test must
    fail when it cannot create the condition, never pass without it.
    """
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        result = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _fill(folder: Path, leave_bytes: int) -> Path:
    """Fill ``folder``'s file system until about ``leave_bytes`` are free; the filler file."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler


def disk_full_mid_write(settings: Settings, events: int, leave_bytes: int = 96_000) -> FaultOutcome:
    """Land a range into a raw folder that fills up during the write; free space; land again.

    The raw folder is a 2 MB tmpfs with about ``leave_bytes`` free: the range's Parquet does not
    fit. The run must fail cleanly (no raw file, which is the range's commit record, and no
    temporary file left behind), and the next ``scpro ingest`` after space is freed retries the
    range and lands it once.
    """
    from scpro_assets.ingest import landing
    from scpro_assets.kafka.clients import ensure_topics

    outcome = FaultOutcome("disk full during a Parquet write")
    ensure_topics(settings.kafka, partitions=1)
    produced = produce(settings, 0, events, poison_every=101)
    previous_chunk = landing.CHUNK_EVENTS
    landing.CHUNK_EVENTS = 500
    try:
        with (
            size_limited_folder(settings.raw_dir) as raw,
            _instance(settings) as instance,
        ):
            filler = _fill(raw, leave_bytes)
            from scpro_assets.runner import ingest_once

            (first,) = ingest_once(_ingest_defs(settings), instance, topics=(TOPIC,))
            outcome.detail["failed_while_full"] = len(first.failed)
            outcome.detail["files_while_full"] = sorted(
                str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file()
            )
            outcome.detail["quarantine_files_while_full"] = len(
                list((settings.quarantine_dir / TOPIC).rglob("*.parquet"))
            )
            filler.unlink()
            ticks = _catch_up(settings, instance)
            outcome.detail["ranges_retried"] = sum(len(t.retried) for t in ticks)
            account(settings, produced, outcome)
    finally:
        landing.CHUNK_EVENTS = previous_chunk
    return outcome


# --- (5) two sensor ticks on one cursor ---------------------------------------------------------


def slow_run_key_lookup(pause_s: float) -> None:
    """Pause before each "has this run key run?" lookup of ``scpro ingest``.

    Instrumentation for the concurrent-ticks scenario: it widens the window between a tick's
    lookup and its launch, so two ticks overlap there on a machine of any speed.
    """
    from scpro_assets import runner

    lookup = runner._runs_with_key

    def slow(instance: dg.DagsterInstance, run_key: str) -> list[dg.DagsterRun]:
        time.sleep(pause_s)
        return lookup(instance, run_key)

    runner._runs_with_key = slow


#: ``scpro ingest --once`` that starts when the file ``argv[2]`` appears (argv[1]: its "ready"
#: file; argv[3]: the run-key lookup pause).
_TICK_CHILD = (
    "import sys, time, pathlib\n"
    "from scpro_assets.bench.chaos import slow_run_key_lookup\n"
    "from scpro_assets.cli import main\n"
    "slow_run_key_lookup(float(sys.argv[3]))\n"
    "pathlib.Path(sys.argv[1]).touch()\n"
    "deadline = time.monotonic() + 300\n"
    "while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:\n"
    "    time.sleep(0.005)\n"
    "main(['ingest', '--once', '--topic', 'payments'])\n"
)


def concurrent_ticks(
    settings: Settings, events: int, ranges: int = 4, widen_s: float = 0.3
) -> FaultOutcome:
    """Two ``scpro ingest --once`` on one instance at the same moment, so on one cursor.

    Both read the same stored cursor and would plan the same ranges. Each range must get exactly
    one run (run keys dedupe, as the daemon guarantees) and land once. The processes start their
    ticks together (after their imports), and ``widen_s`` pauses each run-key lookup so the two
    ticks overlap whatever the machine's speed.
    """
    from scpro_assets.instance import prepare_dagster_home
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.runner import RUN_KEY_TAG

    outcome = FaultOutcome("two sensor ticks on one cursor")
    ensure_topics(settings.kafka, partitions=1)
    produced = produce(settings, 0, events, poison_every=53)
    # The instance exists before the ticks, as in any deployment: two processes creating a fresh
    # sqlite instance at once race in Dagster's own schema migration (alembic heads).
    dg.DagsterInstance.from_config(str(prepare_dagster_home(settings))).dispose()
    env = _child_env(settings, SCPRO_MAX_EVENTS_PER_RUN=str(-(-events // ranges)))
    go = settings.home / "go"
    children: list[subprocess.Popen] = []
    try:
        for n in range(2):
            log = (settings.home / f"tick-{n}.log").open("wb")
            ready = settings.home / f"ready-{n}"
            argv = [sys.executable, "-c", _TICK_CHILD, str(ready), str(go), str(widen_s)]
            children.append(
                subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        wait_for(
            lambda: all((settings.home / f"ready-{n}").exists() for n in range(2)),
            180,
            "both ticks to be ready",
        )
        go.touch()
        outcome.detail["exit_codes"] = [child.wait(timeout=300) for child in children]
    finally:
        for child in children:
            _kill_group(child)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=f"land_{TOPIC}"))
        per_key = Counter(r.tags.get(RUN_KEY_TAG) for r in runs)
        materializations = instance.fetch_materializations(
            dg.AssetKey(f"raw_{TOPIC}"), limit=1000
        ).records
    outcome.detail["runs"] = len(runs)
    outcome.detail["run_keys"] = len(per_key)
    outcome.detail["run_keys_run_twice"] = sum(1 for n in per_key.values() if n > 1)
    outcome.detail["materializations"] = len(materializations)
    account(settings, produced, outcome)
    return outcome


# --- (6) dashboard sessions reading while snapshots swap ---------------------------------------


def _warehouses(folder: Path, sizes: tuple[int, ...]) -> list[tuple[Path, int]]:
    """Warehouse files that dbt could have built, one per size: ``(file, orders)``."""
    from scpro_assets.testing.sample_snapshot import SampleSpec, publish

    built = []
    for i, orders in enumerate(sizes):
        version = publish(folder / f"build-{i}", SampleSpec(orders=orders, version=f"w{i}"))
        built.append((version / "warehouse.duckdb", orders))
    return built


def readers_while_publishing(
    settings: Settings, sessions: int = 20, publications: int = 10, sizes: tuple[int, ...] = ()
) -> FaultOutcome:
    """``sessions`` dashboard sessions read through the data store while snapshots swap.

    A publisher copies a freshly "built" warehouse over ``warehouse.duckdb`` and publishes it with
    :func:`publish_snapshot` (which also prunes old versions), ``publications`` times. Every
    session, each with its own filters, loops over the store's figures: the version it resolves,
    the KPI cards and the at-risk list. A read is correct when its order count is one a
    publication held (each warehouse has a different number of orders): a complete version.
    """
    from panel_app.store import DataStore, FilterState
    from scpro_assets.warehouse.serving import publish_snapshot

    outcome = FaultOutcome("dashboard sessions reading while snapshots swap")
    sizes = sizes or tuple(300 + 37 * i for i in range(3))
    builds = _warehouses(settings.home / "builds", sizes)
    settings.home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(builds[0][0], settings.warehouse_path)
    publish_snapshot(settings)
    valid_orders = set(sizes)
    done = threading.Event()
    regions = ("All", "North America", "Western Europe", "South Asia")

    def session(n: int) -> tuple[int, list[str], set[str]]:
        store = DataStore(serving_current=settings.serving_current)
        state = FilterState(period="All time")
        filtered = FilterState(period="Last 90 days", region=regions[n % len(regions)])
        reads, errors, versions = 0, [], set()
        while not done.is_set() or reads == 0:
            try:
                store.follow()  # as an open page does: one version per refresh
                versions.add(store.snapshot().version)
                orders = int(store.kpis(state).at["orders", "current"])
                store.kpis(filtered)
                store.at_risk(filtered, limit=20)
                if orders not in valid_orders:
                    errors.append(f"read {orders} orders: no publication held that many")
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")
            reads += 1
            time.sleep(0.01)  # a person between clicks, not a spinning loop
        return reads, errors, versions

    started = time.monotonic()
    with ThreadPoolExecutor(sessions) as pool:
        futures = [pool.submit(session, n) for n in range(sessions)]
        try:
            for i in range(publications):
                path, _orders = builds[(i + 1) % len(builds)]
                shutil.copyfile(path, settings.warehouse_path)
                publish_snapshot(settings)
        finally:
            done.set()
        results = [f.result() for f in futures]
    errors = [e for _reads, errs, _v in results for e in errs]
    outcome.reads = sum(reads for reads, _e, _v in results)
    outcome.reader_errors = len(errors)
    outcome.detail["sessions"] = sessions
    outcome.detail["publications"] = publications + 1
    outcome.detail["versions_seen"] = len(set().union(*(v for _r, _e, v in results)))
    outcome.detail["reads"] = outcome.reads
    outcome.detail["seconds"] = round(time.monotonic() - started, 1)
    outcome.detail["first_errors"] = errors[:5]
    return outcome


# --- the benchmark ------------------------------------------------------------------------------


def bench_chaos(settings: Settings, report: Any, repetitions: int = 3) -> list[FaultOutcome]:
    """``scpro bench --only chaos``: every fault, larger and repeated; totals in the report.

    Runs on its own broker (one scenario restarts it) and its own homes under
    ``SCPRO_HOME/bench``. The disk-full scenario needs root to mount its tmpfs; without it the
    report says so instead of counting it as survived.
    """
    from scpro_assets.bench.common import bench_settings
    from scpro_assets.kafka.broker import EmbeddedKafka, free_port_pair

    print(f"\n{SECTION}", flush=True)
    broker_home = bench_settings(settings)
    port = free_port_pair()
    broker_kafka = broker_home.kafka.model_copy(update={"bootstrap_servers": f"localhost:{port}"})
    broker = EmbeddedKafka(broker_home.model_copy(update={"kafka": broker_kafka}))
    outcomes: list[FaultOutcome] = []
    broker.start()
    try:
        bootstrap = broker.bootstrap
        for _ in range(repetitions):
            scenarios: list[tuple[str, Callable[[Settings], FaultOutcome]]] = [
                ("kill_landing", lambda s: kill_landing_mid_write(s, 60_000, 2_000, 0.05)),
                ("kill_daemon", lambda s: daemon_killed_mid_run(s, 40_000, 2_000, 0.05)),
                (
                    "crash_daemon",
                    lambda s: daemon_killed_mid_run(
                        s, 40_000, 2_000, 0.05, whole_group=True, max_runtime_s=60
                    ),
                ),
                ("broker_restart", lambda s: broker_restart_mid_range(s, broker, 60_000, 2_000)),
                ("concurrent_ticks", lambda s: concurrent_ticks(s, 40_000, ranges=8)),
                ("readers", lambda s: readers_while_publishing(s, 20, 40)),
            ]
            if os.geteuid() == 0:
                scenarios.append(("disk_full", lambda s: disk_full_mid_write(s, 20_000)))
            else:
                report.add(SECTION, disk_full="not run: mounting a tmpfs needs root")
            for name, scenario in scenarios:
                run = bench_settings(settings)
                kafka = run.kafka.model_copy(update={"bootstrap_servers": bootstrap})
                run = run.model_copy(update={"kafka": kafka})
                try:
                    outcome = scenario(run)
                except Exception as error:  # a fault SCPro did not survive: report, go on
                    outcome = FaultOutcome(name, error=f"{type(error).__name__}: {error}")
                outcomes.append(outcome)
                print(f"  {name}: {outcome.figures()}", flush=True)
                shutil.rmtree(run.home, ignore_errors=True)
    finally:
        broker.stop()
        shutil.rmtree(broker_home.home, ignore_errors=True)
    report.add(
        SECTION,
        faults_injected=len(outcomes),
        faults_survived=sum(o.survived for o in outcomes),
        events_produced=sum(o.produced for o in outcomes),
        events_lost=sum(o.lost for o in outcomes),
        duplicates=sum(o.duplicates for o in outcomes),
        reader_errors=sum(o.reader_errors for o in outcomes),
        reads=sum(o.reads for o in outcomes),
    )
    return outcomes
