"""Demand forecast: daily orders per category, gradient boosting on calendar and lag features.

Only lags of at least 7 days are used (7, 14, 21, 28 days and the means of days t-7..t-13 and
t-7..t-34), so the next 7 days are forecast directly from known history, without feeding
forecasts back in. The model is a histogram gradient boosting regressor with a Poisson loss
(counts). It is judged on the last 20 % of days by WAPE = sum |forecast - actual| / sum actual,
next to the seasonal naive forecast (same weekday last week) of ``EVALUATION.md``.

The categories are the busiest :data:`TOP_CATEGORIES`; the rest are summed as ``Other`` so thin
series do not drown the model in zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # sklearn is imported where it is used: loading the code location stays fast
    from sklearn.ensemble import HistGradientBoostingRegressor


TOP_CATEGORIES = 12
HORIZON_DAYS = 7
LAGS = (7, 14, 21, 28)
DEMAND_FEATURES: tuple[str, ...] = (
    "category_code",
    "weekday",
    "month",
    "day_of_month",
    *(f"lag_{lag}" for lag in LAGS),
    "mean_7_13",
    "mean_7_34",
)
GB_PARAMS = {
    "loss": "poisson",
    "learning_rate": 0.05,
    "max_iter": 300,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "early_stopping": False,
    "random_state": 0,
}


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error (NaN when nothing was ordered)."""
    total = float(np.sum(np.abs(actual)))
    return float(np.sum(np.abs(forecast - actual)) / total) if total > 0 else float("nan")


def daily_category_orders(items: pd.DataFrame) -> pd.DataFrame:
    """Orders per (category, day), zero-filled over the whole date range."""
    lines = items.assign(
        day=pd.to_datetime(items["order_time"], utc=True).dt.tz_convert(None).dt.normalize(),
        category=items["category"].fillna("Unknown").astype(str),
    )
    top = lines.groupby("category")["order_id"].nunique().nlargest(TOP_CATEGORIES).index
    lines["category"] = lines["category"].where(lines["category"].isin(top), "Other")
    counts = lines.groupby(["category", "day"])["order_id"].nunique().rename("orders")
    days = pd.date_range(lines["day"].min(), lines["day"].max(), freq="D")
    full = pd.MultiIndex.from_product(
        [sorted(lines["category"].unique()), days], names=["category", "day"]
    )
    return counts.reindex(full, fill_value=0).reset_index()


def demand_features(daily: pd.DataFrame, horizon: int = HORIZON_DAYS) -> pd.DataFrame:
    """Calendar and lag features per (category, day), extended ``horizon`` days into the future."""
    last = daily["day"].max()
    future = pd.DataFrame(
        [
            (c, last + pd.Timedelta(days=d))
            for c in daily["category"].unique()
            for d in range(1, horizon + 1)
        ],
        columns=["category", "day"],
    )
    frame = pd.concat([daily, future.assign(orders=np.nan)], ignore_index=True)
    frame = frame.sort_values(["category", "day"]).reset_index(drop=True)
    grouped = frame.groupby("category")["orders"]
    for lag in LAGS:
        frame[f"lag_{lag}"] = grouped.shift(lag)
    frame["mean_7_13"] = grouped.transform(lambda s: s.shift(7).rolling(7, min_periods=1).mean())
    frame["mean_7_34"] = grouped.transform(lambda s: s.shift(7).rolling(28, min_periods=1).mean())
    categories = sorted(frame["category"].unique())
    frame["category_code"] = frame["category"].map({c: i for i, c in enumerate(categories)})
    frame["weekday"] = frame["day"].dt.weekday
    frame["month"] = frame["day"].dt.month
    frame["day_of_month"] = frame["day"].dt.day
    frame["is_future"] = frame["day"] > last
    return frame


@dataclass
class DemandResult:
    """The fitted model, its test scores and the rows to publish."""

    model: HistGradientBoostingRegressor
    wape_model: float
    wape_naive: float
    test_start: pd.Timestamp
    rows: pd.DataFrame
    train_rows: int
    test_rows: int
    categories: list[str]


def fit_demand(daily: pd.DataFrame, test_share: float = 0.2) -> DemandResult:
    """Fit on the first 80 % of days, score the rest against seasonal naive, forecast a week.

    The published history carries the train-period model's forecasts (in-sample before the test
    start, out-of-sample after); the future rows come from a model refitted on all history.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = demand_features(daily)
    known = frame.loc[~frame["is_future"] & frame["lag_28"].notna()]
    days = np.sort(known["day"].unique())
    if len(days) < 21:
        raise ValueError(f"demand: {len(days)} days with 4 weeks of history; need at least 21")
    test_start = pd.Timestamp(days[int(len(days) * (1 - test_share))])
    train = known.loc[known["day"] < test_start]
    test = known.loc[known["day"] >= test_start]
    x = list(DEMAND_FEATURES)
    model = HistGradientBoostingRegressor(**GB_PARAMS).fit(train[x], train["orders"])
    test_pred = model.predict(test[x])
    result_wape = wape(test["orders"].to_numpy(), test_pred)
    naive_wape = wape(test["orders"].to_numpy(), test["lag_7"].to_numpy())
    final = HistGradientBoostingRegressor(**GB_PARAMS).fit(known[x], known["orders"])
    rows = frame.loc[frame["lag_28"].notna() | frame["is_future"]].copy()
    history = ~rows["is_future"]
    rows["forecast_orders"] = np.where(history, model.predict(rows[x]), final.predict(rows[x]))
    rows["baseline_orders"] = rows["lag_7"]
    rows["actual_orders"] = rows["orders"].where(history)
    return DemandResult(
        final,
        result_wape,
        naive_wape,
        test_start,
        rows,
        len(train),
        len(test),
        sorted(frame["category"].unique()),
    )
