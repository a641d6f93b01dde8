"""Data engineers' alert on failed runs, through the alert outbox and channels.

A landing run that fails is retried (Dagster's run retries, then the Kafka sensor's gap healing),
but each failure is worth a look: one alert per failed run, whatever its location, with the
error. The alert id is the run id, so a sensor evaluated twice on one failure alerts once.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from scpro_assets.alerts import Alert, send_alert
from scpro_assets.resources import LakeResource

#: The run's tags an alert repeats (what was running, and which attempt).
SUBJECT_TAGS = ("scpro/topic", "scpro/partition", "scpro/range", "scpro/attempt", "dagster/run_key")


def run_failure_alert(run: dg.DagsterRun, error: str | None) -> Alert:
    """The alert for one failed run."""
    subject = {"run_id": run.run_id, "job": run.job_name}
    subject |= {tag: run.tags[tag] for tag in SUBJECT_TAGS if tag in run.tags}
    retry = run.tags.get("dagster/retry_number")
    return Alert(
        id=f"run_failed:{run.run_id}",
        kind="run_failed",
        severity="error",
        title=f"SCPro: run of {run.job_name} failed"
        + (f" ({run.tags['dagster/run_key']})" if "dagster/run_key" in run.tags else ""),
        body=(
            f"Run {run.run_id} of job {run.job_name} failed"
            + (f" (retry {retry})" if retry else "")
            + f": {error or 'no error message'}"
        ),
        subject=subject,
    )


@dg.run_failure_sensor(
    name="scpro_run_failure_alerts",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sends one alert per failed run (any job, any location) to the alert outbox "
        "(SCPRO_HOME/outbox/alerts.ndjson) and the SCPRO_ALERT_URLS channels."
    ),
)
def run_failure_alerts(context: dg.RunFailureSensorContext, lake: LakeResource) -> None:
    """Alert once per failed run; a channel that fails is recorded, never raised."""
    error = context.failure_event.message if context.failure_event else None
    sent = send_alert(run_failure_alert(context.dagster_run, error), Path(lake.home))
    if sent is not None:
        context.log.info(f"alerted on failed run {context.dagster_run.run_id}")
