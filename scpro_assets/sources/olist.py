"""Olist Brazilian e-commerce adapter: orders, items, payments and delivery dates to events.

One row of the orders sample is one order; its lines come from the items sample, its payments from
the (complete) payments file, filtered to the sample's orders. Per order this emits:

- ``orders/order_placed`` at ``order_purchase_timestamp``, promise =
  ``order_estimated_delivery_date`` (date-only, 00:00 local, kept as given), ``scheduled_days`` =
  promise - purchase in days. Items carry price, freight, seller, weight and the category
  translated to English (Portuguese name when the translation table lacks it). ``origin`` is the
  first item's seller, ``destination`` and ``customer`` the customer's zip prefix, with
  coordinates = mean of the geolocation rows of that prefix when the geolocation sample has any.
  ``region`` is the customer state's macro-region (North, Northeast, Central-West, ...);
- ``payments/payment_captured`` per payment row at ``order_approved_at`` (purchase time when the
  order was never approved), also for canceled and unavailable orders (the money was captured);
- ``shipments/shipment_status`` with ``order_time`` = purchase time: ``shipped`` at
  ``order_delivered_carrier_date`` and ``delivered`` at ``order_delivered_customer_date`` when
  present, ``canceled`` at approval (or purchase) for canceled/unavailable orders never delivered.

Olist timestamps are Brazil local time: they are read as ``America/Sao_Paulo`` (which kept daylight
saving time until 2019, so the offset is -02:00 or -03:00) and written in UTC. Times in the
skipped or repeated hour of a DST change get zoneinfo's ``fold=0`` reading (the earlier offset).

Nothing is dropped silently. An order without items in the items sample cannot be an
``order_placed`` (the contract needs an item): it is rejected, but its payments and shipment events
are still emitted, since they happened. A row with an unparseable timestamp is rejected with its
items and payments. A shipment date before the purchase (real dirty data) rejects just that event.
Every event is checked against its contract and rejected with the validator's reason if it fails.
``rows_read`` counts order, item and (sample) payment rows; lookup tables are not counted.
Customer ids are pseudonymised from ``customer_unique_id`` so repeat buyers link; the reviews file
is not read (reviews are written after delivery, so they would leak the outcome).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scpro_assets.contracts.events import validate_batch
from scpro_assets.sources.common import MappingReport, SourceEvent, iso, make_event, pseudonymise

SOURCE = "olist"
ORDERS_FILE = "olist_orders_dataset_sample.csv"
CUSTOMERS_FILE = "olist_customers_dataset_sample.csv"
ITEMS_FILE = "olist_order_items_dataset_sample.csv"
PAYMENTS_FILE = "olist_order_payments_dataset.csv"
PRODUCTS_FILE = "olist_products_dataset.csv"
SELLERS_FILE = "olist_sellers_dataset.csv"
TRANSLATION_FILE = "product_category_name_translation.csv"
GEOLOCATION_FILE = "olist_geolocation_dataset_sample.csv"

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
COUNTRY = "Brazil"
MARKET = "LATAM"

#: Order statuses for which nothing will be delivered.
CANCELED_STATUSES = {"canceled", "unavailable"}

#: Timestamp columns of the orders file; the first two are required.
TIME_COLUMNS = (
    "order_purchase_timestamp",
    "order_estimated_delivery_date",
    "order_approved_at",
    "order_delivered_carrier_date",
    "order_delivered_customer_date",
)

#: IBGE macro-region of each Brazilian state.
REGION_BY_STATE = {
    **dict.fromkeys(("AC", "AM", "AP", "PA", "RO", "RR", "TO"), "North"),
    **dict.fromkeys(("AL", "BA", "CE", "MA", "PB", "PE", "PI", "RN", "SE"), "Northeast"),
    **dict.fromkeys(("DF", "GO", "MS", "MT"), "Central-West"),
    **dict.fromkeys(("ES", "MG", "RJ", "SP"), "Southeast"),
    **dict.fromkeys(("PR", "RS", "SC"), "South"),
}


def parse_time(text: str) -> datetime:
    """Parse Olist's ``YYYY-MM-DD HH:MM:SS`` Sao Paulo local time into an aware datetime.

    Anything else (a date alone, a zone, a ``T``) raises ``ValueError``.
    """
    text = text.strip()
    if len(text) != 19 or text[10] != " " or not text[:4].isdigit():
        raise ValueError(f"not a YYYY-MM-DD HH:MM:SS timestamp: {text!r}")
    return datetime.fromisoformat(text).replace(tzinfo=SAO_PAULO)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with their line numbers (``utf-8-sig`` drops the translation file's BOM)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def _zip(text: str) -> str | None:
    """Five-digit zip prefix, zero-padded (``"1012"`` or ``"1012.0"`` -> ``"01012"``)."""
    try:
        return str(int(float(text.strip()))).zfill(5)
    except (ValueError, OverflowError):
        return None


def _order_id(raw: str) -> str:
    return f"olist-{raw.strip()}"


@dataclass
class _Lookups:
    """The reference tables: customers, products, sellers, category names, zip coordinates."""

    customers: dict[str, dict[str, str]] = field(default_factory=dict)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    sellers: dict[str, dict[str, str]] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    coordinates: dict[str, tuple[float, float]] = field(default_factory=dict)

    def location(self, city: str, state: str, zip_text: str) -> dict[str, Any]:
        """A contract ``Location`` for a Brazilian city/state/zip prefix."""
        zip_prefix = _zip(zip_text)
        lat, lon = self.coordinates.get(zip_prefix or "", (None, None))
        return {
            "city": city.strip() or None,
            "state": state.strip() or None,
            "country": COUNTRY,
            "zip_prefix": zip_prefix,
            "lat": lat,
            "lon": lon,
        }


def _read_lookups(data_dir: Path) -> _Lookups:
    lookups = _Lookups()
    for _, row in _rows(data_dir / CUSTOMERS_FILE):
        lookups.customers[row["customer_id"].strip()] = row
    for _, row in _rows(data_dir / PRODUCTS_FILE):
        lookups.products[row["product_id"].strip()] = row
    for _, row in _rows(data_dir / SELLERS_FILE):
        lookups.sellers[row["seller_id"].strip()] = row
    for _, row in _rows(data_dir / TRANSLATION_FILE):
        lookups.categories[row["product_category_name"].strip()] = row[
            "product_category_name_english"
        ].strip()
    sums: dict[str, list[float]] = {}
    for _, row in _rows(data_dir / GEOLOCATION_FILE):
        try:
            zip_prefix = _zip(row["geolocation_zip_code_prefix"])
            lat, lon = float(row["geolocation_lat"]), float(row["geolocation_lng"])
        except (KeyError, ValueError, TypeError):
            continue  # a lookup row: without it the location just has no coordinates
        if zip_prefix is None:
            continue
        acc = sums.setdefault(zip_prefix, [0.0, 0.0, 0])
        acc[0] += lat
        acc[1] += lon
        acc[2] += 1
    lookups.coordinates = {
        z: (round(lat / n, 6), round(lon / n, 6)) for z, (lat, lon, n) in sums.items()
    }
    return lookups


@dataclass
class _Order:
    """One parsed order row: its times, and the lines and payments joined to it."""

    raw_id: str
    status: str
    customer_id: str
    purchased_at: datetime
    promised_at: datetime
    approved_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    items: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    payments: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        """The contract order id."""
        return _order_id(self.raw_id)

    @property
    def approved_or_purchased_at(self) -> datetime:
        """Approval time, or purchase time for orders never approved."""
        return self.approved_at or self.purchased_at


def _times(row: dict[str, str]) -> list[datetime | None]:
    """The order's :data:`TIME_COLUMNS`; raises ``ValueError`` naming the bad column."""
    times: list[datetime | None] = []
    for number, column in enumerate(TIME_COLUMNS):
        text = (row.get(column) or "").strip()
        if not text:
            if number < 2:
                raise ValueError(f"missing {column}")
            times.append(None)
            continue
        try:
            times.append(parse_time(text))
        except ValueError:
            raise ValueError(f"unparseable {column}") from None
    return times


