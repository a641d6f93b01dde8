"""Ready-made lakes and warehouse runs for tests and benchmarks (no Kafka, no trained model).

:func:`ensure_synthetic_lake` builds a clean lake once per folder (Spark, via
:func:`scpro_assets.testing.offline.build_clean_lake`); :func:`materialize_warehouse` runs the
warehouse assets exactly as Dagster does; :func:`write_example_ml_outputs` writes small, known ML
outputs (through the ML contract's own writer) so the prediction KPIs can be checked.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa

from ml_assets.outputs import (
    SCHEMAS,
    SCORE_OUTPUTS,
    conform,
    is_published,
    output_path,
    write_output,
)
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import KafkaSettings, Settings
from scpro_assets.sources.common import SourceEvent

_BUILT_MARKER = ".scpro-test-lake-built"


def settings_for(home: Path) -> Settings:
    """Settings for a home folder (Kafka unused)."""
    return Settings(home=home, kafka=KafkaSettings())


def live_stream(events: Iterable[SourceEvent], orders_placed: int) -> Iterator[SourceEvent]:
    """The events seen up to the moment order number ``orders_placed + 1`` is placed.

    A generated history ends with every order delivered or canceled; cut like this, the latest
    orders are still open, as on a live stream (at-risk lists need open orders).
    """
    placed = 0
    for event in events:
        if event.topic == "orders":
            placed += 1
            if placed > orders_placed:
                return
        yield event


def ensure_synthetic_lake(home: Path, orders: int = 1500, seed: int = 3) -> Settings:
    """Build a clean lake of ``orders`` synthetic orders, cut live (the last 10% still open)."""
    from scpro_assets.sources.synthetic import SyntheticConfig, generate
    from scpro_assets.testing.offline import build_clean_lake

    settings = settings_for(home)
    marker = home / _BUILT_MARKER
    if not marker.exists():
        home.mkdir(parents=True, exist_ok=True)
        events = generate(SyntheticConfig(orders=orders, seed=seed))
        build_clean_lake(live_stream(events, orders * 9 // 10), settings)
        marker.write_text(f"{orders} orders, seed {seed}\n")
    return settings


def shared_synthetic_lake(basetemp: Path) -> Settings:
    """:func:`ensure_synthetic_lake` under ``basetemp``, built once for all pytest-xdist workers.

    The first worker to ask builds the lake in the run's root temporary folder, under a file lock
    (the others wait for it); each worker then works on its own copy in its ``basetemp``
    (``dbt-shared-lake``), which its tests may change (the warehouse, ML outputs). One Spark build
    of the clean lake per test run, not one per worker.
    """
    home = basetemp / "dbt-shared-lake"
    if not (home / _BUILT_MARKER).exists():
        root = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
        with (root / "synthetic-lake.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            source = ensure_synthetic_lake(root / "synthetic-lake")
        copy_lake(source, home)
        shutil.copy2(source.home / _BUILT_MARKER, home / _BUILT_MARKER)
    return settings_for(home)


def copy_lake(source: Settings, home: Path, with_warehouse: bool = False) -> Settings:
    """A private copy of ``source``'s raw and clean lake (links kept) under ``home``.

    ML outputs are left behind (the copy starts unscored); the warehouse file is copied too when
    ``with_warehouse`` and it exists.
    """
    home.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("ml")
    shutil.copytree(source.lake_dir, home / "lake", symlinks=True, ignore=ignore)
    if with_warehouse and source.warehouse_path.exists():
        shutil.copy2(source.warehouse_path, home / source.warehouse_path.name)
    return settings_for(home)


def warehouse_resources(settings: Settings) -> dict[str, object]:
    """The resources the warehouse assets need, as the code location configures them."""
    from scpro_assets.warehouse.project import dbt_resource

    return {
        "lake": LakeResource.from_settings(settings),
        "kafka": KafkaResource.from_settings(settings.kafka),
        "dbt": dbt_resource(),
    }


def materialize_warehouse(
    settings: Settings,
    instance: dg.DagsterInstance,
    raise_on_error: bool = True,
    all_tests: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize lake_inventory, every dbt model (with its tests) and the serving snapshot.

    ``all_tests=False`` runs the cycle's build as the automation does: the tests that guard
    every snapshot only (the others run on the ``warehouse_all_tests`` schedule).
    """
    from scpro_assets.warehouse.assets import WarehouseBuildConfig, warehouse_assets

    return dg.materialize(
        warehouse_assets,
        instance=instance,
        resources=warehouse_resources(settings),
        raise_on_error=raise_on_error,
        run_config=dg.RunConfig(ops={"warehouse_dbt": WarehouseBuildConfig(all_tests=all_tests)}),
    )


