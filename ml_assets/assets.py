"""Dagster assets of the ``ml`` group: models, scores, segments, forecast and the registry.

Thin wrappers: the work is done by the plain functions of :mod:`ml_assets.training`,
:mod:`ml_assets.scoring`, :mod:`ml_assets.segments`, :mod:`ml_assets.demand` and
:mod:`ml_assets.registry`. Inputs are the Spark clean lake only; outputs go through
:func:`ml_assets.outputs.write_output`, where dbt reads them as sources.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from ml_assets import registry
from ml_assets.data import read_clean
from ml_assets.demand import (
    ALGORITHM,
    GB_PARAMS,
    MIN_FORECAST_DAYS,
    SPARSE_EMPTY_SHARE,
    daily_category_orders,
    fit_demand,
)
from ml_assets.features import leakage_violations
from ml_assets.outputs import SCHEMAS, write_output
from ml_assets.scoring import (
    MIN_ROWS_TO_JUDGE,
    PSI_THRESHOLD,
    drift_population,
    score_delivery_time,
    score_drift,
    score_late_risk,
)
from ml_assets.segments import K_RANGE, customer_features, fit_segments
from ml_assets.training import (
    INTERVAL_LEVEL,
    INTERVAL_TOLERANCE,
    TASKS,
    NotEnoughDataError,
    save_task,
    train_task,
)
from scpro_assets.column_schema import column_schema_metadata
from scpro_assets.resources import LakeResource
from scpro_assets.settings import KafkaSettings, Settings

OWNER = "team:ml"
GROUP = "ml"


def _settings(lake: LakeResource) -> Settings:
    return Settings(home=Path(lake.home), kafka=KafkaSettings())


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


#: Below these, a fit is noise: the asset publishes empty-but-valid output and says why.
MIN_SEGMENT_CUSTOMERS = 50


def not_judged(
    check_name: str,
    reason: str,
    rows: int,
    min_rows: int,
    *,
    train_again: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """A check with too little data to judge: a warning that says so, with the counts.

    Dagster has no "not judged" outcome for a check, so this is a WARN whose description starts
    with "not judged" and whose metadata carries ``judged: false``, ``rows`` and ``min_rows``. It
    passes, so nothing acts on it: a drift check on a handful of scores asks for no retrain
    (``ml_assets.automation``). Unless ``train_again``: a model not trained, or not judged, yet
    fails its ``beats_baseline`` as a warning, which is what makes the automation train it again
    on new features (``scpro_assets.automation.TRAIN_WHEN_NEEDED``) until it can be judged.
    """
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not train_again,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not judged: {reason}",
        metadata={**(metadata or {}), "judged": False, "rows": rows, "min_rows": min_rows},
    )


def _not_enough_data(
    settings: Settings, output: str, reason: str, rows: int, min_rows: int
) -> dg.MaterializeResult:
    """Publish an empty ``output`` (dbt and the dashboard stay valid) and a warning check."""
    write_output(settings.ml_dir, output, SCHEMAS[output].empty_table())
    return dg.MaterializeResult(
        metadata={
            "skipped": reason,
            "input_rows": rows,
            "dagster/row_count": 0,
            **column_schema_metadata(SCHEMAS[output]),
        },
        check_results=[not_judged("beats_baseline", reason, rows, min_rows, train_again=True)],
    )


def baseline_check_result(
    beats_baseline: bool, test_rows: int, metadata: dict[str, Any], description: str
) -> dg.AssetCheckResult:
    """``beats_baseline`` of a trained model, judged on at least :data:`MIN_ROWS_TO_JUDGE` orders.

    On a smaller test set a win or a loss against the baseline is noise, so the model serves but
    the check says "not judged", and the automation trains it again on new features.
    """
    if test_rows < MIN_ROWS_TO_JUDGE:
        return not_judged(
            "beats_baseline",
            f"{test_rows} test orders; comparing with the baseline needs {MIN_ROWS_TO_JUDGE}",
            test_rows,
            MIN_ROWS_TO_JUDGE,
            train_again=True,
            metadata=metadata,
        )
    return dg.AssetCheckResult(
        check_name="beats_baseline",
        passed=beats_baseline,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={**metadata, "judged": True, "rows": test_rows, "min_rows": MIN_ROWS_TO_JUDGE},
    )


def interval_check_result(figures: dict[str, Any], test_rows: int) -> dg.AssetCheckResult:
    """``interval_coverage``: the ETA interval's test coverage within tolerance of its level.

    A coverage on fewer than :data:`MIN_ROWS_TO_JUDGE` orders has a standard error of 0.03 or
    more (0.8 on 200 orders), so below that the check says "not judged".
    """
    if not figures:
        return not_judged("interval_coverage", "no interval was fitted", test_rows, 10)
    level, coverage = figures["interval_level"], figures["interval_coverage"]
    about = {
        "method": figures["interval_method"],
        "level": level,
        "coverage": coverage,
        "width_days": figures["interval_width_days"],
        "tolerance": INTERVAL_TOLERANCE,
    }
    if test_rows < MIN_ROWS_TO_JUDGE:
        reason = f"{test_rows} test orders; a coverage needs {MIN_ROWS_TO_JUDGE}"
        return not_judged("interval_coverage", reason, test_rows, MIN_ROWS_TO_JUDGE, metadata=about)
    return dg.AssetCheckResult(
        check_name="interval_coverage",
        passed=abs(coverage - level) <= INTERVAL_TOLERANCE,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{coverage:.1%} of test deliveries fell inside their {level:.0%} ETA range",
        metadata={**about, "judged": True, "rows": test_rows, "min_rows": MIN_ROWS_TO_JUDGE},
    )


def leakage_check_result(
    frame: pd.DataFrame, features: list[str], cutoff: pd.Timestamp | None = None
) -> dg.AssetCheckResult:
    """Pass when no input can see past the order time (:func:`leakage_violations`)."""
    problems = leakage_violations(frame, features, cutoff)
    return dg.AssetCheckResult(
        check_name="no_leakage",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"violations": dg.MetadataValue.json(problems), "features": len(features)},
    )


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
    table = "| model | framework | " + " | ".join(result.candidates[served["model_name"]].metrics)
    table += " | train s |\n|---|---|" + "---|" * (len(served["metrics"]) + 1) + "\n"
    for name, c in result.candidates.items():
        values = " | ".join(f"{v:.4f}" for v in c.metrics.values())
        table += f"| {name} | {c.framework} | {values} | {c.train_seconds:.1f} |\n"
    context.log.info(result.serving_reason)
    return dg.MaterializeResult(
        metadata={
            "serving_model": served["model_name"],
            "serving_version": served["model_version"],
            "serving_reason": result.serving_reason,
            f"test_{metric}": served["primary_metric_value"],
            "best_baseline": result.baseline_best,
            "candidates": dg.MetadataValue.md(table),
            "metrics": dg.MetadataValue.json({e["model_name"]: e["metrics"] for e in entries}),
            "train_rows": served["train_rows"],
            "test_rows": served["test_rows"],
            "data_version": dg.MetadataValue.json(served["data_version"]),
            "artifact": dg.MetadataValue.path(served["artifact_path"]),
            "seconds": round(time.perf_counter() - started, 1),
            **result.interval_figures,
            **({"interval_seconds": round(result.interval_seconds, 1)} if result.interval else {}),
        },
        check_results=[
            baseline_check_result(
                result.beats_baseline(),
                served["test_rows"],
                {
                    "serving": served["model_name"],
                    metric: served["primary_metric_value"],
                    "best_baseline": result.baseline_best,
                },
                f"{served['model_name']} test {metric} {served['primary_metric_value']:.3f} "
                f"vs best baseline {result.baseline_best:.3f}",
            ),
            leakage_check_result(result.split.fit, result.features, result.split.cutoff),
            *(
                [interval_check_result(result.interval_figures, served["test_rows"])]
                if task == "delivery_time"
                else []
            ),
        ],
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
    reason = str(error)
    context.log.warning(f"not trained yet: {reason}")
    return dg.MaterializeResult(
        metadata={"trained": False, "skipped": reason, "feature_rows": rows},
        check_results=[
            not_judged("beats_baseline", reason, error.rows, error.min_rows, train_again=True),
            dg.AssetCheckResult(
                check_name="no_leakage",
                passed=True,
                description="not judged: no model was trained",
            ),
            *(
                [not_judged("interval_coverage", reason, error.rows, error.min_rows)]
                if task == "delivery_time"
                else []
            ),
        ],
    )


def _model_checks(asset: str, metric: str) -> list[dg.AssetCheckSpec]:
    interval = dg.AssetCheckSpec(
        "interval_coverage",
        asset=asset,
        description=f"The served ETA interval ({INTERVAL_LEVEL:.0%}) holds the actual delivery "
        f"of {INTERVAL_LEVEL:.0%} ± {INTERVAL_TOLERANCE:.0%} of the time-split test's orders.",
    )
    return [
        *([interval] if asset == "delivery_time_model" else []),
        dg.AssetCheckSpec(
            "beats_baseline",
            asset=asset,
            description=f"The serving model's test {metric} beats the best naive baseline "
            "(time-split test, EVALUATION.md).",
        ),
        dg.AssetCheckSpec(
            "no_leakage",
            asset=asset,
            description="No input outside the certified order-time features or among outcome "
            "columns, no training label known before its order or after the cut-off, and no input "
            "that alone reproduces the outcome.",
        ),
    ]


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "scikitlearn"},
    owners=[OWNER],
    deps=[dg.AssetKey("order_features")],
    check_specs=_model_checks("delivery_time_model", "MAE"),
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
    check_specs=_model_checks("late_risk_model", "ROC-AUC"),
    description="Late-risk model: a Keras dense network with a sigmoid output and a "
    "gradient-boosting challenger, with the per-shipping-mode late rate as baseline, on a time "
    "split of delivered orders; the better model serves.",
)
def late_risk_model(
    context: dg.AssetExecutionContext, config: ModelTrainingConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Train, compare and register the late-risk candidates."""
    return _train_model_asset("late_risk", context, config, lake)


