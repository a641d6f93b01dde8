"""The ML assets materialize in Dagster on a small synthetic clean lake, with their checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from ml_assets import registry
from ml_assets.assets import ml_assets
from ml_assets.data import read_clean
from ml_assets.outputs import ML_OUTPUTS, read_output
from ml_assets.scoring import orders_to_score, score_delivery_time, score_late_risk
from scpro_assets.resources import LakeResource
from scpro_assets.settings import KafkaSettings, Settings


def test_ml_assets_materialize_with_checks(tmp_path: Path, dagster_instance):
    from scpro_assets.sources.synthetic import SyntheticConfig, generate
    from scpro_assets.testing.offline import build_clean_lake

    settings = Settings(home=tmp_path / "scpro", kafka=KafkaSettings(), spark_master="local[2]")
    # 25 orders a day spreads 1,500 orders over two months: enough days for weekly lags.
    config = SyntheticConfig(
        orders=1500, seed=5, orders_per_day=25.0, start=datetime(2024, 1, 1, tzinfo=UTC)
    )
    # The last days' events are held back, so some orders are still on their way.
    events = sorted(generate(config))
    build_clean_lake(events[: int(len(events) * 0.95)], settings)
    small = {"hidden": [16], "max_epochs": 15, "patience": 4}
    result = dg.materialize(
        ml_assets,
        instance=dagster_instance,
        resources={"lake": LakeResource(home=str(settings.home))},
        run_config={
            "ops": {"delivery_time_model": {"config": small}, "late_risk_model": {"config": small}}
        },
    )
    assert result.success

    for name in ML_OUTPUTS:
        assert read_output(settings.ml_dir, name).num_rows > 0, name
        [materialization] = result.asset_materializations_for_node(name)
        columns = materialization.metadata["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == read_output(settings.ml_dir, name).schema.names
    late = read_output(settings.ml_dir, "late_risk_scores").to_pandas()
    days = read_output(settings.ml_dir, "delivery_time_predictions").to_pandas()
    features = read_clean(settings.clean_dir, "order_features").frame
    assert len(late) == len(days) == len(features)
    # the flag follows the status: every delivered or canceled order is closed
    delivered_or_canceled = len(features.loc[features["label_known_at"].notna()])
    assert (~late["is_open"]).sum() >= delivered_or_canceled
    assert (late.set_index("order_id")["is_open"] == days.set_index("order_id")["is_open"]).all()

    reg = read_output(settings.ml_dir, "model_registry").to_pandas()
    assert set(reg["task"]) == {"delivery_time", "late_risk", "segments", "demand"}
    for task, scores in (("late_risk", late), ("delivery_time", days)):
        row = reg.loc[reg["model_version"] == scores["model_version"].iloc[0]].iloc[0]
        assert row["task"] == task and row["is_serving"]
        assert row["artifact_sha256"] == registry.file_sha256(Path(row["artifact_path"]))
        assert "order_features" in row["data_version"]

    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert {
        ("delivery_time_model", "beats_baseline"),
        ("delivery_time_model", "no_leakage"),
        ("delivery_time_model", "interval_coverage"),
        ("late_risk_model", "beats_baseline"),
        ("late_risk_model", "no_leakage"),
        ("late_risk_scores", "score_drift"),
        ("delivery_time_predictions", "score_drift"),
        ("customer_segments", "beats_baseline"),
        ("demand_forecast", "beats_baseline"),
    } <= set(checks)
    assert checks[("late_risk_model", "no_leakage")].passed
    assert checks[("delivery_time_model", "no_leakage")].passed
    assert checks[("delivery_time_model", "beats_baseline")].passed
    # the ETA range's coverage on the time split is measured, in the check and the registry
    coverage = checks[("delivery_time_model", "interval_coverage")].metadata
    served_days = reg.loc[reg["model_version"] == days["model_version"].iloc[0]].iloc[0]
    assert coverage["coverage"].value == pytest.approx(served_days["interval_coverage"])
    assert served_days["interval_level"] == 0.8 and served_days["interval_width_days"] > 0
    assert days[["predicted_delivery_date", "eta_low", "eta_high"]].notna().all().all()
    drift = checks[("late_risk_scores", "score_drift")].metadata
    assert drift["psi"].value >= 0
    # the last 30 days' orders are compared: enough rows to judge
    assert drift["judged"].value is True and drift["rows"].value >= drift["min_rows"].value

    materialized = dagster_instance.get_latest_materialization_event(
        dg.AssetKey("late_risk_model")
    ).asset_materialization
    assert "test_roc_auc" in materialized.metadata and "serving_reason" in materialized.metadata

    # The first scoring scored every order; scoring again with nothing new scores none, serves
    # the same rows, and judges drift on the same population (the served open orders' scores).
    scores = ("late_risk_scores", "delivery_time_predictions")
    for name in scores:
        [first] = result.asset_materializations_for_node(name)
        assert first.metadata["scoring"].value == "full"
        assert first.metadata["orders_scored"].value == len(features)
        assert first.metadata["orders_served"].value == len(features)
    again = dg.materialize(
        [a for a in ml_assets if a.key.path[-1] in scores],
        instance=dagster_instance,
        resources={"lake": LakeResource(home=str(settings.home))},
    )
    assert again.success
    for name in scores:
        [second] = again.asset_materializations_for_node(name)
        assert second.metadata["scoring"].value == "incremental"
        assert second.metadata["orders_scored"].value == 0
        assert second.metadata["orders_served"].value == len(features)
    assert read_output(settings.ml_dir, "late_risk_scores").to_pandas().equals(late)
    redrift = {
        e.asset_key.to_user_string(): e.metadata for e in again.get_asset_check_evaluations()
    }["late_risk_scores"]
    assert redrift["rows"].value == drift["rows"].value
    assert redrift["psi"].value == pytest.approx(drift["psi"].value)

    # A micro-batch as the clean layer commits a small one from the driver (delta-rs) into the
    # tables Spark built: three orders' features recomputed, two orders delivered, one reopened.
    # The next cycle scores those orders only, and serves what a full scoring would.
    status = read_clean(settings.clean_dir, "cleaned_deliveries", ["order_id", "status"]).frame
    on_the_way = status.loc[~status["status"].isin(["delivered", "canceled"]), "order_id"]
    delivered = status.loc[status["status"] == "delivered", "order_id"]
    assert len(on_the_way) >= 2 and len(delivered) >= 1
    recomputed = features["order_id"].head(3).tolist()
    _update(settings, "order_features", recomputed, {"scheduled_days": "t.scheduled_days + 1"})
    _update(settings, "cleaned_deliveries", on_the_way.head(2).tolist(), {"status": "'delivered'"})
    _update(settings, "cleaned_deliveries", delivered.tail(1).tolist(), {"status": "'in_transit'"})
    changed = {*recomputed, *on_the_way.head(2), *delivered.tail(1)}
    batch = dg.materialize(
        [a for a in ml_assets if a.key.path[-1] in scores],
        instance=dagster_instance,
        resources={"lake": LakeResource(home=str(settings.home))},
    )
    assert batch.success
    features = read_clean(settings.clean_dir, "order_features").frame
    for task, name in (
        ("late_risk", "late_risk_scores"),
        ("delivery_time", "delivery_time_predictions"),
    ):
        [third] = batch.asset_materializations_for_node(name)
        assert third.metadata["scoring"].value == "incremental"
        assert third.metadata["orders_scored"].value == len(changed)
        assert third.metadata["orders_served"].value == len(features)
        served = read_output(settings.ml_dir, name).to_pandas().set_index("order_id").sort_index()
        frame, is_open = orders_to_score(settings.clean_dir)
        entry = registry.serving_entry(settings.models_dir, task)
        full = (  # the reasons are compared in tests/test_ml.py, on a smaller lake
            score_late_risk(frame, is_open, entry, explain=False)
            if task == "late_risk"
            else score_delivery_time(frame, is_open, entry)
        )
        full = full.to_pandas().set_index("order_id").sort_index()
        assert list(served.index) == list(full.index)
        assert (served["is_open"] == full["is_open"]).all()
        assert (served["model_version"] == full["model_version"]).all()
        score = "late_risk" if task == "late_risk" else "predicted_delivery_days"
        np.testing.assert_allclose(served[score], full[score], rtol=1e-6)


def _update(settings: Settings, table: str, order_ids: list[str], updates: dict[str, str]) -> None:
    """Set ``updates`` (SQL over ``t``) on the orders' rows of a clean table, in one commit."""
    from deltalake import DeltaTable

    (
        DeltaTable(str(settings.clean_dir / table))
        .merge(
            pa.table({"order_id": pa.array(order_ids, pa.string())}),
            "t.order_id = s.order_id",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update(updates)
        .execute()
    )


@pytest.mark.parametrize(
    "orders_per_day",
    [
        400.0,  # twelve orders within an hour
        0.25,  # twelve orders over 43 days: days enough, but not 21 of them with 4 weeks before
    ],
)
def test_too_little_data_publishes_empty_outputs_instead_of_failing(
    tmp_path, dagster_instance, orders_per_day
):
    """The first clean run of a stream may hold a handful of orders: the run must not fail.

    Nothing is trained or registered, every ML output is published empty (so dbt and the
    dashboard carry on), and each model's failed ``beats_baseline`` check says why.
    """
    from ml_assets.assets import (
        customer_segments,
        delivery_time_model,
        delivery_time_predictions,
        demand_forecast,
        late_risk_model,
        late_risk_scores,
    )
    from ml_assets.outputs import SCHEMAS, read_output
    from scpro_assets.resources import LakeResource
    from scpro_assets.settings import KafkaSettings, Settings
    from scpro_assets.sources.synthetic import SyntheticConfig, generate
    from scpro_assets.testing.offline import build_clean_lake

    settings = Settings(home=tmp_path / "scpro", kafka=KafkaSettings())
    build_clean_lake(
        generate(SyntheticConfig(orders=12, seed=1, orders_per_day=orders_per_day)), settings
    )
    models = [delivery_time_model, late_risk_model]
    scores = [delivery_time_predictions, late_risk_scores]
    result = dg.materialize(
        [customer_segments, demand_forecast, *models, *scores],
        resources={"lake": LakeResource.from_settings(settings)},
        instance=dagster_instance,
    )
    assert result.success
    for name in ("customer_segments", "demand_forecast", *(a.key.path[-1] for a in scores)):
        assert read_output(settings.ml_dir, name).num_rows == 0, name
        # Published empty, with its contract's columns for the Columns tab and OpenLineage.
        [materialization] = result.asset_materializations_for_node(name)
        columns = materialization.metadata["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == SCHEMAS[name].names, name
    for model in models:
        [materialization] = result.asset_materializations_for_node(model.key.path[-1])
        assert materialization.metadata["trained"].value is False
    for task in ("delivery_time", "late_risk"):
        assert not registry.has_serving_model(settings.models_dir, task)
    evaluations = {
        (e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()
    }
    not_judged = [
        evaluations[(name, "beats_baseline")]
        for name in (
            "customer_segments",
            "demand_forecast",
            "delivery_time_model",
            "late_risk_model",
        )
    ]
    assert all(not e.passed and "not judged" in e.description for e in not_judged)
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in not_judged)
    assert all(e.metadata["rows"].value < e.metadata["min_rows"].value for e in not_judged)
    interval = evaluations[("delivery_time_model", "interval_coverage")]
    assert interval.passed and interval.description.startswith("not judged")
    # No score to compare: the drift checks are not judged and pass, so no retrain is asked for.
    for name in ("late_risk_scores", "delivery_time_predictions"):
        drift = evaluations[(name, "score_drift")]
        assert drift.passed and drift.description.startswith("not judged")
        assert drift.metadata["judged"].value is False and drift.metadata["rows"].value == 0
