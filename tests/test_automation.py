"""The platform runs itself: new raw data pulls the clean, ML, dbt and serving assets after it.

These tests evaluate SCPro's declarative automation conditions the way the daemon does, against a
real (temporary) Dagster instance, with materializations reported as the runs would record them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from scpro_assets.automation import AUTOMATION_TAG
from scpro_assets.definitions.platform import build_definitions
from scpro_assets.settings import BUSINESS_TOPICS, TOPICS, KafkaSettings, Settings

RAW = [f"raw_{t}" for t in TOPICS]


@pytest.fixture
def defs(tmp_path: Path) -> dg.Definitions:
    return build_definitions(Settings(home=tmp_path / "scpro", kafka=KafkaSettings()))


def _clock(start: datetime):
    """``minutes -> start + minutes`` (evaluation times for the automation)."""
    return lambda minutes: start + timedelta(minutes=minutes)


def _materialized(instance: dg.DagsterInstance, *names: str) -> None:
    for name in names:
        instance.report_runless_asset_event(dg.AssetMaterialization(name))


def _requested(defs, instance, cursor=None, evaluation_time=None) -> tuple[set[str], object]:
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor, evaluation_time=evaluation_time
    )
    keys = {
        key.to_user_string()
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(key)
    }
    return keys, result.cursor


def _everything(defs) -> list[str]:
    """Every materializable asset, by name."""
    return [k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys]


def _settled(defs, instance: dg.DagsterInstance):
    """Every asset materialized once and seen by a first evaluation (nothing to do): the cursor."""
    _materialized(instance, *_everything(defs))
    requested, cursor = _requested(defs, instance)
    assert requested == set()
    return cursor


def _run_in_progress(defs, instance, name: str, tags: dict[str, str] | None = None):
    """A started run that carries asset ``name`` (as the daemon would have launched it)."""
    return instance.create_run_for_job(
        job_def=defs.resolve_implicit_global_asset_job_def(),
        asset_selection=frozenset({dg.AssetKey(name)}),
        status=dg.DagsterRunStatus.STARTED,
        tags=tags or {},
    )


def test_new_raw_ranges_pull_the_clean_layer_and_nothing_runs_without_data(defs):
    with dg.instance_for_test() as instance:
        requested, cursor = _requested(defs, instance)
        assert requested == set(), "nothing may run before any event has landed"

        _materialized(instance, *RAW)
        requested, cursor = _requested(defs, instance, cursor)
        # The first data pulls the whole chain in one tick: clean layer, first training of the
        # models, scores, marts and the snapshot; the raw layer belongs to the sensors.
        assert {"cleaned_orders", "cleaned_deliveries", "order_features"} <= requested
        assert {"late_risk_model", "delivery_time_model", "customer_segments"} <= requested
        assert {"late_risk_scores", "fct_deliveries", "serving_snapshot"} <= requested
        assert not {f"raw_{t}" for t in TOPICS} & requested

        # Once handled, the same raw data asks for nothing more.
        requested, _ = _requested(defs, instance, cursor)
        assert requested == set()


def test_the_actions_models_are_built_with_the_first_events_before_any_action(defs):
    """``at_risk_orders`` reads the actions models: they come with the first business events,
    though no action has landed yet (``raw_actions`` never materialized)."""
    with dg.instance_for_test() as instance:
        requested, cursor = _requested(defs, instance)
        assert requested == set()

        _materialized(instance, *(f"raw_{t}" for t in BUSINESS_TOPICS))
        requested, cursor = _requested(defs, instance, cursor)
        assert {"stg_raw__order_actions", "fct_order_actions", "at_risk_orders"} <= requested
        assert "raw_actions" not in requested


def test_an_update_flows_to_the_snapshot_in_one_tick_without_retraining(defs):
    with dg.instance_for_test() as instance:
        cursor = _settled(defs, instance)

        # New features arrive: scores, marts and the snapshot follow; the models do not retrain.
        _materialized(instance, "order_features")
        requested, cursor = _requested(defs, instance, cursor)
        assert {"late_risk_scores", "delivery_time_predictions"} <= requested
        assert {"fct_deliveries", "at_risk_orders", "serving_snapshot"} <= requested
        assert not {"late_risk_model", "delivery_time_model"} & requested
        assert not {"cleaned_orders", "raw_orders"} & requested


def test_the_dashboard_marts_carry_a_freshness_policy_and_the_automation_sensor_runs(defs):
    graph = defs.resolve_asset_graph()
    for name in ("fct_deliveries", "kpi_delivery_daily", "serving_snapshot"):
        assert graph.get(dg.AssetKey(name)).freshness_policy is not None, name
    sensor = defs.get_sensor_def("scpro_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _checked(instance: dg.DagsterInstance, name: str, check: str, passed: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=dg.AssetKey(name), check_name=check, passed=passed)
    )


def test_a_model_not_trained_yet_trains_again_on_new_features_every_ten_minutes_at_most(defs):
    """At the start of a stream there is nothing to learn from: the model follows the stream
    until it serves and beats its baseline (at most one training per ten minutes, since each one
    delays the snapshot), then stays put until schedule or drift."""
    everything = _everything(defs)
    at = _clock(datetime(2026, 11, 23, 10, 1))
    with dg.instance_for_test() as instance:
        _materialized(instance, *everything)
        # The first training had too few delivered orders: its check failed ("not judged").
        _checked(instance, "late_risk_model", "beats_baseline", passed=False)
        _checked(instance, "delivery_time_model", "beats_baseline", passed=True)
        requested, cursor = _requested(defs, instance, evaluation_time=at(0))
        assert not {"late_risk_model", "delivery_time_model"} & requested

        # New features two minutes later: no ten-minute mark passed yet, the model waits...
        _materialized(instance, "order_features")
        requested, cursor = _requested(defs, instance, cursor, evaluation_time=at(2))
        assert "order_features" not in requested and "late_risk_scores" in requested
        assert not {"late_risk_model", "delivery_time_model"} & requested
        # ...and trains on the next features after 10:10; the model that passed does not.
        _materialized(instance, "order_features")
        requested, cursor = _requested(defs, instance, cursor, evaluation_time=at(11))
        assert "late_risk_model" in requested
        assert "delivery_time_model" not in requested

        # Trained and judged: new features no longer retrain it, however long after.
        _materialized(instance, "late_risk_model")
        _checked(instance, "late_risk_model", "beats_baseline", passed=True)
        _requested(defs, instance, cursor, evaluation_time=at(12))
        _materialized(instance, "order_features")
        requested, _ = _requested(defs, instance, cursor, evaluation_time=at(40))
        assert not {"late_risk_model", "delivery_time_model"} & requested


def test_while_an_automation_run_is_in_flight_nothing_more_is_asked_for(defs):
    """One automation run at a time: updates that arrive meanwhile wait, then go in one run."""
    with dg.instance_for_test() as instance:
        cursor = _settled(defs, instance)
        carrying = _run_in_progress(defs, instance, "serving_snapshot", {AUTOMATION_TAG: "follow"})
        # Raw ranges and features land meanwhile: nothing is asked for while it is in flight.
        _materialized(instance, "raw_orders", "order_features")
        requested, cursor = _requested(defs, instance, cursor)
        assert requested == set()

        # The run ends: everything that went stale goes in one evaluation, raw to snapshot.
        instance.report_run_failed(instance.get_run_by_id(carrying.run_id))
        requested, cursor = _requested(defs, instance, cursor)
        assert {"cleaned_orders", "order_features", "late_risk_scores"} <= requested
        assert {"fct_orders", "serving_snapshot"} <= requested

        # A run someone started by hand (no automation tag) is not waited for.
        _, cursor = _requested(defs, instance, cursor)  # the tick after a request resets it
        _run_in_progress(defs, instance, "dim_dates")
        _materialized(instance, "raw_orders")
        requested, _ = _requested(defs, instance, cursor)
        assert "cleaned_orders" in requested


def test_automation_runs_are_not_retried_as_they_were(defs):
    """The instance retries failed landing runs; automation asks again with the next data."""
    sensor = defs.get_sensor_def("scpro_automation")
    assert sensor.run_tags["dagster/retry_on_asset_or_op_failure"] == "false"
    # ...and its runs carry the tag the instance uses to run them one at a time.
    assert sensor.run_tags[AUTOMATION_TAG] == "follow"


def test_the_snapshot_follows_a_mart_update_while_another_mart_is_being_rebuilt(defs):
    """Under a stream some upstream run is always in progress. Dagster's ``eager`` waits for
    every in-progress dependency, which starved the snapshot; SCPro's ``follow_stream`` does not
    (the in-progress mart publishes its new version with the next snapshot)."""
    with dg.instance_for_test() as instance:
        cursor = _settled(defs, instance)
        rebuilding = _run_in_progress(defs, instance, "fct_orders")
        snapshot = defs.resolve_asset_graph().get(dg.AssetKey("serving_snapshot"))
        assert dg.AssetKey("fct_orders") in snapshot.parent_keys

        _materialized(instance, "fct_deliveries")
        requested, cursor = _requested(defs, instance, cursor)
        assert "serving_snapshot" in requested
        assert "fct_orders" not in requested  # its own run is still in progress

        # The snapshot is published; when the rebuilding run ends, its mart pulls it again.
        _materialized(instance, "serving_snapshot")
        requested, cursor = _requested(defs, instance, cursor)
        assert "serving_snapshot" not in requested
        instance.report_run_failed(instance.get_run_by_id(rebuilding.run_id))
        _materialized(instance, "fct_orders")
        requested, _ = _requested(defs, instance, cursor)
        assert "serving_snapshot" in requested


def test_when_a_run_ends_with_new_raw_data_the_next_run_goes_all_the_way_to_the_snapshot(defs):
    """The tick after a run sees the run's own updates and the raw ranges landed meanwhile:
    the next run must take the whole chain again, not only the clean layer."""
    with dg.instance_for_test() as instance:
        cursor = _settled(defs, instance)
        # The run carried everything downstream of raw; a raw range landed as it finished.
        _materialized(instance, *(n for n in _everything(defs) if not n.startswith("raw_")))
        _materialized(instance, "raw_orders")
        requested, cursor = _requested(defs, instance, cursor)
        assert {"cleaned_orders", "order_features", "late_risk_scores"} <= requested
        assert {"stg_clean__orders", "fct_orders", "serving_snapshot"} <= requested

        # Nothing new: the requested run's own updates do not ask for another one.
        _requested(defs, instance, cursor)
        _materialized(instance, *(n for n in _everything(defs) if not n.startswith("raw_")))
        requested, _ = _requested(defs, instance, cursor)
        assert requested == set()