def _orders_to_score(settings: Settings) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Every order with its features, whether it is still open, and the inputs' versions."""
    features = read_clean(settings.clean_dir, "order_features")
    deliveries = read_clean(settings.clean_dir, "cleaned_deliveries", ["order_id", "status"])
    frame = features.frame.merge(deliveries.frame, on="order_id", how="left")
    is_open = ~frame["status"].isin(["delivered", "canceled"]).to_numpy()
    lineage = {"order_features": features.lineage(), "cleaned_deliveries": deliveries.lineage()}
    return frame, is_open, lineage


def drift_check_result(
    entry: dict[str, Any], scores: np.ndarray, frame: pd.DataFrame, is_open: np.ndarray, column: str
) -> dg.AssetCheckResult:
    """``score_drift``: PSI of the current scores against training, on enough rows to judge.

    On fewer than :data:`MIN_ROWS_TO_JUDGE` scores a PSI is noise (8.3 on one row), so the check
    says "not judged" with the count and passes: no retrain is asked for.
    """
    current = drift_population(frame["order_time"], is_open)
    rows = int(current.sum())
    about = {"score": column, "model_version": entry["model_version"]}
    if rows < MIN_ROWS_TO_JUDGE:
        return not_judged(
            "score_drift",
            f"{rows} {column} scores to compare; PSI needs {MIN_ROWS_TO_JUDGE}",
            rows,
            MIN_ROWS_TO_JUDGE,
            metadata=about,
        )
    psi = score_drift(entry, scores[current])
    return dg.AssetCheckResult(
        check_name="score_drift",
        passed=psi <= PSI_THRESHOLD,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **about,
            "psi": psi,
            "threshold": PSI_THRESHOLD,
            "judged": True,
            "rows": rows,
            "min_rows": MIN_ROWS_TO_JUDGE,
        },
    )


