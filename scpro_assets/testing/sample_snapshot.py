"""A synthetic serving snapshot with every contract table, for tests and benchmarks.

The dashboard only reads the snapshot dbt publishes (``dbt_project/SERVING_CONTRACT.md``). To
test and benchmark it before (or without) a real pipeline run, this module generates plausible
orders with numpy, derives the other marts from them in DuckDB, and publishes the warehouse with
the same ``serving/versions/<v>`` + ``current`` link layout as dbt does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

REGIONS = ("North America", "Western Europe", "South Asia")
CARRIER_MODES = ("Standard Class", "Second Class", "First Class", "Same Day")
CATEGORIES = ("Apparel", "Electronics", "Fitness", "Outdoors")
SEGMENTS = ("Champions", "Loyal", "At risk", "New", "Unsegmented")
#: Promise in days and base probability of being late, per carrier/mode.
MODE_PROMISE = {"Standard Class": 4.0, "Second Class": 2.0, "First Class": 1.0, "Same Day": 0.0}
MODE_LATE = {"Standard Class": 0.35, "Second Class": 0.75, "First Class": 0.9, "Same Day": 0.45}
REGION_LATE = {"North America": 0.0, "Western Europe": -0.15, "South Asia": 0.15}
REASONS = (
    "carrier backlog",
    "long promise gap",
    "region congestion",
    "late history",
    "peak season",
    "remote destination",
)
STATE_COORDS = {
    "North America": ((34.0, -118.2), (40.7, -74.0), (41.9, -87.6)),
    "Western Europe": ((48.9, 2.35), (52.5, 13.4), (40.4, -3.7)),
    "South Asia": ((19.1, 72.9), (28.6, 77.2), (13.1, 80.3)),
}


@dataclass(frozen=True)
class SampleSpec:
    """How big and how old the generated snapshot is."""

    orders: int = 400
    days: int = 240
    as_of: datetime = datetime(2025, 6, 30, 12, 0)
    seed: int = 7
    version: str = "v1"


def _orders_frame(spec: SampleSpec) -> pd.DataFrame:
    """One row per order with every ``fct_deliveries`` column, generated column-wise."""
    rng = np.random.default_rng(spec.seed)
    n = spec.orders
    seconds = rng.uniform(0, spec.days * 86400, n)
    order_time = pd.to_datetime(spec.as_of) - pd.to_timedelta(seconds, unit="s")
    order_time = order_time.floor("s")
    region = rng.choice(REGIONS, n, p=[0.5, 0.3, 0.2])
    mode = rng.choice(CARRIER_MODES, n, p=[0.55, 0.2, 0.15, 0.1])
    category = rng.choice(CATEGORIES, n)
    segment = rng.choice(SEGMENTS, n, p=[0.15, 0.3, 0.2, 0.25, 0.1])
    promise = np.vectorize(MODE_PROMISE.get)(mode).astype(float)
    late_p = np.clip(
        np.vectorize(MODE_LATE.get)(mode) + np.vectorize(REGION_LATE.get)(region), 0.02, 0.98
    )
    late = rng.random(n) < late_p
    delay = np.where(late, rng.integers(1, 6, n), 0).astype(float)
    early = np.where(late, 0, rng.integers(0, 2, n))
    delivery_days = np.maximum(promise + delay - early, 0.0)
    delivered_at = order_time + pd.to_timedelta(delivery_days * 86400 + 3600, unit="s")
    canceled = rng.random(n) < 0.03
    # Some parcels wait in the warehouse before their (shorter) trip: they are still open.
    held = pd.to_timedelta(rng.uniform(0, 16, n) * (rng.random(n) < 0.6), unit="D")
    arrived = (delivered_at + held <= pd.to_datetime(spec.as_of)) & ~canceled
    is_open = ~arrived & ~canceled
    age_days = (pd.to_datetime(spec.as_of) - order_time).total_seconds().to_numpy() / 86400
    status = np.where(
        canceled,
        "canceled",
        np.where(arrived, "delivered", np.where(age_days < 0.5, "placed", "in_transit")),
    )
    scored = rng.random(n) > 0.05
    risk = np.clip(late_p + rng.normal(0, 0.15, n), 0.01, 0.99).round(4)
    late_risk = np.where(scored, risk, np.nan)
    band = np.where(
        ~scored, "unscored", np.where(risk >= 0.6, "high", np.where(risk >= 0.3, "medium", "low"))
    )
    predicted = np.where(
        scored, np.maximum(promise + risk * 3 + rng.normal(0, 0.8, n), 0).round(2), np.nan
    )
    coords = np.array([STATE_COORDS[r][i % 3] for i, r in enumerate(region)])
    picks = rng.integers(0, len(REASONS), (n, 2))
    reasons = [f"{REASONS[a]}; {REASONS[b]}" if a != b else REASONS[a] for a, b in picks]
    value = rng.gamma(2.0, 60.0, n).round(2)
    frame = pd.DataFrame(
        {
            "order_id": [f"O{i:07d}" for i in range(n)],
            "customer_id": [f"C{i:06d}" for i in rng.integers(0, max(n // 3, 1), n)],
            "order_time": order_time,
            "region": region,
            "market": np.where(region == "South Asia", "Pacific Asia", "LATAM"),
            "carrier_mode": mode,
            "shipping_mode": mode,
            "carrier": pd.Series([None] * n, dtype="string"),
            "main_category": category,
            "customer_segment": segment,
            "destination_state": [f"S{i % 3}" for i in range(n)],
            "customer_lat": coords[:, 0] + rng.normal(0, 0.3, n),
            "customer_lon": coords[:, 1] + rng.normal(0, 0.3, n),
            "status": status,
            "is_open": is_open,
            "net_value": value,
            "scheduled_days": promise,
            "promised_delivery_time": order_time + pd.to_timedelta(promise, unit="D"),
            "delivered_at": delivered_at.where(arrived),
            "delivery_days": np.where(arrived, delivery_days, np.nan),
            "is_late": pd.array(np.where(arrived, late, False), dtype="boolean"),
            "delay_days": np.where(arrived, delay, np.nan),
            "predicted_delivery_days": predicted,
            "predicted_delivery_time": order_time + pd.to_timedelta(np.nan_to_num(predicted), "D"),
            "late_risk": late_risk,
            "risk_band": band,
            "is_high_risk": band == "high",
            "top_reasons": np.where(scored, reasons, None),
            "delivery_model_version": np.where(scored, "delivery-v3", None),
            "risk_model_version": np.where(scored, "risk-v2", None),
        }
    )
    frame.loc[~arrived, "is_late"] = pd.NA
    frame.loc[~scored, "predicted_delivery_time"] = pd.NaT
    # ETA dates and an 80% range of about +-25% of the predicted days (at least a day each side).
    eta = order_time + pd.to_timedelta(np.nan_to_num(predicted), "D")
    spread = pd.to_timedelta(np.maximum(np.nan_to_num(predicted) * 0.25, 1.0), "D")
    for column, moment in (
        ("predicted_delivery_date", eta),
        ("eta_low", eta - spread),
        ("eta_high", eta + spread),
    ):
        dates = pd.Series(pd.DatetimeIndex(moment).date, index=frame.index, dtype="object")
        frame[column] = dates.where(scored, None)
    frame["prediction_gap_days"] = (
        frame["predicted_delivery_days"] - frame["delivery_days"]
    ).round(4)
    frame["order_date"] = frame["order_time"].dt.normalize()
    frame["order_week"] = frame["order_date"] - pd.to_timedelta(
        frame["order_date"].dt.weekday, unit="D"
    )
    return frame


_DERIVED_SQL = """
create table fct_orders as
select order_id, customer_id, order_time, order_date, order_week, region, market, carrier_mode,
       main_category, customer_segment, 'web' as channel, 'card' as payment_type,
       1 as item_count, 1::bigint as units, net_value as gross_value, 0.0 as discount,
       net_value, 5.0 as freight, status
