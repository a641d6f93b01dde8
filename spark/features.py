"""The order-level feature table: one row per order, using only what was known when it was placed.

Models are trained on the past and judged on the future (``/work/shared/EVALUATION.md``), so a
feature that peeks past the order's ``order_time`` flatters them in training and fails in
production. Every feature here is *point-in-time correct*:

- **The order itself** (promise, mode, carrier, basket, value, payment type, places) comes from its
  ``order_placed`` event, which is by definition known at order time.
- **Customer history** counts the customer's orders placed strictly before this one. The late rate
  is subtler: a prior order's outcome is only known once it is delivered, so it only counts prior
  orders whose ``delivered_at`` is before this ``order_time``. A customer's orders and their
  deliveries are put on one time line (an "order" row at order time, an "outcome" row at delivery
  time) and summed over a range frame ending just before each order, so the rule holds by
  construction, in one sort per customer, without a self-join.
- **Origin load** counts orders leaving the same origin (its coordinates; the shipping mode when
  they are missing) in the 24 hours and 7 days before the order, the order itself excluded.
  **Source load** (``source_orders_7d``) counts every order of the same source in the 7 days
  before: a busy week strains carriers for the whole marketplace, not just one seller (on Olist it
  is the strongest single late-risk input, and it is known the moment the order is placed).
- **Open incidents** counts incidents opened before the order and not resolved by then. Incidents
  are spread over the UTC days they were open and joined to orders on the day (an equi-join that
  scales, instead of a range join of every order with every incident), then the exact times are
  compared.
- **Labels** (``delivery_days``, ``is_late``) are outcomes, with ``label_known_at`` = the delivery
  time, so a training set can be cut at any instant without leaking.

Time windows are range frames over epoch microseconds (``unix_micros``) rather than seconds, so two
orders placed within the same second are still ordered; frames end at ``-1`` (one microsecond
before the order), which is what "strictly before" means. No Python UDFs: everything stays in the
JVM and scales with the cluster.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark.cleaning import MICROS_PER_DAY, ORDER_COLUMNS

#: Mean Earth radius (km), as the synthetic generator uses.
EARTH_RADIUS_KM = 6_371.0

#: Identifiers and times of each row (not model inputs).
KEY_COLUMNS: tuple[str, ...] = ("order_id", "customer_id", "source", "order_time", "order_date")

#: Model inputs, all known at ``order_time``.
FEATURE_COLUMNS: tuple[str, ...] = (
    "scheduled_days",
    "shipping_mode",
    "carrier",
    "market",
    "region",
    "customer_segment",
    "channel",
    "payment_type",
    "item_count",
    "units",
    "net_value",
    "freight",
    "total_weight_g",
    "main_category",
    "main_department",
    "distinct_categories",
    "max_unit_price",
    "distance_km",
    "same_state",
    "order_weekday",
    "order_hour",
    "order_month_of_year",
    "is_weekend",
    "is_peak_season",
    "prior_orders",
    "prior_spend",
    "days_since_prior_order",
    "prior_delivered_orders",
    "prior_late_rate",
    "load_basis",
    "origin_orders_24h",
    "origin_orders_7d",
    "source_orders_7d",
    "open_incidents_at_order",
    "open_carrier_incidents_at_order",
)

#: Outcomes, known at ``label_known_at`` (null until the order is delivered).
LABEL_COLUMNS: tuple[str, ...] = ("delivery_days", "is_late", "label_known_at")


def haversine_km(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    """Great-circle distance in km (null when a coordinate is missing)."""
    p1, p2 = F.radians(lat1), F.radians(lat2)
    half_dp = (p2 - p1) / 2
    half_dl = F.radians(lon2 - lon1) / 2
    a = F.sin(half_dp) * F.sin(half_dp) + F.cos(p1) * F.cos(p2) * F.sin(half_dl) * F.sin(half_dl)
    known = lat1.isNotNull() & lon1.isNotNull() & lat2.isNotNull() & lon2.isNotNull()
    # least() skips nulls, hence the explicit guard: a missing coordinate must give null.
    return F.when(known, F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.sqrt(F.least(F.lit(1.0), a))))


def _customer_history(orders: DataFrame, delivery_state: DataFrame) -> DataFrame:
    """Per order: the customer's prior orders, spend, recency and known late rate."""
    order_rows = orders.select(
        "customer_id",
        "_t",
        F.lit(True).alias("_is_order"),
        "order_id",
        "net_value",
        F.lit(None).cast("int").alias("_late"),
    )
    outcomes = (
        delivery_state.where(F.col("delivered_at").isNotNull() & F.col("is_late").isNotNull())
        .join(orders.select("order_id", "customer_id"), "order_id")
        .select(
            "customer_id",
            F.unix_micros("delivered_at").alias("_t"),
            F.lit(False).alias("_is_order"),
            F.lit(None).cast("string").alias("order_id"),
            F.lit(None).cast("double").alias("net_value"),
            F.col("is_late").cast("int").alias("_late"),
        )
    )
    before = (
        Window.partitionBy("customer_id").orderBy("_t").rangeBetween(Window.unboundedPreceding, -1)
    )
    is_order = F.col("_is_order")
    known = F.count("_late").over(before)
    return (
        order_rows.unionByName(outcomes)
        .select(
            "order_id",
            "_is_order",
            F.count(F.when(is_order, F.lit(1))).over(before).alias("prior_orders"),
            F.round(
                F.coalesce(F.sum(F.when(is_order, F.col("net_value"))).over(before), F.lit(0.0)),
                2,
            ).alias("prior_spend"),
            (
                (F.col("_t") - F.max(F.when(is_order, F.col("_t"))).over(before))
                / F.lit(float(MICROS_PER_DAY))
            ).alias("days_since_prior_order"),
            known.alias("prior_delivered_orders"),
            F.when(known > 0, F.sum("_late").over(before) / known).alias("prior_late_rate"),
        )
        .where(is_order)
        .drop("_is_order")
    )


