"""A small but realistic serving snapshot for the dashboard tests, plus its rows as pandas.

The numbers the tests expect are computed here with pandas on the very rows the snapshot holds,
independently of the data store's SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd

from scpro_assets.testing.sample_snapshot import SampleSpec, publish

SPEC = SampleSpec(orders=400, days=120, seed=7, version="v1")
#: The next publication after SPEC: more orders; of its high-risk orders, two were high in v1.
NEXT_SPEC = SampleSpec(orders=430, days=120, seed=7, version="v2")


@dataclass(frozen=True)
class PanelWarehouse:
    """Where the snapshot is and what it contains."""

    home: Path
    deliveries: pd.DataFrame
    incidents: pd.DataFrame
    at_risk: pd.DataFrame
    demand: pd.DataFrame

    @property
    def serving_current(self) -> Path:
        return self.home / "serving" / "current"


def build(home: Path, spec: SampleSpec = SPEC) -> PanelWarehouse:
    """Publish the snapshot under ``home`` and read its tables back."""
    version_dir = publish(home, spec)
    with duckdb.connect(str(version_dir / "warehouse.duckdb"), read_only=True) as con:
        frames = {
            name: con.execute(f"select * from {name}").df()
            for name in ("fct_deliveries", "fct_incidents", "at_risk_orders", "fct_demand")
        }
    return PanelWarehouse(
        home=home,
        deliveries=frames["fct_deliveries"],
        incidents=frames["fct_incidents"],
        at_risk=frames["at_risk_orders"],
        demand=frames["fct_demand"],
    )


def window(deliveries: pd.DataFrame, days: int) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """(previous start, start, end) counted back from the day after the latest order."""
    end = pd.Timestamp(deliveries["order_date"].max()) + timedelta(days=1)
    start = end - timedelta(days=days)
    return start - timedelta(days=days), start, end


def in_range(
    frame: pd.DataFrame, column: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    dates = pd.to_datetime(frame[column])
    return frame[(dates >= start) & (dates < end)]


def expected_kpis(deliveries: pd.DataFrame, incidents: pd.DataFrame) -> dict[str, float]:
    """Each overview KPI computed with pandas on a set of orders (and incidents)."""
    delivered = deliveries[deliveries["delivered_at"].notna()]
    open_orders = deliveries[deliveries["is_open"]]
    kept = deliveries[deliveries["status"] != "canceled"]
    return {
        "late_rate": delivered["is_late"].astype(float).mean(),
        "mean_delay_days": delivered["delay_days"].mean(),
        "p90_delay_days": delivered["delay_days"].quantile(0.9),
        "mean_prediction_gap_days": deliveries["prediction_gap_days"].abs().mean(),
        "high_risk_open_share": open_orders["is_high_risk"].astype(float).mean(),
        "orders": float(len(deliveries)),
        "revenue": kept["net_value"].sum(),
        "average_basket": kept["net_value"].mean(),
        "mean_resolution_hours": incidents["resolution_hours"].mean(),
    }
