"""Scoring orders with the serving models: predicted delivery days, late risk and its reasons.

Every row carries the ``model_name`` and ``model_version`` that made it (a registry entry, whose
artifact hash matches the file loaded here). ``top_reasons`` explains a late risk to a
customer-service agent by *occlusion*: each group of features is replaced by its typical training
value (:data:`REASON_GROUPS`), the order is re-scored, and the groups whose removal lowers the risk
(in log-odds) most are its drivers, phrased with the order's own facts ("First Class: 95% late
historically"). An order where no group stands out (every fact points the same way) gets none.

A cycle scores only the orders that need it, new and changed ones, and keeps every other served
row; a new serving model scores every order again (:mod:`ml_assets.incremental`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from ml_assets.incremental import (
    CLOSED_STATUSES,
    DELIVERIES,
    FEATURES,
    InputVersion,
    ScoringPlan,
    commit_scores,
    pin_inputs,
    plan_scoring,
    removed_orders,
)
from ml_assets.models import IntervalModel, Servable, load_interval, load_model
from ml_assets.outputs import SCHEMAS, conform, output_path, read_output, write_output
from ml_assets.registry import file_sha256, serving_entry
from ml_assets.training import population_stability
from spark.tables import current_version

if TYPE_CHECKING:
    from scpro_assets.settings import Settings

#: Feature groups occluded together, so a reason names one business fact, not one column.
REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "shipping": ("shipping_mode", "carrier", "scheduled_days"),
    "route": ("distance_km", "market", "region"),
    "incidents": ("open_incidents_at_order", "open_carrier_incidents_at_order"),
    "origin_load": ("origin_orders_24h", "origin_orders_7d", "load_basis"),
    "customer_history": (
        "prior_orders",
        "prior_spend",
        "days_since_prior_order",
        "prior_delivered_orders",
        "prior_late_rate",
        "customer_segment",
    ),
    "basket": (
        "item_count",
        "units",
        "net_value",
        "freight",
        "total_weight_g",
        "main_category",
        "main_department",
        "distinct_categories",
        "max_unit_price",
        "payment_type",
        "channel",
    ),
    "timing": (
        "order_weekday",
        "order_hour",
        "order_month_of_year",
        "is_weekend",
        "is_peak_season",
    ),
}
#: A group is a reason only when occluding it lowers the risk's log-odds by at least this much.
#: Log-odds, not probability: an order at 98 % risk with three causes barely moves in probability
#: when one cause is removed, but clearly moves in log-odds.
MIN_REASON_EFFECT = 0.05
MAX_REASONS = 3
#: PSI above this between training scores and current scores fails the drift check
#: (the usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift).
PSI_THRESHOLD = 0.25
#: Fewest rows a statistical check judges on; below it the check says "not judged" with the
#: count instead of crying wolf (issue #14: PSI 8.3 on 1 compared row, 6.0 on 14). An unchanged
#: score distribution still scores a PSI of about chi-square(9)/n on n scores in the ten bins of
#: the training reference (``DRIFT_BINS``); measured on 20,000 draws of the same distribution:
#: 8.3 on 1 row, a mean of 1.8 on 14 (97 % of them above the 0.25 threshold), 0.10 on 100 (0.9 %
#: false alarms), 0.047 on 200 with none above the threshold (99.9th percentile 0.15). A model's
#: test comparison with its baseline is as noisy below that: a ROC-AUC on 200 orders has a
#: standard error of about 0.03, the size of the margins models win by (README, Measured).
MIN_ROWS_TO_JUDGE = 200
_WEEKDAYS = {
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}


def load_serving(entry: dict[str, Any]) -> Servable:
    """Load the entry's artifact after checking its hash (a swapped file must not serve)."""
    path = Path(entry["artifact_path"])
    digest = file_sha256(path)
    if digest != entry["artifact_sha256"]:
        raise ValueError(f"{path} does not match its registry hash: refusing to score with it")
    return load_model(path)


