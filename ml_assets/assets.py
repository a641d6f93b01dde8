"""Dagster assets of the ``ml`` group: models, scores, segments, forecast and the registry.

Each asset says what it computes; the work is elsewhere, in plain functions: training and model
choice (:mod:`ml_assets.training`), scoring and its publication (:mod:`ml_assets.scoring`),
segments and demand (:mod:`ml_assets.segments`, :mod:`ml_assets.demand`), registry entries and
artifacts (:mod:`ml_assets.registry`), the published tables and their atomic writes
(:mod:`ml_assets.outputs`, where dbt reads them as sources), and the checks' verdicts
(:mod:`ml_assets.checks`). Inputs are the Spark clean lake only.
"""

import pickle
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from ml_assets import registry
from ml_assets.checks import (
    beats_baseline_result,
    beats_baseline_spec,
    drift_check_result,
    drift_check_spec,
    model_check_specs,
    not_judged,
    not_trained_yet_results,
    trained_model_results,
)
from ml_assets.data import read_clean
from ml_assets.demand import ALGORITHM, MIN_FORECAST_DAYS, daily_category_orders, fit_demand
from ml_assets.demand import registry_fields as demand_registry_fields
from ml_assets.outputs import (
    SCHEMAS,
    customer_segments_table,
    demand_forecast_table,
    publish_empty,
    write_output,
)
from ml_assets.scoring import (
    MIN_ROWS_TO_JUDGE,
    ScoringRun,
    score_and_publish,
    score_delivery_time,
    score_late_risk,
)
from ml_assets.segments import SegmentModel, customer_features, fit_segments
from ml_assets.segments import registry_fields as segments_registry_fields
from ml_assets.training import TASKS, NotEnoughDataError, TaskResult, save_task, train_task
from scpro_assets.column_schema import column_schema_metadata
from scpro_assets.resources import LakeResource
from scpro_assets.settings import Settings

OWNER = "team:ml"
GROUP = "ml"

#: Below these, a fit is noise: the asset publishes empty-but-valid output and says why.
MIN_SEGMENT_CUSTOMERS = 50


def _settings(lake: LakeResource) -> Settings:
    return Settings(home=Path(lake.home))


class ModelTrainingConfig(dg.Config):
    """Hyper-parameters of the TensorFlow networks (the challengers' are fixed in code)."""

    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    """Widths of the dense layers."""
    max_epochs: int = 200
    """Upper bound on epochs; early stopping on the time-ordered validation slice ends sooner."""
    patience: int = 15
    """Epochs without validation improvement before stopping (best weights are restored)."""
    seed: int = 42
    """Seed for Python, NumPy and TensorFlow (deterministic ops are on)."""


def _network_config(config: ModelTrainingConfig):
    from ml_assets.tf_models import NetworkConfig

    return NetworkConfig(
        hidden=tuple(config.hidden),
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
    )


def _not_enough_data(
    settings: Settings, output: str, reason: str, rows: int, min_rows: int
) -> dg.MaterializeResult:
    """Publish an empty ``output`` (dbt and the dashboard stay valid) and a warning check."""
    publish_empty(settings.ml_dir, output)
    return dg.MaterializeResult(
        metadata={
            "skipped": reason,
            "input_rows": rows,
            "dagster/row_count": 0,
            **column_schema_metadata(SCHEMAS[output]),
        },
        check_results=[not_judged("beats_baseline", reason, rows, min_rows, train_again=True)],
    )


def _not_trained_yet(
    context: dg.AssetExecutionContext, error: NotEnoughDataError, rows: int, task: str
) -> dg.MaterializeResult:
    """No model yet (a stream has just started): say so instead of failing the run.

    A failed training would skip the scores, dbt and the snapshot in the same run, so nothing
    would reach the dashboard until enough orders were delivered. Instead the registry stays as
    it is, the scores publish empty until a model serves, and the failed ``beats_baseline`` check
    makes the automation train again on the next features update
    (``scpro_assets.automation.TRAIN_WHEN_NEEDED``).
    """
    context.log.warning(f"not trained yet: {error}")
    return dg.MaterializeResult(
        metadata={"trained": False, "skipped": str(error), "feature_rows": rows},
        check_results=not_trained_yet_results(error, task),
    )


