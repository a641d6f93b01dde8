"""DataCo adapter: known rows of the real file map to exact contract events."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from scpro_assets.contracts import validate_event
from scpro_assets.sources import dataco
from scpro_assets.sources.common import MappingReport, SourceEvent, pseudonymise


@pytest.fixture(scope="module")
def loaded(dataco_dir: Path) -> tuple[list[SourceEvent], MappingReport]:
    return dataco.load(dataco_dir)


def _of(events, order_id, event_type=None):
    return [
        e.payload
        for e in events
        if e.payload.get("order_id") == order_id
        and (event_type is None or e.payload["event_type"] == event_type)
    ]


def test_single_item_order_maps_exactly(loaded):
    events, _ = loaded
    (order,) = _of(events, "dataco-31299", "order_placed")
    assert order["event_time"] == "2016-04-01T21:05:00.000Z"
    assert order["promised_delivery_date"] == "2016-04-05T21:05:00.000Z"  # + 4 scheduled days
    assert order["scheduled_days"] == 4
    assert order["shipping_mode"] == "Standard Class"
    assert order["market"] == "USCA" and order["region"] == "West of USA"
    assert order["payment_type"] == "TRANSFER"
    assert order["customer"] == {
        "customer_id": pseudonymise("dataco-customer-6109"),
        "segment": "Consumer",
        "city": "Caguas",
        "state": "PR",
        "country": "Puerto Rico",
        "zip_prefix": "725",  # the file says 725.0
    }
    assert order["origin"] == {"lat": 18.20397568, "lon": -66.37054443}  # the store
    assert order["destination"]["city"] == "Los Angeles"
    assert order["destination"]["zip_prefix"] == "90036"
    assert order["items"] == [
        {
            "item_id": "dataco-item-78239",
            "product_id": "dataco-product-1073",
            "product_name": "Pelican Sunstream 100 Kayak",
            "category": "Water Sports",
            "department": "Fan Shop",
            "quantity": 1,
            "unit_price": 199.99,
            "discount": 24.0,
        }
    ]
    (payment,) = _of(events, "dataco-31299", "payment_captured")
    assert payment["amount"] == 175.99 and payment["event_time"] == "2016-04-01T21:06:00.000Z"
    statuses = {
        p["status"]: p["event_time"] for p in _of(events, "dataco-31299", "shipment_status")
    }
    # delivered 5 real days after the order: one day after the promise, so late
    assert statuses == {
        "shipped": "2016-04-01T21:05:00.000Z",
        "delivered": "2016-04-06T21:05:00.000Z",
    }


def test_items_of_one_order_become_one_order_event(loaded):
    events, _ = loaded
    (order,) = _of(events, "dataco-28299", "order_placed")
    assert sorted(i["item_id"] for i in order["items"]) == [
        "dataco-item-70801",
        "dataco-item-70802",
        "dataco-item-70803",
    ]
    assert sum(i["quantity"] for i in order["items"]) == 11
    (payment,) = _of(events, "dataco-28299", "payment_captured")
    assert payment["amount"] == round(230.3600006 + 76.77999878 + 199.9199982, 2)
    assert payment["payment_type"] == "DEBIT"


def test_counts_and_rejections_account_for_every_row(loaded, dataco_dir):
    events, report = loaded
    rows = list(csv.DictReader((dataco_dir / dataco.ORDERS_FILE).open(encoding="utf-8")))
    orders = {r["Order Id"] for r in rows}
    statuses = Counter(next(r for r in rows if r["Order Id"] == o)["Order Status"] for o in orders)
    by_type = Counter(e.payload["event_type"] for e in events)
    assert by_type["order_placed"] == len(orders) == 5743
    assert by_type["payment_refused"] == statuses["SUSPECTED_FRAUD"]
    assert by_type["payment_captured"] + by_type["payment_refused"] == len(orders)
    assert sum(len(e.payload["items"]) for e in events if e.topic == "orders") == len(rows)
    # the access-log file ends with a blank line and a stray 'sgbd': counted, with reasons
    assert report.rejected == Counter(
        {"blank line": 1, "wrong number of fields (1 instead of 8)": 1}
    )
    assert by_type["web_access"] == 10_306 - 2 + 1  # 10,306 lines incl. header, 2 junk
    assert report.rows_read == len(rows) + by_type["web_access"] + 2


def test_late_flag_is_reproducible_from_events(loaded, dataco_dir):
    """Delivered after the promise <=> the file's Late_delivery_risk, for every delivered order."""
    events, _ = loaded
    rows = {r["Order Id"]: r for r in csv.DictReader((dataco_dir / dataco.ORDERS_FILE).open())}
    promise = {
        e.payload["order_id"]: e.payload["promised_delivery_date"]
        for e in events
        if e.topic == "orders"
    }
    delivered = {
        e.payload["order_id"]: e.payload["event_time"]
        for e in events
        if e.topic == "shipments" and e.payload["status"] == "delivered"
    }
    assert len(delivered) > 5000
    for order_id, at in delivered.items():
        late = at > promise[order_id]
        assert late == (rows[order_id.removeprefix("dataco-")]["Late_delivery_risk"] == "1")


def test_no_personal_data_leaves_the_adapter(loaded, dataco_dir):
    events, _ = loaded
    text = "\n".join(e.to_json().decode() for e in events)
    row = next(csv.DictReader((dataco_dir / dataco.ORDERS_FILE).open()))
    for field in ("Customer Fname", "Customer Lname", "Customer Street"):
        assert row[field] not in text
    assert "XXXXXXXXX" not in text  # masked e-mail and password fields are dropped
    assert "37.97.182.65" not in text  # the first access-log client IP is hashed


def test_every_event_satisfies_its_contract_and_ids_are_stable(loaded, dataco_dir):
    events, _ = loaded
    assert all(validate_event(e.topic, e.to_json()).ok for e in events)
    again, _ = dataco.load(dataco_dir)
    assert [e.event_id for e in again] == [e.event_id for e in events]
    assert len({e.event_id for e in events}) == len(events)
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)
