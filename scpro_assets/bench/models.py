"""The EVALUATION.md protocols on the real data: our models beside the baselines, same run.

:func:`bench_models` builds the clean lake of each real sample with the real Spark clean layer
(:func:`scpro_assets.testing.offline.build_clean_lake`, no broker), cuts train/test at the
protocol's date exactly, trains the TensorFlow network, the gradient-boosting challenger and the
baselines (:func:`ml_assets.training.train_task`), and reports the table of ``EVALUATION.md`` with
training time and scoring throughput. ``make bench`` calls it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.data import read_clean
from ml_assets.models import SklearnModel, gradient_boosting_pipeline
from ml_assets.training import (
    GB_PARAMS,
    INTERVAL_LEVEL,
    TASKS,
    TaskResult,
    conformal_quantile,
    interval_metrics,
    train_task,
)

#: Protocol cut dates (test = orders placed on or after).
PROTOCOLS: dict[str, str] = {"dataco": "2017-06-01", "olist": "2018-05-01"}


def _shared_data() -> Path:
    from scpro_assets.settings import Settings

    return Settings.from_env().shared_data


def protocol_features(name: str, settings: Any, data_dir: Path | None = None) -> pd.DataFrame:
    """Order features of real sample ``name`` (dataco or olist), built under ``settings``."""
    from scpro_assets.sources import dataco, olist
    from scpro_assets.testing.offline import build_clean_lake

    home = settings.home / "bench" / f"ml-{name}"
    run = settings.model_copy(update={"home": home})
    if not (run.clean_dir / "order_features").exists():
        source = {"dataco": dataco, "olist": olist}[name]
        events, _ = source.load(data_dir or _shared_data() / name)
        build_clean_lake(events, run)
    return read_clean(run.clean_dir, "order_features").frame


def _throughput(result: TaskResult, frame: pd.DataFrame) -> float:
    """Orders per second scored by the serving model (batched predict, all orders)."""
    model = result.candidates[result.serving].model
    model.predict(frame.head(256))  # warm-up (graph tracing) is not throughput
    started = time.perf_counter()
    model.predict(frame)
    return len(frame) / max(time.perf_counter() - started, 1e-9)


def evaluate_protocol(frame: pd.DataFrame, name: str) -> dict[str, Any]:
    """Train and judge both tasks of one protocol; return the figures."""
    cutoff = pd.Timestamp(PROTOCOLS[name], tz="UTC")
    figures: dict[str, Any] = {}
    for task in ("delivery_time", "late_risk"):
        result = train_task(frame, task, cutoff=cutoff)
        c = result.candidates
        figures[f"{task}: train / test orders"] = (
            f"{len(result.split.fit)} / {len(result.split.test)}"
        )
        if task == "delivery_time":
            for model in ("promise", "median", "tf", "gb", "gb_slip"):
                if f"delivery_time_{model}" in c:
                    figures[f"days MAE {model}"] = c[f"delivery_time_{model}"].metrics["mae"]
            served_mae = result.value(result.serving)
            promise_mae = c["delivery_time_promise"].metrics["mae"]
            figures["days MAE served / promise"] = served_mae / promise_mae
            started = time.perf_counter()
            for method, measured in interval_comparison(result).items():
                figures[f"ETA 80% interval {method}: coverage"] = measured["coverage"]
                figures[f"ETA 80% interval {method}: width days"] = measured["width_days"]
            figures["ETA interval served"] = result.interval_figures.get("interval_method")
            figures["ETA interval served: fit seconds"] = result.interval_seconds
            figures["ETA interval quantile + CQR: fit seconds"] = time.perf_counter() - started
        else:
            for model in ("mode_rate", "tf", "gb"):
                m = c[f"late_risk_{model}"].metrics
                figures[f"late ROC-AUC {model}"] = m["roc_auc"]
                figures[f"late accuracy {model}"] = m["accuracy"]
        figures[f"{task}: TF train seconds"] = c[f"{task}_tf"].train_seconds
        figures[f"{task}: GB train seconds"] = c[f"{task}_gb"].train_seconds
        figures[f"{task}: TF early-stopped epoch"] = c[f"{task}_tf"].extra["early_stopping"][
            "best_epoch"
        ]
        figures[f"{task}: serving"] = result.serving
        figures[f"{task}: serving orders/s"] = _throughput(result, frame)
        tf_model = c[f"{task}_tf"].model
        tf_model.predict(frame.head(256))
        started = time.perf_counter()
        tf_model.predict(frame)
        figures[f"{task}: TF orders/s"] = len(frame) / max(time.perf_counter() - started, 1e-9)
        if task == "late_risk":
            figures["late_risk: scoring with reasons orders/s"] = _reasons_throughput(result, frame)
    return figures


def _quantile_ends(
    rows: pd.DataFrame, features: list[str], target: str, level: float
) -> tuple[SklearnModel, SklearnModel]:
    """Quantile gradient boosting of the low and high ends of a ``level`` range on ``rows``."""
    tail = (1 - level) / 2
    y = rows[target].astype(float).to_numpy()
    ends = []
    for alpha in (tail, 1 - tail):
        params = {**GB_PARAMS["regression"], "loss": "quantile", "quantile": alpha, "max_iter": 200}
        pipeline = gradient_boosting_pipeline(features, "regression", params)
        ends.append(SklearnModel(pipeline, features, "regression").fit(rows, y))
    return ends[0], ends[1]


def interval_comparison(
    result: TaskResult, level: float = INTERVAL_LEVEL
) -> dict[str, dict[str, float]]:
    """Test coverage and width of the served ETA interval beside two it was chosen over.

    ``conformal`` is the served split-conformal range (:func:`ml_assets.training.fit_interval`).
    ``quantile``: quantile gradient boosting of the (1-level)/2 and (1+level)/2 quantiles on the
    whole training period. ``cqr``: conformalised quantile regression, the same quantiles fitted
    on the training slice and widened (or narrowed) by the calibration slice's conformity score.
    Four fits the training never pays for: they are measured here only.
    """
    split, features, target = result.split, result.features, TASKS[result.task]["target"]
    y_test = split.test[target].astype(float).to_numpy()
    point = np.clip(result.candidates[result.serving].test_predictions, 0.0, None)
    measured = {"conformal": dict(result.interval_test)} if result.interval_test else {}

    def around_point(low: np.ndarray, high: np.ndarray) -> dict[str, float]:
        low = np.clip(np.minimum(low, point), 0.0, None)
        return interval_metrics(y_test, low, np.maximum(high, point))

    low, high = _quantile_ends(split.fit, features, target, level)
    measured["quantile"] = around_point(low.predict(split.test), high.predict(split.test))
    low, high = _quantile_ends(split.train, features, target, level)
    y_calib = split.valid[target].astype(float).to_numpy()
    scores = np.maximum(low.predict(split.valid) - y_calib, y_calib - high.predict(split.valid))
    margin = conformal_quantile(scores, level)
    measured["cqr"] = around_point(
        low.predict(split.test) - margin, high.predict(split.test) + margin
    )
    return measured


def _reasons_throughput(result: TaskResult, frame: pd.DataFrame) -> float:
    """Orders per second for full late-risk scoring (risk, band and occlusion reasons)."""
    from ml_assets.scoring import score_late_risk
    from ml_assets.training import RISK_BAND_QUANTILES, _reference_values

    served = result.candidates[result.serving]
    entry = {
        "model_name": served.model_name,
        "model_version": "bench",
        "hyperparameters": {
            "risk_band_thresholds": {
                b: float(np.quantile(served.fit_scores, q)) for b, q in RISK_BAND_QUANTILES.items()
            }
        },
        "reference_values": _reference_values(result.split.fit, result.features),
        "mode_late_rates": result.candidates["late_risk_mode_rate"].model.params,  # type: ignore[attr-defined]
    }
    sample = frame.head(2000)
    started = time.perf_counter()
    score_late_risk(sample, np.ones(len(sample), dtype=bool), entry, model=served.model)
    return len(sample) / max(time.perf_counter() - started, 1e-9)


def bench_models(settings: Any, report: Any) -> None:
    """Issue 6: the EVALUATION.md table with our TF models, GB challengers and baselines."""
    for name in PROTOCOLS:
        section = f"models: {name} protocol (test from {PROTOCOLS[name]})"
        print(f"\n{section}", flush=True)
        started = time.perf_counter()
        frame = protocol_features(name, settings)
        report.add(section, **{"clean lake build seconds": time.perf_counter() - started})
        report.add(section, **evaluate_protocol(frame, name))
        report.add(section, **segments_and_demand(settings.home / "bench" / f"ml-{name}"))


def segments_and_demand(home: Path) -> dict[str, Any]:
    """Segments (silhouette vs monetary quartiles, sizes) and demand WAPE vs seasonal naive.

    Demand is scored at the grain :func:`ml_assets.demand.choose_grain` picks, against the
    seasonal naive forecast at that grain (same weekday last week for days, last week for weeks).
    """
    from ml_assets.demand import daily_category_orders, fit_demand
    from ml_assets.segments import customer_features, fit_segments

    clean = home / "lake" / "clean"
    orders = read_clean(
        clean, "cleaned_orders", ["order_id", "customer_id", "order_time", "net_value"]
    ).frame
    deliveries = read_clean(clean, "cleaned_deliveries", ["order_id", "is_late", "delay_days"])
    segments = fit_segments(customer_features(orders, deliveries.frame))
    sizes = ", ".join(f"{p['segment_name']}: {p['customers']}" for p in segments.profiles)
    items = read_clean(clean, "cleaned_order_items", ["order_id", "category", "order_time"]).frame
    demand = fit_demand(daily_category_orders(items))
    return {
        "segments: k (max silhouette)": segments.k,
        "segments: silhouette k-means": segments.silhouettes[segments.k],
        "segments: silhouette monetary quartiles": segments.baseline_silhouette,
        "segments: sizes": sizes,
        "demand: grain (weekly when most category-days are empty)": (
            f"{demand.grain} ({demand.empty_share:.0%} of category-days empty)"
        ),
        "demand: WAPE gradient boosting": demand.wape_model,
        "demand: WAPE seasonal naive (same grain)": demand.wape_naive,
    }
