"""The exception queue's data: status, owner and waiting time of at-risk orders, and audit trails.

Plain functions over a :class:`~panel_app.store.DataStore` (no UI), reading the newest snapshot
with parameterized queries like the store does. Snapshots published before the queue existed
lack its columns and tables: every function then answers as if nobody had acted yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from panel_app.store import DataStore, FilterState, _where

#: Columns :func:`queue_state` adds to the at-risk list.
QUEUE_COLUMNS = [
    "queue_status",
    "owner",
    "action_count",
    "first_action_at",
    "last_action_at",
    "queued_at",
]

#: Columns of :func:`audit_trail`, oldest action first.
AUDIT_COLUMNS = [
    "action_id",
    "acted_at",
    "action",
    "actor",
    "assignee",
    "note",
    "is_after_resolution",
    "snapshot_version",
]


def has_queue(store: DataStore) -> bool:
    """Whether the newest snapshot carries the exception queue (its marts and columns)."""
    found = store.query(
        "select count(*) as n from information_schema.columns "
        "where table_name = 'at_risk_orders' and column_name = 'queue_status'"
    )
    return bool(found["n"].iloc[0]) and store.has_table("fct_order_actions")


def queue_state(store: DataStore) -> pd.DataFrame:
    """Per listed order: queue status, owner, actions, and since when it waits (wall clock).

    ``queued_at`` is when SCPro first showed the order at high risk (or, never high, first listed
    it), from ``fct_at_risk_entries``: on the same clock as the actions, whatever the business
    time of the replayed data.
    """
    if not has_queue(store):
        return pd.DataFrame(columns=["order_id", *QUEUE_COLUMNS])
    entries = store.has_table("fct_at_risk_entries")
    queued = "coalesce(e.first_high_risk_at, e.first_listed_at)" if entries else "null"
    join = "left join fct_at_risk_entries e on e.order_id = a.order_id" if entries else ""
    return store.query(
        "select a.order_id, a.queue_status, a.owner, a.action_count, a.first_action_at, "
        f"a.last_action_at, {queued} as queued_at from at_risk_orders a {join}"
    )


def order_in_queue(store: DataStore, order_id: str) -> pd.Series | None:
    """The order's row of the newest snapshot's at-risk list, or None when it is not listed."""
    columns = "order_id, risk_band, status"
    if has_queue(store):
        columns += ", queue_status, owner, last_action_at"
    found = store.query(f"select {columns} from at_risk_orders where order_id = ?", [order_id])
    return None if found.empty else found.iloc[0]


def audit_trail(store: DataStore, order_id: str) -> pd.DataFrame:
    """Every action on the order in the newest snapshot, oldest first."""
    if not has_queue(store):
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    return store.query(
        f"select {', '.join(AUDIT_COLUMNS)} from fct_order_actions where order_id = ? "
        "order by action_seq",
        [order_id],
    )


def time_to_first_action(store: DataStore, state: FilterState) -> dict[str, float | None]:
    """Orders seen at high risk, how many were acted on, and the mean minutes until the first.

    All orders the snapshot has seen at high risk (the page's period does not apply, as for the
    list); the region, carrier/mode, category and segment filters do.
    """
    empty: dict[str, float | None] = {"high_risk": 0.0, "acted": 0.0, "mean_minutes": None}
    if not store.has_table("kpi_actions_daily"):
        return empty
    where, params = _where(state, None, None)
    row = store.query(
        "select coalesce(sum(high_risk_orders), 0) as high_risk, "
        "coalesce(sum(acted_orders), 0) as acted, "
        "sum(sum_minutes_to_first_action) / nullif(sum(acted_orders), 0) as mean_minutes "
        f"from kpi_actions_daily where {where}",
        params,
    ).iloc[0]
    mean = row["mean_minutes"]
    return {
        "high_risk": float(row["high_risk"]),
        "acted": float(row["acted"]),
        "mean_minutes": None if pd.isna(mean) else float(mean),
    }


def waited(since: object, now: datetime | None = None) -> str:
    """How long ago ``since`` (a naive UTC or aware time) was: '12 min', '3 h 05 min', '2 d 4 h'."""
    if since is None or pd.isna(since):
        return "—"
    stamp = pd.Timestamp(since)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    minutes = max(0, int(((now or datetime.now(UTC)) - stamp.to_pydatetime()).total_seconds()))
    minutes //= 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
