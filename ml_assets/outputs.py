"""The datasets the ML assets write and dbt reads as sources: names, schemas, atomic writes.

This module is the contract between ``ml_assets`` (writers) and ``dbt_project`` (reader, through
the ``ml`` source). Each dataset is one Parquet file, ``SCPRO_HOME/lake/ml/<name>/data.parquet``,
replaced with a temporary file and an atomic rename, so dbt never reads half a file.

Before any model has been trained the files still exist, empty but with their schema
(:func:`ensure_outputs`), so the KPI models that read predictions build and are empty-but-valid.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_TS = pa.timestamp("us", tz="UTC")

#: Every score row carries the model that made it.
_MODEL_COLUMNS = [
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("scored_at", _TS),
]

SCHEMAS: dict[str, pa.Schema] = {
    # One row per order (open orders, and back-scores of delivered ones).
    "delivery_time_predictions": pa.schema(
        [
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("predicted_delivery_days", pa.float64()),
            pa.field("predicted_delivery_time", _TS),
            # The ETA and its interval (``interval_level`` of the registry entry, 80 %) as UTC
            # dates: the day the order should arrive, and the first and last likely days.
            pa.field("predicted_delivery_date", pa.date32()),
            pa.field("eta_low", pa.date32()),
            pa.field("eta_high", pa.date32()),
            pa.field("eta_low_days", pa.float64()),
            pa.field("eta_high_days", pa.float64()),
            pa.field("is_open", pa.bool_()),
            *_MODEL_COLUMNS,
        ]
    ),
    # One row per order: probability of arriving after the promise, and why.
    "late_risk_scores": pa.schema(
        [
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("late_risk", pa.float64()),
            pa.field("risk_band", pa.string()),  # 'high' | 'medium' | 'low'
            pa.field("top_reasons", pa.string()),  # '; '-joined, most important first
            pa.field("is_open", pa.bool_()),
            *_MODEL_COLUMNS,
        ]
    ),
    # One row per customer.
    "customer_segments": pa.schema(
        [
            pa.field("customer_id", pa.string(), nullable=False),
            pa.field("segment_id", pa.int32()),
            pa.field("segment_name", pa.string()),
            pa.field("recency_days", pa.float64()),
            pa.field("frequency", pa.int64()),
            pa.field("monetary", pa.float64()),
            pa.field("late_share", pa.float64()),
            pa.field("mean_delay_days", pa.float64()),
            *_MODEL_COLUMNS,
        ]
    ),
    # One row per (category, period): history with actuals, and the future with forecasts only.
    "demand_forecast": pa.schema(
        [
            pa.field("category", pa.string(), nullable=False),
            pa.field("period_start", pa.date32(), nullable=False),
            pa.field("period_grain", pa.string()),  # 'day' | 'week'
            pa.field("forecast_orders", pa.float64()),
            pa.field("baseline_orders", pa.float64()),  # seasonal naive
            pa.field("actual_orders", pa.float64()),  # null in the future
            pa.field("is_future", pa.bool_()),
            *_MODEL_COLUMNS,
        ]
    ),
    # One row per trained model version (lineage: data version -> model version -> scores).
    "model_registry": pa.schema(
        [
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("task", pa.string()),  # delivery_time | late_risk | segments | demand
            pa.field("framework", pa.string()),  # tensorflow | scikit-learn | baseline
            pa.field("algorithm", pa.string()),
            pa.field("code_version", pa.string()),
            pa.field("trained_at", _TS),
            pa.field("data_version", pa.string()),  # JSON: upstream data versions and row counts
            pa.field("train_rows", pa.int64()),
            pa.field("test_rows", pa.int64()),
            pa.field("train_start", _TS),
            pa.field("train_end", _TS),
            pa.field("test_start", _TS),
            pa.field("test_end", _TS),
            pa.field("features", pa.string()),  # JSON list
            pa.field("hyperparameters", pa.string()),  # JSON object
            pa.field("metrics", pa.string()),  # JSON object, time-split test metrics
            pa.field("primary_metric", pa.string()),
            pa.field("primary_metric_value", pa.float64()),
            pa.field("is_serving", pa.bool_()),
            # Delivery time's serving model only: its ETA interval on the time-split test.
            pa.field("interval_level", pa.float64()),
            pa.field("interval_coverage", pa.float64()),
            pa.field("interval_width_days", pa.float64()),
            pa.field("serving_reason", pa.string()),
            pa.field("artifact_path", pa.string()),
            pa.field("artifact_sha256", pa.string()),
        ]
    ),
}

ML_OUTPUTS: tuple[str, ...] = tuple(SCHEMAS)


def output_path(ml_dir: Path, name: str) -> Path:
    """Where dataset ``name`` lives (the file dbt's ``ml`` source reads)."""
    return ml_dir / name / "data.parquet"


def write_output(ml_dir: Path, name: str, table: pa.Table) -> Path:
    """Replace dataset ``name`` with ``table`` atomically (cast to the contract's schema)."""
    schema = SCHEMAS[name]
    table = table.select(schema.names).cast(schema)
    path = output_path(ml_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_output(ml_dir: Path, name: str) -> pa.Table:
    """Dataset ``name`` as written last (empty with its schema when never written)."""
    path = output_path(ml_dir, name)
    if not path.exists():
        return SCHEMAS[name].empty_table()
    return pq.read_table(path)


def ensure_outputs(ml_dir: Path) -> list[str]:
    """Write an empty file for every dataset that has none yet; return the names written."""
    written = []
    for name, schema in SCHEMAS.items():
        if not output_path(ml_dir, name).exists():
            write_output(ml_dir, name, schema.empty_table())
            written.append(name)
    return written