@dataclass(frozen=True)
class _ScoringRun:
    """One scoring pass of a serving model over every order, as published."""

    entry: dict[str, Any]
    frame: pd.DataFrame
    is_open: np.ndarray
    table: pa.Table
    seconds: float
    path: Path

    @property
    def orders_per_second(self) -> float:
        return round(self.table.num_rows / max(self.seconds, 1e-9), 1)

    def metadata(self) -> dict[str, Any]:
        """What every score asset reports: rows, open orders, the model and the file."""
        return {
            "dagster/row_count": self.table.num_rows,
            "open_orders": int(self.is_open.sum()),
            "model_version": self.entry["model_version"],
            "model_name": self.entry["model_name"],
            "path": dg.MetadataValue.path(str(self.path)),
        }


def _no_model_in_service(settings: Settings, output: str, task: str) -> dg.MaterializeResult:
    """Publish an empty ``output`` while ``task`` has no model yet (see :func:`_not_trained_yet`).

    dbt and the dashboard then show the orders as unscored; the drift check is not judged (no
    score to compare), so it does not ask for a retrain the automation already schedules.
    """
    write_output(settings.ml_dir, output, SCHEMAS[output].empty_table())
    reason = f"no {task} model in service yet"
    return dg.MaterializeResult(
        metadata={
            "skipped": reason,
            "dagster/row_count": 0,
            **column_schema_metadata(SCHEMAS[output]),
        },
        check_results=[not_judged("score_drift", reason, 0, MIN_ROWS_TO_JUDGE)],
    )