def write_example_ml_outputs(settings: Settings, open_scored: int | None = None) -> dict[str, int]:
    """Write known ML outputs for the lake's orders; return how many rows of each were written.

    Delivered orders get a predicted delivery time of actual + 0.5 days (gap 0.5); the first
    ``open_scored`` open orders (all when None) get a late risk, every third one 'high'; customers
    are split into two segments; the registry holds one serving model; demand has one category.
    """
    clean = settings.clean_dir
    con = connect_lake()
    con.execute("set TimeZone = 'UTC'")
    deliveries = con.execute(
        "select order_id, delivery_days, status from "
        f"{delta_scan_sql(clean / 'cleaned_deliveries')} order by order_id"
    ).fetchall()
    customers = con.execute(
        f"select distinct customer_id from {delta_scan_sql(clean / 'cleaned_orders')} order by 1"
    ).fetchall()
    scored_at = datetime(2024, 6, 1, tzinfo=UTC)
    model = {"model_name": "example", "model_version": "v1", "scored_at": scored_at}
    delivered = [(o, d) for o, d, s in deliveries if s == "delivered"]
    still_open = [o for o, _, s in deliveries if s not in ("delivered", "canceled")]
    still_open = still_open if open_scored is None else still_open[:open_scored]
    predictions = [
        {
            "order_id": o,
            "predicted_delivery_days": d + 0.5,
            "predicted_delivery_time": None,
            "is_open": False,
            **model,
        }
        for o, d in delivered
    ]
    # Open orders get an ETA and its 80% range (dates), as the delivery-time model writes them.
    eta = datetime(2024, 6, 5).date()
    predictions += [
        {
            "order_id": o,
            "predicted_delivery_days": 3.0,
            "predicted_delivery_date": eta,
            "eta_low": eta - timedelta(days=2),
            "eta_high": eta + timedelta(days=3),
            "eta_low_days": 1.0,
            "eta_high_days": 6.0,
            "is_open": True,
            **model,
        }
        for o in still_open
    ]
    risks = [
        {
            "order_id": o,
            "late_risk": 0.9 if i % 3 == 0 else 0.1 + i / (10 * len(still_open)),
            "risk_band": "high" if i % 3 == 0 else "low",
            "top_reasons": "carrier; distance",
            "is_open": True,
            **model,
        }
        for i, o in enumerate(still_open)
    ]
    segments = [
        {
            "customer_id": c,
            "segment_id": i % 2,
            "segment_name": ("Loyal", "Occasional")[i % 2],
            "recency_days": 10.0 + i % 2,
            "frequency": 2 - i % 2,
            "monetary": 100.0 - 50 * (i % 2),
            "late_share": 0.2,
            "mean_delay_days": 0.5,
            **model,
        }
        for i, (c,) in enumerate(customers)
    ]
    monday = datetime(2024, 1, 1).date()
    demand = [
        {
            "category": "Electronics",
            "period_start": monday + timedelta(weeks=w),
            "period_grain": "week",
            "forecast_orders": 10.0 + w,
            "baseline_orders": 9.0,
            "actual_orders": None if w >= 2 else 11.0,
            "is_future": w >= 2,
            **model,
        }
        for w in range(4)
    ]
    registry = [
        {
            "model_name": "example",
            "model_version": "v1",
            "task": "late_risk",
            "framework": "baseline",
            "algorithm": "constant",
            "trained_at": scored_at,
            "train_rows": len(delivered),
            "test_rows": 0,
            "metrics": "{}",
            "primary_metric": "auc",
            "primary_metric_value": 0.5,
            "is_serving": True,
            "serving_reason": "only model",
        },
        {
            "model_name": "example_days",
            "model_version": "v1",
            "task": "delivery_time",
            "framework": "baseline",
            "algorithm": "constant",
            "trained_at": scored_at,
            "train_rows": len(delivered),
            "test_rows": 0,
            "metrics": "{}",
            "primary_metric": "mae",
            "primary_metric_value": 0.5,
            "interval_level": 0.8,
            "interval_coverage": 0.79,
            "interval_width_days": 5.0,
            "is_serving": True,
            "serving_reason": "only model",
        },
    ]
    written = {
        "delivery_time_predictions": predictions,
        "late_risk_scores": risks,
        "customer_segments": segments,
        "demand_forecast": demand,
        "model_registry": registry,
    }

    for name, rows in written.items():
        schema = SCHEMAS[name]
        full = [{f: row.get(f) for f in schema.names} for row in rows]
        table = pa.Table.from_pylist(full, schema=schema)
        if name in SCORE_OUTPUTS and is_published(settings.ml_dir, name):
            _merge_scores(output_path(settings.ml_dir, name), conform(name, table))
        else:
            write_output(settings.ml_dir, name, table)
    return {name: len(rows) for name, rows in written.items()}


def _merge_scores(path: Path, table: pa.Table) -> None:
    """Make the score table at ``path`` hold ``table``'s rows in one merge by ``order_id``.

    What a scoring cycle's commit does to a served table (a re-scored order's row replaced, a new
    one inserted, a gone one deleted), so the warehouse follows it through the change feed
    instead of seeing the table rewritten. Like a cycle, it leaves an order whose scores did not
    change alone (whatever its ``scored_at``: these example rows are stamped anew each call).
    """
    from deltalake import DeltaTable

    values = {c: f"s.{c}" for c in table.schema.names}
    differs = " or ".join(
        f"(t.{c} is distinct from s.{c})" for c in table.schema.names if c != "scored_at"
    )
    (
        DeltaTable(str(path))
        .merge(table, predicate="t.order_id = s.order_id", source_alias="s", target_alias="t")
        .when_matched_update(updates=values, predicate=differs)
        .when_not_matched_insert(updates=values)
        .when_not_matched_by_source_delete()
        .execute()
    )
