"""Customer segments: K-Means on RFM plus delivery experience, named for marketing.

Features per customer (as of the last order in the data): recency (days since the last order),
frequency (orders), monetary (net value), the share of their delivered orders that arrived late and
their mean delay. Frequency and monetary are log-scaled (heavy tails), then everything is
standardised so no unit dominates the distances.

**k is chosen by silhouette**: the highest mean silhouette (on up to 5,000 customers, seeded)
among k = 3..8, skipping any k that leaves a segment with under 2 % of customers (too small to
act on; if every k does, outliers are to blame and the size rule is dropped). k = 2 is not
considered: a two-way split is not a segmentation marketing can use. The baseline of
``EVALUATION.md`` (monetary quartiles) is scored by silhouette in the same space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.models import openmp_threads

if TYPE_CHECKING:  # sklearn is imported where it is used: loading the code location stays fast
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler


SEGMENT_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "late_share",
    "mean_delay_days",
)
K_RANGE = range(3, 9)
MIN_SEGMENT_SHARE = 0.02
SILHOUETTE_SAMPLE = 5_000


def customer_features(orders: pd.DataFrame, deliveries: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: RFM and delivery experience, as of the last order in ``orders``."""
    as_of = pd.to_datetime(orders["order_time"], utc=True).max()
    orders = orders.assign(order_time=pd.to_datetime(orders["order_time"], utc=True))
    rfm = orders.groupby("customer_id").agg(
        last_order=("order_time", "max"),
        frequency=("order_id", "nunique"),
        monetary=("net_value", "sum"),
    )
    rfm["recency_days"] = (as_of - rfm["last_order"]).dt.total_seconds() / 86_400
    done = deliveries.loc[deliveries["is_late"].notna(), ["order_id", "is_late", "delay_days"]]
    done = done.merge(orders[["order_id", "customer_id"]], on="order_id")
    # Vectorised means (a Python function per customer took 9 s for 100k customers)
    done = done.assign(
        late_share=done["is_late"].astype(float),
        mean_delay_days=done["delay_days"].astype(float).fillna(0.0),
    )
    experience = done.groupby("customer_id")[["late_share", "mean_delay_days"]].mean()
    out = rfm.join(experience, how="left").reset_index()
    out["monetary"] = out["monetary"].fillna(0.0)
    return out[["customer_id", *SEGMENT_FEATURES]]


def _matrix(features: pd.DataFrame, fill: dict[str, float]) -> np.ndarray:
    x = features[list(SEGMENT_FEATURES)].astype(float).fillna(fill)
    x["frequency"] = np.log1p(x["frequency"])
    x["monetary"] = np.log1p(x["monetary"].clip(lower=0))
    return x.to_numpy()


@dataclass
class SegmentModel:
    """Fitted scaler + K-Means with the chosen k, names and profiles."""

    scaler: StandardScaler
    kmeans: KMeans
    fill: dict[str, float]
    names: dict[int, str]
    silhouettes: dict[int, float]
    baseline_silhouette: float
    profiles: list[dict[str, Any]] = field(default_factory=list)
    features: list[str] = field(default_factory=lambda: list(SEGMENT_FEATURES))

    @property
    def k(self) -> int:
        """Number of segments."""
        return int(self.kmeans.n_clusters)

    def assign(self, features: pd.DataFrame) -> np.ndarray:
        """Segment id per customer."""
        return self.kmeans.predict(self.scaler.transform(_matrix(features, self.fill)))


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False)


def _silhouette(x: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels[idx])) < 2:
        return float("nan")
    return float(silhouette_score(x[idx], labels[idx]))


def segment_name(z: pd.Series) -> str:
    """A business name from a segment centre's standardised profile (first matching trait)."""
    if z["late_share"] > 0.75 or z["mean_delay_days"] > 0.75:
        return "Let down by late deliveries"
    if z["recency_days"] > 0.75:
        return "Drifting away"
    if z["monetary"] > 0.5 and z["frequency"] > 0.5:
        return "High-value loyal"
    if z["frequency"] > 0.5:
        return "Repeat regulars"
    if z["monetary"] > 0.5:
        return "Big-ticket buyers"
    if z["recency_days"] < -0.5:
        return "New and recent"
    if z["monetary"] < -0.5:
        return "Low spenders"
    return "Everyday customers"


