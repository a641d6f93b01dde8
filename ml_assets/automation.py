"""When the models retrain: every week, and as soon as a score-drift check fails.

The weekly schedule retrains and re-scores everything in the ``ml`` group. The drift sensor reads
the latest ``score_drift`` check evaluations of the two score assets; a failed evaluation it has
not acted on yet (the cursor holds the run ids it has seen) requests one retrain run, keyed by
that evaluation's run so a restart of the daemon never requests it twice. A check that had too
few scores to judge says "not judged" (``ml_assets.checks.not_judged``) and asks for nothing: a
retrain cannot fix a PSI computed on a handful of rows.
"""

import json

import dagster as dg

ml_selection = dg.AssetSelection.groups("ml")

ml_retrain_job = dg.define_asset_job(
    "ml_retrain",
    selection=ml_selection,
    description="Retrain the models, re-score orders, segments and forecast, refresh the registry.",
)

weekly_ml_retrain = dg.ScheduleDefinition(
    name="weekly_ml_retrain",
    job=ml_retrain_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    description="Every Monday 03:00 UTC: retrain on the week's new deliveries.",
)

DRIFT_CHECKS = (
    dg.AssetCheckKey(dg.AssetKey("late_risk_scores"), "score_drift"),
    dg.AssetCheckKey(dg.AssetKey("delivery_time_predictions"), "score_drift"),
)


def judged_failure(evaluation: dg.AssetCheckEvaluation | None) -> bool:
    """Whether ``evaluation`` is a drift check that failed on enough rows to judge.

    A "not judged" evaluation passes already; its ``judged: false`` metadata is checked too, so
    a not-judged result never triggers a retrain whatever its pass flag.
    """
    if evaluation is None or evaluation.passed:
        return False
    judged = evaluation.metadata.get("judged")
    return judged is None or judged.value is not False


@dg.sensor(
    job=ml_retrain_job,
    minimum_interval_seconds=300,
    description="Requests a retrain when a score-drift check fails.",
)
def ml_drift_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Ask for one retrain per failed drift evaluation not seen before."""
    seen: list[str] = json.loads(context.cursor) if context.cursor else []
    storage = context.instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(list(DRIFT_CHECKS))
    failed = []
    for key, record in latest.items():
        if record is None or record.run_id in seen:
            continue
        evaluation = record.event.asset_check_evaluation if record.event else None
        if judged_failure(evaluation):
            failed.append((key, record.run_id))
    if not failed:
        return dg.SkipReason("no new failed score-drift evaluation")
    runs = sorted({run_id for _, run_id in failed})
    names = ", ".join(sorted(k.asset_key.to_user_string() for k, _ in failed))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"drift-{runs[-1]}", tags={"scpro/reason": f"score drift on {names}"}
            )
        ],
        cursor=json.dumps((seen + runs)[-50:]),
    )


ml_schedules = [weekly_ml_retrain]
ml_sensors = [ml_drift_sensor]
ml_jobs = [ml_retrain_job]