from fct_deliveries;
create table fct_order_items as
select order_id, order_id || '-1' as item_id, 1 as line_number, 'P-' || main_category as product_id,
       main_category || ' item' as product_name, main_category as category,
       main_category as department, 1::bigint as quantity, net_value as unit_price,
       0.0 as discount, net_value as line_value, order_date, region, carrier_mode, customer_segment
from fct_deliveries;
create table fct_payments as
select 'pay-' || order_id as event_id, order_id, 'captured' as payment_status,
       'card' as payment_type, 1 as installments, net_value as amount, order_time as paid_at,
       order_date as paid_date
from fct_deliveries where status <> 'canceled';
create table at_risk_orders as
select row_number() over (order by late_risk desc, order_id)::bigint as risk_rank, order_id,
       customer_id, order_time, promised_delivery_time, predicted_delivery_time,
       predicted_delivery_date::date as predicted_delivery_date, eta_low::date as eta_low,
       eta_high::date as eta_high, late_risk,
       risk_band, top_reasons, customer_segment, region, carrier_mode, main_category, net_value,
       status
from fct_deliveries where is_open and late_risk is not null;
create table customer_segment_profiles as
with per_customer as (
    select customer_segment, customer_id, count(*) as orders, sum(net_value) as monetary,
           max(order_time) as last_order, avg(delay_days) as delay,
           avg(case when is_late then 1.0 else 0.0 end) as late
    from fct_deliveries group by all
)
select customer_segment, count(*)::bigint as customers, sum(orders)::bigint as orders,
       sum(monetary) as revenue, avg(monetary) as avg_monetary,
       avg(date_diff('day', last_order, (select max(order_time) from fct_deliveries)))
           as avg_recency_days,
       avg(orders) as avg_frequency, avg(late) as late_share, avg(delay) as avg_delay_days,
       1 - avg(late) as on_time_rate,
       sum(monetary) / (select sum(net_value) from fct_deliveries) as share_of_revenue,
       case customer_segment
           when 'Champions' then 'Reward them: early access, no extra discounts needed'
           when 'At risk' then 'Win back: apology voucher after a late delivery'
           when 'New' then 'Onboard: second-order incentive within 30 days'
           else 'Keep informed: proactive delay notices' end as description