def _candidates_table(result: TaskResult, served: dict[str, Any]) -> str:
    """The candidates' test metrics and training times, as a Markdown table."""
    table = "| model | framework | " + " | ".join(result.candidates[served["model_name"]].metrics)
    table += " | train s |\n|---|---|" + "---|" * (len(served["metrics"]) + 1) + "\n"
    for name, c in result.candidates.items():
        values = " | ".join(f"{v:.4f}" for v in c.metrics.values())
        table += f"| {name} | {c.framework} | {values} | {c.train_seconds:.1f} |\n"
    return table


def _train_model_asset(
    task: str, context: dg.AssetExecutionContext, config: ModelTrainingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    settings = _settings(lake)
    features = read_clean(settings.clean_dir, "order_features")
    started = time.perf_counter()
    try:
        result = train_task(features.frame, task, network_config=_network_config(config))
    except NotEnoughDataError as error:
        return _not_trained_yet(context, error, len(features.frame), task)
    entries = save_task(result, settings.models_dir, {"order_features": features.lineage()})
    served = next(e for e in entries if e["is_serving"])
    metric = TASKS[task]["metric"]
    context.log.info(result.serving_reason)
    return dg.MaterializeResult(
        metadata={
            "serving_model": served["model_name"],
            "serving_version": served["model_version"],
            "serving_reason": result.serving_reason,
            f"test_{metric}": served["primary_metric_value"],
            "best_baseline": result.baseline_best,
            "candidates": dg.MetadataValue.md(_candidates_table(result, served)),
            "metrics": dg.MetadataValue.json({e["model_name"]: e["metrics"] for e in entries}),
            "train_rows": served["train_rows"],
            "test_rows": served["test_rows"],
            "data_version": dg.MetadataValue.json(served["data_version"]),
            "artifact": dg.MetadataValue.path(served["artifact_path"]),
            "seconds": round(time.perf_counter() - started, 1),
            **result.interval_figures,
            **({"interval_seconds": round(result.interval_seconds, 1)} if result.interval else {}),
        },
        check_results=trained_model_results(task, result, served, metric),
    )


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "scikitlearn"},
    owners=[OWNER],
    deps=[dg.AssetKey("order_features")],
    check_specs=model_check_specs("delivery_time_model", "MAE"),
    description="Delivery-days model: a Keras dense network (embeddings, scaling inside the "
    "saved model) and a gradient-boosting challenger, with the promise and the training median "
    "as baselines, on a time split of delivered orders; the better model serves.",
)
def delivery_time_model(
    context: dg.AssetExecutionContext, config: ModelTrainingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Train, compare and register the delivery-time candidates."""
    return _train_model_asset("delivery_time", context, config, lake)


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "scikitlearn"},
    owners=[OWNER],
    deps=[dg.AssetKey("order_features")],
    check_specs=model_check_specs("late_risk_model", "ROC-AUC"),
    description="Late-risk model: a Keras dense network with a sigmoid output and a "
    "gradient-boosting challenger, with the per-shipping-mode late rate as baseline, on a time "
    "split of delivered orders; the better model serves.",
)
def late_risk_model(
    context: dg.AssetExecutionContext, config: ModelTrainingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Train, compare and register the late-risk candidates."""
    return _train_model_asset("late_risk", context, config, lake)


def _no_model_in_service(settings: Settings, output: str, task: str) -> dg.MaterializeResult:
    """Publish an empty ``output`` while ``task`` has no model yet (see :func:`_not_trained_yet`).

    dbt and the dashboard then show the orders as unscored; the drift check is not judged (no
    score to compare), so it does not ask for a retrain the automation already schedules.
    """
    publish_empty(settings.ml_dir, output)
    reason = f"no {task} model in service yet"
    return dg.MaterializeResult(
        metadata={
            "skipped": reason,
            "dagster/row_count": 0,
            **column_schema_metadata(SCHEMAS[output]),
        },
        check_results=[not_judged("score_drift", reason, 0, MIN_ROWS_TO_JUDGE)],
    )


def _scores_metadata(run: ScoringRun, output: str, served: pa.Table) -> dict[str, Any]:
    """What every score asset reports: the orders scored this cycle and why, the served table.

    ``dagster/row_count`` and ``open_orders`` are of the served table (every order's current
    score, as when each cycle scored every order); ``orders_scored`` is this cycle's work.
    """
    inputs = {name: pinned.version for name, pinned in run.plan.inputs.items()}
    return {
        "dagster/row_count": served.num_rows,
        "orders_served": served.num_rows,
        "orders_scored": run.table.num_rows,
        "scoring": "full" if run.plan.full else "incremental",
        "scoring_reason": run.plan.reason,
        "open_orders": int(pc.sum(served.column("is_open")).as_py() or 0),
        "model_version": run.entry["model_version"],
        "model_name": run.entry["model_name"],
        "input_versions": dg.MetadataValue.json(inputs),
        "delta_version": -1 if run.version is None else run.version,
        "committed": not run.plan.changes_nothing,
        "path": dg.MetadataValue.path(str(run.path)),
        **column_schema_metadata(SCHEMAS[output]),
    }


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "delta"},
    owners=[OWNER],
    deps=[delivery_time_model, dg.AssetKey("order_features"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[drift_check_spec("delivery_time_predictions", "predicted days")],
    description="Predicted delivery days and time for every open order, and back-scores of "
    "delivered ones for predicted-vs-actual KPIs, by the serving delivery-time model (its version "
    "on every row). Each run scores only new and changed orders (every order for a new model). "
    "Delta table at lake/ml/delivery_time_predictions (a dbt source).",
)
def delivery_time_predictions(lake: LakeResource) -> dg.MaterializeResult:
    """Score the new and changed orders with the serving delivery-time model."""
    settings = _settings(lake)
    if not registry.has_serving_model(settings.models_dir, "delivery_time"):
        return _no_model_in_service(settings, "delivery_time_predictions", "delivery_time")
    run = score_and_publish(
        settings, "delivery_time", "delivery_time_predictions", score_delivery_time
    )
    served = run.served(["is_open"])
    days, frame, is_open = run.drift_inputs("predicted_delivery_days")
    return dg.MaterializeResult(
        metadata={
            **_scores_metadata(run, "delivery_time_predictions", served),
            "orders_per_second": run.orders_per_second,
        },
        check_results=[
            drift_check_result(run.entry, days, frame, is_open, "predicted_delivery_days")
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "delta"},
    owners=[OWNER],
    deps=[late_risk_model, dg.AssetKey("order_features"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[drift_check_spec("late_risk_scores", "late risk")],
    description="Late-risk probability, band (high = riskiest 20 % of training orders, medium = "
    "next 30 %) and the top reasons in an agent's words for every open order, plus back-scores of "
    "delivered ones, by the serving late-risk model. Each run scores only new and changed orders "
    "(every order for a new model). Delta table at lake/ml/late_risk_scores.",
)
def late_risk_scores(lake: LakeResource) -> dg.MaterializeResult:
    """Score the new and changed orders with the serving late-risk model and explain each."""
    settings = _settings(lake)
    if not registry.has_serving_model(settings.models_dir, "late_risk"):
        return _no_model_in_service(settings, "late_risk_scores", "late_risk")
    run = score_and_publish(settings, "late_risk", "late_risk_scores", score_late_risk)
    served = run.served(["is_open", "risk_band"])
    bands = pd.Series(served.column("risk_band").to_pylist()).value_counts().to_dict()
    thresholds = run.entry["hyperparameters"]["risk_band_thresholds"]
    risk, frame, is_open = run.drift_inputs("late_risk")
    return dg.MaterializeResult(
        metadata={
            **_scores_metadata(run, "late_risk_scores", served),
            "risk_bands": dg.MetadataValue.json(bands),
            "thresholds": dg.MetadataValue.json(thresholds),
            "orders_per_second_with_reasons": run.orders_per_second,
        },
        check_results=[drift_check_result(run.entry, risk, frame, is_open, "late_risk")],
    )


#: A serving segmentation is reused (every customer re-assigned to its segments, no new fit)
#: until it is this old or the customers are this many times those it was fit on. Fitting (k
#: searched over 3..8, with silhouettes) on every cycle cost the automation's run 4.5 s at 0.1M
#: events of history and 22 s at 1M (`scpro bench --only incremental`), and gave every cycle
#: a new model version whose segment ids and names could swap, moving customers between
#: segments for no change in their data.
SEGMENTS_REFIT_AFTER = timedelta(days=1)
SEGMENTS_REFIT_GROWTH = 2.0


def reusable_segmentation(
    models_dir: Path, customers: int, now: datetime | None = None
) -> tuple[dict[str, Any], SegmentModel] | None:
    """The serving segmentation's entry and model, if it is still fit to assign ``customers``."""
    if not registry.has_serving_model(models_dir, "segments"):
        return None
    entry = registry.serving_entry(models_dir, "segments")
    age = (now or datetime.now(UTC)) - datetime.fromisoformat(entry["trained_at"])
    if age >= SEGMENTS_REFIT_AFTER or customers >= SEGMENTS_REFIT_GROWTH * entry["train_rows"]:
        return None
    with Path(entry["artifact_path"]).open("rb") as handle:
        model = pickle.load(handle)
    return entry, model


@dg.asset(
    group_name=GROUP,
    kinds={"scikitlearn", "parquet"},
    owners=[OWNER],
    deps=[dg.AssetKey("cleaned_orders"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[
        beats_baseline_spec(
            "customer_segments",
            "K-Means segments separate customers better (silhouette) than monetary "
            "quartiles in the same scaled space.",
        )
    ],
    description="Customer segments: K-Means on recency, frequency, monetary value, share of late "
    "orders and mean delay (scaled); k by best silhouette in 3..8 with no segment under 2 %; each "
    "segment named and profiled for marketing. Parquet at lake/ml/customer_segments.",
)
def customer_segments(lake: LakeResource) -> dg.MaterializeResult:
    """Segment customers and register the segmentation."""
    settings = _settings(lake)
    orders = read_clean(
        settings.clean_dir, "cleaned_orders", ["order_id", "customer_id", "order_time", "net_value"]
    )
    deliveries = read_clean(
        settings.clean_dir, "cleaned_deliveries", ["order_id", "is_late", "delay_days"]
    )
    customers = customer_features(orders.frame, deliveries.frame)
    if len(customers) < MIN_SEGMENT_CUSTOMERS:
        return _not_enough_data(
            settings,
            "customer_segments",
            f"{len(customers)} customers so far; segmenting needs {MIN_SEGMENT_CUSTOMERS}",
            len(customers),
            MIN_SEGMENT_CUSTOMERS,
        )
    reused = reusable_segmentation(settings.models_dir, len(customers))
    if reused is None:
        model = fit_segments(customers)
        entry = registry.register_model(
            settings.models_dir,
            "customer_segments_kmeans",
            "segments",
            f"k-means (k={model.k})",
            model,
            {"cleaned_orders": orders.lineage(), "cleaned_deliveries": deliveries.lineage()},
            **segments_registry_fields(model, customers, orders.frame["order_time"]),
        )
        segmentation = "fit"
    else:
        entry, model = reused
        segmentation = (
            f"reused {entry['model_version']} (fit on {entry['train_rows']:,} customers; "
            f"refit after {SEGMENTS_REFIT_AFTER} or {SEGMENTS_REFIT_GROWTH:g}x the customers)"
        )
    version, silhouette = entry["model_version"], entry["primary_metric_value"]
    table = customer_segments_table(
        customers, model.assign(customers), model.names, (entry["model_name"], version)
    )
    path = write_output(settings.ml_dir, "customer_segments", table)
    profile = pd.DataFrame(model.profiles).round(3)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **column_schema_metadata(SCHEMAS["customer_segments"]),
            "k": model.k,
            "segmentation": segmentation,
            "silhouette": silhouette,
            "baseline_silhouette_monetary_quartiles": model.baseline_silhouette,
            "profiles": dg.MetadataValue.md(profile.to_markdown(index=False)),
            "model_version": version,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            beats_baseline_result(
                bool(silhouette > model.baseline_silhouette),
                f"silhouette {silhouette:.3f} vs monetary quartiles "
                f"{model.baseline_silhouette:.3f}",
                {"silhouette": silhouette, "baseline": model.baseline_silhouette},
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"scikitlearn", "parquet"},
    owners=[OWNER],
    deps=[dg.AssetKey("cleaned_order_items")],
    check_specs=[
        beats_baseline_spec(
            "demand_forecast",
            "Test-period WAPE of the gradient-boosting forecast is below the seasonal "
            "naive forecast's at the same grain (same weekday last week; last week).",
        )
    ],
    description="Orders per category (busiest 12 + Other) per day, or per week when most "
    "category-days are empty: history with actuals and the next 7 days (or next week), gradient "
    "boosting on calendar and lag features, judged by WAPE against seasonal naive at the same "
    "grain. Parquet at lake/ml/demand_forecast.",
)
def demand_forecast(lake: LakeResource) -> dg.MaterializeResult:
    """Forecast demand per category and register the model."""
    settings = _settings(lake)
    items = read_clean(
        settings.clean_dir, "cleaned_order_items", ["order_id", "category", "order_time"]
    )
    if items.frame.empty:
        return _not_enough_data(
            settings, "demand_forecast", "no order items yet", 0, MIN_FORECAST_DAYS
        )
    daily = daily_category_orders(items.frame)
    try:
        result = fit_demand(daily)
    except NotEnoughDataError as error:  # early in a stream: not yet 4 weeks of history
        return _not_enough_data(settings, "demand_forecast", str(error), error.rows, error.min_rows)
    entry = registry.register_model(
        settings.models_dir,
        "demand_gb",
        "demand",
        ALGORITHM[result.grain],
        result.model,
        {"cleaned_order_items": items.lineage()},
        **demand_registry_fields(result, daily["day"]),
    )
    version = entry["model_version"]
    table = demand_forecast_table(result.rows, result.grain, (entry["model_name"], version))
    path = write_output(settings.ml_dir, "demand_forecast", table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **column_schema_metadata(SCHEMAS["demand_forecast"]),
            "wape": result.wape_model,
            "wape_seasonal_naive": result.wape_naive,
            "grain": result.grain,
            "categories": len(result.categories),
            "model_version": version,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            beats_baseline_result(
                bool(result.wape_model < result.wape_naive),
                f"test WAPE {result.wape_model:.3f} vs seasonal naive "
                f"{result.wape_naive:.3f} (per {result.grain})",
                {"wape": result.wape_model, "wape_seasonal_naive": result.wape_naive},
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    owners=[OWNER],
    deps=[delivery_time_model, late_risk_model, customer_segments, demand_forecast],
    description="Model registry: every trained model version with code version, upstream data "
    "versions and row counts, time ranges, features, hyper-parameters, time-split test metrics, "
    "which one serves and why, artifact path and SHA-256. Parquet at lake/ml/model_registry.",
)
def model_registry(lake: LakeResource) -> dg.MaterializeResult:
    """Compile the registry entries next to the artifacts into one table."""
    settings = _settings(lake)
    entries = registry.read_entries(settings.models_dir)
    table = registry.registry_table(entries)
    path = write_output(settings.ml_dir, "model_registry", table)
    serving = {e["task"]: e["model_name"] for e in entries if e["is_serving"]}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **column_schema_metadata(SCHEMAS["model_registry"]),
            "serving": dg.MetadataValue.json(serving),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


ml_assets: list[dg.AssetsDefinition] = [
    delivery_time_model,
    late_risk_model,
    delivery_time_predictions,
    late_risk_scores,
    customer_segments,
    demand_forecast,
    model_registry,
]