def _read_orders(path: Path, report: MappingReport) -> tuple[dict[str, _Order], set[str]]:
    """The parsed orders by raw id, and the ids of the rejected order rows."""
    orders: dict[str, _Order] = {}
    rejected: set[str] = set()
    for line_no, row in _rows(path):
        report.rows_read += 1
        raw_id = (row.get("order_id") or "").strip()
        where = f"line {line_no}: order {raw_id}"
        if not raw_id:
            report.reject("order row without order_id", f"line {line_no}")
            continue
        if raw_id in orders:
            report.reject("duplicate order_id", where)
            continue
        try:
            purchased, promised, approved, shipped, delivered = _times(row)
        except ValueError as error:
            report.reject(str(error), where)
            rejected.add(raw_id)
            continue
        assert purchased is not None and promised is not None  # required by _times
        orders[raw_id] = _Order(
            raw_id,
            (row.get("order_status") or "").strip(),
            (row.get("customer_id") or "").strip(),
            purchased,
            promised,
            approved,
            shipped,
            delivered,
        )
    return orders, rejected


def _read_items(
    path: Path, report: MappingReport, orders: dict[str, _Order], rejected: set[str]
) -> None:
    """Attach item rows to their orders, ordered by ``order_item_id``."""
    seen: set[tuple[str, int]] = set()
    for line_no, row in _rows(path):
        report.rows_read += 1
        raw_id = (row.get("order_id") or "").strip()
        where = f"line {line_no}: order {raw_id}"
        try:
            number = int(row["order_item_id"])
            price, freight = float(row["price"]), float(row["freight_value"])
            if not row["product_id"].strip():
                raise ValueError("empty product_id")
        except (KeyError, ValueError, TypeError) as error:
            report.reject(f"unparseable item row: {type(error).__name__}", where)
            continue
        if raw_id in rejected:
            report.reject("item of a rejected order row", where)
            continue
        if raw_id not in orders:
            report.reject("item of an order missing from the orders file", where)
            continue
        if (raw_id, number) in seen:
            report.reject("duplicate (order_id, order_item_id)", where)
            continue
        if price < 0 or freight < 0:
            report.reject("negative item price or freight", where)
            continue
        seen.add((raw_id, number))
        orders[raw_id].items.append((number, row))
    for order in orders.values():
        order.items.sort(key=lambda numbered: numbered[0])


