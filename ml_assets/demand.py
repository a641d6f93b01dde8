"""Demand forecast: orders per category per day, or per week for sparse series, gradient boosting.

**Grain.** When most category-days are empty (:data:`SPARSE_EMPTY_SHARE`), a daily WAPE mostly
scores which day a lone order happens to land on: on the DataCo sample (about 0.4 orders a day per
category, 69 % of category-days empty) no daily model beat "same weekday last week" (gradient
boosting 1.34 vs 1.13). Such data is forecast per ISO week (weeks start on Monday, only complete
weeks count), and the seasonal naive baseline of ``EVALUATION.md`` becomes its equivalent at that
grain, last week's count. Olist (59 % empty) is weekly by the same rule. Dense data stays daily.

**Daily model.** Lags of at least 7 days only (7, 14, 21, 28 days and the means of days t-7..t-13
and t-7..t-34), so the next 7 days are forecast directly from known history, without feeding
forecasts back in; histogram gradient boosting with a Poisson loss (counts).

**Weekly model.** Next week from the last four weeks, the 8-week mean and an exponentially
weighted level of past weeks (:data:`LEVEL_ALPHA`). Inputs and target are divided by that level
(:class:`LevelScaledRegressor`), so one pooled model serves categories of every size and a
category whose level moves is not pushed outside the range the trees were fitted on; the loss is
absolute error, the quantity WAPE sums; few, large leaves for the ~1,600 weekly training rows.

Both are judged on the last 20 % of periods by WAPE = sum |forecast - actual| / sum actual, next
to the seasonal naive forecast. The categories are the busiest :data:`TOP_CATEGORIES`; the rest
are summed as ``Other`` so thin series do not drown the model in zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.models import openmp_threads
from ml_assets.training import NotEnoughDataError

TOP_CATEGORIES = 12
#: Above this share of empty category-days, the forecast is weekly (see the module docstring).
SPARSE_EMPTY_SHARE = 0.5
#: A weekly forecast needs this many complete weeks; sparse data with less history stays daily.
MIN_WEEKS = 16
#: A daily forecast needs this many days with four weeks of history before them (its lags).
MIN_FORECAST_DAYS = 21
#: Smoothing of the weekly level (weight of the latest week).
LEVEL_ALPHA = 0.5
#: Periods forecast ahead directly, per grain.
HORIZON: dict[str, int] = {"day": 7, "week": 1}
LAGS: dict[str, tuple[int, ...]] = {"day": (7, 14, 21, 28), "week": (1, 2, 3, 4)}
#: The seasonal naive forecast per grain (same weekday last week; last week).
NAIVE: dict[str, str] = {"day": "lag_7", "week": "lag_1"}
FEATURES: dict[str, tuple[str, ...]] = {
    "day": (
        "category_code",
        "weekday",
        "month",
        "day_of_month",
        *(f"lag_{lag}" for lag in LAGS["day"]),
        "mean_7_13",
        "mean_7_34",
    ),
    # ``level`` scales (it is not a tree input); the trees see ratios to it and its log.
    "week": (
        "category_code",
        "week_of_year",
        "month",
        *(f"ratio_lag_{lag}" for lag in LAGS["week"]),
        "ratio_mean_8",
        "log_level",
        "level",
    ),
}
ALGORITHM: dict[str, str] = {
    "day": "histogram gradient boosting (poisson)",
    "week": "histogram gradient boosting on level-scaled weeks (absolute error)",
}
GB_PARAMS: dict[str, dict[str, Any]] = {
    "day": {
        "loss": "poisson",
        "learning_rate": 0.05,
        "max_iter": 300,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "early_stopping": False,
        "random_state": 0,
    },
    "week": {
        "loss": "absolute_error",
        "learning_rate": 0.05,
        "max_iter": 100,
        "max_leaf_nodes": 7,
        "min_samples_leaf": 100,
        "early_stopping": False,
        "random_state": 0,
    },
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


def weekly_category_orders(daily: pd.DataFrame) -> pd.DataFrame:
    """Orders per (category, ISO week starting Monday) over the weeks the data fully covers."""
    week = daily["day"] - pd.to_timedelta(daily["day"].dt.weekday, unit="D")
    weeks = daily.assign(day=week)
    complete = weeks.groupby("day")["category"].size() == 7 * daily["category"].nunique()
    weeks = weeks.loc[weeks["day"].isin(complete.index[complete])]
    return weeks.groupby(["category", "day"], as_index=False)["orders"].sum()


def choose_grain(daily: pd.DataFrame) -> str:
    """``week`` when most category-days are empty and enough weeks exist, else ``day``."""
    sparse = float((daily["orders"] == 0).mean()) > SPARSE_EMPTY_SHARE
    weeks = daily["day"].nunique() // 7
    return "week" if sparse and weeks >= MIN_WEEKS else "day"


def demand_features(periods: pd.DataFrame, grain: str = "day") -> pd.DataFrame:
    """Calendar and lag features per (category, period), extended :data:`HORIZON` periods ahead.

    ``periods`` has ``category``, ``day`` (the period's first day) and ``orders``.
    """
    step = pd.Timedelta(days=1 if grain == "day" else 7)
    last = periods["day"].max()
    future = pd.DataFrame(
        [
            (c, last + d * step)
            for c in periods["category"].unique()
            for d in range(1, HORIZON[grain] + 1)
        ],
        columns=["category", "day"],
    )
    frame = pd.concat([periods, future.assign(orders=np.nan)], ignore_index=True)
    frame = frame.sort_values(["category", "day"]).reset_index(drop=True)
    grouped = frame.groupby("category")["orders"]
    for lag in LAGS[grain]:
        frame[f"lag_{lag}"] = grouped.shift(lag)
    categories = sorted(frame["category"].unique())
    frame["category_code"] = frame["category"].map({c: i for i, c in enumerate(categories)})
    frame["month"] = frame["day"].dt.month
    if grain == "day":
        frame["mean_7_13"] = grouped.transform(
            lambda s: s.shift(7).rolling(7, min_periods=1).mean()
        )
        frame["mean_7_34"] = grouped.transform(
            lambda s: s.shift(7).rolling(28, min_periods=1).mean()
        )
        frame["weekday"] = frame["day"].dt.weekday
        frame["day_of_month"] = frame["day"].dt.day
    else:
        level = grouped.transform(lambda s: s.shift(1).ewm(alpha=LEVEL_ALPHA).mean())
        scale = level.where(level > 0)
        for lag in LAGS[grain]:
            frame[f"ratio_lag_{lag}"] = frame[f"lag_{lag}"] / scale
        mean_8 = grouped.transform(lambda s: s.shift(1).rolling(8, min_periods=1).mean())
        frame["ratio_mean_8"] = mean_8 / scale
        frame["level"] = level
        frame["log_level"] = np.log1p(level)
        frame["week_of_year"] = frame["day"].dt.isocalendar().week.astype(int)
    frame["is_future"] = frame["day"] > last
    return frame


@dataclass
class LevelScaledRegressor:
    """Gradient boosting on demand relative to the recent level: forecast = level x ratio.

    Rows with a zero level (nothing ordered yet) are forecast 0 and left out of the fit; the others
    are weighted by their level, so the loss on ratios equals the absolute error on orders.
    """

    params: dict[str, Any]
    scale: str = "level"
    model: Any = field(default=None, repr=False)

    def _inputs(self, x: pd.DataFrame) -> pd.DataFrame:
        return x.drop(columns=[self.scale])

    def fit(self, x: pd.DataFrame, y: pd.Series) -> LevelScaledRegressor:
        """Fit on the rows with a positive level."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        level = x[self.scale].to_numpy(dtype=float)
        known = level > 0
        self.model = HistGradientBoostingRegressor(**self.params).fit(
            self._inputs(x.loc[known]),
            np.asarray(y, dtype=float)[known] / level[known],
            sample_weight=level[known],
        )
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        """Orders per row (0 where the level is 0)."""
        level = np.nan_to_num(x[self.scale].to_numpy(dtype=float))
        return np.where(level > 0, self.model.predict(self._inputs(x)) * level, 0.0)


def _new_model(grain: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    if grain == "week":
        return LevelScaledRegressor(GB_PARAMS["week"])
    return HistGradientBoostingRegressor(**GB_PARAMS["day"])


@dataclass
class DemandResult:
    """The fitted model, its test scores and the rows to publish."""

    model: Any
    grain: str
    wape_model: float
    wape_naive: float
    test_start: pd.Timestamp
    rows: pd.DataFrame
    train_rows: int
    test_rows: int
    categories: list[str]
    empty_share: float

    @property
    def features(self) -> list[str]:
        """The model's inputs."""
        return list(FEATURES[self.grain])


def fit_demand(daily: pd.DataFrame, test_share: float = 0.2) -> DemandResult:
    """Fit on the first 80 % of periods, score the rest against seasonal naive, forecast ahead.

    The grain is :func:`choose_grain`'s. The published history carries the train-period model's
    forecasts (in-sample before the test start, out-of-sample after); the future rows come from a
    model refitted on all history. ``rows`` has ``period_start``, ``forecast_orders``,
    ``baseline_orders``, ``actual_orders`` and ``is_future``.
    """
    grain = choose_grain(daily)
    periods = daily if grain == "day" else weekly_category_orders(daily)
    frame = demand_features(periods, grain)
    longest = f"lag_{LAGS[grain][-1]}"
    known = frame.loc[~frame["is_future"] & frame[longest].notna()]
    starts = np.sort(known["day"].unique())
    if len(starts) < MIN_FORECAST_DAYS and grain == "day":
        raise NotEnoughDataError(
            f"{len(starts)} days with 4 weeks of history so far; "
            f"forecasting needs {MIN_FORECAST_DAYS}",
            rows=len(starts),
            min_rows=MIN_FORECAST_DAYS,
        )
    test_start = pd.Timestamp(starts[int(len(starts) * (1 - test_share))])
    train = known.loc[known["day"] < test_start]
    test = known.loc[known["day"] >= test_start]
    x = list(FEATURES[grain])
    rows = frame.loc[frame[longest].notna() | frame["is_future"]].copy()
    history = ~rows["is_future"]
    with openmp_threads():  # gradient boosting: see OPENMP_THREADS
        model = _new_model(grain).fit(train[x], train["orders"])
        result_wape = wape(test["orders"].to_numpy(), model.predict(test[x]))
        final = _new_model(grain).fit(known[x], known["orders"])
        forecast = np.where(history, model.predict(rows[x]), final.predict(rows[x]))
    naive_wape = wape(test["orders"].to_numpy(), test[NAIVE[grain]].to_numpy())
    rows["period_start"] = rows["day"]
    rows["forecast_orders"] = forecast
    rows["baseline_orders"] = rows[NAIVE[grain]]
    rows["actual_orders"] = rows["orders"].where(history)
    return DemandResult(
        final,
        grain,
        result_wape,
        naive_wape,
        test_start,
        rows,
        len(train),
        len(test),
        sorted(frame["category"].unique()),
        float((daily["orders"] == 0).mean()),
    )


def registry_fields(result: DemandResult, days: pd.Series) -> dict[str, Any]:
    """What the registry records of a fitted forecast, beyond its identity and data versions."""
    return {
        "train_rows": result.train_rows,
        "test_rows": result.test_rows,
        "train_start": pd.Timestamp(days.min(), tz="UTC").isoformat(),
        "train_end": (result.test_start - pd.Timedelta(days=1)).tz_localize("UTC").isoformat(),
        "test_start": result.test_start.tz_localize("UTC").isoformat(),
        "test_end": pd.Timestamp(days.max(), tz="UTC").isoformat(),
        "features": result.features,
        "hyperparameters": {
            **GB_PARAMS[result.grain],
            "grain": result.grain,
            "grain_reason": f"{result.empty_share:.0%} of category-days empty "
            f"(weekly above {SPARSE_EMPTY_SHARE:.0%})",
            "categories": result.categories,
        },
        "metrics": {"wape": result.wape_model, "wape_seasonal_naive": result.wape_naive},
        "primary_metric": "wape",
        "primary_metric_value": result.wape_model,
        "serving_reason": f"gradient boosting per {result.grain} vs seasonal naive per "
        f"{result.grain}: WAPE {result.wape_model:.3f} vs {result.wape_naive:.3f}",
    }
