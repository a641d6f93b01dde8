"""Statistical checks judge only on enough rows: too few says "not judged" with the count.

Issue #14: the drift checks failed with PSI 8.3 on 1 compared row and 6.0 on 14, and each failure
asked for a retrain. These tests call the checks' plain functions and the drift sensor directly
(no training, no Spark), so they take seconds.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.automation import DRIFT_CHECKS, ml_drift_sensor
from ml_assets.checks import baseline_check_result, drift_check_result
from ml_assets.scoring import MIN_ROWS_TO_JUDGE, PSI_THRESHOLD
from ml_assets.training import score_reference

RNG_SEED = 14


def _entry() -> dict:
    """A registry entry whose training scores follow Beta(2, 5)."""
    rng = np.random.default_rng(RNG_SEED)
    return {"model_version": "v-test", "score_reference": score_reference(rng.beta(2, 5, 5000))}


def _orders(scores: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Open orders (all of them compared by the drift check) with these scores."""
    times = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(np.arange(len(scores)), "h")
    return pd.DataFrame({"order_time": times}), np.ones(len(scores), dtype=bool)


def _drift(scores: np.ndarray) -> dg.AssetCheckResult:
    frame, is_open = _orders(scores)
    return drift_check_result(_entry(), scores, frame, is_open, "late_risk")


def _meta(result: dg.AssetCheckResult) -> dict:
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


@pytest.mark.parametrize("rows", [1, 14])
def test_drift_on_too_few_rows_is_not_judged_with_the_counts(rows: int):
    # Shifted far from training: on enough rows this would fail (PSI 8.3 on 1 row in issue #14).
    scores = np.full(rows, 0.97)
    result = _drift(scores)
    assert result.passed is True
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == (
        f"not judged: {rows} late_risk scores to compare; PSI needs {MIN_ROWS_TO_JUDGE}"
    )
    meta = _meta(result)
    assert (meta["judged"], meta["rows"], meta["min_rows"]) == (False, rows, MIN_ROWS_TO_JUDGE)
    assert "psi" not in meta


def test_drift_on_enough_rows_fails_on_a_real_shift_and_passes_without_one():
    rng = np.random.default_rng(RNG_SEED + 1)
    shifted = _drift(rng.beta(5, 2, MIN_ROWS_TO_JUDGE))
    assert shifted.passed is False and shifted.severity == dg.AssetCheckSeverity.WARN
    meta = _meta(shifted)
    assert meta["judged"] is True and meta["rows"] == MIN_ROWS_TO_JUDGE
    assert meta["psi"] > PSI_THRESHOLD
    steady = _drift(rng.beta(2, 5, MIN_ROWS_TO_JUDGE))
    assert steady.passed is True and _meta(steady)["psi"] < 0.1


def test_an_unchanged_distribution_does_not_cry_wolf_at_the_minimum():
    """Why the minimum is what it is: at MIN_ROWS_TO_JUDGE rows, noise stays under the threshold;
    at 14 rows it is over it most of the time (the issue's false alarms)."""
    from ml_assets.training import population_stability

    rng = np.random.default_rng(RNG_SEED + 2)
    reference = _entry()["score_reference"]

    def alarms(rows: int) -> float:
        draws = [population_stability(reference, rng.beta(2, 5, rows)) for _ in range(500)]
        return float(np.mean(np.asarray(draws) > PSI_THRESHOLD))

    assert alarms(MIN_ROWS_TO_JUDGE) == 0.0
    assert alarms(14) > 0.5


def test_a_model_on_a_small_test_set_serves_but_its_baseline_check_is_not_judged():
    small = baseline_check_result(True, 37, {"serving": "gb", "best_baseline": 0.7}, "gb 0.6")
    assert small.passed is False  # a warning that makes the automation train it again
    assert small.severity == dg.AssetCheckSeverity.WARN
    assert small.description.startswith("not judged: 37 test orders")
    meta = _meta(small)
    assert (meta["judged"], meta["rows"], meta["min_rows"]) == (False, 37, MIN_ROWS_TO_JUDGE)
    assert meta["serving"] == "gb"
    says = "gb test mae 1.200 vs best baseline 1.100"
    judged = baseline_check_result(False, MIN_ROWS_TO_JUDGE, {"serving": "gb"}, says)
    assert judged.passed is False and judged.severity == dg.AssetCheckSeverity.ERROR
    assert _meta(judged)["judged"] is True
    assert judged.description == says  # what a failed-check alert quotes
    assert baseline_check_result(True, 5000, {}, says).passed is True


def _evaluate_drift(instance: dg.DagsterInstance, result: dg.AssetCheckResult, asset: str) -> None:
    """Record ``result`` as the latest ``score_drift`` evaluation of ``asset``."""
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=result.check_name,
            passed=bool(result.passed),
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
        )
    )


def _tick(instance: dg.DagsterInstance, cursor: str | None = None):
    return ml_drift_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_the_retrain_sensor_ignores_not_judged_drift_and_acts_on_a_judged_failure():
    assert {k.asset_key.path[-1] for k in DRIFT_CHECKS} == {
        "late_risk_scores",
        "delivery_time_predictions",
    }
    rng = np.random.default_rng(RNG_SEED + 3)
    with dg.instance_for_test() as instance:
        _evaluate_drift(instance, _drift(np.full(14, 0.97)), "late_risk_scores")
        _evaluate_drift(instance, _drift(np.full(1, 0.97)), "delivery_time_predictions")
        assert isinstance(_tick(instance), dg.SkipReason)

        # A not-judged evaluation that a future change marks as failed still asks for nothing.
        _evaluate_drift(
            instance,
            dg.AssetCheckResult(
                check_name="score_drift",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"judged": False, "rows": 3, "min_rows": MIN_ROWS_TO_JUDGE},
            ),
            "late_risk_scores",
        )
        assert isinstance(_tick(instance), dg.SkipReason)

        _evaluate_drift(instance, _drift(rng.beta(5, 2, 400)), "late_risk_scores")
        result = _tick(instance)
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests
        assert request.tags["scpro/reason"] == "score drift on late_risk_scores"
