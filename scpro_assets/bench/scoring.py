"""Issue #17 item 4: seconds per scoring cycle for a small batch on top of a large history.

A clean lake of ``history`` synthetic orders (``order_features`` and ``cleaned_deliveries`` as
Delta tables, written with delta-rs: no Spark, the scoring is what is measured) is scored by both
serving models (trained here on a slice of it). Then ``changed`` orders change, as a micro-batch
does: new orders, orders whose features the clean layer recomputed, and open orders delivered.
The cycle that follows is timed two ways, on the same lake and models:

- *every order* (the scoring before issue #17): read every order, score every order (late risk
  with its occlusion reasons), rewrite each output whole as one Parquet file;
- *incremental* (:func:`ml_assets.scoring.score_and_publish`): score the changed orders only and
  merge them into the served Delta tables, then read back what the assets report (the served
  open orders, the drift check's population).

A cycle with nothing changed, and the first (full) scoring into Delta, are reported too.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from scpro_assets.bench.common import bench_settings
from scpro_assets.settings import Settings

#: Shipping modes and their extra days in the synthetic orders.
_MODES = {"Same Day": 0.0, "First Class": 1.5, "Second Class": 3.0, "Standard Class": 4.5}
#: Orders the models are trained on (the scoring, not the training, is measured).
_TRAIN_ORDERS = 3_000
_SCORES = (
    ("delivery_time", "delivery_time_predictions"),
    ("late_risk", "late_risk_scores"),
)


def synthetic_order_features(n: int, seed: int = 0, first_id: int = 0) -> pd.DataFrame:
    """Orders whose delivery days follow mode, distance and open incidents, plus noise."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    order_time = start + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), unit="D")
    order_time = order_time.floor("us")
    mode = rng.choice(list(_MODES), n)
    distance = rng.uniform(10, 3000, n)
    incidents = rng.poisson(0.7, n)
    scheduled = np.array([{"Same Day": 1, "First Class": 2}.get(m, 4) for m in mode], float)
    days = (
        0.5
        + np.array([_MODES[m] for m in mode])
        + distance / 600
        + 1.2 * incidents
        + rng.normal(0, 0.4, n)
    ).clip(0.1)
    return pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(first_id, first_id + n)],
            "customer_id": [f"c{i % 5000}" for i in range(n)],
            "order_time": order_time,
            "scheduled_days": scheduled,
            "shipping_mode": mode,
            "distance_km": distance,
            "open_carrier_incidents_at_order": incidents.astype(float),
            "order_weekday": order_time.weekday + 1,
            "delivery_days": days,
            "is_late": days > scheduled,
            "label_known_at": order_time + pd.to_timedelta(days, unit="D").floor("us"),
        }
    )


