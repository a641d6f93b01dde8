"""Which order-time features the models use, how rows are split by time, and the leakage guard.

Models are judged on the future (``EVALUATION.md``), so three rules are enforced here, in one place
that training, scoring and the asset checks all call:

1. **Only certified features.** A model input must be one of :data:`spark.features.FEATURE_COLUMNS`
   (built point-in-time correct by Spark) and never a known outcome column (:data:`FORBIDDEN`).
2. **Labels known in time.** A training row's label must be known no earlier than its order
   (``label_known_at >= order_time``; equal for same-day deliveries on day-granular data) and,
   for a training cut-off, before that cut-off.
3. **Nothing too good to be true.** A single input that alone (almost) reproduces the label is a
   leak, whatever its name: an order-time fact does not determine the delivery outcome.

``model_inputs`` is the only conversion between a feature frame and a model (dtype casts only);
normalisation, vocabularies and imputation live inside the saved models, so serving uses exactly
what training fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from spark.features import FEATURE_COLUMNS, KEY_COLUMNS, LABEL_COLUMNS

if TYPE_CHECKING:  # sklearn is imported where it is used: loading the code location stays fast
    pass


#: Categorical inputs (strings; integers that name a category are cast to strings).
CATEGORICAL: tuple[str, ...] = (
    "shipping_mode",
    "carrier",
    "market",
    "region",
    "customer_segment",
    "channel",
    "payment_type",
    "main_category",
    "main_department",
    "load_basis",
    "order_weekday",
    "order_month_of_year",
)
#: Numeric inputs (missing values allowed: the models impute them and see a missing flag).
NUMERIC: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL)
#: Heavy-tailed numeric inputs the networks see on a log scale.
LOG_SCALED: frozenset[str] = frozenset(
    {
        "net_value",
        "freight",
        "total_weight_g",
        "max_unit_price",
        "distance_km",
        "prior_spend",
        "days_since_prior_order",
        "prior_orders",
        "prior_delivered_orders",
        "origin_orders_24h",
        "origin_orders_7d",
        "source_orders_7d",
        "units",
        "item_count",
    }
)
#: Columns only known after the order (outcomes and their proxies): never model inputs.
FORBIDDEN: frozenset[str] = frozenset(
    {
        *LABEL_COLUMNS,
        "delivered_at",
        "shipped_at",
        "canceled_at",
        "delay_days",
        "status",
        "exception_count",
        "last_event_at",
        "review_score",
        "days_for_shipping_real",
        "delivery_status",
        "order_status",
    }
)
MISSING_CATEGORY = "(missing)"
#: A single input whose |Spearman correlation| with delivery days, or whose ROC-AUC on the late
#: flag, exceeds this is treated as leaked: order-time facts never determine the outcome.
LEAK_SIGNAL_LIMIT = 0.97


def model_inputs(
    frame: pd.DataFrame, features: list[str] | tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Column arrays a model takes: strings for categories, float32 (NaN = missing) for numbers."""
    inputs: dict[str, np.ndarray] = {}
    for name in features:
        column = frame[name]
        if name in CATEGORICAL:
            text = column.astype("object").where(column.notna(), None)
            inputs[name] = np.array(
                [MISSING_CATEGORY if v is None else str(v) for v in text], dtype=object
            )
        else:
            inputs[name] = (
                pd.to_numeric(column, errors="coerce")
                .astype("float64")
                .to_numpy(dtype=np.float32, na_value=np.nan)
            )
    return inputs


def delivered(frame: pd.DataFrame) -> pd.DataFrame:
    """Orders whose outcome is known (the only rows a model may learn from or be judged on)."""
    known = frame["label_known_at"].notna() & frame["delivery_days"].notna()
    return frame.loc[known & frame["is_late"].notna()].sort_values(["order_time", "order_id"])


