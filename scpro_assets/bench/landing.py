"""Landing runs per hour under a steady stream, with the real Dagster daemon (issue #17 item 7).

Every Dagster run costs the same whatever it lands (a process that imports the landing code
location, a run record, an event-log shard): under a stream, the run *rate* is landing's cost.
This benchmark starts ``dagster-daemon`` on the landing code location only, with SCPro's
``dagster.yaml`` (run queue, landing slots, run retries), streams synthetic orders and their
payment, tracking and log events at the ``latency`` benchmark's pace into topics of several
partitions, and counts the landing runs the Kafka sensors asked for. Then it waits until every
offset has landed and checks the accounting (landed + quarantined = produced).

``code_root`` runs the daemon on another checkout of SCPro (an older commit, to compare the
same stream before and after a change); the stream and the figures are this checkout's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from scpro_assets.bench.common import bench_settings, landing_metadata
from scpro_assets.bench.report import Report
from scpro_assets.settings import REPO_ROOT, TOPICS, Settings

SECTION = "landing runs under a stream: dagster-daemon, Kafka sensors every 5 s"

_WORKSPACE = """\
load_from:
  - python_module:
      module_name: scpro_assets.definitions.landing
      attribute: defs
      location_name: scpro_ingest
      working_directory: {code_root}
"""


def _start_daemon(run: Settings, code_root: Path) -> subprocess.Popen:
    """``dagster-daemon run`` on the landing location of ``code_root``, in its own session."""
    workspace = run.home / "landing-workspace.yaml"
    workspace.write_text(_WORKSPACE.format(code_root=code_root))
    env = {
        **os.environ,
        "PYTHONPATH": str(code_root),
        "SCPRO_HOME": str(run.home),
        "DAGSTER_HOME": str(run.dagster_home),
        "SCPRO_KAFKA_BOOTSTRAP": run.kafka.bootstrap_servers,
        "SCPRO_TOPIC_PREFIX": run.kafka.topic_prefix,
    }
    with (run.home / "daemon.log").open("wb") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
            cwd=run.home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the daemon's session (its code server and runs), SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _end_offsets(run: Settings) -> dict[str, dict[int, int]]:
    from scpro_assets.kafka.clients import end_offsets

    return {t: {p: end for p, (_b, end) in end_offsets(run.kafka, t).items()} for t in TOPICS}


def _caught_up(run: Settings, ends: dict[str, dict[int, int]]) -> bool:
    from scpro_assets.ingest.landing import landed_watermarks

    for topic, partitions in ends.items():
        marks = landed_watermarks(run.raw_dir, topic, dict.fromkeys(partitions, 0))
        if any(marks.get(p, 0) < end for p, end in partitions.items()):
            return False
    return True


def _stream(run: Settings, seconds: float, speed: float) -> int:
    """Replay synthetic orders at ``speed`` business hours/s for ``seconds``; events sent."""
    from scpro_assets.replay import replay
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    stop_at = time.monotonic() + seconds
    sent = {"events": 0}

    def on_event(_event) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() > stop_at:
            raise KeyboardInterrupt
        sent["events"] += 1

    config = SyntheticConfig(orders=1_000_000, seed=29, orders_per_day=200.0)
    with contextlib.suppress(KeyboardInterrupt):
        replay(generate(config), run.kafka, speed=speed, on_event=on_event)
    return sent["events"]


def bench_landing_runs(
    settings: Settings,
    report: Report,
    seconds: float = 180.0,
    partitions: int = 3,
    speed: float = 1.0,
    code_root: Path = REPO_ROOT,
    catch_up_timeout: float = 300.0,
) -> dict[str, object]:
    """Stream for ``seconds`` into ``partitions`` partitions a topic; count the landing runs."""
    import dagster as dg
    import pyarrow.parquet as pq

    from scpro_assets.instance import prepare_dagster_home
    from scpro_assets.kafka.clients import ensure_topics

    run = bench_settings(settings)
    run.home.mkdir(parents=True, exist_ok=True)
    ensure_topics(run.kafka, partitions=partitions)
    prepare_dagster_home(run)
    load_before = os.getloadavg()[0]
    daemon = _start_daemon(run, code_root)
    try:
        time.sleep(10.0)  # the daemon's first sensor ticks find empty topics
        started = time.time()
        streamer = threading.Thread(target=_stream, args=(run, seconds, speed), daemon=True)
        streamer.start()
        streamer.join()
        stream_end = time.time()
        ends = _end_offsets(run)
        deadline = time.monotonic() + catch_up_timeout
        while not (caught_up := _caught_up(run, ends)) and time.monotonic() < deadline:
            time.sleep(1.0)
        caught_up_s = time.time() - stream_end
        load_after = os.getloadavg()[0]
    finally:
        _stop(daemon)
    with dg.DagsterInstance.from_config(str(run.dagster_home)) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"scpro/kind": "landing"}))
        materializations = landing_metadata(instance)
    in_stream = [r for r in records if started <= r.create_timestamp.timestamp() <= stream_end]
    run_seconds = sum(r.end_time - r.start_time for r in records if r.start_time and r.end_time)
    produced = sum(sum(p.values()) for p in ends.values())
    landed = sum(pq.ParquetFile(f).metadata.num_rows for f in run.raw_dir.rglob("*.parquet"))
    quarantined = sum(
        pq.ParquetFile(f).metadata.num_rows for f in run.quarantine_dir.rglob("*.parquet")
    )
    landing_s = sum(float(m["seconds"].value) for m in materializations)
    figures: dict[str, object] = {
        "code": str(code_root),
        "topics_x_partitions": f"{len(TOPICS)} x {partitions}",
        "stream_seconds": round(stream_end - started, 1),
        "events_produced": produced,
        "load_average_1min_before": load_before,
        "load_average_1min_after": load_after,
        "landing_runs": len(records),
        "landing_runs_during_stream": len(in_stream),
        "landing_runs_per_hour": len(in_stream) / ((stream_end - started) / 3600.0),
        "failed_runs": sum(1 for r in records if r.dagster_run.status.value == "FAILURE"),
        "events_per_run": produced / len(records) if records else 0.0,
        "landing_us_per_event_in_runs": landing_s / produced * 1e6 if produced else 0.0,
        "run_seconds_per_event_us": run_seconds / produced * 1e6 if produced else 0.0,
        "run_seconds_total": run_seconds,
        # On a box too busy to keep up, the daemon is stopped with ranges still to land.
        "caught_up": caught_up,
        "caught_up_after_stream_s": caught_up_s,
        "accounted_exactly": landed + quarantined == produced,
    }
    report.add(SECTION, **figures)
    return figures
