"""Servable models behind one interface.

The TF networks, the gradient-boosting challengers and the baselines all answer
``predict(frame)`` and save/load themselves, so training, scoring and the benchmark treat them
alike and the registry can point at any of them.
"""

from __future__ import annotations

import json
import pickle
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from ml_assets.features import CATEGORICAL, model_inputs

if TYPE_CHECKING:  # sklearn is imported where it is used: loading the code location stays fast
    from sklearn.pipeline import Pipeline

#: OpenMP threads for a scikit-learn fit or prediction (gradient boosting, k-means). One, because
#: the box is never idle: beside Kafka, Spark and the other tests, OpenMP's spinning threads fight
#: for the same cores. One DataCo delivery-time fit took 185 s with the default two threads and
#: 4.5 s with one (2 cores, load average 27); the ETA interval's fits inside every training had
#: hung the end-to-end test, where customer segments then took 4m24s (load average 40).
OPENMP_THREADS = 1


def openmp_threads() -> AbstractContextManager[Any]:
    """Limit OpenMP (scikit-learn's gradient boosting and k-means) to :data:`OPENMP_THREADS`."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=OPENMP_THREADS, user_api="openmp")


class Servable(Protocol):
    """What every model offers."""

    features: list[str]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Delivery days or late probability per row of ``frame``."""
        ...

    def save(self, folder: Path) -> Path:
        """Write the artifact into ``folder``; return its path."""
        ...


@dataclass
class NetworkModel:
    """A Keras network (preprocessing inside), stored as ``model.keras``."""

    model: Any
    features: list[str]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # noqa: D102
        from ml_assets.tf_models import predict_network

        return predict_network(self.model, frame, self.features)

    def save(self, folder: Path) -> Path:  # noqa: D102
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.keras"
        self.model.save(path)
        (folder / "features.json").write_text(json.dumps(self.features))
        return path

    @classmethod
    def load(cls, path: Path) -> NetworkModel:
        """Reload a saved network and its feature list."""
        from ml_assets.tf_models import load_network

        features = json.loads((path.parent / "features.json").read_text())
        return cls(load_network(str(path)), features)


def _frame_for_sklearn(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The same dtype casts as the networks get (:func:`model_inputs`), as a DataFrame."""
    return pd.DataFrame(model_inputs(frame, features), index=frame.index)


def gradient_boosting_pipeline(features: list[str], task: str, params: dict[str, Any]) -> Pipeline:
    """Ordinal-encoded categories + native-NaN numbers into histogram gradient boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = [f for f in features if f in CATEGORICAL]
    numeric = [f for f in features if f not in CATEGORICAL]
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    min_frequency=3,
                ),
                categorical,
            ),
            ("numbers", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )
    mask = [True] * len(categorical) + [False] * len(numeric)
    estimator_cls = (
        HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    )
    estimator = estimator_cls(categorical_features=mask, **params)
    return Pipeline([("encode", encode), ("boost", estimator)])


@dataclass
class SklearnModel:
    """A scikit-learn pipeline, pickled (trusted artifacts only: we wrote them)."""

    pipeline: Pipeline
    features: list[str]
    task: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # noqa: D102
        if len(frame) == 0:
            return np.zeros(0)
        x = _frame_for_sklearn(frame, self.features)
        with openmp_threads():
            if self.task == "regression":
                return np.asarray(self.pipeline.predict(x), dtype=np.float64)
            return np.asarray(self.pipeline.predict_proba(x)[:, 1], dtype=np.float64)

    def fit(self, frame: pd.DataFrame, target: np.ndarray) -> SklearnModel:
        """Fit the pipeline on ``frame`` (on :data:`OPENMP_THREADS` threads)."""
        with openmp_threads():
            self.pipeline.fit(_frame_for_sklearn(frame, self.features), target)
        return self

    def save(self, folder: Path) -> Path:  # noqa: D102
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.pkl"
        with path.open("wb") as handle:
            pickle.dump(self, handle, protocol=5)
        return path


