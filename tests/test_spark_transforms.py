"""Spark transforms: raw landed events -> clean entities -> point-in-time order features.

Every test builds its input as landing would have written it (contract events made with
``make_event``, validated and serialised by ``raw_rows_from_events``), runs the pure transforms on
one local session shared by the module, and checks exact values.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scpro_assets.sources import dataco
from scpro_assets.sources.common import iso, make_event
from scpro_assets.sources.synthetic import haversine_km
from scpro_assets.testing.raw_rows import raw_dataframe, raw_rows_from_events
from spark import cleaning, features
from spark.raw import parse_raw
from spark.session import SPARK_CONF
from spark.tables import read_table

SOURCE = "test"
WAREHOUSE = {"city": "Venlo", "country": "Netherlands", "lat": 51.3704, "lon": 6.1724}
LANDED = datetime(2024, 3, 1, tzinfo=UTC)


# --- helpers -------------------------------------------------------------------------------------


def at(day: int, hour: float = 0.0, month: int = 1) -> datetime:
    return datetime(2024, month, day, tzinfo=UTC) + timedelta(hours=hour)


def utc(value: datetime | None) -> datetime | None:
    """Spark returns naive local datetimes; make them comparable with aware UTC ones."""
    return None if value is None else value.astimezone(UTC)


def item(n: int, price: float = 10.0, quantity: int = 1, **fields):
    return {
        "item_id": f"item-{n}",
        "product_id": f"product-{n}",
        "quantity": quantity,
        "unit_price": price,
        **fields,
    }


def order(
    order_id: str,
    placed: datetime,
    customer: str = "cust-1",
    promise_days: float = 3.0,
    items=None,
    scheduled: float | None = -1,
    origin=WAREHOUSE,
    mode: str = "Standard Class",
    carrier: str | None = "Metro Couriers",
    identity: tuple = (),
    customer_state: str | None = None,
):
    return make_event(
        SOURCE,
        "order_placed",
        placed,
        (order_id, *identity),
        order_id,
        order_id=order_id,
        customer={
            "customer_id": customer,
            "segment": "Consumer",
            "city": "Amsterdam",
            "country": "Netherlands",
            "lat": 52.3676,
            "lon": 4.9041,
            "state": customer_state,
        },
        market="Europe",
        region="Western Europe",
        channel="web",
        shipping_mode=mode,
        carrier=carrier,
        origin=origin,
        destination={"city": "Amsterdam", "country": "Netherlands"},
        promised_delivery_date=iso(placed + timedelta(days=promise_days)),
        scheduled_days=promise_days if scheduled == -1 else scheduled,
        payment_type="credit_card",
        items=items or [item(1)],
    )


def tracking(order_id: str, status: str, when: datetime, placed: datetime | None = None, n=0):
    fields = {"order_id": order_id, "status": status, "carrier": "Metro Couriers"}
    if placed is not None:
        fields["order_time"] = iso(placed)
    return make_event(SOURCE, "shipment_status", when, (order_id, status, n), order_id, **fields)


def incident_opened(incident_id: str, when: datetime, carrier: str | None = None):
    return make_event(
        SOURCE,
        "incident_opened",
        when,
        (incident_id,),
        incident_id,
        incident_id=incident_id,
        kind="carrier" if carrier else "warehouse",
        severity="high",
        carrier=carrier,
        location={"city": "Venlo", "state": "Limburg"},
        description=f"incident {incident_id}",
    )


def incident_resolved(incident_id: str, when: datetime):
    return make_event(
        SOURCE,
        "incident_resolved",
        when,
        (incident_id, "resolved"),
        incident_id,
        incident_id=incident_id,
        kind="carrier",
        resolution="fixed",
    )


def patched(row: dict, **changes) -> dict:
    """A raw row whose payload breaks a rule the contract would have caught (older producer)."""
    payload = json.loads(row["payload"])
    for path, value in changes.items():
        target = payload
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[leaf] = value
    return {**row, "payload": json.dumps(payload)}


def raw(spark, events, extra_rows=()):
    rows = raw_rows_from_events(events, landed_at=LANDED) + list(extra_rows)
    return raw_dataframe(spark, rows)


def by(rows, key: str = "order_id") -> dict:
    return {row[key]: row.asDict() for row in rows}


def pipeline(spark, events):
    """Clean everything and build the features; returns the cleaned frames and the features."""
    frame = raw(spark, events).cache()
    parsed_orders = parse_raw(frame, "orders")
    orders, _ = cleaning.clean_orders(parsed_orders)
    # As read back from the lake, with its yyyy-MM partition column: features must ignore it.
    orders = orders.withColumn("order_month", F.date_format("order_time", "yyyy-MM")).cache()
    items = cleaning.clean_order_items(parsed_orders)
    state, _ = cleaning.order_delivery_state(
        cleaning.clean_shipments(parse_raw(frame, "shipments")), orders
    )
    incidents, _ = cleaning.clean_incidents(parse_raw(frame, "ops_logs"))
    return features.order_features(orders, items, state, incidents)


# --- session and parsing ---------------------------------------------------------------------------


def test_session_uses_the_shared_defaults(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert SPARK_CONF["spark.sql.adaptive.enabled"] == "true"  # off in these tests (fixture)
    assert SPARK_CONF["spark.sql.shuffle.partitions"] == "8"
    assert SPARK_CONF["spark.driver.memory"] == "4g"
    assert SPARK_CONF["spark.ui.enabled"] == "false"


def test_parse_raw_flattens_the_payload_next_to_the_raw_columns(spark):
    placed = at(1, 10.5)
    frame = raw(spark, [order("o-1", placed), tracking("o-1", "shipped", at(2), placed)])
    parsed = parse_raw(frame, "orders")
    assert parsed.columns[:13] == [
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "key",
        "event_id",
        "event_type",
        "event_time",
        "schema_version",
        "source",
        "order_id",
        "payload",
        "landed_at",
    ]
    (row,) = parsed.collect()  # the shipment is another topic's row
    assert row.customer.customer_id == "cust-1"
    assert row.items[0].item_id == "item-1"
    assert utc(row.promised_delivery_date) == placed + timedelta(days=3)
    assert dict(parsed.dtypes)["promised_delivery_date"] == "timestamp"


# --- deduplication ---------------------------------------------------------------------------------


def test_deduplicate_keeps_the_lowest_partition_and_offset_whatever_the_input_order(spark):
    payment = make_event(
        SOURCE,
        "payment_captured",
        at(1),
        ("o-1", 1),
        "o-1",
        order_id="o-1",
        payment_type="credit_card",
        amount=12.5,
    )
    (row,) = raw_rows_from_events([payment], landed_at=LANDED)
    copies = [
        {**row, "partition": 2, "offset": 1, "key": "third"},
        {**row, "partition": 1, "offset": 9, "key": "second"},
        {**row, "partition": 1, "offset": 4, "key": "first"},
        {**row, "partition": 1, "offset": 4, "key": "first"},  # the same record landed twice
    ]
    other = raw_rows_from_events(
        [
            make_event(
                SOURCE,
                "payment_refused",
                at(2),
                ("o-2", 1),
                "o-2",
                order_id="o-2",
                payment_type="boleto",
                amount=3.0,
            )
        ],
        landed_at=LANDED,
    )
    kept = []
    for rows in (copies + other, list(reversed(copies + other))):
        frame = raw_dataframe(spark, rows).repartition(3)
        kept.append(
            sorted(
                (r.event_id, r.partition, r.offset, r.key)
                for r in cleaning.deduplicate(frame).collect()
            )
        )
    assert kept[0] == kept[1]
    assert sorted(kept[0]) == sorted(
        [(row["event_id"], 1, 4, "first"), (other[0]["event_id"], other[0]["partition"], 0, "o-2")]
    )


# --- orders and items ------------------------------------------------------------------------------


def test_orders_and_items_have_exact_values(spark):
    lines = [
        item(
            1,
            price=10.0,
            quantity=2,
            discount=1.5,
            freight=2.0,
            weight_g=500.0,
            category="Toys",
            department="Kids",
            seller_id="s-1",
        ),
        item(
            2,
            price=30.0,
            discount=0.0,
            freight=3.5,
            weight_g=1200.0,
            category="Audio",
            department="Electronics",
            seller_id="s-2",
        ),
        item(3, price=0.1, quantity=3, weight_g=30.0, category="Stickers", department="Kids"),
    ]
    placed = at(3, 9.25)
    events = [
        order("o-1", placed, items=lines),
        # Weight of one line unknown, no scheduled_days: both derived, not guessed.
        order(
            "o-2",
            at(4),
            promise_days=2.5,
            scheduled=None,
            items=[item(4, weight_g=100.0, category="A"), item(5, price=12.0, category="B")],
        ),
        order("o-1", at(5), items=[item(9)], identity=("again",)),  # same order, new event
    ]
    frame = raw(spark, events + events[:1])  # + a replayed copy of o-1
    parsed = parse_raw(frame, "orders")
    orders, quarantine = cleaning.clean_orders(parsed)
    assert tuple(orders.columns) == cleaning.ORDER_COLUMNS
    got = by(orders.collect())
    assert set(got) == {"o-1", "o-2"}
    o1 = got["o-1"]
    assert o1["event_id"] == events[0].event_id
    assert utc(o1["order_time"]) == placed
    assert str(o1["order_date"]) == "2024-01-03"
    assert (o1["item_count"], o1["units"]) == (3, 6)
    assert (o1["gross_value"], o1["discount"], o1["net_value"]) == (50.3, 1.5, 48.8)
    assert (o1["freight"], o1["total_weight_g"]) == (5.5, 1730.0)
    assert (o1["main_category"], o1["main_department"]) == ("Audio", "Electronics")
    assert (o1["origin_lat"], o1["customer_lon"], o1["scheduled_days"]) == (51.3704, 4.9041, 3.0)
    o2 = got["o-2"]
    assert o2["total_weight_g"] is None
    assert o2["scheduled_days"] == 2.5
    assert (o2["gross_value"], o2["main_category"]) == (22.0, "B")

    (dup,) = quarantine.collect()
    assert dup.asDict() | {"payload": None} == {
        "entity": "orders",
        "event_id": events[2].event_id,
        "order_id": "o-1",
        "reason": f"duplicate order_id: already placed by event {events[0].event_id}",
        "payload": None,
    }

    items = cleaning.clean_order_items(parsed)
    got_items = {(r.order_id, r.item_id): r.asDict() for r in items.collect()}
    assert sorted(got_items) == [
        ("o-1", "item-1"),
        ("o-1", "item-2"),
        ("o-1", "item-3"),
        ("o-2", "item-4"),
        ("o-2", "item-5"),
    ]
    first = got_items[("o-1", "item-1")]
    assert (first["line_number"], first["quantity"], first["line_value"]) == (1, 2, 18.5)
    assert (first["category"], first["seller_id"], first["weight_g"]) == ("Toys", "s-1", 500.0)
    assert got_items[("o-1", "item-3")]["line_value"] == 0.3
    assert utc(first["order_time"]) == placed


def test_b2b_lines_up_to_the_contract_limits_clean_exactly(spark):
    """Spark's schema and rules hold what the contracts accept (scpro_assets.settings limits):
    a pharma-size line and a line at every limit, with no overflow and no quarantine."""
    from scpro_assets.contracts.events import LIMITS

    pharma = item(1, price=60.0, quantity=50_000, weight_g=2_000_000.0)
    at_limits = item(2, price=100.0, quantity=LIMITS.max_quantity, weight_g=LIMITS.max_weight_g)
    parsed = parse_raw(raw(spark, [order("o-bulk", at(2), items=[pharma, at_limits])]), "orders")
    orders, quarantine = cleaning.clean_orders(parsed)
    assert quarantine.count() == 0
    (bulk,) = orders.collect()
    assert bulk["units"] == 50_000 + LIMITS.max_quantity
    assert bulk["gross_value"] == 3_000_000.0 + 100.0 * LIMITS.max_quantity
    assert bulk["total_weight_g"] == 2_000_000.0 + LIMITS.max_weight_g
    lines = {r.item_id: r for r in cleaning.clean_order_items(parsed).collect()}
    assert (lines["item-1"].quantity, lines["item-1"].line_value) == (50_000, 3_000_000.0)
    assert lines["item-2"].quantity == LIMITS.max_quantity


def test_orders_breaking_business_rules_are_quarantined_with_reasons(spark):
    good = order("o-ok", at(1))
    rows = raw_rows_from_events(
        [
            good,
            order("o-promise", at(1)),
            order("o-negative", at(1)),
            order("o-twice", at(1), items=[item(1), item(2)]),
            order("o-schedule", at(1)),
        ],
        landed_at=LANDED,
    )
    rows = [
        rows[0],
        patched(rows[1], promised_delivery_date="2023-12-31T00:00:00Z"),
        patched(rows[2], items__0__discount=25.0),
        patched(rows[3], items__1__item_id="item-1"),
        patched(rows[4], scheduled_days=9.0),
    ]
    orders, quarantine = cleaning.clean_orders(parse_raw(raw_dataframe(spark, rows), "orders"))
    assert [r.order_id for r in orders.collect()] == ["o-ok"]
    reasons = {r.order_id: r.reason for r in quarantine.collect()}
    assert reasons == {
        "o-promise": "promised delivery is before the order was placed; "
        "scheduled_days 3.00 disagrees with the promised date (-1.00 days after the order)",
        "o-negative": "negative net value -15.00: discounts exceed the price",
        "o-twice": "the same item_id appears on several lines of the order",
        "o-schedule": "scheduled_days 9.00 disagrees with the promised date "
        "(3.00 days after the order)",
    }
    assert cleaning.clean_order_items(parse_raw(raw_dataframe(spark, rows), "orders")).count() == 1


# --- payments --------------------------------------------------------------------------------------


def test_payments_status_and_negative_amounts(spark):
    def payment(order_id, event_type, amount, sequence=1):
        return make_event(
            SOURCE,
            event_type,
            at(1, 1),
            (order_id, sequence),
            order_id,
            order_id=order_id,
            payment_type="credit_card",
            installments=3,
            sequence=sequence,
            amount=amount,
        )

    events = [
        payment("o-1", "payment_captured", 40.0),
        payment("o-2", "payment_refused", 15.5),
        payment("o-3", "payment_captured", 1.0),
    ]
    rows = raw_rows_from_events(events + events[:1], landed_at=LANDED)
    rows[2] = patched(rows[2], amount=-7.25)
    clean, quarantine = cleaning.clean_payments(parse_raw(raw_dataframe(spark, rows), "payments"))
    got = by(clean.collect())
    assert {k: (v["payment_status"], v["amount"], v["installments"]) for k, v in got.items()} == {
        "o-1": ("captured", 40.0, 3),
        "o-2": ("refused", 15.5, 3),
    }
    assert utc(got["o-1"]["paid_at"]) == at(1, 1)
    (bad,) = quarantine.collect()
    assert (bad.entity, bad.order_id, bad.event_id, bad.reason) == (
        "payments",
        "o-3",
        events[2].event_id,
        "negative payment amount -7.25",
    )


# --- shipments and delivery state ------------------------------------------------------------------


def test_delivery_state_follows_status_precedence_not_only_time(spark):
    placed = at(1)
    exception = tracking("o-3", "exception", at(3), placed)
    early_delivery = tracking("o-6", "delivered", at(9))
    events = [
        *(order(f"o-{n}", placed) for n in range(1, 6)),
        order("o-6", at(10)),
        # delivered stamped before shipped (a late scan): still delivered, late by 1.5 days
        tracking("o-1", "delivered", at(5, 12), placed),
        tracking("o-1", "shipped", at(6), placed),
        # canceled is terminal: a stray scan afterwards does not revive the order
        tracking("o-2", "shipped", at(2), placed),
        tracking("o-2", "canceled", at(3), placed),
        tracking("o-2", "in_transit", at(4), placed),
        # no terminal event: the latest step wins; the exception is replayed, counted once
        tracking("o-3", "shipped", at(2), placed),
        exception,
        tracking("o-3", "in_transit", at(4), placed),
        exception,
        # on time
        tracking("o-4", "shipped", at(2), placed),
        tracking("o-4", "delivered", at(3, 6), placed),
        # o-5: no tracking yet
        # o-6: delivered before it was placed (the event has no order_time the contract could
        # compare with)
        early_delivery,
        # tracking of an order nobody placed
        tracking("o-99", "shipped", at(2)),
    ]
    frame = raw(spark, events)
    orders, _ = cleaning.clean_orders(parse_raw(frame, "orders"))
    shipments = cleaning.clean_shipments(parse_raw(frame, "shipments"))
    assert shipments.count() == 12
    state, quarantine = cleaning.order_delivery_state(shipments, orders)
    got = by(state.collect())
    assert set(got) == {"o-1", "o-2", "o-3", "o-4", "o-5"}
    summary = {
        k: (v["status"], v["delivery_days"], v["is_late"], v["delay_days"], v["exception_count"])
        for k, v in got.items()
    }
    assert summary == {
        "o-1": ("delivered", 4.5, True, 1.5, 0),
        "o-2": ("canceled", None, None, None, 0),
        "o-3": ("in_transit", None, None, None, 1),
        "o-4": ("delivered", 2.25, False, 0.0, 0),
        "o-5": ("placed", None, None, None, 0),
    }
    assert utc(got["o-1"]["delivered_at"]) == at(5, 12)
    assert utc(got["o-1"]["shipped_at"]) == at(6)
    assert utc(got["o-2"]["canceled_at"]) == at(3)
    assert got["o-2"]["delivered_at"] is None

    reasons = {(r.entity, r.order_id): r for r in quarantine.collect()}
    assert set(reasons) == {("deliveries", "o-6"), ("deliveries", "o-99")}
    early = reasons[("deliveries", "o-6")]
    assert early.reason == "delivered before the order was placed"
    assert early.event_id == early_delivery.event_id
    assert json.loads(early.payload)["order_id"] == "o-6"
    assert reasons[("deliveries", "o-99")].reason == (
        "tracking events for an order that is not among the clean orders"
    )


# --- operations logs -------------------------------------------------------------------------------


def test_incidents_resolution_hours_and_quarantine(spark):
    events = [
        incident_opened("inc-1", at(1, 8)),
        incident_resolved("inc-1", at(1, 14.5)),
        incident_opened("inc-2", at(2), carrier="SkyParcel"),
        incident_opened("inc-3", at(3, 12)),
        incident_resolved("inc-3", at(3, 11)),
        incident_resolved("inc-4", at(4)),
        make_event(
            SOURCE,
            "web_access",
            at(1, 9),
            ("web", 1),
            "client-hash",
            client_hash="client-hash",
            url="/product/1",
            department="Kids",
            category="Toys",
            product="Ball",
        ),
    ]
    ops = parse_raw(raw(spark, events + events[:2]), "ops_logs")
    incidents, quarantine = cleaning.clean_incidents(ops)
    got = by(incidents.collect(), "incident_id")
    assert set(got) == {"inc-1", "inc-2"}
    assert got["inc-1"]["resolution_hours"] == 6.5
    assert (utc(got["inc-1"]["opened_at"]), utc(got["inc-1"]["resolved_at"])) == (
        at(1, 8),
        at(1, 14.5),
    )
    assert (got["inc-1"]["location_city"], got["inc-1"]["severity"]) == ("Venlo", "high")
    assert got["inc-2"]["resolved_at"] is None and got["inc-2"]["resolution_hours"] is None
    assert got["inc-2"]["carrier"] == "SkyParcel"
    reasons = {r.event_id: r.reason for r in quarantine.collect()}
    assert reasons == {
        events[4].event_id: "resolved before it was opened",
        events[5].event_id: "resolved but never opened",
    }
    (log,) = cleaning.clean_web_logs(ops).collect()
    assert (log.client_hash, log.url, log.category, log.product) == (
        "client-hash",
        "/product/1",
        "Toys",
        "Ball",
    )


# --- features --------------------------------------------------------------------------------------


def _history_events(a_delivered: datetime):
    a_placed, b_placed, c2_placed, c3_placed = at(1), at(5), at(12), at(25)
    return [
        order("A", a_placed, customer="C", items=[item(1, price=100.0)]),
        order("B", b_placed, customer="C", items=[item(2, price=20.0)]),
        order("C2", c2_placed, customer="C", items=[item(3, price=5.0)]),
        order("C3", c3_placed, customer="C", items=[item(4, price=1.0)]),
        order("X", at(3), customer="other", items=[item(5, price=7.0)]),
        tracking("A", "shipped", at(2), a_placed),
        tracking("A", "delivered", a_delivered, a_placed),  # promised Jan 4: late
        tracking("B", "delivered", at(13), b_placed),  # after C2 was placed; promised Jan 8: late
        tracking("X", "delivered", at(4), at(3)),
    ]


def test_customer_history_only_uses_outcomes_known_at_order_time(spark):
    first = by(pipeline(spark, _history_events(a_delivered=at(10))).collect())
    history = {
        k: (
            v["prior_orders"],
            v["prior_spend"],
            v["days_since_prior_order"],
            v["prior_delivered_orders"],
            v["prior_late_rate"],
        )
        for k, v in first.items()
    }
    assert history == {
        "A": (0, 0.0, None, 0, None),
        # A is a prior order, but its outcome (delivered Jan 10) was unknown on Jan 5
        "B": (1, 100.0, 4.0, 0, None),
        # on Jan 12, A's late delivery is known; B's (Jan 13) is not yet
        "C2": (2, 120.0, 7.0, 1, 1.0),
        "C3": (3, 125.0, 13.0, 2, 1.0),
        "X": (0, 0.0, None, 0, None),
    }
    assert (first["A"]["delivery_days"], first["A"]["is_late"]) == (9.0, True)
    assert utc(first["A"]["label_known_at"]) == at(10)

    # A delivered on Jan 20 instead: only what was known after Jan 12 may change.
    second = by(pipeline(spark, _history_events(a_delivered=at(20))).collect())
    labels = set(features.LABEL_COLUMNS)
    changed = {
        (order_id, column): (first[order_id][column], second[order_id][column])
        for order_id in first
        for column in first[order_id]
        if first[order_id][column] != second[order_id][column]
    }
    assert changed == {
        ("C2", "prior_delivered_orders"): (1, 0),
        ("C2", "prior_late_rate"): (1.0, None),
        ("A", "delivery_days"): (9.0, 19.0),
        ("A", "label_known_at"): (first["A"]["label_known_at"], second["A"]["label_known_at"]),
    }
    assert {column for _, column in changed if column in labels} == {
        "delivery_days",
        "label_known_at",
    }


def test_origin_load_windows_and_open_incidents(spark):
    elsewhere = {"city": "Poznan", "lat": 52.4064, "lon": 16.9252}
    far_away = {"city": "Getafe", "lat": 40.3057, "lon": -3.7329}
    t0 = at(10)
    events = [
        order("w-0h", t0),
        order("w-1h", t0 + timedelta(hours=1), carrier="SkyParcel"),
        order("w-24h", t0 + timedelta(hours=24)),
        order("w-25h", t0 + timedelta(hours=25)),
        order("w-8d", t0 + timedelta(days=8)),
        order("p-1h", t0 + timedelta(hours=1), origin=elsewhere),
        order("m-0h", t0, origin=None, mode="Same Day"),
        order("m-2h", t0 + timedelta(hours=2), origin=None, mode="Same Day"),
        order("none", t0, origin=None, mode=None, carrier=None),
        # incidents: one open from Jan 9 to exactly Jan 11 00:00 (Metro Couriers), one never
        # resolved (SkyParcel) from Jan 10 00:30, one opened after everything
        incident_opened("inc-metro", at(9), carrier="Metro Couriers"),
        incident_resolved("inc-metro", at(11)),
        incident_opened("inc-sky", at(10, 0.5), carrier="SkyParcel"),
        incident_opened("inc-late", at(28)),
        # calendar: far from the rest, so they do not change the windows above
        order("nov-14", at(14, 23, month=11), origin=far_away),  # Thursday
        order("nov-15", at(15, 0, month=11), origin=far_away),
        order("dec-31", at(31, 12, month=12), origin=far_away),  # Tuesday
        order("sun", at(7), origin=far_away),  # Sunday
    ]
    got = by(pipeline(spark, events).collect())
    calendar = {
        k: (
            v["order_weekday"],
            v["order_hour"],
            v["order_month_of_year"],
            v["is_weekend"],
            v["is_peak_season"],
        )
        for k, v in got.items()
        if k in ("nov-14", "nov-15", "dec-31", "sun", "w-1h")
    }
    assert calendar == {
        "nov-14": (4, 23, 11, False, False),
        "nov-15": (5, 0, 11, False, True),
        "dec-31": (2, 12, 12, False, True),
        "sun": (7, 0, 1, True, False),
        "w-1h": (3, 1, 1, False, False),  # Wednesday
    }
    # The whole source's load: "sun" (3 days before t0) counts for the t0 orders, orders at the
    # same instant do not count for each other, and the November orders see nothing from January.
    source_load = {k: v["source_orders_7d"] for k, v in got.items()}
    assert source_load == {
        "sun": 0,
        "w-0h": 1,
        "m-0h": 1,
        "none": 1,
        "w-1h": 4,
        "p-1h": 4,
        "m-2h": 6,
        "w-24h": 7,
        "w-25h": 8,
        "w-8d": 2,  # w-24h is exactly 7 days before, w-25h is within
        "nov-14": 0,
        "nov-15": 1,
        "dec-31": 0,
    }
    got = {k: v for k, v in got.items() if k not in calendar or k == "w-1h"}
    load = {
        k: (v["load_basis"], v["origin_orders_24h"], v["origin_orders_7d"]) for k, v in got.items()
    }
    assert load == {
        "w-0h": ("origin", 0, 0),
        "w-1h": ("origin", 1, 1),
        "w-24h": ("origin", 2, 2),  # the order exactly 24 h before counts
        "w-25h": ("origin", 2, 3),
        "w-8d": ("origin", 0, 2),  # w-24h is exactly 7 days before
        "p-1h": ("origin", 0, 0),
        "m-0h": ("shipping_mode", 0, 0),
        "m-2h": ("shipping_mode", 1, 1),
        "none": (None, None, None),
    }
    incidents = {
        k: (v["open_incidents_at_order"], v["open_carrier_incidents_at_order"])
        for k, v in got.items()
    }
    assert incidents == {
        "w-0h": (1, 1),  # inc-metro; inc-sky opens 30 minutes later
        "w-1h": (2, 1),  # both open; its carrier is SkyParcel
        "w-24h": (1, 0),  # inc-metro was resolved at exactly this instant
        "w-25h": (1, 0),
        "w-8d": (1, 0),  # inc-sky is still open
        "p-1h": (2, 1),
        "m-0h": (1, 1),
        "m-2h": (2, 1),
        "none": (1, None),
    }
    w1 = got["w-1h"]
    # Venlo -> Amsterdam, as the synthetic generator measures it (about 141 km)
    assert w1["distance_km"] == pytest.approx(haversine_km(51.3704, 6.1724, 52.3676, 4.9041))
    assert got["m-0h"]["distance_km"] is None


def test_same_state_is_null_unless_both_states_are_known(spark):
    in_sp = {**WAREHOUSE, "state": "SP"}
    events = [
        order("same", at(3), origin=in_sp, customer_state="SP"),
        order("other", at(3, 1), origin=in_sp, customer_state="RJ"),
        order("no-origin-state", at(3, 2), customer_state="SP"),
        order("no-customer-state", at(3, 3), origin=in_sp),
    ]
    got = {k: v["same_state"] for k, v in by(pipeline(spark, events).collect()).items()}
    assert got == {
        "same": True,
        "other": False,
        "no-origin-state": None,
        "no-customer-state": None,
    }


# --- the real DataCo sample ------------------------------------------------------------------------


@pytest.mark.realdata
def test_dataco_sample_end_to_end(spark, dataco_dir: Path):
    events, _ = dataco.load(dataco_dir)
    frame = raw_dataframe(spark, raw_rows_from_events(events, landed_at=LANDED)).cache()
    parsed_orders = parse_raw(frame, "orders")
    orders, order_quarantine = cleaning.clean_orders(parsed_orders)
    orders = orders.cache()
    items = cleaning.clean_order_items(parsed_orders)
    payments, payment_quarantine = cleaning.clean_payments(parse_raw(frame, "payments"))
    shipments = cleaning.clean_shipments(parse_raw(frame, "shipments"))
    state, delivery_quarantine = cleaning.order_delivery_state(shipments, orders)
    state = state.cache()
    ops = parse_raw(frame, "ops_logs")
    incidents, _ = cleaning.clean_incidents(ops)
    feature_table = features.order_features(orders, items, state, incidents).cache()

    expected_late, orders_in_csv = 0, {}
    with (dataco_dir / dataco.ORDERS_FILE).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            orders_in_csv.setdefault(row["Order Id"], row)
    for row in orders_in_csv.values():
        canceled = (
            row["Order Status"] in ("CANCELED", "SUSPECTED_FRAUD")
            or row["Delivery Status"] == "Shipping canceled"
        )
        expected_late += not canceled and row["Late_delivery_risk"] == "1"

    assert orders.count() == 5_743 == len(orders_in_csv)
    assert items.count() == 6_000
    assert payments.count() == 5_743
    quarantined = order_quarantine.unionByName(payment_quarantine).unionByName(delivery_quarantine)
    assert quarantined.count() == 0
    by_status = {
        r.status: (r.orders, r.late)
        for r in state.groupBy("status")
        .agg(F.count(F.lit(1)).alias("orders"), F.count_if("is_late").alias("late"))
        .collect()
    }
    assert by_status == {"delivered": (5_488, expected_late), "canceled": (255, 0)}
    assert expected_late == 3_222
    assert cleaning.clean_web_logs(ops).count() == 10_305  # the blank line and "sgbd" are gone

    (check,) = feature_table.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("order_id").alias("orders"),
        # no label before its order, no late rate without a delivery known in time
        F.count_if(F.col("label_known_at") < F.col("order_time")).alias("labels_before_order"),
        F.count_if(F.col("prior_late_rate").isNotNull() & (F.col("prior_orders") == 0)).alias(
            "rates_without_history"
        ),
        F.count_if(F.col("is_late")).alias("late"),
    ).collect()
    assert check.asDict() == {
        "rows": 5_743,
        "orders": 5_743,
        "labels_before_order": 0,
        "rates_without_history": 0,
        "late": expected_late,
    }


# --- the event-time watermark ----------------------------------------------------------------------


def _land(raw_dir: Path, events, next_offset: dict[str, int]) -> None:
    """Land ``events`` as one range file per topic (partition 0), offsets going on from before."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scpro_assets.ingest.landing import RAW_SCHEMA

    rows = raw_rows_from_events(events, partitions=1, landed_at=LANDED)
    for topic in {r["topic"] for r in rows}:
        mine = [r for r in rows if r["topic"] == topic]
        base = next_offset.get(topic, 0)
        for row in mine:
            row["offset"] += base
        first, last = mine[0]["offset"], mine[-1]["offset"]
        next_offset[topic] = last + 1
        folder = raw_dir / topic / "partition-0"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{topic}-p0-{first:012d}-{last:012d}.parquet"
        pq.write_table(pa.Table.from_pylist(mine, schema=RAW_SCHEMA), folder / name)


