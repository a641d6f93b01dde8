"""How the platform keeps itself fresh: one automation policy for the whole asset graph.

Kafka sensors land raw ranges (``sensors/``); everything downstream follows by declarative
automation, so new events reach the dashboard without anyone clicking:

- **Follow the data**: the Spark clean layer, the dbt models, the scores and the serving
  snapshot follow every upstream update (:data:`FOLLOW_STREAM`), in one run at a time
  (:class:`AutomationIdle`): while a run carries the data from the clean layer to the snapshot,
  the raw ranges landed meanwhile wait for the next run, which takes them all at once.
- **Models** train when they are missing, and again on new features while they have none in
  service or lose to their baseline, at most every ten minutes (:data:`TRAIN_WHEN_NEEDED`);
  after that they retrain on the weekly schedule and when the drift sensor asks for it (both in
  ``ml_assets.automation``), not on every new range, which would chase noise.

The policy is applied here, by asset key and group, rather than in each asset module, so one page
says how the whole graph moves and the asset modules stay free of scheduling concerns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import dagster as dg

from scpro_assets.instance import runs_in_flight
from scpro_assets.settings import BUSINESS_TOPICS

#: Tag on every run the automation sensor asks for; the instance runs one such run at a time.
AUTOMATION_TAG = "scpro/automation"
AUTOMATION_RUN_TAGS = {AUTOMATION_TAG: "follow"}

#: Groups whose assets follow their upstream data.
FOLLOW_GROUPS: frozenset[str] = frozenset({"clean", "warehouse", "ml", "serving"})

#: Assets that train models: automation trains them until they serve (see module docstring).
TRAINING_ASSETS: frozenset[str] = frozenset({"delivery_time_model", "late_risk_model"})

#: The dashboard's main marts carry a freshness policy: warn after 1 hour without an update,
#: fail after 2 (while events flow they refresh every few minutes).
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)
)

#: The marts with :data:`MART_FRESHNESS` (the dashboard's main tables and the snapshot).
FRESHNESS_CHECKED: frozenset[str] = frozenset(
    {"fct_deliveries", "fct_orders", "kpi_delivery_daily", "serving_snapshot"}
)


class AutomationIdle(dg.AutomationCondition):
    """True when none of the automation's own runs (tagged :data:`AUTOMATION_TAG`) is in flight.

    On two cores, runs side by side starve each other: measured under a steady stream, the
    automation kept two Spark JVMs and a dbt busy at once and split every cycle over several
    runs, each importing the code location (event-to-dashboard p50 599 s). Dagster's own
    ``in_progress`` does not prevent that: an asset stops being in progress as soon as it is
    materialized, while the rest of its run still runs, so the clean layer was asked for again
    while the previous run was still in dbt. One run at a time, each carrying everything stale,
    is the shortest path from a raw range to the snapshot. Runs that people or schedules start
    do not carry the tag and are not waited for.
    """

    @property
    def name(self) -> str:
        """The condition's name in the Dagster UI's evaluation tree."""
        return "automation_idle"

    @property
    def description(self) -> str:
        """What the condition means, as the Dagster UI shows it."""
        return "no automation run is queued or in progress"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        """Every candidate when the automation is idle, none while one of its runs is in flight."""
        busy = runs_in_flight(context.asset_graph_view.instance, AUTOMATION_RUN_TAGS)
        subset = context.get_empty_subset() if busy else context.candidate_subset
        return dg.AutomationResult(context, true_subset=subset)


#: How often a model whose last check failed may train again on new features.
RETRAIN_FAILED_CRON = "*/10 * * * *"

#: Train a model that does not exist yet once its features do, and train again on new features
#: while its last checks failed, at most once per :data:`RETRAIN_FAILED_CRON` tick: at the
#: start of a stream there is no delivered order to learn from, so the training publishes "not
#: trained yet" with a failed ``beats_baseline`` check (and the scores publish empty, so the data
#: still reaches the dashboard), and the model follows the stream until it serves and beats its
#: baseline. Training on every cycle cost 1-2.5 minutes of the two cores per cycle (measured),
#: all of it in front of the snapshot. A model that serves and passes is then retrained only on
#: schedule or drift (module docstring). Unlike ``on_missing`` (which fires only when an asset
#: *becomes* missing), ``missing`` holds while the model is missing; a training that errors is
#: retried on new features, not in a loop.
TRAIN_WHEN_NEEDED = (
    (
        dg.AutomationCondition.missing()
        | (
            dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed())
            & dg.AutomationCondition.any_deps_updated().since_last_handled()
            & dg.AutomationCondition.cron_tick_passed(RETRAIN_FAILED_CRON).since_last_handled()
        )
    )
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & (~dg.AutomationCondition.execution_failed() | dg.AutomationCondition.any_deps_updated())
    & AutomationIdle()
).with_label("train_when_needed")


#: For every asset that follows its upstream data. Dagster's ``eager`` waits until no upstream
#: run is in progress, but under a stream one always is: landing runs before the clean layer
#: (which therefore never started), and before the snapshot some dbt or scoring run (measured:
#: no snapshot for 9 minutes of a steady stream while the marts kept refreshing). This follows
#: every upstream update since the asset was last *requested*, as soon as the automation is idle;
#: upstream data is always read as a whole published version (atomic Parquet swaps, pinned dbt
#: inputs), so running beside a landing run reads the previous ranges, and the next run brings
#: the new ones.
#:
#: Not "since last handled" (requested *or updated*): when a run ends, the tick that sees its
#: updates also asks for the clean layer again (raw ranges landed meanwhile), and the marts' own
#: updates then cancelled their new trigger on that same tick, so they sat out every other run
#: (measured: a snapshot every second run), and a raw range that landed just after the clean
#: step could wait for the next one. Updates made by a run that also carried the asset do not
#: count as upstream updates (``any_deps_updated`` leaves them out), so a run never asks for
#: itself again.
FOLLOW_STREAM = (
    dg.AutomationCondition.in_latest_time_window()
    & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since(
        dg.AutomationCondition.newly_requested() | dg.AutomationCondition.initial_evaluation()
    )
    & ~dg.AutomationCondition.in_progress()
    & AutomationIdle()
).with_label("follow_stream")


class EventsLanded(dg.AutomationCondition):
    """True once a business topic's raw asset has been materialized (there is data to build on)."""

    @property
    def name(self) -> str:
        """The condition's name in the Dagster UI's evaluation tree."""
        return "events_landed"

    @property
    def description(self) -> str:
        """What the condition means, as the Dagster UI shows it."""
        return "a business topic has landed events"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        """Every candidate once a ``raw_<topic>`` of the business topics has a materialization."""
        instance = context.asset_graph_view.instance
        landed = any(
            instance.get_latest_materialization_event(dg.AssetKey(f"raw_{topic}")) is not None
            for topic in BUSINESS_TOPICS
        )
        subset = context.candidate_subset if landed else context.get_empty_subset()
        return dg.AutomationResult(context, true_subset=subset)