def _with_origin_load(orders: DataFrame) -> DataFrame:
    """Add the load on the order's origin (24 h and 7 days) and on its source (7 days) before it."""
    has_origin = F.col("origin_lat").isNotNull() & F.col("origin_lon").isNotNull()
    basis = F.when(has_origin, F.lit("origin")).when(
        F.col("shipping_mode").isNotNull(), F.lit("shipping_mode")
    )
    keyed = orders.select(
        "*",
        basis.alias("load_basis"),
        F.when(has_origin, F.col("origin_lat")).alias("_load_lat"),
        F.when(has_origin, F.col("origin_lon")).alias("_load_lon"),
        F.when(~has_origin, F.col("shipping_mode")).alias("_load_mode"),
    )
    same_origin = Window.partitionBy("_load_lat", "_load_lon", "_load_mode").orderBy("_t")
    same_source = Window.partitionBy("source").orderBy("_t")
    day, week = MICROS_PER_DAY, 7 * MICROS_PER_DAY
    counted = F.col("load_basis").isNotNull()
    return keyed.select(
        "*",
        F.when(counted, F.count(F.lit(1)).over(same_origin.rangeBetween(-day, -1))).alias(
            "origin_orders_24h"
        ),
        F.when(counted, F.count(F.lit(1)).over(same_origin.rangeBetween(-week, -1))).alias(
            "origin_orders_7d"
        ),
        F.count(F.lit(1)).over(same_source.rangeBetween(-week, -1)).alias("source_orders_7d"),
    ).drop("_load_lat", "_load_lon", "_load_mode")


