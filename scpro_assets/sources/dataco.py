"""DataCo Smart Supply Chain adapter: order items and web access logs to contract events.

One CSV row is one order item; items of one order share the order's dates, so they are grouped
into one ``order_placed`` event. Per order this emits:

- ``orders/order_placed`` at the order date, promise = order date + scheduled shipping days;
- ``payments/payment_captured`` (or ``payment_refused`` for suspected fraud) one minute later,
  amount = the sum of the items' totals;
- ``shipments/shipment_status``: ``shipped`` at the order date and ``delivered`` the real shipping
  days later (the file's shipping date drifts by 12 hours on ~5% of rows, while its late flag
  follows whole days), or ``canceled`` for canceled orders.

``origin`` is the store's coordinates (DataCo's Latitude/Longitude); ``destination`` the
order city. DataCo timestamps have no zone; they are read as UTC. Customer e-mail, password,
names and street are dropped; the customer id is pseudonymised. Zip codes arrive as floats
(``725.0``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scpro_assets.sources.common import MappingReport, SourceEvent, iso, make_event, pseudonymise

SOURCE = "dataco"
ORDERS_FILE = "DataCoSupplyChainDataset_sample6000.csv"
ACCESS_LOG_FILE = "tokenized_access_logs_first10306.csv"

#: Order statuses for which nothing is delivered.
CANCELED_STATUSES = {"CANCELED", "SUSPECTED_FRAUD"}


def parse_time(text: str) -> datetime:
    """Parse DataCo's ``M/D/YYYY H:MM`` timestamps as UTC."""
    return datetime.strptime(text.strip(), "%m/%d/%Y %H:%M").replace(tzinfo=UTC)