def _read_payments(
    path: Path, report: MappingReport, orders: dict[str, _Order], rejected: set[str]
) -> None:
    """Attach the payment rows of the sample's orders (the file covers all 99k orders)."""
    seen: set[tuple[str, int]] = set()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        # Cheap filter on the first column before building a dict: ~92% of rows are skipped.
        sample_rows = [
            (line_no, dict(zip(header, cells, strict=False)))
            for line_no, cells in enumerate(reader, start=2)
            if cells and (cells[0].strip() in orders or cells[0].strip() in rejected)
        ]
    for line_no, row in sample_rows:
        raw_id = row["order_id"].strip()
        report.rows_read += 1
        where = f"line {line_no}: order {raw_id}"
        if raw_id in rejected:
            report.reject("payment of a rejected order row", where)
            continue
        try:
            sequence = int(row["payment_sequential"])
            int(row["payment_installments"])
            float(row["payment_value"])
        except (KeyError, ValueError, TypeError) as error:
            report.reject(f"unparseable payment row: {type(error).__name__}", where)
            continue
        if (raw_id, sequence) in seen:
            report.reject("duplicate (order_id, payment_sequential)", where)
            continue
        seen.add((raw_id, sequence))
        orders[raw_id].payments.append((sequence, row))
    for order in orders.values():
        order.payments.sort(key=lambda numbered: numbered[0])


def _item(raw_id: str, number: int, row: dict[str, str], lookups: _Lookups) -> dict[str, Any]:
    product = lookups.products.get(row["product_id"].strip(), {})
    portuguese = (product.get("product_category_name") or "").strip()
    weight = (product.get("product_weight_g") or "").strip()
    return {
        "item_id": f"olist-item-{raw_id}-{number}",
        "product_id": f"olist-product-{row['product_id'].strip()}",
        "category": lookups.categories.get(portuguese, portuguese) or None,
        "seller_id": f"olist-seller-{row['seller_id'].strip()}",
        "quantity": 1,
        "unit_price": round(float(row["price"]), 2),
        "freight": round(float(row["freight_value"]), 2),
        "weight_g": float(weight) if weight else None,
    }


def _seller_location(order: _Order, lookups: _Lookups) -> dict[str, Any] | None:
    if not order.items:
        return None
    seller = lookups.sellers.get(order.items[0][1]["seller_id"].strip())
    if seller is None:
        return None
    return lookups.location(
        seller["seller_city"], seller["seller_state"], seller["seller_zip_code_prefix"]
    )


def _order_placed(
    order: _Order, customer: dict[str, Any], destination: dict[str, Any], lookups: _Lookups
) -> SourceEvent:
    purchased, promised = order.purchased_at, order.promised_at
    first_payment = next((row for seq, row in order.payments if seq == 1), None)
    return make_event(
        SOURCE,
        "order_placed",
        purchased,
        (order.order_id,),
        order.order_id,
        order_id=order.order_id,
        customer=customer,
        market=MARKET,
        region=REGION_BY_STATE.get(destination["state"] or ""),
        channel="marketplace",
        shipping_mode=None,
        carrier=None,
        origin=_seller_location(order, lookups),
        destination=destination,
        promised_delivery_date=iso(promised),
        scheduled_days=round((promised - purchased).total_seconds() / 86400, 2),
        payment_type=first_payment["payment_type"].strip() if first_payment else None,
        items=[_item(order.raw_id, number, row, lookups) for number, row in order.items],
    )