from per_customer group by customer_segment;
create table kpi_delivery_daily as
select order_date as period_start, region, carrier_mode, main_category, customer_segment,
       count(*)::bigint as orders, sum(net_value) as revenue,
       count(delivered_at)::bigint as delivered_orders,
       count(*) filter (where is_late)::bigint as late_orders,
       count(*) filter (where not is_late)::bigint as on_time_orders,
       coalesce(sum(delay_days), 0) as sum_delay_days,
       count(*) filter (where is_open)::bigint as open_orders,
       count(*) filter (where is_open and is_high_risk)::bigint as high_risk_open_orders,
       count(prediction_gap_days)::bigint as scored_delivered_orders,
       coalesce(sum(abs(prediction_gap_days)), 0) as sum_abs_prediction_gap_days
from fct_deliveries group by all;
"""


def _demand_frame(deliveries: pd.DataFrame, spec: SampleSpec) -> pd.DataFrame:
    """Weekly actuals per category with a noisy forecast, plus four future weeks."""
    rng = np.random.default_rng(spec.seed + 1)
    weekly = (
        deliveries.groupby(["main_category", "order_week"]).size().rename("actual").reset_index()
    )
    last_week = weekly["order_week"].max()
    rows = []
    for category, group in weekly.groupby("main_category"):
        level = float(group["actual"].tail(6).mean())
        for week, actual in zip(group["order_week"], group["actual"], strict=True):
            rows.append((category, week, actual * rng.uniform(0.85, 1.15), level, actual, False))
        for step in range(1, 5):
            week = last_week + timedelta(weeks=step)
            rows.append((category, week, level * rng.uniform(0.9, 1.1), level, None, True))
    frame = pd.DataFrame(
        rows,
        columns=[
            "category",
            "period_start",
            "forecast_orders",
            "baseline_orders",
            "actual_orders",
            "is_future",
        ],
    )
    frame["period_start"] = pd.to_datetime(frame["period_start"]).dt.date
    frame["period_grain"] = "week"
    frame["actual_orders"] = frame["actual_orders"].astype(float)
    frame["model_version"] = "demand-v1"
    return frame


def _incidents_frame(spec: SampleSpec) -> pd.DataFrame:
    """Carrier and warehouse incidents spread over the period, some still open."""
    rng = np.random.default_rng(spec.seed + 2)
    n = max(spec.orders // 20, 12)
    opened = pd.to_datetime(spec.as_of) - pd.to_timedelta(
        rng.uniform(0, spec.days * 86400, n), unit="s"
    )
    opened = opened.floor("s")
    hours = rng.gamma(2.0, 10.0, n).round(2)
    resolved = opened + pd.to_timedelta(hours, unit="h")
    is_open = resolved > pd.to_datetime(spec.as_of)
    return pd.DataFrame(
        {
            "incident_id": [f"I{i:05d}" for i in range(n)],
            "kind": rng.choice(["carrier_delay", "warehouse", "address"], n),
            "severity": rng.choice(["low", "medium", "high"], n),
            "carrier": rng.choice(CARRIER_MODES, n),
            "location_state": rng.choice(["S0", "S1", "S2"], n),
            "opened_at": opened,
            "resolved_at": resolved.where(~is_open),
            "opened_date": opened.normalize(),
            "resolution_hours": np.where(is_open, np.nan, hours),
            "is_open": is_open,
        }
    )


def _models_frame(spec: SampleSpec) -> pd.DataFrame:
    trained = pd.Timestamp(spec.as_of) - pd.Timedelta(days=1)
    rows = [
        ("delivery_time", "delivery-v3", "regression", "tensorflow", "mlp", "mae_days", 0.84),
        ("late_risk", "risk-v2", "classification", "scikit-learn", "gbm", "roc_auc", 0.78),
        ("late_risk", "risk-v1", "classification", "scikit-learn", "logreg", "roc_auc", 0.71),
        ("segments", "segments-v1", "clustering", "scikit-learn", "kmeans", "silhouette", 0.41),
        ("demand", "demand-v1", "forecast", "scikit-learn", "ridge", "mape", 0.12),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "model_name",
            "model_version",
            "task",
            "framework",
            "algorithm",
            "primary_metric",
            "primary_metric_value",
        ],
    )
    frame["trained_at"] = trained
    frame["train_rows"] = spec.orders * 8 // 10
    frame["test_rows"] = spec.orders // 5
    frame["metrics"] = [
        json.dumps({m: v}) for m, v in zip(frame.primary_metric, frame.iloc[:, 6], strict=True)
    ]
    delivery = frame["task"] == "delivery_time"
    frame["interval_level"] = np.where(delivery, 0.8, np.nan)
    frame["interval_coverage"] = np.where(delivery, 0.81, np.nan)
    frame["interval_width_days"] = np.where(delivery, 3.2, np.nan)
    frame["is_serving"] = frame["model_version"] != "risk-v1"
    frame["serving_reason"] = np.where(
        frame["is_serving"], "best on holdout", "superseded by risk-v2"
    )
    return frame


def _health_frame(spec: SampleSpec, deliveries: int) -> pd.DataFrame:
    now = pd.Timestamp(spec.as_of)
    rows = [
        ("ingest", "raw_orders", now - pd.Timedelta(minutes=5), deliveries * 3, 0, "3 partitions"),
        ("quarantine", "raw_orders", now - pd.Timedelta(minutes=5), 0, 12, "invalid contract"),
        ("clean", "cleaned_orders", now - pd.Timedelta(minutes=20), deliveries, 3, "rules"),
        ("warehouse", "fct_deliveries", now - pd.Timedelta(minutes=25), deliveries, 0, "dbt"),
        ("ml", "late_risk_scores", now - pd.Timedelta(hours=3), deliveries, 0, "risk-v2"),
    ]
    return pd.DataFrame(
        rows,
        columns=["layer", "dataset", "last_updated_at", "row_count", "quarantined", "detail"],
    )


def _completeness_frame(deliveries: int) -> pd.DataFrame:
    """The snapshot's completeness: orders all landed (12 quarantined), 40 payments missing."""
    orders = deliveries * 3 + 12
    rows = [
        ("ops_logs", "read", 3, 900, 900, 900, 0, 0, 0, True),
        ("orders", "read", 3, orders, orders, orders - 12, 12, 0, 0, True),
        ("payments", "read", 3, deliveries + 40, deliveries, deliveries, 0, 0, 40, False),
        ("shipments", "read", 3, deliveries * 2, deliveries * 2, deliveries * 2, 0, 0, 0, True),
    ]
    columns = [
        "topic",
        "kafka_status",
        "partitions",
        "offsets_in_kafka",
        "offsets_landed",
        "events_landed",
        "events_quarantined",
        "offsets_without_event",
        "offsets_unlanded",
        "is_complete",
    ]
    return pd.DataFrame(rows, columns=columns)


