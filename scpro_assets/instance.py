"""The project's Dagster instance (``SCPRO_HOME/dagster``), configured for exactly-once ingest."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from scpro_assets.settings import Settings

#: Run statuses that hold a run slot or will: queued, being launched, or running.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

#: How a ``dagster.yaml`` that scpro wrote (and may rewrite when SCPro's defaults change) begins.
MARKER = "# Written by scpro"

DAGSTER_YAML = f"""\
{MARKER} (rewritten when SCPro's defaults change; delete this line to keep your edits).
# DAGSTER_HOME for `dagster dev` and `scpro ingest`.
# Failed landing runs are retried with their original offset range (exactly once, nothing lost).
run_retries:
  enabled: true
  max_retries: 3
  retry_on_asset_or_op_failure: true
# Two cores: a handful of runs at a time keeps sensors' ticks fast. Landing runs (tagged with
# their topic) take at most two of the slots, so a backlog never starves the automation runs
# (Spark, models, dbt, snapshot) that carry the data on to the dashboard.
# The automation's runs (tagged scpro/automation) go one at a time: while one runs, the next
# gathers everything that went stale into a single run from raw to snapshot. Side by side they
# were two Spark JVMs and a dbt on two cores, each cycle split over two runs (measured: p50
# event-to-dashboard 599 s with them side by side).
# A landing run lasts about 5 s, so the queue is looked at every second (Dagster's default is
# 5 s, which left the landing slots idle most of the time under a stream).
run_queue:
  max_concurrent_runs: 4
  dequeue_interval_seconds: 1
  tag_concurrency_limits:
    - key: "scpro/topic"
      limit: 2
    - key: "scpro/automation"
      limit: 1
# A run whose process died with its code server (a crash, an OOM kill, a reboot) cannot report
# its end: it would stay "started" for ever, hold a run slot, keep the automation waiting, and
# its landing range would never land (the run key is taken; measured in tests/test_chaos.py).
# Run monitoring fails such a run after max_runtime_seconds, far beyond any healthy run (landing
# takes seconds, the automation's run minutes), and run retries re-run it with the same range.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  max_runtime_seconds: 10800
  poll_interval_seconds: 30
# The daemon evaluates every freshness policy (the dashboard's marts: warn after 1 h, fail after
# 2 h) and records each asset's state; the scpro_stale_mart_alerts sensor alerts on WARN/FAIL.
# On by default in Dagster 1.13; said here so that turning it off is a visible choice.
freshness:
  enabled: true
telemetry:
  enabled: false
"""


def runs_in_flight(instance: dg.DagsterInstance, tags: dict[str, str]) -> int:
    """Runs carrying ``tags`` that are queued or running (landing backpressure, automation)."""
    return instance.get_runs_count(filters=dg.RunsFilter(tags=tags, statuses=IN_FLIGHT))


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with its ``dagster.yaml``.

    A ``dagster.yaml`` that scpro wrote (its first line is :data:`MARKER`) is brought up to date;
    one without the marker is the user's and is kept as it is.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(MARKER) and current != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML)
    return home