def _score_orders(
    lake: LakeResource,
    task: str,
    output: str,
    scorer: Callable[[pd.DataFrame, np.ndarray, dict[str, Any]], pa.Table],
) -> _ScoringRun:
    """Score every order with the serving model of ``task`` and publish ``output``."""
    settings = _settings(lake)
    entry = registry.serving_entry(settings.models_dir, task)
    frame, is_open, _ = _orders_to_score(settings)
    started = time.perf_counter()
    table = scorer(frame, is_open, entry)
    seconds = time.perf_counter() - started
    path = write_output(settings.ml_dir, output, table)
    return _ScoringRun(entry, frame, is_open, table, seconds, path)


def _drift_spec(asset: str, score: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "score_drift",
        asset=asset,
        description=f"PSI of {score} on open orders (else the last 30 days) against the serving "
        f"model's training scores stays at or below {PSI_THRESHOLD}; a failure asks for a "
        "retrain (ml_assets.automation).",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "parquet"},
    owners=[OWNER],
    deps=[delivery_time_model, dg.AssetKey("order_features"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[_drift_spec("delivery_time_predictions", "predicted days")],
    description="Predicted delivery days and time for every open order, and back-scores of "
    "delivered ones for predicted-vs-actual KPIs, by the serving delivery-time model (its version "
    "on every row). Parquet at lake/ml/delivery_time_predictions (a dbt source).",
)
def delivery_time_predictions(lake: LakeResource) -> dg.MaterializeResult:
    """Score every order with the serving delivery-time model."""
    settings = _settings(lake)
    if not registry.has_serving_model(settings.models_dir, "delivery_time"):
        return _no_model_in_service(settings, "delivery_time_predictions", "delivery_time")
    run = _score_orders(lake, "delivery_time", "delivery_time_predictions", score_delivery_time)
    days = run.table.column("predicted_delivery_days").to_numpy()
    return dg.MaterializeResult(
        metadata={
            **run.metadata(),
            **column_schema_metadata(SCHEMAS["delivery_time_predictions"]),
            "orders_per_second": run.orders_per_second,
        },
        check_results=[
            drift_check_result(run.entry, days, run.frame, run.is_open, "predicted_delivery_days")
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"tensorflow", "parquet"},
    owners=[OWNER],
    deps=[late_risk_model, dg.AssetKey("order_features"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[_drift_spec("late_risk_scores", "late risk")],
    description="Late-risk probability, band (high = riskiest 20 % of training orders, medium = "
    "next 30 %) and the top reasons in an agent's words for every open order, plus back-scores of "
    "delivered ones, by the serving late-risk model. Parquet at lake/ml/late_risk_scores.",
)
def late_risk_scores(lake: LakeResource) -> dg.MaterializeResult:
    """Score every order with the serving late-risk model and explain each score."""
    settings = _settings(lake)
    if not registry.has_serving_model(settings.models_dir, "late_risk"):
        return _no_model_in_service(settings, "late_risk_scores", "late_risk")
    run = _score_orders(lake, "late_risk", "late_risk_scores", score_late_risk)
    risk = run.table.column("late_risk").to_numpy()
    bands = pd.Series(run.table.column("risk_band").to_pylist()).value_counts().to_dict()
    thresholds = run.entry["hyperparameters"]["risk_band_thresholds"]
    return dg.MaterializeResult(
        metadata={
            **run.metadata(),
            **column_schema_metadata(SCHEMAS["late_risk_scores"]),
            "risk_bands": dg.MetadataValue.json(bands),
            "thresholds": dg.MetadataValue.json(thresholds),
            "orders_per_second_with_reasons": run.orders_per_second,
        },
        check_results=[drift_check_result(run.entry, risk, run.frame, run.is_open, "late_risk")],
    )


def _simple_entry(
    name: str,
    task: str,
    algorithm: str,
    artifact: Path,
    trained_at: datetime,
    version: str,
    data_version: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    return {
        "model_name": name,
        "model_version": version,
        "task": task,
        "framework": "scikit-learn",
        "algorithm": algorithm,
        "code_version": registry.code_version(),
        "trained_at": trained_at.isoformat(),
        "data_version": data_version,
        "is_serving": True,
        "artifact_path": str(artifact),
        **fields,
    }


def _save_pickle(obj: Any, folder: Path) -> Path:
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=5)
    return path


@dg.asset(
    group_name=GROUP,
    kinds={"scikitlearn", "parquet"},
    owners=[OWNER],
    deps=[dg.AssetKey("cleaned_orders"), dg.AssetKey("cleaned_deliveries")],
    check_specs=[
        dg.AssetCheckSpec(
            "beats_baseline",
            asset="customer_segments",
            description="K-Means segments separate customers better (silhouette) than monetary "
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
    model = fit_segments(customers)
    trained_at = datetime.now(UTC)
    version = registry.new_version(trained_at)
    name = "customer_segments_kmeans"
    folder = registry.version_dir(settings.models_dir, name, version)
    artifact = _save_pickle(model, folder)
    silhouette = model.silhouettes[model.k]
    times = orders.frame["order_time"]
    entry = _simple_entry(
        name,
        "segments",
        f"k-means (k={model.k})",
        artifact,
        trained_at,
        version,
        {"cleaned_orders": orders.lineage(), "cleaned_deliveries": deliveries.lineage()},
        train_rows=len(customers),
        test_rows=0,
        train_start=times.min().isoformat(),
        train_end=times.max().isoformat(),
        features=model.features,
        hyperparameters={
            "k": model.k,
            "k_range": [K_RANGE.start, K_RANGE.stop - 1],
            "criterion": "max silhouette, segments >= 2 % of customers",
            "scaling": "log1p(frequency, monetary), standard scaler",
        },
        metrics={
            "silhouette": silhouette,
            "baseline_silhouette": model.baseline_silhouette,
            "silhouette_by_k": {str(k): v for k, v in model.silhouettes.items()},
        },
        primary_metric="silhouette",
        primary_metric_value=silhouette,
        serving_reason="the only segmentation model; chosen k has the best silhouette",
        profiles=model.profiles,
    )
    registry.write_entry(folder, entry)
    labels = model.assign(customers)
    scored_at = datetime.now(UTC)
    n = len(customers)
    table = pa.Table.from_pydict(
        {
            "customer_id": customers["customer_id"].astype(str).tolist(),
            "segment_id": labels.astype("int32").tolist(),
            "segment_name": [model.names[int(i)] for i in labels],
            **{
                c: customers[c].astype(float).tolist()
                for c in ("recency_days", "monetary", "late_share", "mean_delay_days")
            },
            "frequency": customers["frequency"].astype("int64").tolist(),
            "model_name": [name] * n,
            "model_version": [version] * n,
            "scored_at": [scored_at] * n,
        }
    )
    path = write_output(settings.ml_dir, "customer_segments", table)
    profile = pd.DataFrame(model.profiles).round(3)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            **column_schema_metadata(SCHEMAS["customer_segments"]),
            "k": model.k,
            "silhouette": silhouette,
            "baseline_silhouette_monetary_quartiles": model.baseline_silhouette,
            "profiles": dg.MetadataValue.md(profile.to_markdown(index=False)),
            "model_version": version,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="beats_baseline",
                passed=bool(silhouette > model.baseline_silhouette),
                description=f"silhouette {silhouette:.3f} vs monetary quartiles "
                f"{model.baseline_silhouette:.3f}",
                metadata={"silhouette": silhouette, "baseline": model.baseline_silhouette},
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"scikitlearn", "parquet"},
    owners=[OWNER],
    deps=[dg.AssetKey("cleaned_order_items")],
    check_specs=[
        dg.AssetCheckSpec(
            "beats_baseline",
            asset="demand_forecast",
            description="Test-period WAPE of the gradient-boosting forecast is below the seasonal "
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
    trained_at = datetime.now(UTC)
    version = registry.new_version(trained_at)
    name = "demand_gb"
    folder = registry.version_dir(settings.models_dir, name, version)
    artifact = _save_pickle(result.model, folder)
    days = daily["day"]
    registry.write_entry(
        folder,
        _simple_entry(
            name,
            "demand",
            ALGORITHM[result.grain],
            artifact,
            trained_at,
            version,
            {"cleaned_order_items": items.lineage()},
            train_rows=result.train_rows,
            test_rows=result.test_rows,
            train_start=pd.Timestamp(days.min(), tz="UTC").isoformat(),
            train_end=(result.test_start - pd.Timedelta(days=1)).tz_localize("UTC").isoformat(),
            test_start=result.test_start.tz_localize("UTC").isoformat(),
            test_end=pd.Timestamp(days.max(), tz="UTC").isoformat(),
            features=result.features,
            hyperparameters={
                **GB_PARAMS[result.grain],
                "grain": result.grain,
                "grain_reason": f"{result.empty_share:.0%} of category-days empty "
                f"(weekly above {SPARSE_EMPTY_SHARE:.0%})",
                "categories": result.categories,
            },
            metrics={"wape": result.wape_model, "wape_seasonal_naive": result.wape_naive},
            primary_metric="wape",
            primary_metric_value=result.wape_model,
            serving_reason=f"gradient boosting per {result.grain} vs seasonal naive per "
            f"{result.grain}: "
            f"WAPE {result.wape_model:.3f} vs {result.wape_naive:.3f}",
        ),
    )
    rows = result.rows
    scored_at = datetime.now(UTC)
    n = len(rows)
    table = pa.Table.from_pydict(
        {
            "category": rows["category"].tolist(),
            "period_start": rows["period_start"].dt.date.tolist(),
            "period_grain": [result.grain] * n,
            "forecast_orders": rows["forecast_orders"].astype(float).tolist(),
            "baseline_orders": rows["baseline_orders"].astype(float).tolist(),
            "actual_orders": rows["actual_orders"].astype(float).tolist(),
            "is_future": rows["is_future"].astype(bool).tolist(),
            "model_name": [name] * n,
            "model_version": [version] * n,
            "scored_at": [scored_at] * n,
        }
    )
    path = write_output(settings.ml_dir, "demand_forecast", table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            **column_schema_metadata(SCHEMAS["demand_forecast"]),
            "wape": result.wape_model,
            "wape_seasonal_naive": result.wape_naive,
            "grain": result.grain,
            "categories": len(result.categories),
            "model_version": version,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="beats_baseline",
                passed=bool(result.wape_model < result.wape_naive),
                description=f"test WAPE {result.wape_model:.3f} vs seasonal naive "
                f"{result.wape_naive:.3f} (per {result.grain})",
                metadata={"wape": result.wape_model, "wape_seasonal_naive": result.wape_naive},
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