def _payment_events(order: _Order) -> list[SourceEvent]:
    return [
        make_event(
            SOURCE,
            "payment_captured",
            order.approved_or_purchased_at,
            (order.order_id, sequence),
            order.order_id,
            order_id=order.order_id,
            payment_type=row["payment_type"].strip(),
            installments=int(row["payment_installments"]),
            sequence=sequence,
            amount=round(float(row["payment_value"]), 2),
        )
        for sequence, row in order.payments
    ]


def _shipment_events(
    order: _Order, destination: dict[str, Any] | None, lookups: _Lookups, report: MappingReport
) -> list[SourceEvent]:
    purchased = order.purchased_at
    shipment = {"order_id": order.order_id, "order_time": iso(purchased)}
    planned: list[tuple[str, datetime, dict[str, Any] | None, str | None]] = []
    if order.shipped_at is not None:
        planned.append(("shipped", order.shipped_at, _seller_location(order, lookups), None))
    if order.delivered_at is not None:
        planned.append(("delivered", order.delivered_at, destination, None))
    elif order.status in CANCELED_STATUSES:
        detail = f"order status {order.status}"
        # Canceled after whatever else is known, so the latest status is the cancellation.
        known = [t for t in (order.approved_or_purchased_at, order.shipped_at) if t is not None]
        planned.append(("canceled", max(known) + timedelta(minutes=1), None, detail))
    events = []
    for what, at, location, detail in planned:
        if at < purchased:
            report.reject(f"{what} before purchase", f"order {order.raw_id}: {iso(at)}")
            continue
        events.append(
            make_event(
                SOURCE,
                "shipment_status",
                at,
                (order.order_id, what),
                order.order_id,
                status=what,
                location=location,
                detail=detail,
                **shipment,
            )
        )
    return events


def order_events(data_dir: Path, report: MappingReport) -> list[SourceEvent]:
    """Map the Olist orders sample (with its items and payments); every rejection is reported."""
    lookups = _read_lookups(data_dir)
    orders, rejected = _read_orders(data_dir / ORDERS_FILE, report)
    _read_items(data_dir / ITEMS_FILE, report, orders, rejected)
    _read_payments(data_dir / PAYMENTS_FILE, report, orders, rejected)
    events: list[SourceEvent] = []
    for order in orders.values():
        raw_customer = lookups.customers.get(order.customer_id)
        destination = None
        if raw_customer is None:
            report.reject("customer missing from the customers file", f"order {order.raw_id}")
        else:
            destination = lookups.location(
                raw_customer["customer_city"],
                raw_customer["customer_state"],
                raw_customer["customer_zip_code_prefix"],
            )
            unique_id = raw_customer["customer_unique_id"].strip()
            customer = {"customer_id": pseudonymise(f"olist-customer-{unique_id}"), **destination}
            if not order.items:
                report.reject("no items in the items file", f"order {order.raw_id}")
            else:
                try:
                    placed = _order_placed(order, customer, destination, lookups)
                except (KeyError, ValueError, TypeError) as error:
                    report.reject(f"unmappable order: {error!r}", f"order {order.raw_id}")
                else:
                    # Payments and tracking only follow an order the platform knows: no orphans.
                    events.append(placed)
                    events += _payment_events(order)
                    events += _shipment_events(order, destination, lookups, report)
                    continue
        for _ in order.payments:
            report.reject("payment of an order that was not placed", f"order {order.raw_id}")
    return _valid(events, report)


def _valid(events: list[SourceEvent], report: MappingReport) -> list[SourceEvent]:
    """Keep the events that pass their contract; reject the others with the validator's reason."""
    by_topic: dict[str, list[SourceEvent]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event)
    kept: list[SourceEvent] = []
    for topic, group in by_topic.items():
        results = validate_batch(topic, [event.to_json() for event in group])
        for event, result in zip(group, results, strict=True):
            event_type = event.payload["event_type"]
            if result.ok:
                report.events[event_type] += 1
                kept.append(event)
                continue
            report.reject(f"{event_type}: {result.reason}", f"{event.key}: {event.event_id}")
            for item in event.payload.get("items", []):
                report.reject("item of an order that failed its contract", item["item_id"])
    return kept


def load(data_dir: Path) -> tuple[list[SourceEvent], MappingReport]:
    """All Olist events (orders, payments, shipments), sorted by event time."""
    report = MappingReport(SOURCE)
    events = order_events(data_dir, report)
    events.sort()
    return events, report
