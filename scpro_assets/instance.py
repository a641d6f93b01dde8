"""The project's Dagster instance (``SCPRO_HOME/dagster``), configured for exactly-once ingest."""

from __future__ import annotations

from pathlib import Path

from scpro_assets.settings import Settings

DAGSTER_YAML = """\
# Written by scpro; DAGSTER_HOME for `dagster dev` and `scpro ingest`.
# Failed landing runs are retried with their original offset range (exactly once, nothing lost).
run_retries:
  enabled: true
  max_retries: 3
  retry_on_asset_or_op_failure: true
# Two cores: a handful of runs at a time keeps sensors' ticks fast. Landing runs (tagged with
# their topic) take at most two of the slots, so a backlog never starves the automation runs
# (Spark, models, dbt, snapshot) that carry the data on to the dashboard.
run_queue:
  max_concurrent_runs: 4
  tag_concurrency_limits:
    - key: "scpro/topic"
      limit: 2
telemetry:
  enabled: false
"""


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with its ``dagster.yaml`` (kept if the user edited it)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