def _zip(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    return str(int(float(text)))


def _order_id(raw: str) -> str:
    return f"dataco-{int(raw)}"


def _order_events(order_id: str, rows: list[dict[str, str]]) -> list[SourceEvent]:
    first = rows[0]
    ordered_at = parse_time(first["order date (DateOrders)"])
    scheduled = int(first["Days for shipment (scheduled)"])
    real_days = int(first["Days for shipping (real)"])
    # The file's shipping date drifts by 12 hours on some rows, while its late flag follows whole
    # shipping days exactly (late <=> real > scheduled); delivery is order time + real days.
    delivered_at = ordered_at + timedelta(days=real_days)
    mode = first["Shipping Mode"].strip()
    status = first["Order Status"].strip()
    key = order_id
    items = [
        {
            "item_id": f"dataco-item-{int(r['Order Item Id'])}",
            "product_id": f"dataco-product-{int(r['Product Card Id'])}",
            "product_name": r["Product Name"].strip(),
            "category": r["Category Name"].strip(),
            "department": r["Department Name"].strip(),
            "quantity": int(r["Order Item Quantity"]),
            "unit_price": round(float(r["Order Item Product Price"]), 2),
            "discount": round(float(r["Order Item Discount"]), 2),
        }
        for r in rows
    ]
    customer = {
        "customer_id": pseudonymise(f"dataco-customer-{int(first['Order Customer Id'])}"),
        "segment": first["Customer Segment"].strip(),
        "city": first["Customer City"].strip(),
        "state": first["Customer State"].strip(),
        "country": first["Customer Country"].strip(),
        "zip_prefix": _zip(first["Customer Zipcode"]),
    }
    events = [
        make_event(
            SOURCE,
            "order_placed",
            ordered_at,
            (order_id,),
            key,
            order_id=order_id,
            customer=customer,
            market=first["Market"].strip(),
            region=first["Order Region"].strip(),
            channel="web",
            shipping_mode=mode,
            carrier=None,
            origin={"lat": float(first["Latitude"]), "lon": float(first["Longitude"])},
            destination={
                "city": first["Order City"].strip(),
                "state": first["Order State"].strip(),
                "country": first["Order Country"].strip(),
                "zip_prefix": _zip(first["Order Zipcode"]),
            },
            promised_delivery_date=iso(ordered_at + timedelta(days=scheduled)),
            scheduled_days=scheduled,
            payment_type=first["Type"].strip(),
            items=items,
        )
    ]
    amount = round(sum(float(r["Order Item Total"]) for r in rows), 2)
    paid = "payment_refused" if status == "SUSPECTED_FRAUD" else "payment_captured"
    events.append(
        make_event(
            SOURCE,
            paid,
            ordered_at + timedelta(minutes=1),
            (order_id, 1),
            key,
            order_id=order_id,
            payment_type=first["Type"].strip(),
            installments=1,
            sequence=1,
            amount=amount,
        )
    )
    shipment = {"order_id": order_id, "shipping_mode": mode, "order_time": iso(ordered_at)}
    if status in CANCELED_STATUSES or first["Delivery Status"].strip() == "Shipping canceled":
        events.append(
            make_event(
                SOURCE,
                "shipment_status",
                ordered_at + timedelta(hours=1),
                (order_id, "canceled"),
                key,
                status="canceled",
                detail=f"order status {status}",
                **shipment,
            )
        )
        return events
    events.append(
        make_event(
            SOURCE,
            "shipment_status",
            ordered_at,
            (order_id, "shipped"),
            key,
            status="shipped",
            **shipment,
        )
    )
    events.append(
        make_event(
            SOURCE,
            "shipment_status",
            delivered_at,
            (order_id, "delivered"),
            key,
            status="delivered",
            detail=(
                f"real shipping days {real_days}; "
                f"file shipping date {first['shipping date (DateOrders)'].strip()}"
            ),
            **shipment,
        )
    )
    return events


def order_events(path: Path, report: MappingReport) -> list[SourceEvent]:
    """Map the DataCo order-items CSV; rows that cannot be mapped are counted in ``report``."""
    orders: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            report.rows_read += 1
            try:
                order_id = _order_id(row["Order Id"])
                parse_time(row["order date (DateOrders)"])
                parse_time(row["shipping date (DateOrders)"])
                int(row["Order Item Quantity"])
            except (KeyError, ValueError, TypeError) as error:
                report.reject(f"unparseable order row: {type(error).__name__}", f"line {line_no}")
                continue
            orders.setdefault(order_id, []).append(row)
    events: list[SourceEvent] = []
    for order_id, rows in orders.items():
        try:
            made = _order_events(order_id, rows)
        except (KeyError, ValueError, TypeError) as error:
            report.reject(f"unmappable order: {error}", order_id)
            continue
        for event in made:
            report.events[event.payload["event_type"]] += 1
        events.extend(made)
    return events


def _access_events(path: Path, report: MappingReport) -> Iterator[SourceEvent]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        expected = ["Product", "Category", "Date", "Month", "Hour", "Department", "ip", "url"]
        if header != expected:
            raise ValueError(f"{path.name}: unexpected header {header}, expected {expected}")
        for line_no, row in enumerate(reader, start=2):
            report.rows_read += 1
            if not row or all(not cell.strip() for cell in row):
                report.reject("blank line", f"line {line_no}")
                continue
            if len(row) != len(expected):
                report.reject(
                    f"wrong number of fields ({len(row)} instead of {len(expected)})",
                    f"line {line_no}: {','.join(row)[:60]!r}",
                )
                continue
            product, category, date, _month, _hour, department, ip, url = row
            try:
                at = parse_time(date)
            except ValueError:
                report.reject("unparseable date", f"line {line_no}: {date!r}")
                continue
            event = make_event(
                SOURCE,
                "web_access",
                at,
                (line_no, date, ip, url),
                pseudonymise(ip),
                client_hash=pseudonymise(ip),
                url=url,
                department=department.strip(),
                category=category.strip(),
                product=product.strip(),
            )
            report.events["web_access"] += 1
            yield event


def access_log_events(path: Path, report: MappingReport) -> list[SourceEvent]:
    """Map DataCo's tokenized web access logs to ``ops_logs/web_access`` events."""
    return list(_access_events(path, report))


def load(data_dir: Path) -> tuple[list[SourceEvent], MappingReport]:
    """All DataCo events (orders, payments, shipments, access logs), sorted by event time."""
    report = MappingReport(SOURCE)
    events = order_events(data_dir / ORDERS_FILE, report)
    access = data_dir / ACCESS_LOG_FILE
    if access.exists():
        events += access_log_events(access, report)
    events.sort()
    return events, report