def load_serving_interval(entry: dict[str, Any]) -> IntervalModel | None:
    """The entry's ETA interval after checking its hash; None for an entry without one."""
    if not entry.get("interval_artifact_path"):
        return None
    path = Path(entry["interval_artifact_path"])
    if file_sha256(path) != entry["interval_artifact_sha256"]:
        raise ValueError(f"{path} does not match its registry hash: refusing to score with it")
    return load_interval(path)


def _eta_dates(order_time: pd.Series, days: np.ndarray) -> list:
    """UTC calendar dates ``days`` after each order time (None where unknown)."""
    moments = pd.to_datetime(order_time, utc=True) + pd.to_timedelta(days, unit="D")
    return [None if pd.isna(m) else m.date() for m in moments]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _reason_text(group: str, row: pd.Series, entry: dict[str, Any]) -> str:
    """The driver in an agent's words, from the order's own values."""
    if group == "shipping":
        rates = entry.get("mode_late_rates", {}).get("rates", {})
        for column in ("shipping_mode", "carrier"):
            value = row.get(column)
            if value is not None and pd.notna(value) and str(value) in rates.get(column, {}):
                return f"{value}: {rates[column][str(value)]:.0%} late historically"
        days = _number(row.get("scheduled_days"))
        return f"tight promise ({days:.0f} days)" if days is not None else "shipping option"
    if group == "route":
        km = _number(row.get("distance_km"))
        if km is not None:
            return f"long distance ({km:,.0f} km)"
        return f"ships to {row.get('region') or row.get('market') or 'a difficult region'}"
    if group == "incidents":
        carrier = _number(row.get("open_carrier_incidents_at_order"))
        if carrier:
            return f"{carrier:.0f} carrier incidents open"
        return f"{_number(row.get('open_incidents_at_order')) or 0:.0f} incidents open"
    if group == "origin_load":
        day = _number(row.get("origin_orders_24h"))
        return f"busy origin ({day:.0f} orders in 24 h)" if day is not None else "busy origin"
    if group == "customer_history":
        rate = _number(row.get("prior_late_rate"))
        if rate is not None:
            return f"{rate:.0%} of this customer's past orders were late"
        prior = _number(row.get("prior_orders"))
        return "new customer" if not prior else f"customer with {prior:.0f} earlier orders"
    if group == "basket":
        category = row.get("main_category")
        units = _number(row.get("units"))
        text = f"{category}" if category is not None and pd.notna(category) else "basket"
        return f"{text} basket ({units:.0f} units)" if units else f"{text} basket"
    weekday = _WEEKDAYS.get(str(row.get("order_weekday")), "this day")
    peak = ", peak season" if bool(row.get("is_peak_season")) else ""
    return f"ordered on a {weekday}{peak}"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def explain_late_risk(
    model: Servable, frame: pd.DataFrame, entry: dict[str, Any], base: np.ndarray
) -> list[str]:
    """Top drivers per order by occlusion (see the module docstring), ``'; '``-joined."""
    reference = entry.get("reference_values", {})
    effects: dict[str, np.ndarray] = {}
    for group, columns in REASON_GROUPS.items():
        used = [c for c in columns if c in model.features]
        if not used:
            continue
        occluded = frame.copy()
        for column in used:
            occluded[column] = reference.get(column)
        effects[group] = _logit(base) - _logit(model.predict(occluded))
    names = list(effects)
    if not names:
        return [""] * len(frame)
    matrix = np.column_stack([effects[n] for n in names])
    order = np.argsort(-matrix, axis=1)[:, :MAX_REASONS]
    reasons = []
    for i, (_, row) in enumerate(frame.iterrows()):
        parts = [
            _reason_text(names[j], row, entry)
            for j in order[i]
            if matrix[i, j] >= MIN_REASON_EFFECT
        ]
        reasons.append("; ".join(parts))
    return reasons