def _profiles(features: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    frame = features.assign(segment_id=labels)
    total_value = max(float(frame["monetary"].sum()), 1e-9)
    profile = frame.groupby("segment_id").agg(
        customers=("customer_id", "size"),
        mean_monetary=("monetary", "mean"),
        median_recency_days=("recency_days", "median"),
        mean_frequency=("frequency", "mean"),
        late_share=("late_share", "mean"),
        mean_delay_days=("mean_delay_days", "mean"),
        value=("monetary", "sum"),
    )
    profile["share_of_customers"] = profile["customers"] / len(frame)
    profile["share_of_value"] = profile["value"] / total_value
    return profile.drop(columns="value")


def fit_segments(features: pd.DataFrame, seed: int = 0) -> SegmentModel:
    """Choose k by silhouette (module docstring), fit, name and profile the segments."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    fill = {
        "late_share": float(features["late_share"].mean())
        if features["late_share"].notna().any()
        else 0.0,
        "mean_delay_days": 0.0,
        "recency_days": 0.0,
        "frequency": 1.0,
        "monetary": 0.0,
    }
    raw = _matrix(features, fill)
    scaler = StandardScaler().fit(raw)
    x = scaler.transform(raw)
    idx = _sample(len(x), seed)
    silhouettes: dict[int, float] = {}
    fitted: dict[int, KMeans] = {}
    large_enough: set[int] = set()
    with openmp_threads():  # k-means is OpenMP too: see OPENMP_THREADS
        for k in K_RANGE:
            if k >= len(x):
                break
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
            sizes = np.bincount(km.labels_, minlength=k) / len(x)
            if sizes.min() >= MIN_SEGMENT_SHARE:
                large_enough.add(k)
            silhouettes[k] = _silhouette(x, km.labels_, idx)
            fitted[k] = km
    if not fitted:
        raise ValueError("too few customers to segment")
    # Outliers (a handful of huge spenders) can give every k a tiny segment: then size is ignored.
    eligible = large_enough or set(fitted)
    best_k = max(eligible, key=lambda k: silhouettes[k])
    kmeans = fitted[best_k]
    quartiles = pd.qcut(features["monetary"].rank(method="first"), 4, labels=False).to_numpy()
    baseline = _silhouette(x, quartiles, idx)
    centres = pd.DataFrame(kmeans.cluster_centers_, columns=list(SEGMENT_FEATURES))
    names = {int(i): segment_name(row) for i, row in centres.iterrows()}
    profile = _profiles(features, kmeans.labels_)
    # Two segments with the same trait: tell them apart by value.
    for name in set(names.values()):
        same = sorted(
            (i for i, n in names.items() if n == name),
            key=lambda i: -profile.loc[i, "mean_monetary"],
        )
        if len(same) > 1:
            for rank, i in enumerate(same):
                names[i] = f"{name} - value tier {rank + 1}"
    profile.insert(0, "segment_name", [names[int(i)] for i in profile.index])
    profiles = [{"segment_id": int(i), **row} for i, row in profile.iterrows()]
    return SegmentModel(scaler, kmeans, fill, names, silhouettes, baseline, profiles)


def registry_fields(model: SegmentModel, customers: pd.DataFrame, order_times: pd.Series) -> dict:
    """What the registry records of a fitted segmentation, beyond its identity and data versions."""
    silhouette = model.silhouettes[model.k]
    return {
        "train_rows": len(customers),
        "test_rows": 0,
        "train_start": order_times.min().isoformat(),
        "train_end": order_times.max().isoformat(),
        "features": model.features,
        "hyperparameters": {
            "k": model.k,
            "k_range": [K_RANGE.start, K_RANGE.stop - 1],
            "criterion": "max silhouette, segments >= 2 % of customers",
            "scaling": "log1p(frequency, monetary), standard scaler",
        },
        "metrics": {
            "silhouette": silhouette,
            "baseline_silhouette": model.baseline_silhouette,
            "silhouette_by_k": {str(k): v for k, v in model.silhouettes.items()},
        },
        "primary_metric": "silhouette",
        "primary_metric_value": silhouette,
        "serving_reason": "the only segmentation model; chosen k has the best silhouette",
        "profiles": model.profiles,
    }
