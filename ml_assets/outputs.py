"""The datasets the ML assets write and dbt reads as sources: names, schemas, atomic writes.

This module is the contract between ``ml_assets`` (writers) and ``dbt_project`` (reader, through
the ``ml`` source). The per-order scores (:data:`SCORE_OUTPUTS`) are Delta tables,
``SCPRO_HOME/lake/ml/<name>``: a scoring cycle merges the orders it scored by ``order_id`` in one
commit and leaves every other row as served, so a cycle's cost follows its batch, not the history
(:mod:`ml_assets.incremental`). Every other dataset is one Parquet file,
``SCPRO_HOME/lake/ml/<name>/data.parquet``, replaced with a temporary file and an atomic rename.
Either way dbt never reads half a write: a Delta reader sees only committed versions.

Before any model has been trained the ML assets still publish their files, empty but with their
schema (:func:`publish_empty`), so the KPI models that read predictions build and are
empty-but-valid. Only the ML layer writes here: until its assets first ran, the warehouse reads
typed placeholders from its own folder (:mod:`scpro_assets.warehouse.inputs`).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake

from spark.tables import current_version

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

#: The per-order scores: Delta tables merged by ``order_id`` (the others are Parquet files).
SCORE_OUTPUTS: tuple[str, ...] = ("delivery_time_predictions", "late_risk_scores")

#: The file a score table was before it became a Delta table (removed when the table is created).
_LEGACY_FILE = "data.parquet"


def output_path(ml_dir: Path, name: str) -> Path:
    """Where dataset ``name`` lives (what dbt's ``ml`` source reads): a Delta table or a file."""
    if name in SCORE_OUTPUTS:
        return ml_dir / name
    return ml_dir / name / "data.parquet"


def is_published(ml_dir: Path, name: str) -> bool:
    """Whether dataset ``name`` has been written (a committed Delta version, or its file)."""
    path = output_path(ml_dir, name)
    if name in SCORE_OUTPUTS:
        return current_version(path) is not None
    return path.exists()


def conform(name: str, table: pa.Table) -> pa.Table:
    """``table`` with the contract's columns, in its order and types."""
    schema = SCHEMAS[name]
    return table.select(schema.names).cast(schema)


def write_output(
    ml_dir: Path, name: str, table: pa.Table, commit_metadata: dict[str, str] | None = None
) -> Path:
    """Replace dataset ``name`` with ``table`` atomically (cast to the contract's schema).

    A score table is overwritten in one Delta commit carrying ``commit_metadata`` (the scoring
    state, :mod:`ml_assets.incremental`; none means "no state": the next cycle scores in full).
    """
    table = conform(name, table)
    path = output_path(ml_dir, name)
    if name in SCORE_OUTPUTS:
        write_score_table(path, table, commit_metadata)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_score_table(
    path: Path, table: pa.Table, commit_metadata: dict[str, str] | None = None
) -> int:
    """Overwrite (or create) the score table at ``path`` in one commit; return its version.

    The change data feed is on, as on the clean tables, so a reader (the warehouse) can follow
    which orders a cycle re-scored. A Parquet file left by the layout before Delta is removed
    once the table exists (no version references it; it would only mislead a reader of the
    folder).
    """
    write_deltalake(
        str(path),
        table,
        mode="overwrite",
        schema_mode="overwrite",
        configuration={"delta.enableChangeDataFeed": "true"},
        commit_properties=CommitProperties(custom_metadata=commit_metadata or {}),
    )
    (path / _LEGACY_FILE).unlink(missing_ok=True)
    version = current_version(path)
    assert version is not None  # the write above committed
    return version


def read_output(ml_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Dataset ``name`` as written last (empty with its schema when never written)."""
    schema = SCHEMAS[name]
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    if not is_published(ml_dir, name):
        return schema.empty_table()
    path = output_path(ml_dir, name)
    if name in SCORE_OUTPUTS:
        table = DeltaTable(str(path)).to_pyarrow_table(columns=schema.names)
    else:
        table = pq.read_table(path, columns=schema.names)
    return table.select(schema.names).cast(schema)


def publish_empty(ml_dir: Path, name: str) -> Path:
    """Replace dataset ``name`` with an empty table of its schema (no model, or too little data)."""
    return write_output(ml_dir, name, SCHEMAS[name].empty_table())


def scored_by(name: str, version: str, rows: int) -> dict[str, list[Any]]:
    """The model columns every score row carries (:data:`_MODEL_COLUMNS`)."""
    scored_at = datetime.now(UTC)
    return {
        "model_name": [name] * rows,
        "model_version": [version] * rows,
        "scored_at": [scored_at] * rows,
    }


def customer_segments_table(
    customers: pd.DataFrame, labels: np.ndarray, names: dict[int, str], model: tuple[str, str]
) -> pa.Table:
    """``customer_segments``: each customer's segment and profile, by ``model`` (name, version)."""
    return pa.Table.from_pydict(
        {
            "customer_id": customers["customer_id"].astype(str).tolist(),
            "segment_id": labels.astype("int32").tolist(),
            "segment_name": [names[int(i)] for i in labels],
            **{
                c: customers[c].astype(float).tolist()
                for c in ("recency_days", "monetary", "late_share", "mean_delay_days")
            },
            "frequency": customers["frequency"].astype("int64").tolist(),
            **scored_by(*model, len(customers)),
        }
    )


def demand_forecast_table(rows: pd.DataFrame, grain: str, model: tuple[str, str]) -> pa.Table:
    """``demand_forecast``: history with actuals and the forecast periods, per category."""
    return pa.Table.from_pydict(
        {
            "category": rows["category"].tolist(),
            "period_start": rows["period_start"].dt.date.tolist(),
            "period_grain": [grain] * len(rows),
            "forecast_orders": rows["forecast_orders"].astype(float).tolist(),
            "baseline_orders": rows["baseline_orders"].astype(float).tolist(),
            "actual_orders": rows["actual_orders"].astype(float).tolist(),
            "is_future": rows["is_future"].astype(bool).tolist(),
            **scored_by(*model, len(rows)),
        }
    )
