"""Which keys a micro-batch touches, so the clean layer recomputes only those (issue #17 item 2).

Every function takes DataFrames and returns the keys (or rows) to recompute; the pipeline
(:mod:`scpro_assets.clean.pipeline`) reads the tables and merges the results. The rules, worked
out from :mod:`spark.cleaning` and :mod:`spark.features` so an incremental build gives exactly a
full rebuild's tables (``infra/spark/README.md``, "The incremental clean layer"):

- an entity row depends only on the events of its key (order, incident, event), so the touched
  keys are those of the events that entered the build, and they are recomputed from *all* their
  events;
- a delivery state depends on its order's clean row and its tracking events;
- an order's features depend on its own rows, on its customer's earlier orders and their
  deliveries, on the orders of its source and of its load key (origin, or shipping mode) in the
  7 days before it, and on the incidents open when it was placed. So a changed order changes the
  features of its customer's later orders and of the orders of its source and load key in the 7
  days after it; a changed incident those of the orders placed while it was open (as it was
  before, and as it is now).

Supersets are fine (a recomputed row is recomputed from its whole context, so it comes out the
same); missing one is not. All key joins are null-safe: a null order id is a key like any other
(the cleaning groups those events together too).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

#: Days either side of an order that its load features look at (7 days: day 0 and 7 more dates).
LOAD_DAYS = 7

#: Columns of an order that decide whose features it feeds.
ORDER_DEPENDENCY_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "source",
    "order_time",
    "order_date",
    "origin_lat",
    "origin_lon",
    "shipping_mode",
)


def with_keys(df: DataFrame, keys: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Rows of ``df`` whose ``columns`` equal (null-safe) a row of ``keys`` (same column names)."""
    renamed = keys.select(*(F.col(c).alias(f"_k_{c}") for c in columns)).distinct()
    condition: Column | None = None
    for c in columns:
        equal = df[c].eqNullSafe(renamed[f"_k_{c}"])
        condition = equal if condition is None else condition & equal
    return df.join(renamed, condition, "left_semi")


def _load_key(df: DataFrame) -> DataFrame:
    """``df`` with the key its origin load is counted by (as ``spark.features`` defines it)."""
    has_origin = F.col("origin_lat").isNotNull() & F.col("origin_lon").isNotNull()
    return df.select(
        "*",
        F.when(has_origin, F.col("origin_lat")).alias("_load_lat"),
        F.when(has_origin, F.col("origin_lon")).alias("_load_lon"),
        F.when(~has_origin, F.col("shipping_mode")).alias("_load_mode"),
    )


_LOAD_KEY = ("_load_lat", "_load_lon", "_load_mode")


def _shifted_days(orders: DataFrame, key: Sequence[str], direction: int) -> DataFrame:
    """``key`` and every ``order_date`` within :data:`LOAD_DAYS` after (1) or before (-1)."""
    shift = F.explode(F.sequence(F.lit(0), F.lit(LOAD_DAYS)))
    return (
        orders.select(*key, "order_date", shift.alias("_shift"))
        .select(*key, F.date_add("order_date", F.col("_shift") * direction).alias("order_date"))
        .distinct()
    )


def orders_fed_by(
    orders: DataFrame, changed: DataFrame, delivered: DataFrame, incidents: DataFrame
) -> DataFrame:
    """Ids of the ``orders`` whose features a change can alter (the changed ones included).

    ``changed`` holds :data:`ORDER_DEPENDENCY_COLUMNS` of every changed order (its clean row or
    its lines), as it was and as it is now. ``delivered`` holds ``order_id``, ``customer_id`` and
    ``order_time`` of the orders whose delivery state changed: their label, and the late rate of
    the customer's later orders (a delivery comes after its order, so "later than the order" is a
    superset). ``incidents`` holds ``opened_at`` and ``resolved_at`` of every changed incident,
    as it was and as it is. A superset: whole days, and every later order of a customer.
    """
    points = changed.select("order_id", "customer_id", "order_time").unionByName(
        delivered.select("order_id", "customer_id", "order_time")
    )
    # Renamed: ``points`` may come from ``orders`` itself, and a join of a frame with its own
    # column would compare the column with itself.
    first_change = points.groupBy(F.col("customer_id").alias("_customer")).agg(
        F.min("order_time").alias("_since")
    )
    customers = (
        orders.join(first_change, orders["customer_id"].eqNullSafe(first_change["_customer"]))
        .where(orders["order_time"] >= F.col("_since"))
        .select(orders["order_id"])
    )
    keyed, changed_keyed = _load_key(orders), _load_key(changed)
    by_source = with_keys(
        keyed, _shifted_days(changed_keyed, ["source"], 1), ["source", "order_date"]
    )
    by_load = with_keys(
        keyed, _shifted_days(changed_keyed, _LOAD_KEY, 1), [*_LOAD_KEY, "order_date"]
    )
    spans = incidents.where(F.col("opened_at").isNotNull()).select("opened_at", "resolved_at")
    open_at_order = orders.join(
        F.broadcast(spans),
        (orders["order_time"] > spans["opened_at"])
        & (spans["resolved_at"].isNull() | (orders["order_time"] <= spans["resolved_at"])),
    ).select(orders["order_id"])
    return (
        points.select("order_id")
        .unionByName(customers)
        .unionByName(by_source.select("order_id"))
        .unionByName(by_load.select("order_id"))
        .unionByName(open_at_order)
        .distinct()
    )


def feature_context(orders: DataFrame, targets: DataFrame) -> DataFrame:
    """The orders the features of ``targets`` (order ids) are computed from.

    The targets themselves, every order of their customers, and the orders of their source and
    load key in the :data:`LOAD_DAYS` days before them.
    """
    target_orders = with_keys(orders, targets, ["order_id"])
    keyed, target_keyed = _load_key(orders), _load_key(target_orders)
    customers = with_keys(orders, target_orders.select("customer_id"), ["customer_id"])
    by_source = with_keys(
        keyed, _shifted_days(target_keyed, ["source"], -1), ["source", "order_date"]
    ).select(*orders.columns)
    by_load = with_keys(
        keyed, _shifted_days(target_keyed, _LOAD_KEY, -1), [*_LOAD_KEY, "order_date"]
    ).select(*orders.columns)
    return (
        target_orders.unionByName(customers)
        .unionByName(by_source)
        .unionByName(by_load)
        .dropDuplicates(["order_id"])
    )
