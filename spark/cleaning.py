"""Clean entities from parsed raw events: deduplicated, checked, free of personal data.

Every function takes the output of :func:`spark.raw.parse_raw` (or of another cleaning function)
and returns DataFrames; nothing here reads or writes files, so the Dagster assets decide where the
results live and the tests run the same code on a handful of rows.

Rules that apply everywhere:

- **Duplicates.** Kafka delivers at least once, and replays publish the same events again, so the
  same ``event_id`` can be landed several times. :func:`deduplicate` keeps the copy with the
  lowest (partition, offset): the first one the broker accepted, whatever order the files are
  read in. Every cleaning function deduplicates its input itself, so no caller can forget to.
- **Quarantine, not silent drops.** A row that breaks a business rule the contract cannot express
  (it spans several events, or needs arithmetic over lines) is moved to a quarantine frame with
  the columns of :data:`QUARANTINE_COLUMNS` and a reason a person can act on. Clean outputs never
  hold quarantined rows.
- **Personal data.** Contracts already carry only a pseudonymised customer id and locations; the
  clean tables keep the id, the segment and the location columns listed below, and nothing else
  from the customer.
- **Time.** Durations are computed from epoch microseconds (``unix_micros``), so they are exact
  and do not depend on the session's time zone; dates come from the UTC session time zone.
- **Money** is rounded to cents after summing, so totals compare exactly with the source's.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

#: Columns of every quarantine frame.
QUARANTINE_COLUMNS: tuple[str, ...] = ("entity", "event_id", "order_id", "reason", "payload")

MICROS_PER_HOUR = 3_600 * 1_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR

#: Tolerance between ``scheduled_days`` and the promised date before an order is absurd (days).
SCHEDULE_TOLERANCE_DAYS = 1.0
#: A promise further away than this is not a delivery promise any more (days).
MAX_PROMISE_DAYS = 365.0


def _col(c: Column | str) -> Column:
    return F.col(c) if isinstance(c, str) else c


def days_between(start: Column | str, end: Column | str) -> Column:
    """``end - start`` in days, as a double (null when either is null)."""
    micros = F.unix_micros(_col(end)) - F.unix_micros(_col(start))
    return micros / F.lit(float(MICROS_PER_DAY))


def _line_value(line: Column) -> Column:
    """What a line brings in: unit price x quantity - its discount."""
    return line["unit_price"] * line["quantity"] - F.coalesce(line["discount"], F.lit(0.0))


def _reasons(*checks: tuple[Column, Column | str]) -> Column:
    """The failed checks' reasons joined with ``; ``, or null when every check passes.

    A check whose condition is null (a missing value) does not fire: checks for missing values
    are written explicitly.
    """
    parts = [F.when(cond, F.lit(text) if isinstance(text, str) else text) for cond, text in checks]
    joined = F.concat_ws("; ", *parts)
    return F.when(joined != "", joined)


def _quarantine(
    df: DataFrame,
    entity: str,
    reason: Column | str = "_reason",
    payload: Column | str = "payload",
    event_id: Column | str = "event_id",
    order_id: Column | str = "order_id",
) -> DataFrame:
    """Rows of ``df`` with a non-null reason, shaped as :data:`QUARANTINE_COLUMNS`."""
    return df.where(_col(reason).isNotNull()).select(
        F.lit(entity).alias("entity"),
        _col(event_id).cast("string").alias("event_id"),
        _col(order_id).cast("string").alias("order_id"),
        _col(reason).cast("string").alias("reason"),
        _col(payload).cast("string").alias("payload"),
    )


def deduplicate(df: DataFrame) -> DataFrame:
    """One row per ``event_id``: the copy with the lowest (partition, offset).

    Ties (the very same record landed twice) are broken by landing time and payload, so the result
    does not depend on how Spark happened to split the input.
    """
    order = [
        F.col(name).asc_nulls_last()
        for name in ("partition", "offset", "landed_at", "payload")
        if name in df.columns
    ]
    window = Window.partitionBy("event_id").orderBy(*order)
    return (
        df.withColumn("_copy", F.row_number().over(window)).where(F.col("_copy") == 1).drop("_copy")
    )


# --- orders ------------------------------------------------------------------------------------


def _checked_orders(parsed_orders: DataFrame) -> DataFrame:
    """One row per order event with its order-level values and ``_reason`` (null = clean).

    An order id placed by several events keeps the earliest (then lowest event id); the others
    are quarantined as duplicates. The kept event is checked on its own: if it is bad, the order
    is quarantined rather than silently replaced by a later event.
    """
    events = deduplicate(parsed_orders)
    by_order = Window.partitionBy("order_id").orderBy(
        F.col("event_time").asc_nulls_last(), F.col("event_id")
    )
    items = F.col("items")
    gross = F.aggregate(items, F.lit(0.0), lambda acc, x: acc + x["unit_price"] * x["quantity"])
    discount = F.aggregate(
        items, F.lit(0.0), lambda acc, x: acc + F.coalesce(x["discount"], F.lit(0.0))
    )
    # The highest-value line (net of its discount); the first such line on a tie.
    main_line = F.array_max(
        F.transform(
            items,
            lambda x, i: F.struct(
                _line_value(x).alias("value"),
                (-i).alias("first"),
                x["category"].alias("category"),
                x["department"].alias("department"),
            ),
        )
    )
    promise_days = days_between("event_time", "promised_delivery_date")
    orders = (
        events.withColumn("_rank", F.row_number().over(by_order))
        .withColumn("_first_event_id", F.first("event_id").over(by_order))
        .select(
            "order_id",
            "event_id",
            "source",
            F.col("event_time").alias("order_time"),
            F.to_date("event_time").alias("order_date"),
            F.col("customer.customer_id").alias("customer_id"),
            F.col("customer.segment").alias("customer_segment"),
            F.col("customer.city").alias("customer_city"),
            F.col("customer.state").alias("customer_state"),
            F.col("customer.country").alias("customer_country"),
            F.col("customer.zip_prefix").alias("customer_zip_prefix"),
            F.col("customer.lat").alias("customer_lat"),
            F.col("customer.lon").alias("customer_lon"),
            "market",
            "region",
            "channel",
            "shipping_mode",
            "carrier",
            F.col("origin.lat").alias("origin_lat"),
            F.col("origin.lon").alias("origin_lon"),
            F.col("origin.city").alias("origin_city"),
            F.col("origin.state").alias("origin_state"),
            F.col("destination.city").alias("destination_city"),
            F.col("destination.state").alias("destination_state"),
            F.col("destination.country").alias("destination_country"),
            F.col("promised_delivery_date").alias("promised_delivery_time"),
            F.coalesce(F.col("scheduled_days"), promise_days).alias("scheduled_days"),
            "payment_type",
            F.size(items).alias("item_count"),
            F.aggregate(items, F.lit(0).cast("long"), lambda acc, x: acc + x["quantity"]).alias(
                "units"
            ),
            F.round(gross, 2).alias("gross_value"),
            F.round(discount, 2).alias("discount"),
            F.round(gross - discount, 2).alias("net_value"),
            F.round(
                F.aggregate(
                    items, F.lit(0.0), lambda acc, x: acc + F.coalesce(x["freight"], F.lit(0.0))
                ),
                2,
            ).alias("freight"),
            # weight_g is the line's weight (product weight x quantity), as the producers send it.
            F.when(
                ~F.exists(items, lambda x: x["weight_g"].isNull()),
                F.aggregate(items, F.lit(0.0), lambda acc, x: acc + x["weight_g"]),
            ).alias("total_weight_g"),
            main_line["category"].alias("main_category"),
            main_line["department"].alias("main_department"),
            items.alias("items"),
            promise_days.alias("_promise_days"),
            F.size(F.array_distinct(items["item_id"])).alias("_distinct_items"),
            "_rank",
            "_first_event_id",
            "payload",
        )
    )
    reason = _reasons(
        (
            F.col("_rank") > 1,
            F.concat(F.lit("duplicate order_id: already placed by event "), "_first_event_id"),
        ),
        (
            F.col("order_id").isNull()
            | F.col("customer_id").isNull()
            | F.col("order_time").isNull()
            | F.col("promised_delivery_time").isNull()
            | F.coalesce(F.col("item_count") < 1, F.lit(True)),
            "unreadable order: order id, customer, order time, promise or items missing",
        ),
        (
            F.col("promised_delivery_time") < F.col("order_time"),
            "promised delivery is before the order was placed",
        ),
        (
            F.col("_promise_days") > MAX_PROMISE_DAYS,
            f"promised delivery is more than {MAX_PROMISE_DAYS:.0f} days after the order",
        ),
        (
            F.abs(F.col("scheduled_days") - F.col("_promise_days")) > SCHEDULE_TOLERANCE_DAYS,
            F.format_string(
                "scheduled_days %.2f disagrees with the promised date (%.2f days after the order)",
                F.col("scheduled_days"),
                F.col("_promise_days"),
            ),
        ),
        (
            F.col("net_value") < 0,
            F.format_string(
                "negative net value %.2f: discounts exceed the price", F.col("net_value")
            ),
        ),
        (
            F.col("_distinct_items") < F.col("item_count"),
            "the same item_id appears on several lines of the order",
        ),
    )
    return orders.withColumn("_reason", reason)


#: Columns of :func:`clean_orders`' clean frame, in order.
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "event_id",
    "source",
    "order_time",
    "order_date",
    "customer_id",
    "customer_segment",
    "customer_city",
    "customer_state",
    "customer_country",
    "customer_zip_prefix",
    "customer_lat",
    "customer_lon",
    "market",
    "region",
    "channel",
    "shipping_mode",
    "carrier",
    "origin_lat",
    "origin_lon",
    "origin_city",
    "origin_state",
    "destination_city",
    "destination_state",
    "destination_country",
    "promised_delivery_time",
    "scheduled_days",
    "payment_type",
    "item_count",
    "units",
    "gross_value",
    "discount",
    "net_value",
    "freight",
    "total_weight_g",
    "main_category",
    "main_department",
)


def clean_orders(parsed_orders: DataFrame) -> tuple[DataFrame, DataFrame]:
    """One row per order (:data:`ORDER_COLUMNS`) and the quarantined order events.

    Values are computed from the lines: gross = sum of unit price x quantity, net = gross -
    discounts, total weight = sum of line weights (null when any line's weight is unknown, since a
    partial sum would pass for a light parcel), main category/department = those of the line with
    the highest net value. ``scheduled_days`` falls back to promise - order time.

    Quarantined: duplicate order ids (a second event placing the same order), unreadable orders,
    a promise before the order, a promise more than a year out, ``scheduled_days`` contradicting
    the promised date by more than a day, a negative net value, and an item id repeated within the
    order (it would break the order-item key).
    """
    checked = _checked_orders(parsed_orders)
    clean = checked.where(F.col("_reason").isNull()).select(*ORDER_COLUMNS)
    return clean, _quarantine(checked, "orders")


def clean_order_items(parsed_orders: DataFrame) -> DataFrame:
    """One row per (order_id, item_id) of the clean orders, with the line's value.

    ``line_value`` = unit price x quantity - discount, the amount the line really brings in.
    Lines of quarantined orders are left out, so every line has its order in :func:`clean_orders`.
    """
    checked = _checked_orders(parsed_orders).where(F.col("_reason").isNull())
    lines = checked.select(
        "order_id", "order_time", F.posexplode("items").alias("_position", "_line")
    )
    line = F.col("_line")
    return lines.select(
        "order_id",
        line["item_id"].alias("item_id"),
        (F.col("_position") + 1).alias("line_number"),
        line["product_id"].alias("product_id"),
        line["product_name"].alias("product_name"),
        line["category"].alias("category"),
        line["department"].alias("department"),
        line["seller_id"].alias("seller_id"),
        line["quantity"].alias("quantity"),
        line["unit_price"].alias("unit_price"),
        F.coalesce(line["discount"], F.lit(0.0)).alias("discount"),
        F.coalesce(line["freight"], F.lit(0.0)).alias("freight"),
        line["weight_g"].alias("weight_g"),
        F.round(_line_value(line), 2).alias("line_value"),
        "order_time",
    )


# --- payments ----------------------------------------------------------------------------------

_PAYMENT_STATUS = {"payment_captured": "captured", "payment_refused": "refused"}


def clean_payments(parsed_payments: DataFrame) -> tuple[DataFrame, DataFrame]:
    """One row per payment event (captured or refused) and the quarantined ones.

    Quarantined: a negative amount (a refund is not a payment event), and events that are not a
    capture or a refusal or lack their order or amount.
    """
    events = deduplicate(parsed_payments)
    status = F.coalesce(
        *(F.when(F.col("event_type") == k, F.lit(v)) for k, v in _PAYMENT_STATUS.items())
    )
    checked = events.select(
        "event_id",
        "order_id",
        status.alias("payment_status"),
        "payment_type",
        "installments",
        "sequence",
        "amount",
        F.col("event_time").alias("paid_at"),
        "payload",
        "event_type",
    ).withColumn(
        "_reason",
        _reasons(
            (
                F.col("amount") < 0,
                F.format_string("negative payment amount %.2f", F.col("amount")),
            ),
            (
                F.col("payment_status").isNull(),
                F.concat(F.lit("unknown payment event type "), F.coalesce("event_type", F.lit(""))),
            ),
            (
                F.col("order_id").isNull() | F.col("amount").isNull(),
                "unreadable payment: order id or amount missing",
            ),
        ),
    )
    clean = checked.where(F.col("_reason").isNull()).select(
        "event_id",
        "order_id",
        "payment_status",
        "payment_type",
        "installments",
        "sequence",
        "amount",
        "paid_at",
    )
    return clean, _quarantine(checked, "payments")


# --- shipments and delivery --------------------------------------------------------------------


def clean_shipments(parsed_shipments: DataFrame) -> DataFrame:
    """One row per tracking event, deduplicated, with the location flattened.

    The contract already refuses a tracking event dated before its own ``order_time``; the checks
    that need the order (delivered before it was placed) are in :func:`order_delivery_state`.
    """
    return deduplicate(parsed_shipments).select(
        "event_id",
        "order_id",
        "status",
        "event_time",
        "carrier",
        "shipping_mode",
        "order_time",
        F.col("location.city").alias("location_city"),
        F.col("location.state").alias("location_state"),
        F.col("location.lat").alias("location_lat"),
        F.col("location.lon").alias("location_lon"),
        "detail",
    )


#: Terminal statuses win over anything else whatever their timestamps; delivered over canceled.
_TERMINAL_RANK = {"delivered": 2, "canceled": 1}
#: Among events at the same instant, the later step of a journey wins.
_STEP_RANK = {"shipped": 1, "in_transit": 2, "exception": 3}


def _rank(mapping: dict[str, int]) -> Column:
    return F.coalesce(
        *(F.when(F.col("status") == k, F.lit(v)) for k, v in mapping.items()), F.lit(0)
    )


def order_delivery_state(
    clean_shipments: DataFrame, clean_orders: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """The latest delivery state of every clean order, and the quarantined states.

    Status precedence, not only time: ``delivered`` and ``canceled`` are terminal (real data has
    ``delivered`` events stamped before ``shipped``; carriers scan late), and ``delivered`` beats
    ``canceled`` (the parcel did arrive: a cancellation after delivery is a return). Without a
    terminal event the latest event wins, later journey steps breaking ties. An order without any
    tracking yet has status ``placed``.

    Measures: first shipped / delivered / canceled times, exception count, ``delivery_days`` =
    delivered - order time, ``is_late`` = delivered after the promise, ``delay_days`` = days past
    the promise (0 when on time). The last three are null until delivered.

    Quarantined (entity ``deliveries``): an order delivered before it was placed (its labels would
    be negative), and tracking for an order that is not among the clean orders (unknown, or
    quarantined itself).
    """
    status = F.col("status")
    tracked = clean_shipments.groupBy("order_id").agg(
        F.max(F.struct(_rank(_TERMINAL_RANK), "event_time", _rank(_STEP_RANK), "status"))[
            "status"
        ].alias("tracked_status"),
        F.min(F.when(status == "shipped", F.col("event_time"))).alias("shipped_at"),
        F.min(F.when(status == "delivered", F.struct("event_time", "event_id"))).alias("_delivery"),
        F.min(F.when(status == "canceled", F.col("event_time"))).alias("canceled_at"),
        F.count(F.when(status == "exception", F.lit(1))).alias("exception_count"),
        F.max("event_time").alias("last_event_at"),
        F.max(F.struct("event_time", "event_id"))["event_id"].alias("_last_event_id"),
        F.count(F.lit(1)).alias("_events"),
    )
    orders = clean_orders.select("order_id", "order_time", "promised_delivery_time")
    delivered_at = F.col("_delivery.event_time")
    state = orders.join(tracked, "order_id", "left").select(
        "order_id",
        F.coalesce("tracked_status", F.lit("placed")).alias("status"),
        "order_time",
        "promised_delivery_time",
        "shipped_at",
        delivered_at.alias("delivered_at"),
        "canceled_at",
        F.coalesce("exception_count", F.lit(0)).alias("exception_count"),
        "last_event_at",
        days_between("order_time", delivered_at).alias("delivery_days"),
        (delivered_at > F.col("promised_delivery_time")).alias("is_late"),
        # greatest() skips nulls: without the guard an undelivered order would show 0 delay.
        F.when(
            delivered_at.isNotNull(),
            F.greatest(F.lit(0.0), days_between("promised_delivery_time", delivered_at)),
        ).alias("delay_days"),
        F.col("_delivery.event_id").alias("_delivery_event_id"),
    )
    state = state.withColumn(
        "_reason",
        _reasons(
            (F.col("delivered_at") < F.col("order_time"), "delivered before the order was placed")
        ),
    )
    state_payload = F.to_json(
        F.struct("order_id", "status", "order_time", "shipped_at", "delivered_at", "canceled_at")
    )
    bad_states = _quarantine(
        state, "deliveries", payload=state_payload, event_id="_delivery_event_id"
    )
    orphans = tracked.join(orders, "order_id", "left_anti").select(
        F.lit("deliveries").alias("entity"),
        F.col("_last_event_id").alias("event_id"),
        "order_id",
        F.lit("tracking events for an order that is not among the clean orders").alias("reason"),
        F.to_json(
            F.struct(
                F.col("tracked_status").alias("status"),
                "shipped_at",
                F.col("_delivery.event_time").alias("delivered_at"),
                "canceled_at",
                "last_event_at",
                F.col("_events").alias("events"),
            )
        ).alias("payload"),
    )
    clean = state.where(F.col("_reason").isNull()).drop("_reason", "_delivery_event_id")
    return clean, bad_states.unionByName(orphans)


# --- operations logs ---------------------------------------------------------------------------


def clean_incidents(parsed_ops: DataFrame) -> tuple[DataFrame, DataFrame]:
    """One row per incident, from its opening and resolution events, and the quarantined ones.

    What an incident is (kind, severity, carrier, location, description) comes from its opening
    event, the first one if it was opened twice: that is what was known while it was open, which
    the order-time features rely on. ``resolved_at`` is the first resolution (null while open);
    ``resolution_hours`` = resolved - opened.

    Quarantined: an incident resolved before it was opened, and one resolved but never opened
    (nothing says when it started, so it cannot be placed in time).
    """
    events = deduplicate(parsed_ops)
    opened = (
        events.where(F.col("event_type") == "incident_opened")
        .groupBy("incident_id")
        .agg(
            F.min(
                F.struct(
                    "event_time",
                    "event_id",
                    "kind",
                    "severity",
                    "carrier",
                    F.col("location.city").alias("city"),
                    F.col("location.state").alias("state"),
                    "description",
                    "order_id",
                    "payload",
                )
            ).alias("o")
        )
    )
    resolved = (
        events.where(F.col("event_type") == "incident_resolved")
        .groupBy("incident_id")
        .agg(F.min(F.struct("event_time", "event_id", "kind", "order_id", "payload")).alias("r"))
    )
    incidents = opened.join(resolved, "incident_id", "full").select(
        "incident_id",
        F.coalesce("o.kind", "r.kind").alias("kind"),
        F.col("o.severity").alias("severity"),
        F.col("o.carrier").alias("carrier"),
        F.col("o.city").alias("location_city"),
        F.col("o.state").alias("location_state"),
        F.col("o.event_time").alias("opened_at"),
        F.col("r.event_time").alias("resolved_at"),
        (days_between("o.event_time", "r.event_time") * 24).alias("resolution_hours"),
        F.col("o.description").alias("description"),
        F.coalesce("r.event_id", "o.event_id").alias("_event_id"),
        F.coalesce("r.order_id", "o.order_id").alias("_order_id"),
        F.coalesce("r.payload", "o.payload").alias("_payload"),
    )
    checked = incidents.withColumn(
        "_reason",
        _reasons(
            (F.col("resolved_at") < F.col("opened_at"), "resolved before it was opened"),
            (F.col("opened_at").isNull(), "resolved but never opened"),
        ),
    )
    clean = checked.where(F.col("_reason").isNull()).drop(
        "_event_id", "_order_id", "_payload", "_reason"
    )
    quarantine = _quarantine(
        checked, "incidents", payload="_payload", event_id="_event_id", order_id="_order_id"
    )
    return clean, quarantine


def clean_web_logs(parsed_ops: DataFrame) -> DataFrame:
    """One row per web access line, deduplicated; the client is already a hash of its IP."""
    return (
        deduplicate(parsed_ops)
        .where(F.col("event_type") == "web_access")
        .select(
            "event_id",
            "event_time",
            "client_hash",
            "url",
            "department",
            "category",
            "product",
            "order_id",
        )
    )