#: dbt models over the ``actions`` topic: they build from an empty placeholder until the first
#: action lands, and ``at_risk_orders`` reads them, so they must exist from the first cycle. Under
#: :data:`FOLLOW_STREAM` alone they were never requested while no action had landed (their
#: upstream never updates), and the demo's first dbt build failed on the missing relation.
BUILD_WHILE_MISSING: frozenset[str] = frozenset({"stg_raw__order_actions", "fct_order_actions"})

#: :data:`FOLLOW_STREAM`, and also while the asset is missing once events have landed (asked
#: again after each request until it exists, so a failed first build heals).
FOLLOW_STREAM_OR_MISSING = (
    FOLLOW_STREAM
    | (
        (dg.AutomationCondition.missing() & EventsLanded()).since(
            dg.AutomationCondition.newly_requested() | dg.AutomationCondition.initial_evaluation()
        )
        & ~dg.AutomationCondition.in_progress()
        & AutomationIdle()
    )
).with_label("follow_stream_or_missing")


def condition_for(spec: dg.AssetSpec) -> dg.AutomationCondition | None:
    """The automation condition SCPro gives ``spec`` (None: left to sensors or people)."""
    name = spec.key.path[-1]
    if name in TRAINING_ASSETS:
        return TRAIN_WHEN_NEEDED
    if name in BUILD_WHILE_MISSING:
        return FOLLOW_STREAM_OR_MISSING
    if spec.group_name in FOLLOW_GROUPS:
        return FOLLOW_STREAM
    return None


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    condition = condition_for(spec)
    if condition is not None and spec.automation_condition is None:
        spec = spec.replace_attributes(automation_condition=condition)
    if spec.key.path[-1] in FRESHNESS_CHECKED and spec.freshness_policy is None:
        spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
    return spec


def apply_automation(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
) -> Sequence[dg.AssetsDefinition | dg.AssetSpec]:
    """``assets`` with SCPro's policy set wherever an asset has no condition of its own.

    External assets (the Kafka topics) are left alone: nothing materializes them.
    """
    result: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for asset in assets:
        if isinstance(asset, dg.AssetSpec) or not asset.is_materializable:
            result.append(asset)
        else:
            result.extend(dg.map_asset_specs(_with_policy, [asset]))
    return result


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the conditions above (running by default)."""
    return dg.AutomationConditionSensorDefinition(
        "scpro_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        # AutomationIdle is SCPro's own condition, so the code location evaluates it.
        use_user_code_server=True,
        # The instance retries failed runs (for landing ranges); an automation run that failed
        # is not retried as it was: its assets are asked for again with the next new data.
        # AUTOMATION_TAG marks the runs AutomationIdle waits for; the instance also runs at
        # most one at a time (instance.py), should two ticks ever overlap.
        run_tags={"dagster/retry_on_asset_or_op_failure": "false", **AUTOMATION_RUN_TAGS},
        description="Keeps clean, warehouse, ML and serving assets following new raw data.",
    )