def _open_incidents(orders: DataFrame, incidents: DataFrame) -> DataFrame:
    """Per order with any: incidents open at its order time, all and of its carrier."""
    last_day = orders.agg(F.max("order_date").alias("_last_day"))
    first_day = F.to_date("opened_at")
    through = F.greatest(first_day, F.coalesce(F.to_date("resolved_at"), F.col("_last_day")))
    spans = incidents.crossJoin(last_day).select(
        F.col("carrier").alias("_incident_carrier"),
        "opened_at",
        "resolved_at",
        F.explode(F.sequence(first_day, through)).alias("_day"),
    )
    open_then = (
        (F.col("order_date") == F.col("_day"))
        & (F.col("opened_at") < F.col("order_time"))
        & (F.col("resolved_at").isNull() | (F.col("resolved_at") > F.col("order_time")))
    )
    return (
        orders.select("order_id", "order_time", "order_date", "carrier")
        .join(spans, open_then)
        .groupBy("order_id")
        .agg(
            F.count(F.lit(1)).alias("_open"),
            F.count(F.when(F.col("_incident_carrier") == F.col("carrier"), F.lit(1))).alias(
                "_open_carrier"
            ),
        )
    )


def order_features(
    clean_orders: DataFrame,
    clean_order_items: DataFrame,
    delivery_state: DataFrame,
    clean_incidents: DataFrame,
) -> DataFrame:
    """One row per clean order: keys, order-time features and labels (see the module docstring).

    Columns: :data:`KEY_COLUMNS`, :data:`FEATURE_COLUMNS`, :data:`LABEL_COLUMNS`. Calendar
    features are in UTC: ``order_weekday`` is ISO (Monday 1 .. Sunday 7), ``order_month_of_year``
    1 .. 12 (not ``order_month``, the lake's ``yyyy-MM`` partition column), the peak season runs
    from 15 November to 31 December. ``prior_late_rate`` is null until one of the customer's
    earlier orders is known to be delivered; ``open_carrier_incidents_at_order`` is null when the
    order names no carrier; ``same_state`` (origin and customer in one state, e.g. seller and buyer
    both in SP on Olist) is null when either state is unknown.
    """
    # Only the clean columns: inputs read back from the lake carry partition columns too.
    orders = clean_orders.select(*ORDER_COLUMNS).withColumn("_t", F.unix_micros("order_time"))
    lines = clean_order_items.groupBy("order_id").agg(
        F.count_distinct("category").alias("distinct_categories"),
        F.max("unit_price").alias("max_unit_price"),
    )
    labels = delivery_state.select(
        "order_id",
        "delivery_days",
        "is_late",
        F.col("delivered_at").alias("label_known_at"),
    )
    weekday = F.weekday("order_time") + 1
    month = F.month("order_time")
    features = (
        _with_origin_load(orders)
        .join(_customer_history(orders, delivery_state), "order_id", "left")
        .join(_open_incidents(orders, clean_incidents), "order_id", "left")
        .join(lines, "order_id", "left")
        .join(labels, "order_id", "left")
        .select(
            "*",
            haversine_km(
                F.col("origin_lat"),
                F.col("origin_lon"),
                F.col("customer_lat"),
                F.col("customer_lon"),
            ).alias("distance_km"),
            # Null when either state is unknown (DataCo names no origin state): not "different".
            (F.col("origin_state") == F.col("customer_state")).alias("same_state"),
            weekday.alias("order_weekday"),
            F.hour("order_time").alias("order_hour"),
            month.alias("order_month_of_year"),
            (weekday >= 6).alias("is_weekend"),
            ((month == 12) | ((month == 11) & (F.dayofmonth("order_time") >= 15))).alias(
                "is_peak_season"
            ),
            F.coalesce("_open", F.lit(0)).alias("open_incidents_at_order"),
            F.when(F.col("carrier").isNotNull(), F.coalesce("_open_carrier", F.lit(0))).alias(
                "open_carrier_incidents_at_order"
            ),
        )
    )
    return features.select(*KEY_COLUMNS, *FEATURE_COLUMNS, *LABEL_COLUMNS)