def risk_bands(risk: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` by the thresholds stored in the registry entry."""
    return np.where(
        risk >= thresholds["high"], "high", np.where(risk >= thresholds["medium"], "medium", "low")
    )


def _model_columns(entry: dict[str, Any], n: int, scored_at: datetime) -> dict[str, list]:
    return {
        "model_name": [entry["model_name"]] * n,
        "model_version": [entry["model_version"]] * n,
        "scored_at": [scored_at] * n,
    }


def score_delivery_time(
    frame: pd.DataFrame,
    is_open: np.ndarray,
    entry: dict[str, Any],
    scored_at: datetime | None = None,
    model: Servable | None = None,
    interval: IntervalModel | None = None,
) -> pa.Table:
    """``delivery_time_predictions`` for every order of ``frame``, with its ETA interval.

    ``interval`` defaults to the entry's; an entry without one (trained before intervals
    existed) scores with null interval ends.
    """
    scored_at = scored_at or datetime.now(UTC)
    model = model or load_serving(entry)
    interval = interval or load_serving_interval(entry)
    days = np.clip(model.predict(frame), 0.0, None)
    if interval is not None:
        low, high = interval.bounds(days)
    else:
        low = high = np.full(len(frame), np.nan)
    eta = pd.to_datetime(frame["order_time"], utc=True) + pd.to_timedelta(days, unit="D")
    data = {
        "order_id": frame["order_id"].astype(str).tolist(),
        "predicted_delivery_days": days.tolist(),
        "predicted_delivery_time": eta.dt.floor("us").tolist(),
        "predicted_delivery_date": _eta_dates(frame["order_time"], days),
        "eta_low": _eta_dates(frame["order_time"], low),
        "eta_high": _eta_dates(frame["order_time"], high),
        "eta_low_days": [None if np.isnan(v) else float(v) for v in low],
        "eta_high_days": [None if np.isnan(v) else float(v) for v in high],
        "is_open": [bool(v) for v in is_open],
        **_model_columns(entry, len(frame), scored_at),
    }
    return pa.Table.from_pydict(data, schema=SCHEMAS["delivery_time_predictions"])


def score_late_risk(
    frame: pd.DataFrame,
    is_open: np.ndarray,
    entry: dict[str, Any],
    scored_at: datetime | None = None,
    model: Servable | None = None,
    explain: bool = True,
) -> pa.Table:
    """``late_risk_scores`` for every order of ``frame``, with bands and top reasons."""
    scored_at = scored_at or datetime.now(UTC)
    model = model or load_serving(entry)
    risk = np.clip(model.predict(frame), 0.0, 1.0)
    thresholds = entry["hyperparameters"]["risk_band_thresholds"]
    reasons = explain_late_risk(model, frame, entry, risk) if explain else [""] * len(frame)
    data = {
        "order_id": frame["order_id"].astype(str).tolist(),
        "late_risk": risk.tolist(),
        "risk_band": risk_bands(risk, thresholds).tolist(),
        "top_reasons": reasons,
        "is_open": [bool(v) for v in is_open],
        **_model_columns(entry, len(frame), scored_at),
    }
    return pa.Table.from_pydict(data, schema=SCHEMAS["late_risk_scores"])


def drift_population(
    order_time: pd.Series, is_open: np.ndarray, min_open: int = MIN_ROWS_TO_JUDGE
) -> np.ndarray:
    """Rows the drift check compares with training: open orders, else the last 30 days' orders.

    Back-scores of the training period would dilute any shift, so they are left out. Open orders
    are used once there are enough of them to judge on (:data:`MIN_ROWS_TO_JUDGE`).
    """
    if is_open.sum() >= min_open:
        return is_open.astype(bool)
    times = pd.to_datetime(order_time, utc=True)
    return (times >= times.max() - pd.Timedelta(days=30)).to_numpy()


def score_drift(entry: dict[str, Any], scores: np.ndarray) -> float:
    """PSI of current scores against the training scores kept in the registry entry."""
    return population_stability(entry["score_reference"], scores)


def orders_to_score(
    clean_dir: Path,
    versions: Mapping[str, InputVersion] | None = None,
    order_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Orders with their features, and whether each is still open (not delivered or canceled).

    Every order, or only ``order_ids``; the input tables as of ``versions`` (the ones a scoring
    plan pinned), else their latest versions.
    """
    from ml_assets.data import read_clean
    from scpro_assets.lake_duckdb import connect_lake

    versions = versions or pin_inputs(clean_dir)
    with connect_lake() as con:
        features = read_clean(
            clean_dir, FEATURES, version=versions[FEATURES].version, order_ids=order_ids, con=con
        )
        deliveries = read_clean(
            clean_dir,
            DELIVERIES,
            ["order_id", "status"],
            version=versions[DELIVERIES].version,
            order_ids=order_ids,
            con=con,
        )
    frame = features.frame.merge(deliveries.frame, on="order_id", how="left")
    is_open = ~frame["status"].isin(CLOSED_STATUSES).to_numpy()
    return frame, is_open


@dataclass(frozen=True)
class ScoringRun:
    """One scoring cycle of a serving model: the orders it scored, and the table it serves."""

    entry: dict[str, Any]
    plan: ScoringPlan
    #: The rows scored this cycle (every order's in a full scoring).
    table: pa.Table
    seconds: float
    path: Path
    #: The served table's Delta version after the cycle (the same when it committed nothing).
    version: int | None
    output: str
    clean_dir: Path

    @property
    def orders_per_second(self) -> float:
        """Scoring throughput of this cycle (0 when it scored nothing)."""
        return round(self.table.num_rows / max(self.seconds, 1e-9), 1)

    def served(self, columns: list[str]) -> pa.Table:
        """``columns`` of every served row: this cycle's scores and those it kept."""
        return read_output(self.path.parent, self.output, columns)

    def drift_inputs(self, column: str) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
        """The served ``column``, each order's time and open flag: what the drift check compares.

        The population is the served rows' current scores, as when every cycle scored every
        order: open orders, else the last 30 days' (:func:`drift_population`). With enough open
        orders only theirs are returned, and no order time is read (the population does not
        need it, so ``order_time`` is null): reading and joining every order's time would make
        each cycle's cost grow with the history.
        """
        served = self.served([column, "is_open"])
        is_open = served.column("is_open").to_numpy(zero_copy_only=False).astype(bool)
        if is_open.sum() >= MIN_ROWS_TO_JUDGE:
            scores = served.column(column).to_numpy(zero_copy_only=False)[is_open]
            frame = pd.DataFrame({"order_time": pd.Series(pd.NaT, index=range(len(scores)))})
            return scores, frame, np.ones(len(scores), dtype=bool)
        rows = self.served(["order_id", column, "is_open"]).to_pandas()
        features = DeltaTable(
            str(self.clean_dir / FEATURES), version=self.plan.inputs[FEATURES].version
        )
        times = features.to_pyarrow_table(columns=["order_id", "order_time"]).to_pandas()
        frame = rows.merge(times, on="order_id", how="left")
        return frame[column].to_numpy(), frame, frame["is_open"].to_numpy(dtype=bool)


def score_and_publish(
    settings: Settings,
    task: str,
    output: str,
    scorer: Callable[[pd.DataFrame, np.ndarray, dict[str, Any]], pa.Table],
) -> ScoringRun:
    """Score the orders that need it with the serving model of ``task``; publish ``output``.

    Every order when the serving model or the scored table changed (:func:`plan_scoring`), else
    only the new and changed orders, merged into the served table; either way in one commit
    with the state that says what was scored (:mod:`ml_assets.incremental`).
    """
    entry = serving_entry(settings.models_dir, task)
    path = output_path(settings.ml_dir, output)
    plan = plan_scoring(settings.clean_dir, path, entry)
    if plan.changes_nothing:
        empty = SCHEMAS[output].empty_table()
        return ScoringRun(
            entry, plan, empty, 0.0, path, current_version(path), output, settings.clean_dir
        )
    frame, is_open = orders_to_score(
        settings.clean_dir, plan.inputs, None if plan.full else plan.order_ids
    )
    started = time.perf_counter()
    table = scorer(frame, is_open, entry) if len(frame) else SCHEMAS[output].empty_table()
    seconds = time.perf_counter() - started
    table = conform(output, table)
    if plan.full:
        write_output(settings.ml_dir, output, table, plan.state.to_metadata())
        version = current_version(path)
    else:
        removed = removed_orders(plan.order_ids, frame["order_id"].astype(str).tolist())
        version = commit_scores(path, table, removed, plan.state)
    return ScoringRun(entry, plan, table, seconds, path, version, output, settings.clean_dir)
