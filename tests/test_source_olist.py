"""The Olist adapter against the real files in ../shared/data/olist (never copied into the repo)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from scpro_assets.contracts.events import validate_event
from scpro_assets.sources import olist
from scpro_assets.sources.common import MappingReport, SourceEvent, pseudonymise

pytestmark = pytest.mark.realdata

# Two delivered orders of the sample, one in Brazil's standard time and one in its summer time.
WINTER_ORDER = "68986e4324f6a21481df4e6e89abcf01"  # 2 items, 12 voucher payments, July 2017
SUMMER_ORDER = "7ae3cbb87abc73c3e51b59a579c95c3d"  # 2 items, 1 credit card payment, Jan 2018
NO_ITEMS_ORDER = "8e24261a7e58791d10cb1bf9da94df5c"  # "unavailable", absent from the items file
SHIPPED_BEFORE_PURCHASE = "dee6298ce7d1fb2645141ef9972157aa"  # carrier date 12:59 < purchase 14:06


@pytest.fixture(scope="module")
def loaded(olist_dir: Path) -> tuple[list[SourceEvent], MappingReport]:
    return olist.load(olist_dir)


@pytest.fixture(scope="module")
def events(loaded: tuple[list[SourceEvent], MappingReport]) -> list[SourceEvent]:
    return loaded[0]


@pytest.fixture(scope="module")
def report(loaded: tuple[list[SourceEvent], MappingReport]) -> MappingReport:
    return loaded[1]


def _of(events: list[SourceEvent], raw_order_id: str, event_type: str) -> list[dict]:
    return [
        e.payload
        for e in events
        if e.key == f"olist-{raw_order_id}" and e.payload["event_type"] == event_type
    ]


def _statuses(events: list[SourceEvent], raw_order_id: str) -> dict[str, str]:
    return {p["status"]: p["event_time"] for p in _of(events, raw_order_id, "shipment_status")}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_order_in_standard_time(events: list[SourceEvent]) -> None:
    # Sao Paulo observed DST (UTC-2) from 2016-10-16 to 2017-02-19 and from 2017-10-15 to
    # 2018-02-18; in July 2017 it was on standard time, UTC-3. So the purchase at
    # 2017-07-07 14:55:43 local is 17:55:43Z, and the date-only promise 2017-08-08 00:00 local is
    # 03:00Z. Promise - purchase = 31 days 09:04:17 = 31.378 days.
    (order,) = _of(events, WINTER_ORDER, "order_placed")
    assert order["order_id"] == f"olist-{WINTER_ORDER}"
    assert order["event_time"] == "2017-07-07T17:55:43.000Z"
    assert order["promised_delivery_date"] == "2017-08-08T03:00:00.000Z"
    assert order["scheduled_days"] == 31.38
    customer = order["customer"]
    assert customer["customer_id"] == pseudonymise(
        "olist-customer-db1af3fd6b23ac3873ef02619d548f9c"
    )
    assert (customer["city"], customer["state"], customer["country"]) == ("itaqui", "RS", "Brazil")
    assert customer["zip_prefix"] == "97650"
    # mean of the 8 geolocation rows of prefix 97650
    assert customer["lat"] == pytest.approx(-29.1279, abs=1e-4)
    assert customer["lon"] == pytest.approx(-56.5547, abs=1e-4)
    assert order["destination"]["zip_prefix"] == "97650"
    assert order["region"] == "South"
    assert (order["market"], order["channel"]) == ("LATAM", "marketplace")
    assert order["carrier"] is None and order["shipping_mode"] is None
    assert order["origin"]["city"] == "ilicinea"  # first item's seller
    assert order["origin"]["zip_prefix"] == "37175"
    assert order["payment_type"] == "voucher"
    assert [
        (i["item_id"], i["category"], i["unit_price"], i["freight"], i["weight_g"], i["quantity"])
        for i in order["items"]
    ] == [
        (f"olist-item-{WINTER_ORDER}-1", "computers_accessories", 139.99, 77.6, 6550.0, 1),
        (f"olist-item-{WINTER_ORDER}-2", "luggage_accessories", 102.9, 8.73, 1300.0, 1),
    ]
    assert order["items"][0]["product_id"] == "olist-product-d1c427060a0f73f6b889a5c7c61f2ac4"
    assert order["items"][1]["seller_id"] == "olist-seller-dbc22125167c298ef99da25668e1011f"


def test_standard_time_order_payments_and_shipments(events: list[SourceEvent]) -> None:
    # same event time for all 12, so the stream orders them by event id: sort by sequence here
    payments = sorted(_of(events, WINTER_ORDER, "payment_captured"), key=lambda p: p["sequence"])
    assert [p["sequence"] for p in payments] == list(range(1, 13))
    assert {p["payment_type"] for p in payments} == {"voucher"}
    assert {p["event_time"] for p in payments} == {"2017-07-07T18:10:17.000Z"}  # approved 15:10:17
    assert payments[0]["amount"] == 14.27 and payments[11]["amount"] == 7.5
    # 12 vouchers pay exactly the items plus freight
    assert round(sum(p["amount"] for p in payments), 2) == 329.22
    assert round(139.99 + 77.6 + 102.9 + 8.73, 2) == 329.22
    assert _statuses(events, WINTER_ORDER) == {
        "shipped": "2017-07-10T16:59:43.000Z",  # 13:59:43 local
        "delivered": "2017-07-27T23:52:15.000Z",  # 20:52:15 local
    }
    for shipment in _of(events, WINTER_ORDER, "shipment_status"):
        assert shipment["order_time"] == "2017-07-07T17:55:43.000Z"


def test_order_in_summer_time(events: list[SourceEvent]) -> None:
    # January 2018 is inside Brazil's 2017-10-15 .. 2018-02-18 DST period: UTC-2, so the
    # purchase at 2018-01-17 14:03:33 local is 16:03:33Z (not 17:03:33Z), and the promise
    # 2018-02-08 00:00 local (still DST) is 02:00Z. Difference: 21 days 09:56:27 = 21.414 days.
    (order,) = _of(events, SUMMER_ORDER, "order_placed")
    assert order["event_time"] == "2018-01-17T16:03:33.000Z"
    assert order["promised_delivery_date"] == "2018-02-08T02:00:00.000Z"
    assert order["scheduled_days"] == 21.41
    assert order["customer"]["customer_id"] == pseudonymise(
        "olist-customer-e79f6cfdcc27ec08665098c48ab029e0"
    )
    assert order["customer"]["city"] == "timoteo"
    assert order["region"] == "Southeast"  # MG
    assert len(order["items"]) == 2  # the same product twice: Olist repeats rows, quantity 1
    assert {i["category"] for i in order["items"]} == {"computers_accessories"}
    assert [(i["unit_price"], i["freight"]) for i in order["items"]] == [(149.0, 23.84)] * 2
    (payment,) = _of(events, SUMMER_ORDER, "payment_captured")
    assert payment["event_time"] == "2018-01-18T18:57:39.000Z"  # approved 16:57:39 local
    assert (payment["payment_type"], payment["installments"], payment["amount"]) == (
        "credit_card",
        10,
        345.68,
    )
    assert _statuses(events, SUMMER_ORDER) == {
        "shipped": "2018-01-19T18:28:54.000Z",
        "delivered": "2018-01-24T17:54:42.000Z",
    }


def test_order_without_items_is_reported_and_nothing_of_it_is_published(
    events: list[SourceEvent], report: MappingReport
) -> None:
    # An order with no items cannot be placed; its payment and tracking would be orphans.
    assert _of(events, NO_ITEMS_ORDER, "order_placed") == []
    assert _of(events, NO_ITEMS_ORDER, "payment_captured") == []
    assert _of(events, NO_ITEMS_ORDER, "shipment_status") == []
    assert report.rejected["no items in the items file"] == 775
    assert report.examples["payment of an order that was not placed"].startswith("order ")


def test_shipment_before_purchase_is_rejected_and_the_order_kept(
    events: list[SourceEvent], report: MappingReport
) -> None:
    (order,) = _of(events, SHIPPED_BEFORE_PURCHASE, "order_placed")
    assert order["origin"]["zip_prefix"] == "07133"  # zero-padded seller zip prefix
    assert _statuses(events, SHIPPED_BEFORE_PURCHASE) == {}
    assert report.rejected["shipped before purchase"] == 3
    assert report.rejected["delivered before purchase"] == 0


def test_counts(olist_dir: Path, events: list[SourceEvent], report: MappingReport) -> None:
    orders = _csv_rows(olist_dir / olist.ORDERS_FILE)
    items = _csv_rows(olist_dir / olist.ITEMS_FILE)
    assert len(orders) == 8135 and len(items) == 8365
    by_type = Counter(e.payload["event_type"] for e in events)
    assert by_type == report.events
    assert by_type["order_placed"] == 7360
    assert by_type["order_placed"] + report.rejected["no items in the items file"] == len(orders)
    placed_items = sum(len(e.payload["items"]) for e in events if e.topic == "orders")
    assert placed_items == len(items)
    # 8,924 payment rows belong to the sample's orders: 8,094 to placed orders, 830 to orders
    # that had no items (reported, not published).
    assert by_type["payment_captured"] == 8094
    assert (
        by_type["payment_captured"] + report.rejected["payment of an order that was not placed"]
        == 8924
    )
    assert report.rows_read == len(orders) + len(items) + 8924
    assert report.rejected == Counter(
        {
            "no items in the items file": 775,
            "payment of an order that was not placed": 830,
            "shipped before purchase": 3,
        }
    )


def test_all_events_satisfy_their_contracts(events: list[SourceEvent]) -> None:
    bad = [
        (e.event_id, result.reason)
        for e in events
        if not (result := validate_event(e.topic, e.to_json())).ok
    ]
    assert bad == []
    assert {e.topic for e in events} == {"orders", "payments", "shipments"}
    assert all(e.payload["source"] == "olist" for e in events)
    assert len({e.event_id for e in events}) == len(events)


def test_event_ids_are_deterministic(olist_dir: Path, events: list[SourceEvent]) -> None:
    again, _ = olist.load(olist_dir)
    assert [e.event_id for e in again] == [e.event_id for e in events]
    assert [e.to_json() for e in again[:200]] == [e.to_json() for e in events[:200]]


def test_events_are_sorted_by_event_time(events: list[SourceEvent]) -> None:
    times = [e.event_time for e in events]
    assert times == sorted(times)
    assert all(e.event_time.utcoffset().total_seconds() == 0 for e in events)


def test_no_personal_identifiers_leave_the_source(
    olist_dir: Path, events: list[SourceEvent]
) -> None:
    customers = _csv_rows(olist_dir / olist.CUSTOMERS_FILE)
    raw_ids = {c["customer_unique_id"] for c in customers} | {c["customer_id"] for c in customers}
    hex_run = re.compile(r"[0-9a-f]{32,}")
    tokens = set()
    for event in events:
        for run in hex_run.findall(event.to_json().decode()):
            tokens.update(run[i : i + 32] for i in range(len(run) - 31))
    assert tokens  # the scan does see the order, product and hashed customer ids
    assert raw_ids.isdisjoint(tokens)


def test_repeat_buyers_share_one_pseudonymous_id(
    olist_dir: Path, events: list[SourceEvent]
) -> None:
    customers = {c["customer_id"]: c for c in _csv_rows(olist_dir / olist.CUSTOMERS_FILE)}
    orders = _csv_rows(olist_dir / olist.ORDERS_FILE)
    unique_of = {
        f"olist-{o['order_id']}": customers[o["customer_id"]]["customer_unique_id"] for o in orders
    }
    hashes_by_unique: dict[str, set[str]] = {}
    for event in events:
        if event.topic == "orders":
            unique = unique_of[event.payload["order_id"]]
            hashes_by_unique.setdefault(unique, set()).add(event.payload["customer"]["customer_id"])
    orders_per_buyer = Counter(unique_of[e.key] for e in events if e.topic == "orders")
    repeat = [u for u, n in orders_per_buyer.items() if n > 1]
    assert repeat  # the sample has repeat buyers
    for unique in repeat:
        assert hashes_by_unique[unique] == {pseudonymise(f"olist-customer-{unique}")}


def test_bad_rows_are_rejected_with_reasons(olist_dir: Path, tmp_path: Path) -> None:
    # A two-order copy of the sample (written to tmp, never kept): one unparseable purchase time,
    # one promise before the purchase (the order_placed contract refuses it).
    for name in (
        olist.CUSTOMERS_FILE,
        olist.ITEMS_FILE,
        olist.PAYMENTS_FILE,
        olist.PRODUCTS_FILE,
        olist.SELLERS_FILE,
        olist.TRANSLATION_FILE,
        olist.GEOLOCATION_FILE,
    ):
        (tmp_path / name).symlink_to(olist_dir / name)
    rows = {r["order_id"]: r for r in _csv_rows(olist_dir / olist.ORDERS_FILE)}
    garbled, early = dict(rows[WINTER_ORDER]), dict(rows[SUMMER_ORDER])
    garbled["order_purchase_timestamp"] = "07/07/2017 14:55"
    early["order_estimated_delivery_date"] = "2018-01-01 00:00:00"
    with (tmp_path / olist.ORDERS_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(garbled))
        writer.writeheader()
        writer.writerows([garbled, early])

    events, report = olist.load(tmp_path)

    assert report.rejected["unparseable order_purchase_timestamp"] == 1
    assert report.rejected["item of a rejected order row"] == 2
    assert report.rejected["payment of a rejected order row"] == 12
    assert report.rejected["item of an order missing from the orders file"] == 8365 - 4
    (contract_reason,) = [r for r in report.rejected if r.startswith("order_placed: contract")]
    # the validator's own reason (negative scheduled days is the first error it finds)
    assert contract_reason == (
        "order_placed: contract violation: "
        "scheduled_days: Input should be greater than or equal to 0"
    )
    assert report.rejected["item of an order that failed its contract"] == 2
    # the summer order's payment and shipments still happened
    assert Counter(e.payload["event_type"] for e in events) == Counter(
        {"payment_captured": 1, "shipment_status": 2}
    )
    # every row read is either in an event or rejected
    mapped_rows = 1  # the payment row; no order or item row made it into an event
    assert report.rows_read == 2 + 8365 + 13
    assert report.rows_read == mapped_rows + report.rejected_total
