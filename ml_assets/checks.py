"""The ML assets' checks: their specs, and their results from what training and scoring found.

Each check says "not judged" (a passing or failing warning, :func:`not_judged`) when there is
too little data for its verdict to mean anything, so a handful of orders at the start of a
stream neither fails a run nor asks for a retrain it cannot use.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.features import leakage_violations
from ml_assets.scoring import MIN_ROWS_TO_JUDGE, PSI_THRESHOLD, drift_population, score_drift
from ml_assets.training import INTERVAL_LEVEL, INTERVAL_TOLERANCE, NotEnoughDataError, TaskResult


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


def model_check_specs(asset: str, metric: str) -> list[dg.AssetCheckSpec]:
    """The checks of a trained model asset (``interval_coverage`` for delivery time only)."""
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


def drift_check_spec(asset: str, score: str) -> dg.AssetCheckSpec:
    """``score_drift`` of a score asset."""
    return dg.AssetCheckSpec(
        "score_drift",
        asset=asset,
        description=f"PSI of {score} on open orders (else the last 30 days) against the serving "
        f"model's training scores stays at or below {PSI_THRESHOLD}; a failure asks for a "
        "retrain (ml_assets.automation).",
    )


def not_trained_yet_results(error: NotEnoughDataError, task: str) -> list[dg.AssetCheckResult]:
    """A model's checks when no model could be trained yet (see ``_not_trained_yet``)."""
    reason = str(error)
    return [
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
    ]


def trained_model_results(
    task: str, result: TaskResult, served: dict[str, Any], metric: str
) -> list[dg.AssetCheckResult]:
    """A trained model's checks: against its baseline, for leakage, and its ETA interval."""
    return [
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
    ]


def beats_baseline_spec(asset: str, description: str) -> dg.AssetCheckSpec:
    """``beats_baseline`` of a segmentation or forecast asset."""
    return dg.AssetCheckSpec("beats_baseline", asset=asset, description=description)


def beats_baseline_result(
    passed: bool, description: str, metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    """``beats_baseline`` of a segmentation or forecast, judged on its own comparison."""
    return dg.AssetCheckResult(
        check_name="beats_baseline", passed=passed, description=description, metadata=metadata
    )