def publish(home: Path, spec: SampleSpec) -> Path:
    """Write the snapshot under ``home/serving/versions/<v>`` and point ``current`` at it."""
    version_dir = home / "serving" / "versions" / spec.version
    version_dir.mkdir(parents=True, exist_ok=True)
    db_path = version_dir / "warehouse.duckdb"
    db_path.unlink(missing_ok=True)
    deliveries = _orders_frame(spec)
    tables = {
        "fct_deliveries": deliveries,
        "fct_incidents": _incidents_frame(spec),
        "fct_demand": _demand_frame(deliveries, spec),
        "dim_models": _models_frame(spec),
        "data_health": _health_frame(spec, len(deliveries)),
        "snapshot_completeness": _completeness_frame(len(deliveries)),
    }
    with duckdb.connect(str(db_path)) as con:
        for name, frame in tables.items():
            con.register("incoming", frame)
            con.execute(f"create table {name} as select * from incoming")
            con.unregister("incoming")
        con.execute("alter table fct_deliveries alter order_date type date")
        con.execute("alter table fct_deliveries alter order_week type date")
        con.execute("alter table fct_incidents alter opened_date type date")
        nanos = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where data_type = 'TIMESTAMP_NS'"
        ).fetchall()
        for table, column in nanos:
            con.execute(f"alter table {table} alter {column} type timestamp")
        con.execute(_DERIVED_SQL)
        counts = {
            name: con.execute(f"select count(*) from {name}").fetchone()[0]
            for (name,) in con.execute(
                "select table_name from information_schema.tables"
            ).fetchall()
        }
    published = {
        "version": spec.version,
        "published_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "tables": counts,
    }
    (version_dir / "published.json").write_text(json.dumps(published, indent=2))
    link = home / "serving" / "current"
    staging = link.with_name(f".current-{os.getpid()}")
    staging.unlink(missing_ok=True)
    staging.symlink_to(Path("versions") / spec.version)
    staging.replace(link)
    return version_dir