def _upsert(path: Any, frame: pd.DataFrame) -> None:
    """Write ``frame`` by ``order_id`` in one commit (creating the table), as the clean layer."""
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    us = pa.timestamp("us", tz="UTC")
    rows = rows.cast(
        pa.schema([f.with_type(us) if pa.types.is_timestamp(f.type) else f for f in rows.schema]),
        safe=False,
    )
    if not (path / "_delta_log").exists():
        write_deltalake(
            str(path), rows, mode="overwrite", configuration={"delta.enableChangeDataFeed": "true"}
        )
        return
    (
        DeltaTable(str(path))
        .merge(rows, "t.order_id = s.order_id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def _statuses(frame: pd.DataFrame, open_share: float = 0.1) -> pd.DataFrame:
    """Every order delivered but the latest ``open_share``, which are in transit."""
    recent = frame["order_time"] >= frame["order_time"].quantile(1 - open_share)
    return pd.DataFrame(
        {"order_id": frame["order_id"], "status": np.where(recent, "in_transit", "delivered")}
    )


def _train(run: Settings, frame: pd.DataFrame) -> None:
    """Register a serving model of each task, trained on a slice of the orders."""
    from ml_assets.tf_models import NetworkConfig
    from ml_assets.training import save_task, train_task

    sample = frame.sort_values("order_time").iloc[-_TRAIN_ORDERS:]
    quick = NetworkConfig(hidden=(32, 16), max_epochs=20, patience=3)
    for task, _ in _SCORES:
        result = train_task(sample, task, network_config=quick)
        save_task(result, run.models_dir, {"order_features": {"rows": len(sample)}})


def _every_order_cycle(run: Settings) -> float:
    """One cycle as before issue #17: every order read, scored and rewritten as Parquet."""
    from ml_assets.outputs import conform
    from ml_assets.registry import serving_entry
    from ml_assets.scoring import orders_to_score, score_delivery_time, score_late_risk

    scorers = {"delivery_time": score_delivery_time, "late_risk": score_late_risk}
    started = time.perf_counter()
    for task, output in _SCORES:
        frame, is_open = orders_to_score(run.clean_dir)
        table = scorers[task](frame, is_open, serving_entry(run.models_dir, task))
        path = run.home / "every_order" / f"{output}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(conform(output, table), path)
    return time.perf_counter() - started


def _incremental_cycle(run: Settings) -> tuple[float, dict[str, int]]:
    """One cycle of the score assets; its seconds and the orders each scored.

    What each asset does: :func:`ml_assets.scoring.score_and_publish`, then the served table's
    figures and the drift check's population read back.
    """
    from ml_assets.scoring import score_and_publish, score_delivery_time, score_late_risk

    scorers = {"delivery_time": score_delivery_time, "late_risk": score_late_risk}
    columns = {"delivery_time": "predicted_delivery_days", "late_risk": "late_risk"}
    scored = {}
    started = time.perf_counter()
    for task, output in _SCORES:
        cycle = score_and_publish(run, task, output, scorers[task])
        cycle.served(["is_open"])
        cycle.drift_inputs(columns[task])
        scored[output] = cycle.table.num_rows
    return time.perf_counter() - started, scored


def bench_scoring(
    settings: Settings, report: Any, history: int = 100_000, changed: int = 1_000
) -> dict[str, Any]:
    """Time a scoring cycle of ``changed`` orders on ``history``, every order vs incremental."""
    section = f"scoring: a cycle of {changed:,} changed orders on {history:,} scored"
    run = bench_settings(settings)
    frame = synthetic_order_features(history)
    _train(run, frame)
    _upsert(run.clean_dir / "order_features", frame)
    _upsert(run.clean_dir / "cleaned_deliveries", _statuses(frame))
    first, _ = _incremental_cycle(run)

    # The micro-batch: a fifth new orders, three fifths recomputed features, a fifth delivered.
    rng = np.random.default_rng(1)
    new = synthetic_order_features(changed // 5, seed=2, first_id=history)
    recomputed = frame.sample(changed * 3 // 5, random_state=1).assign(
        distance_km=lambda f: f["distance_km"] * rng.uniform(0.5, 1.5, len(f))
    )
    in_transit = _statuses(frame).query("status == 'in_transit'")
    delivered = in_transit.sample(changed - len(new) - len(recomputed), random_state=2)
    _upsert(run.clean_dir / "order_features", pd.concat([recomputed, new]))
    _upsert(
        run.clean_dir / "cleaned_deliveries",
        pd.concat([delivered.assign(status="delivered"), _statuses(new, open_share=1.0)]),
    )
    incremental, scored = _incremental_cycle(run)
    unchanged, _ = _incremental_cycle(run)
    every_order = _every_order_cycle(run)
    figures = {
        "history orders": history,
        "changed orders": changed,
        "every order cycle seconds (before)": every_order,
        "incremental cycle seconds (after)": incremental,
        "speed-up": every_order / max(incremental, 1e-9),
        "orders scored by the incremental cycle": scored,
        "cycle with nothing changed seconds": unchanged,
        "first scoring into Delta seconds": first,
    }
    report.add(section, **figures)
    return figures