@dataclass(frozen=True)
class TimeSplit:
    """Train / early-stopping validation / test rows, all in time order."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp

    @property
    def fit(self) -> pd.DataFrame:
        """Train and validation together (what the challengers and baselines learn from)."""
        return pd.concat([self.train, self.valid])


def time_split(
    frame: pd.DataFrame,
    cutoff: pd.Timestamp | None = None,
    test_share: float = 0.2,
    valid_share: float = 0.15,
    cut_on: str = "order_time",
) -> TimeSplit:
    """Split delivered orders by time: the future is the test set, the end of the past validates.

    Without ``cutoff`` the test set is the last ``test_share`` of the time range (not of the rows,
    so a burst of late orders cannot shift the boundary). Training rows must also have their
    label known before the cut-off when the cut is the platform's own (``cutoff`` is None): on the
    platform, that is all the model could have seen. The evaluation protocols cut on order date
    only (``EVALUATION.md``), which is what passing ``cutoff`` does.
    """
    rows = delivered(frame)
    times = rows[cut_on]
    if cutoff is None:
        start, end = times.min(), times.max()
        cutoff = start + (end - start) * (1 - test_share)
        past = rows.loc[(times < cutoff) & (rows["label_known_at"] <= cutoff)]
    else:
        past = rows.loc[times < cutoff]
    test = rows.loc[times >= cutoff]
    n_valid = max(1, int(len(past) * valid_share))
    return TimeSplit(past.iloc[:-n_valid], past.iloc[-n_valid:], test, pd.Timestamp(cutoff))


def leakage_violations(
    frame: pd.DataFrame, features: list[str] | tuple[str, ...], cutoff: pd.Timestamp | None = None
) -> list[str]:
    """Every way ``features`` on training rows ``frame`` could see past the order time.

    Empty when the guard passes. Checked: names against :data:`FORBIDDEN` and the certified list,
    ``label_known_at >= order_time`` (and ``<= cutoff`` when given) on every row, and each input's
    stand-alone signal on the labels (:data:`LEAK_SIGNAL_LIMIT`).
    """
    from sklearn.metrics import roc_auc_score

    problems = [f"{f} is an outcome known only after the order" for f in features if f in FORBIDDEN]
    problems += [
        f"{f} is not a certified order-time feature (spark.features.FEATURE_COLUMNS)"
        for f in features
        if f not in FEATURE_COLUMNS and f not in FORBIDDEN
    ]
    # Equality is allowed: DataCo dates are whole days, so a same-day delivery is known "at" the
    # order time. A label known *before* its order was placed can only come from a leak.
    early = frame["label_known_at"].notna() & (frame["label_known_at"] < frame["order_time"])
    if early.any():
        problems.append(f"{int(early.sum())} training rows have label_known_at < order_time")
    if cutoff is not None and (frame["label_known_at"] > cutoff).any():
        late = int((frame["label_known_at"] > cutoff).sum())
        problems.append(f"{late} training rows have labels known only after the cut-off {cutoff}")
    labelled = frame.loc[frame["delivery_days"].notna() & frame["is_late"].notna()]
    if len(labelled) >= 30:
        days = labelled["delivery_days"].astype(float)
        late = labelled["is_late"].astype(bool).to_numpy()
        for name in features:
            if name in CATEGORICAL or name not in labelled:
                continue
            values = pd.to_numeric(labelled[name], errors="coerce").astype(float)
            ok = values.notna().to_numpy()
            if ok.sum() < 30 or values[ok].nunique() < 2:
                continue
            rho = abs(values[ok].rank().corr(days[ok].rank()))
            auc = 0.5
            if 0 < late[ok].sum() < ok.sum():
                auc = roc_auc_score(late[ok], values[ok])
                auc = max(auc, 1 - auc)
            if rho > LEAK_SIGNAL_LIMIT or auc > LEAK_SIGNAL_LIMIT:
                problems.append(
                    f"{name} alone reproduces the outcome (|rho| with delivery days {rho:.3f}, "
                    f"late ROC-AUC {auc:.3f}): it cannot be known at order time"
                )
    return problems


class LeakageError(ValueError):
    """Raised when training would use information from after the order time."""


def assert_no_leakage(
    frame: pd.DataFrame, features: list[str] | tuple[str, ...], cutoff: pd.Timestamp | None = None
) -> None:
    """Refuse to train on leaky inputs (see :func:`leakage_violations`)."""
    problems = leakage_violations(frame, features, cutoff)
    if problems:
        raise LeakageError("; ".join(problems))


__all__ = [
    "CATEGORICAL",
    "FORBIDDEN",
    "KEY_COLUMNS",
    "NUMERIC",
    "LeakageError",
    "TimeSplit",
    "assert_no_leakage",
    "delivered",
    "leakage_violations",
    "model_inputs",
    "time_split",
]
