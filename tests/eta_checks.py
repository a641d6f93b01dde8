"""The ETA-range promise of issue #15 item 6, checked on a real set's features where a test has
built them anyway (the Olist clean test, the DataCo end-to-end test): no extra Spark build."""

from __future__ import annotations

import pandas as pd

from ml_assets.training import INTERVAL_LEVEL, INTERVAL_TOLERANCE, train_task
from scpro_assets.bench.models import PROTOCOLS


def assert_eta_ranges_hold(features: pd.DataFrame, protocol: str) -> None:
    """Train delivery time on ``protocol``'s time split; check coverage and the promise."""
    cutoff = pd.Timestamp(PROTOCOLS[protocol], tz="UTC")
    days = train_task(features, "delivery_time", cutoff=cutoff)
    figures = days.interval_figures
    assert len(days.split.test) >= 800  # the protocol's test period, not a handful of orders
    assert abs(figures["interval_coverage"] - INTERVAL_LEVEL) <= INTERVAL_TOLERANCE, figures
    promise = days.candidates["delivery_time_promise"].metrics["mae"]
    assert days.value(days.serving) <= promise, days.serving_reason
