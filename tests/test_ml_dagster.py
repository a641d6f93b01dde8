"""The ML assets materialize in Dagster on a small synthetic clean lake, with their checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ml_assets import registry
from ml_assets.assets import ml_assets
from ml_assets.data import read_clean
from ml_assets.outputs import ML_OUTPUTS, read_output
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
    build_clean_lake(generate(config), settings)
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
    # the generator runs every order to its end, so nothing is open; the flag follows the status
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