@dataclass
class SlipModel:
    """Delivery days as the promise plus a predicted slip (actual - promised days).

    Where a promise exists it already carries the seller's knowledge of the route; learning only
    how far reality slips from it keeps the model anchored to it. An order without a promise
    gets the training median in its place (``params["median"]``).
    """

    slip: SklearnModel
    features: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # noqa: D102
        if len(frame) == 0:
            return np.zeros(0)
        return promised_days(frame, float(self.params["median"])) + self.slip.predict(frame)

    def save(self, folder: Path) -> Path:  # noqa: D102
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.pkl"
        with path.open("wb") as handle:
            pickle.dump(self, handle, protocol=5)
        return path


def promised_days(frame: pd.DataFrame, fallback: float) -> np.ndarray:
    """The promise in days per order (``scheduled_days``), ``fallback`` where there is none."""
    if "scheduled_days" not in frame:
        return np.full(len(frame), fallback)
    promise = pd.to_numeric(frame["scheduled_days"], errors="coerce").astype(float)
    return promise.fillna(fallback).to_numpy()


@dataclass
class IntervalModel:
    """The low and high ends of a delivery-time interval around the served point prediction.

    Split conformal (``method``): ``offsets`` are the signed residual quantiles of a calibration
    slice the point model did not learn from, added to the point prediction. The interval always
    holds its point prediction and never starts below zero days. Nothing is fitted at scoring
    time, so an interval costs two additions per order.
    """

    method: str
    level: float
    offsets: tuple[float, float] = (0.0, 0.0)
    features: list[str] = field(default_factory=list)

    def bounds(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low and high delivery days around each ``point`` prediction (days)."""
        below, above = self.offsets  # days added to the low and the high end
        low = np.clip(np.minimum(point + below, point), 0.0, None)
        return low, np.maximum(point + above, point)

    def save(self, folder: Path) -> Path:
        """Pickle next to the point model (trusted artifacts only: we wrote them)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "interval.pkl"
        with path.open("wb") as handle:
            pickle.dump(self, handle, protocol=5)
        return path


@dataclass
class BaselineModel:
    """A rule a model must beat: the promise, the training median or a per-mode late rate.

    ``kind``: ``promise`` (scheduled days, else the median), ``median`` (a constant),
    ``group_rate`` (late rate of the row's shipping mode, else its carrier, else overall).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # noqa: D102
        n = len(frame)
        if self.kind == "median":
            return np.full(n, float(self.params["median"]))
        if self.kind == "promise":
            return promised_days(frame, float(self.params["median"]))
        out = np.full(n, float(self.params["overall"]))
        for column in reversed(self.params["by"]):  # the first column wins where it knows
            rates = self.params["rates"][column]
            mapped = frame[column].astype("object").map(rates).astype(float).to_numpy()
            out = np.where(np.isnan(mapped), out, mapped)
        return out

    def save(self, folder: Path) -> Path:  # noqa: D102
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "baseline.json"
        path.write_text(
            json.dumps(
                {"kind": self.kind, "params": self.params, "features": self.features},
                sort_keys=True,
            )
        )
        return path


def group_rate_baseline(fit: pd.DataFrame, min_orders: int = 5) -> BaselineModel:
    """Late rate per shipping mode (then carrier) learned on the training period."""
    by = [c for c in ("shipping_mode", "carrier") if c in fit and fit[c].notna().any()]
    rates: dict[str, dict[str, float]] = {}
    late = fit["is_late"].astype(float)
    for column in by:
        grouped = late.groupby(fit[column].astype("object")).agg(["mean", "size"])
        rates[column] = {
            str(k): float(v) for k, v in grouped.loc[grouped["size"] >= min_orders, "mean"].items()
        }
    params = {"by": by, "rates": rates, "overall": float(late.mean())}
    return BaselineModel("group_rate", params, by)


def load_interval(artifact_path: str | Path) -> IntervalModel:
    """Load an interval artifact (``interval.pkl``) the registry points at."""
    with Path(artifact_path).open("rb") as handle:
        return pickle.load(handle)


def load_model(artifact_path: str | Path) -> Servable:
    """Load any artifact the registry points at."""
    path = Path(artifact_path)
    if path.suffix == ".keras":
        return NetworkModel.load(path)
    if path.suffix == ".pkl":
        with path.open("rb") as handle:
            return pickle.load(handle)
    spec = json.loads(path.read_text())
    return BaselineModel(spec["kind"], spec["params"], spec["features"])
