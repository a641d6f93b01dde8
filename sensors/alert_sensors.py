"""Alert sensors: failed runs, checks and stale marts to data engineers, new risks to operations.

Alerts go through the alert outbox and channels (:mod:`scpro_assets.alerts`).

Every alert has an id that says what makes two alerts the same one, and the outbox sends an id
once, across restarts, so a sensor that evaluates the same state twice alerts once:

- ``scpro_run_failure_alerts``: one alert per failed run, whatever its location, with the error
  (id: the run). A landing run that fails is retried (Dagster's run retries, then the Kafka
  sensor's gap healing), but each failure is worth a look.
- ``scpro_check_failure_alerts``: one alert per failed ``ERROR`` check per materialization it
  judged (id: asset, check, the materialization's storage id). Warnings are not alerted (a model
  "not judged yet" at the start of a stream is one), nor the landing gap check, which has its own
  alert after N attempts (``scpro_assets.ingest.gaps``).
- ``scpro_stale_mart_alerts``: the freshness state that the daemon's freshness evaluation
  (``freshness: enabled`` in ``dagster.yaml``) records for every asset with a freshness policy:
  a warning when a mart passes its warn window, an error when it passes its fail window, each
  once per stale period (id: asset, state and the time it entered that state).
- ``scpro_high_risk_alerts``: after each serving snapshot, one alert listing the orders newly in
  the high-risk band (:mod:`scpro_assets.risk_alerts`). It is a sensor on the snapshot's
  materialization rather than a step of the snapshot asset, so a slow or failing channel never
  delays or fails the data's way to the dashboard; the sensor's cursor moves only once the
  evaluation succeeded, so a failed one is retried on the next tick, and the ledger makes a
  repeated evaluation harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from scpro_assets.alerts import Alert, safe_text, send_alert
from scpro_assets.ingest.gaps import CHECK_NAME as GAP_CHECK_NAME
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


# --- failed checks -----------------------------------------------------------------------------

#: Checks that raise their own alerts (the landing gap check alerts after N attempts).
SELF_ALERTING_CHECKS: frozenset[str] = frozenset({GAP_CHECK_NAME})

#: Longest check description quoted in an alert (dbt's failures quote data).
DESCRIPTION_CHARS = 400


def check_failure_alert(record: object) -> Alert | None:
    """The alert for an asset check's latest execution, or None when it is not a failed error.

    ``record`` is an ``AssetCheckExecutionRecord``. The alert is per check and per materialization
    the check judged; a check run on its own (no materialization) is per evaluation.
    """
    event = getattr(record, "event", None)
    evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
        return None
    if evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return None
    if evaluation.check_name in SELF_ALERTING_CHECKS:
        return None
    asset = evaluation.asset_key.to_user_string()
    target = evaluation.target_materialization_data
    if target is not None:
        judged, key = f"materialization {target.storage_id}", f"m{target.storage_id}"
    else:
        judged, key = f"evaluation {record.id}", f"e{record.id}"
    run = record.run_id or "no run"
    description = safe_text(evaluation.description or "no description", DESCRIPTION_CHARS)
    return Alert(
        id=f"check_failed:{asset}:{evaluation.check_name}:{key}",
        kind="check_failed",
        severity="error",
        title=f"SCPro: check {evaluation.check_name} on {asset} failed",
        body=f"Check {evaluation.check_name} of {asset} failed ({judged}, run {run}): "
        f"{description}",
        subject={"asset": asset, "check": evaluation.check_name, "run_id": record.run_id},
    )


def build_check_failure_sensor(minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    """``scpro_check_failure_alerts`` (``minimum_interval_seconds`` is shortened by tests)."""

    @dg.sensor(
        name="scpro_check_failure_alerts",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Sends one alert per failed ERROR asset check per materialization it judged to the "
            "alert outbox and the SCPRO_ALERT_URLS channels (data engineers)."
        ),
    )
    def check_failure_alerts(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SkipReason:
        """Alert on the latest evaluation of every check of this location that failed."""
        keys = list(context.repository_def.asset_graph.asset_check_keys)
        latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        sent = [
            alert.id
            for alert in map(check_failure_alert, latest.values())
            if alert is not None and send_alert(alert, Path(lake.home)) is not None
        ]
        return dg.SkipReason(f"alerted {len(sent)} failed checks: {sent}" if sent else "no news")

    return check_failure_alerts


# --- stale marts -------------------------------------------------------------------------------

#: Freshness states alerted, with the alert's severity.
STALE_STATES = {"WARN": "warning", "FAIL": "error"}


def _window(policy: object) -> str:
    """``"warns after 1:00:00, fails after 2:00:00"`` for a time-window policy, else its name."""
    fail = getattr(policy, "fail_window", None)
    if fail is None:
        return type(policy).__name__
    warn = getattr(policy, "warn_window", None)
    warns = f"warns after {warn.to_timedelta()}, " if warn else ""
    return f"{warns}fails after {fail.to_timedelta()} without an update"


def stale_mart_alert(
    key: dg.AssetKey,
    state: str,
    since: datetime,
    policy: object,
    last_update: datetime | None,
) -> Alert | None:
    """The alert for an asset in freshness state ``state`` since ``since``; None when fresh."""
    severity = STALE_STATES.get(state)
    if severity is None:
        return None
    asset = key.to_user_string()
    updated = f"last updated {last_update:%Y-%m-%d %H:%M} UTC" if last_update else "never updated"
    return Alert(
        id=f"mart_stale:{asset}:{state}:{since.astimezone(UTC).isoformat()}",
        kind="mart_stale",
        severity=severity,
        title=f"SCPro: {asset} is stale ({state.lower()})",
        body=(
            f"{asset} is {'past its fail window' if state == 'FAIL' else 'past its warn window'}"
            f" since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({updated}; its freshness policy "
            f"{_window(policy)}). The dashboard shows old data: look at the automation sensor, "
            "the daemon and the latest runs."
        ),
        subject={"asset": asset, "freshness": state, "since": since.astimezone(UTC).isoformat()},
    )


def build_stale_mart_sensor(minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    """``scpro_stale_mart_alerts`` (``minimum_interval_seconds`` is shortened by tests)."""

    @dg.sensor(
        name="scpro_stale_mart_alerts",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Alerts data engineers when an asset with a freshness policy (the dashboard's marts, "
            "the snapshot) is WARN or FAIL in the daemon's freshness evaluation: once per state "
            "per stale period, to the alert outbox and the SCPRO_ALERT_URLS channels."
        ),
    )
    def stale_mart_alerts(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SkipReason:
        """Alert on every asset of this location whose freshness state is WARN or FAIL."""
        graph = context.repository_def.asset_graph
        policies = {
            key: graph.get(key).freshness_policy
            for key in graph.get_all_asset_keys()
            if graph.get(key).freshness_policy is not None
        }
        records = context.instance.get_freshness_state_records(list(policies))
        sent = []
        for key, record in records.items():
            if record.freshness_state.value not in STALE_STATES:
                continue
            event = context.instance.get_latest_materialization_event(key)
            last = datetime.fromtimestamp(event.timestamp, UTC) if event else None
            alert = stale_mart_alert(
                key, record.freshness_state.value, record.updated_at, policies[key], last
            )
            if alert is not None and send_alert(alert, Path(lake.home)) is not None:
                sent.append(alert.id)
        return dg.SkipReason(f"alerted {len(sent)} stale assets: {sent}" if sent else "no news")

    return stale_mart_alerts


# --- orders newly at high risk -----------------------------------------------------------------

SNAPSHOT_KEY = dg.AssetKey("serving_snapshot")


def _snapshot_warehouse(home: Path, entry: dg.EventLogEntry) -> tuple[str, Path]:
    """The version and DuckDB file of the snapshot a materialization published.

    The version folder the materialization names, or ``serving/current`` when it was pruned
    meanwhile (a newer snapshot is then current, and holds what is at risk now).
    """
    materialization = entry.asset_materialization
    metadata = materialization.metadata if materialization else {}
    path = metadata.get("path")
    folder = Path(path.value) if path is not None else None
    if folder is None or not (folder / "warehouse.duckdb").is_file():
        folder = (home / "serving" / "current").resolve()
    return folder.name, folder / "warehouse.duckdb"


def build_high_risk_sensor(minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """``scpro_high_risk_alerts`` (``minimum_interval_seconds`` is shortened by tests)."""

    @dg.asset_sensor(
        asset_key=SNAPSHOT_KEY,
        name="scpro_high_risk_alerts",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "After each serving snapshot, one alert listing the open orders newly in the "
            "high-risk band (once per order and band, for good: SCPRO_HOME/outbox/"
            "risk_alerts.sqlite), to the alert outbox and the SCPRO_ALERT_URLS_OPS channels."
        ),
    )
    def high_risk_alerts(
        context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry, lake: LakeResource
    ) -> dg.SkipReason:
        """Alert the snapshot's orders newly at high risk (retried on the next tick on error)."""
        from scpro_assets.risk_alerts import alert_new_risky_orders

        home = Path(lake.home)
        version, warehouse = _snapshot_warehouse(home, asset_event)
        outcomes = alert_new_risky_orders(home, warehouse, version)
        summary = ", ".join(f"{len(o.newly)} of {o.in_band} newly {o.band}" for o in outcomes)
        context.log.info(f"snapshot {version}: {summary}")
        return dg.SkipReason(f"snapshot {version}: {summary}")

    return high_risk_alerts


check_failure_alerts = build_check_failure_sensor()
stale_mart_alerts = build_stale_mart_sensor()
high_risk_alerts = build_high_risk_sensor()

#: The alert sensors of the platform location (the landing location has the run-failure one,
#: which watches every location).
PLATFORM_ALERT_SENSORS = [check_failure_alerts, stale_mart_alerts, high_risk_alerts]