def _payment(order_id: str, when: datetime):
    return make_event(
        SOURCE,
        "payment_captured",
        when,
        (order_id, "paid"),
        order_id,
        order_id=order_id,
        payment_type="credit_card",
        installments=1,
        sequence=1,
        amount=10.0,
    )


def test_a_snapshot_is_cut_at_the_watermark_and_the_next_one_catches_up(spark, tmp_path):
    from scpro_assets.clean.pipeline import build_entities, update_event_stores
    from scpro_assets.clean.watermark import load_watermark, watermark_path
    from scpro_assets.settings import BUSINESS_TOPICS
    from spark.watermark import before_watermark, event_watermark, with_waiting_counts

    in_flight = {("orders", 0), ("payments", 0), ("shipments", 0)}  # each has more in Kafka

    def snapshot(events) -> tuple[object, dict, dict]:
        """The clean layer's cut of ``events`` (one partition per topic), in memory."""
        frame = raw_dataframe(spark, raw_rows_from_events(events, partitions=1, landed_at=LANDED))
        stores = {topic: parse_raw(frame, topic) for topic in BUSINESS_TOPICS}
        watermark = with_waiting_counts(stores, event_watermark(stores, in_flight))
        cut = {topic: before_watermark(df, watermark) for topic, df in stores.items()}
        orders, _ = cleaning.clean_orders(cut["orders"])
        state, _ = cleaning.order_delivery_state(cleaning.clean_shipments(cut["shipments"]), orders)
        topics = {
            t.topic: (t.events_after_watermark, t.holds_watermark)
            for t in watermark.topics(BUSINESS_TOPICS)
        }
        return watermark, by(state.collect()), topics

    # Landed so far: payments up to day 5, orders up to day 7, shipments up to day 8.
    landed = [
        order("o-1", at(1)),
        order("o-2", at(4)),
        order("o-3", at(7)),  # placed after the watermark: waits
        _payment("o-1", at(1, 1)),
        _payment("o-2", at(5)),
        tracking("o-1", "shipped", at(2), at(1)),
        tracking("o-1", "delivered", at(6), at(1)),  # after the watermark: o-1 still open
        tracking("o-2", "shipped", at(4, 12), at(4)),
        tracking("o-3", "shipped", at(8), at(7)),
    ]
    watermark, deliveries, topics = snapshot(landed)
    assert watermark.time == at(5)
    assert {k: v["status"] for k, v in deliveries.items()} == {"o-1": "shipped", "o-2": "shipped"}
    assert deliveries["o-1"]["delivered_at"] is None and deliveries["o-1"]["is_late"] is None
    assert topics == {
        "orders": (1, False),
        "payments": (0, True),
        "shipments": (2, False),
        "ops_logs": (0, False),  # no event at all: it carries no business time and holds nothing
    }

    # The payments catch up to day 9 and the orders go on; the shipments have landed nothing new:
    # the next cut is at day 8, where they stand. o-1 is delivered now, o-3 is there and shipped.
    landed += [_payment("o-3", at(9)), order("o-4", at(9, 12))]
    watermark, deliveries, topics = snapshot(landed)
    assert watermark.time == at(8)
    assert {k: v["status"] for k, v in deliveries.items()} == {
        "o-1": "delivered",
        "o-2": "shipped",
        "o-3": "shipped",
    }
    assert utc(deliveries["o-1"]["delivered_at"]) == at(6)
    assert deliveries["o-1"]["delivery_days"] == 5.0 and deliveries["o-1"]["is_late"] is True
    assert topics == {
        "orders": (1, False),
        "payments": (1, False),
        "shipments": (0, True),
        "ops_logs": (0, False),
    }

    # The clean layer does the same from landed range files, and keeps the watermark's record.
    raw_dir, clean_dir = tmp_path / "raw", tmp_path / "clean"
    _land(raw_dir, landed, {})
    update_event_stores(spark, raw_dir, clean_dir)
    build = build_entities(spark, clean_dir, tmp_path / "quarantine", in_flight)
    assert build.watermark.time == at(8)
    published = {
        r.order_id: r.status for r in read_table(spark, clean_dir / "cleaned_deliveries").collect()
    }
    assert published == {k: v["status"] for k, v in deliveries.items()}
    record = load_watermark(watermark_path(clean_dir))
    assert record["watermark"] == at(8).isoformat()
    assert {t["topic"]: t["events_after_watermark"] for t in record["topics"]} == {
        "orders": 1,
        "payments": 1,
        "shipments": 0,
        "ops_logs": 0,
    }

    # The watermark itself, on the same event stores (orders to day 9.5, payments to 9, shipments
    # to 8): nothing in flight (every offset in Kafka landed, or the producers went quiet) cuts
    # nothing; a quiet partition does not hold the others back; and it never goes back.
    stores = {
        t: read_table(spark, clean_dir / "events" / t) for t in ("orders", "payments", "shipments")
    }
    assert event_watermark(stores, in_flight=set()).time == at(9, 12)
    assert event_watermark(stores, {("orders", 0), ("payments", 0)}).time == at(9)
    assert event_watermark(stores, {("shipments", 0)}, not_before=at(9)).time == at(9)


def test_progress_of_two_batches_adds_up_as_one_scan():
    """Counts add, the latest event time is the later one, and a batch without event times
    neither hides nor invents one (an incremental build's watermark inputs)."""
    from spark.watermark import add_progress, watermark_of

    before = [("orders", 0, 5, 100), ("orders", 1, 2, None), ("payments", 0, 3, 90)]
    batch = [("orders", 0, 2, 80), ("orders", 1, 1, 120), ("payments", 0, 4, None)]
    total = add_progress(before, batch)
    assert total == [("orders", 0, 7, 100), ("orders", 1, 3, 120), ("payments", 0, 7, 90)]
    assert add_progress(total, []) == total
    assert watermark_of(total, {("payments", 0)}).micros == 90
    assert watermark_of(before, set()).micros == 100  # orders/1 has no event time: left out
