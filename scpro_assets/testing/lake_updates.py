"""Micro-batches applied straight to a clean lake, as the clean layer commits them (no Spark).

The clean layer's incremental commits are Delta merges by key (``spark.tables.replace_keys``,
``insert_new``): rows are inserted, replaced and deleted, each commit with its change data feed.
:func:`apply_micro_batch` makes the same kinds of commits with delta-rs on a lake built once by
:func:`scpro_assets.testing.warehouse.ensure_synthetic_lake`, in a second: new orders (with their
lines, delivery state and a payment), orders whose attributes or delivery state changed, an order
the rules now refuse (its rows deleted everywhere), a removed order line, and incidents resolved
or gone. Tests of the warehouse's incremental models build after each batch and compare with a
full refresh.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from scpro_assets.settings import Settings


def _table(settings: Settings, name: str) -> DeltaTable:
    return DeltaTable(str(settings.clean_dir / name))


def _sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _upsert(table: DeltaTable, rows: pa.Table, keys: list[str]) -> None:
    """Merge ``rows`` by ``keys``: replace the matched rows, insert the others (one commit)."""
    if not rows.num_rows:
        return
    on = " and ".join(f"t.{k} = s.{k}" for k in keys)
    (
        table.merge(rows, predicate=on, source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def _delete(table: DeltaTable, column: str, values: list[str]) -> None:
    if values:
        table.delete(f"{column} in ({_sql_list(values)})")


def _rows_of(table: DeltaTable, column: str, values: list[str]) -> pa.Table:
    data = table.to_pyarrow_table()
    wanted = pa.array(values, data.schema.field(column).type)
    return data.filter(pc.is_in(data.column(column), wanted))


def _with_new_ids(rows: pa.Table, column: str, suffix: str) -> pa.Table:
    renamed = pc.binary_join_element_wise(rows.column(column), pa.scalar(suffix), "")
    return rows.set_column(rows.schema.get_field_index(column), column, renamed)


def _shift(rows: pa.Table, column: str, days: int) -> pa.Table:
    shifted = pc.add(rows.column(column), pa.scalar(timedelta(days=days)))
    return rows.set_column(
        rows.schema.get_field_index(column), column, shifted.cast(rows.schema.field(column).type)
    )


def apply_micro_batch(settings: Settings, batch: int) -> dict[str, list[str]]:
    """Commit micro-batch number ``batch`` (1, 2, ...) to the clean lake; return the keys touched.

    Deterministic for a lake and a batch number: it picks orders by their sorted ids.
    """
    orders = _table(settings, "cleaned_orders")
    order_ids = sorted(orders.to_pyarrow_table(columns=["order_id"]).column(0).to_pylist())
    deliveries = _table(settings, "cleaned_deliveries")
    state = deliveries.to_pyarrow_table(columns=["order_id", "status"]).to_pylist()
    open_ids = sorted(r["order_id"] for r in state if r["status"] not in ("delivered", "canceled"))
    step = 7 * batch

    # New orders: copies of existing ones under new ids, a day later (lines, delivery, payment).
    sources = order_ids[step : step + 2]
    suffix = f"-b{batch}"
    new_ids = [f"{o}{suffix}" for o in sources]
    for name in ("cleaned_orders", "cleaned_order_items", "cleaned_deliveries"):
        table = _table(settings, name)
        rows = _shift(
            _with_new_ids(_rows_of(table, "order_id", sources), "order_id", suffix), "order_time", 1
        )
        _upsert(
            table, rows, ["order_id", "item_id"] if name == "cleaned_order_items" else ["order_id"]
        )
    payments = _table(settings, "cleaned_payments")
    paid = _rows_of(payments, "order_id", sources).slice(0, 1)
    _upsert(
        payments,
        _with_new_ids(_with_new_ids(paid, "order_id", suffix), "event_id", suffix),
        ["event_id"],
    )

    # Changed orders: another region; open orders delivered (late by a day).
    changed = order_ids[step + 3 : step + 6]
    orders = _table(settings, "cleaned_orders")  # as just merged
    rows = _rows_of(orders, "order_id", changed)
    region = pa.array([f"Region {batch}"] * rows.num_rows, rows.schema.field("region").type)
    _upsert(
        orders,
        rows.set_column(rows.schema.get_field_index("region"), "region", region),
        ["order_id"],
    )
    delivered = open_ids[batch : batch + 2]
    deliveries = _table(settings, "cleaned_deliveries")
    rows = _rows_of(deliveries, "order_id", delivered)
    for column, value in (
        ("status", pa.array(["delivered"] * rows.num_rows)),
        ("delivered_at", rows.column("promised_delivery_time")),
        ("is_late", pa.array([True] * rows.num_rows)),
        ("delay_days", pa.array([1.0] * rows.num_rows)),
        ("delivery_days", pa.array([4.0] * rows.num_rows)),
    ):
        index = rows.schema.get_field_index(column)
        rows = rows.set_column(
            index, rows.schema.field(index), value.cast(rows.schema.field(index).type)
        )
    _upsert(deliveries, rows, ["order_id"])

    # An order the rules now refuse: gone from every order-grain table; a line gone from another.
    refused = [order_ids[-batch]]
    for name in ("cleaned_orders", "cleaned_order_items", "cleaned_deliveries"):
        _delete(_table(settings, name), "order_id", refused)
    items = _table(settings, "cleaned_order_items")
    line = _rows_of(items, "order_id", [order_ids[step + 6]]).slice(0, 1)
    if line.num_rows:
        items.delete(
            f"order_id = '{line.column('order_id')[0]}' and item_id = '{line.column('item_id')[0]}'"
        )

    # Incidents: one resolved (or re-timed), one gone.
    incidents = _table(settings, "cleaned_incidents")
    incident_ids = sorted(incidents.to_pyarrow_table(columns=["incident_id"]).column(0).to_pylist())
    touched = _rows_of(incidents, "incident_id", incident_ids[batch : batch + 1])
    _upsert(incidents, _shift(touched, "opened_at", -1), ["incident_id"])
    _delete(incidents, "incident_id", incident_ids[-batch:][:1])
    return {"new": new_ids, "changed": changed, "delivered": delivered, "refused": refused}


def add_latest_orders(settings: Settings, count: int, tag: str) -> int:
    """A benchmark's micro-batch: ``count`` new orders and a quarter as many deliveries done.

    The new orders copy the latest ``count`` ones (lines and delivery state too) under new ids, a
    day later, as a live stream's next batch would; the oldest open orders of the batch before
    are delivered. Returns the orders added.
    """
    orders = _table(settings, "cleaned_orders")
    latest = orders.to_pyarrow_table(columns=["order_id", "order_time"])
    latest = latest.sort_by([("order_time", "descending")]).slice(0, count)
    sources = latest.column("order_id").to_pylist()
    suffix = f"-{tag}"
    for name in ("cleaned_orders", "cleaned_order_items", "cleaned_deliveries"):
        table = _table(settings, name)
        rows = _with_new_ids(_rows_of(table, "order_id", sources), "order_id", suffix)
        keys = ["order_id", "item_id"] if name == "cleaned_order_items" else ["order_id"]
        _upsert(table, _shift(rows, "order_time", 1), keys)
    deliveries = _table(settings, "cleaned_deliveries")
    state = _rows_of(deliveries, "order_id", sources)
    still_open = pc.invert(pc.is_in(state.column("status"), pa.array(["delivered", "canceled"])))
    done = state.filter(still_open).slice(0, count // 4)
    status = pa.array(["delivered"] * done.num_rows, done.schema.field("status").type)
    done = done.set_column(done.schema.get_field_index("status"), "status", status)
    _upsert(deliveries, done, ["order_id"])
    return len(sources)
