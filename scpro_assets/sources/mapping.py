"""Bring your own data: a YAML mapping turns any orders CSV into SCPro's event contracts.

A user describes which column holds what (``BRING_YOUR_OWN_DATA.md`` beside this module explains
every key, ``mapping.example.yaml`` is a commented example); this module validates the mapping up
front (errors name the bad key, or the missing column) and maps rows into the same
:class:`~scpro_assets.sources.common.SourceEvent` records the DataCo and Olist adapters produce:

- ``orders/order_placed`` per order, from one row per order or one row per item grouped by the
  order column;
- ``payments/payment_captured`` (optional);
- ``shipments/shipment_status``: ``shipped``, ``delivered`` and ``canceled`` from optional columns.

Only mapped fields ever reach an event, so unmapped columns (names, e-mails, addresses) never
pass; customer ids are pseudonymised with :func:`~scpro_assets.sources.common.pseudonymise`.
Event ids use :func:`~scpro_assets.sources.common.make_event`, so replays give the same ids.
Every row that cannot be mapped is counted in the :class:`MappingReport` with its reason: a bad
row rejects its whole order (the other rows are counted as ``order has a rejected row``), because
an order missing an item would carry wrong totals. Each event is also checked against its
contract here, so a broken promise date is reported instead of being quarantined later.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from scpro_assets.contracts.events import validate_event
from scpro_assets.sources.common import MappingReport, SourceEvent, iso, make_event, pseudonymise


class MappingError(ValueError):
    """The mapping file is wrong; the message names the key (and column) at fault."""


#: Keys each section accepts; anything else is a typo and is reported as such.
ORDER_KEYS = {
    "order_id", "placed_at", "promised_at", "promised_days", "customer_id", "customer_segment",
    "customer_city", "customer_state", "customer_country", "customer_zip", "market", "region",
    "channel", "shipping_mode", "carrier", "payment_type", "destination_city",
    "destination_state", "destination_country", "destination_zip",
}  # fmt: skip
ITEM_KEYS = {
    "item_id", "product_id", "product_name", "category", "department", "seller_id", "quantity",
    "unit_price", "discount", "freight", "weight",
}  # fmt: skip
PAYMENT_KEYS = {"amount", "type", "installments", "paid_at"}
SHIPMENT_KEYS = {
    "shipped_at",
    "delivered_at",
    "canceled_at",
    "carrier",
    "status",
    "canceled_values",
}
TOP_KEYS = {
    "source", "file", "delimiter", "encoding", "timezone", "date_formats", "null_values", "rows",
    "orders", "items", "payments", "shipments",
}  # fmt: skip
REQUIRED_ORDER_KEYS = ("order_id", "placed_at", "customer_id")
REQUIRED_ITEM_KEYS = ("product_id", "unit_price")
WEIGHT_UNITS = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "oz": 28.349523125}


class RowError(ValueError):
    """A row cannot be mapped; the message is the reason counted in the report."""


@dataclass(frozen=True)
class Field:
    """Where one value comes from: a column (with a default when empty) or a constant.

    ``null_values`` are the cell values (after stripping) that mean "empty" in this column, such
    as ``Date Not Captured`` or ``N/A``: the file's tokens and the field's own.
    """

    key: str
    column: str | None = None
    const: Any = None
    default: Any = None
    date_format: str | None = None
    unit: str | None = None
    null_values: frozenset[str] = frozenset()

    def raw(self, row: Mapping[str, str]) -> Any:
        """The value in ``row`` (stripped), the default when empty, or the constant.

        A null token counts as empty before any parsing, so a ``Date Not Captured`` date is
        unknown (``None``), not a bad date; the contract then decides whether it may be.
        """
        if self.column is None:
            return self.const
        value = (row.get(self.column) or "").strip()
        return value if value and value not in self.null_values else self.default


def _null_tokens(where: str, spec: Any) -> frozenset[str]:
    """A ``null_values`` list; only text, since YAML reads ``-1``, ``no`` or ``null`` otherwise."""
    if spec is None:
        return frozenset()
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list) or not all(isinstance(token, str) for token in spec):
        raise MappingError(
            f"{where}: expected a list of text tokens such as ['N/A', 'Date Not Captured'] "
            "(quote tokens YAML would read as numbers, booleans or null)"
        )
    return frozenset(token.strip() for token in spec)


def _field(section: str, key: str, spec: Any, null_values: frozenset[str]) -> Field:
    """One field spec; ``null_values`` are the file's tokens, to which the field may add its own."""
    where = f"{section}.{key}"
    if isinstance(spec, str):
        return Field(where, column=spec, null_values=null_values)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"column", "const", "default", "format", "unit", "null_values"}
        if unknown:
            raise MappingError(f"{where}: unknown option(s) {sorted(unknown)}")
        if ("column" in spec) == ("const" in spec):
            raise MappingError(f"{where}: give exactly one of 'column' or 'const'")
        unit = spec.get("unit")
        if unit is not None and unit not in WEIGHT_UNITS:
            raise MappingError(f"{where}.unit: {unit!r} is not one of {sorted(WEIGHT_UNITS)}")
        return Field(
            where,
            column=spec.get("column"),
            const=spec.get("const"),
            default=spec.get("default"),
            date_format=spec.get("format"),
            unit=unit,
            null_values=null_values | _null_tokens(f"{where}.null_values", spec.get("null_values")),
        )
    if isinstance(spec, int | float | bool):
        return Field(where, const=spec)
    raise MappingError(f"{where}: expected a column name or {{column: ...}} / {{const: ...}}")


def _section(
    raw: Mapping[str, Any],
    name: str,
    allowed: set[str],
    required: tuple[str, ...] = (),
    null_values: frozenset[str] = frozenset(),
) -> dict[str, Field] | None:
    spec = raw.get(name)
    if spec is None:
        if required:
            raise MappingError(f"{name}: this section is required")
        return None
    if not isinstance(spec, Mapping):
        raise MappingError(f"{name}: expected a mapping of keys to columns")
    unknown = set(spec) - allowed
    if unknown:
        raise MappingError(f"{name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = [k for k in required if k not in spec]
    if missing:
        raise MappingError(f"{name}: missing required key(s) {missing}")
    return {
        key: _field(name, key, value, null_values)
        for key, value in spec.items()
        if key != "canceled_values"
    }


@dataclass(frozen=True)
class CsvMapping:
    """A validated mapping file."""

    source: str
    orders: dict[str, Field]
    items: dict[str, Field]
    payments: dict[str, Field] | None
    shipments: dict[str, Field] | None
    rows: str = "order"
    file: Path | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    timezone: tzinfo = UTC
    date_formats: tuple[str, ...] = ()
    null_values: frozenset[str] = frozenset()
    canceled_values: frozenset[str] = field(default_factory=frozenset)

    def columns(self) -> set[str]:
        """Every column the mapping reads."""
        sections = [self.orders, self.items, self.payments or {}, self.shipments or {}]
        return {f.column for s in sections for f in s.values() if f.column is not None}


def load_mapping(path: Path) -> CsvMapping:
    """Read and validate a mapping file; raises :class:`MappingError` naming the bad key."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise MappingError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, Mapping):
        raise MappingError(f"{path}: expected a mapping at the top level")
    return parse_mapping(raw, base=Path(path).parent)


def parse_mapping(raw: Mapping[str, Any], base: Path | None = None) -> CsvMapping:
    """Validate an already-parsed mapping (see :func:`load_mapping`)."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise MappingError(
            f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}"
        )
    source = raw.get("source")
    if not isinstance(source, str) or not source.replace("_", "").replace("-", "").isalnum():
        raise MappingError("source: required, letters, digits, '-' or '_' (it prefixes event ids)")
    rows = raw.get("rows", "order")
    if rows not in ("order", "item"):
        raise MappingError(f"rows: {rows!r} must be 'order' (one row per order) or 'item'")
    try:
        zone: tzinfo = ZoneInfo(raw["timezone"]) if raw.get("timezone") else UTC
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise MappingError(f"timezone: unknown time zone {raw.get('timezone')!r}") from error
    formats = raw.get("date_formats", [])
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise MappingError("date_formats: expected a list of strptime formats")
    nulls = _null_tokens("null_values", raw.get("null_values"))
    orders = _section(raw, "orders", ORDER_KEYS, REQUIRED_ORDER_KEYS, nulls)
    assert orders is not None
    if "promised_at" not in orders and "promised_days" not in orders:
        raise MappingError("orders: give 'promised_at' (a date) or 'promised_days' (a number)")
    items = _section(raw, "items", ITEM_KEYS, REQUIRED_ITEM_KEYS, nulls)
    assert items is not None
    if "weight" in items and items["weight"].unit is None:
        raise MappingError("items.weight: give its unit, e.g. {column: weight, unit: kg}")
    shipments_raw = raw.get("shipments") or {}
    canceled = (
        shipments_raw.get("canceled_values", []) if isinstance(shipments_raw, Mapping) else []
    )
    if not isinstance(canceled, list):
        raise MappingError("shipments.canceled_values: expected a list of status values")
    shipments = _section(raw, "shipments", SHIPMENT_KEYS, null_values=nulls)
    if canceled and (shipments is None or "status" not in shipments):
        raise MappingError("shipments.canceled_values: needs shipments.status (the column)")
    file = raw.get("file")
    return CsvMapping(
        source=source,
        orders=orders,
        items=items,
        payments=_section(raw, "payments", PAYMENT_KEYS, ("amount",), nulls)
        if "payments" in raw
        else None,
        shipments=shipments,
        rows=rows,
        file=(base or Path()) / file if file else None,
        delimiter=str(raw.get("delimiter", ",")),
        encoding=str(raw.get("encoding", "utf-8")),
        timezone=zone,
        date_formats=tuple(formats),
        null_values=nulls,
        canceled_values=frozenset(str(v) for v in canceled),
    )


# --- value conversion ------------------------------------------------------------------------


def _text(f: Field | None, row: Mapping[str, str]) -> str | None:
    if f is None:
        return None
    value = f.raw(row)
    return None if value is None or value == "" else str(value)


def _required_text(f: Field, row: Mapping[str, str]) -> str:
    value = _text(f, row)
    if value is None:
        raise RowError(f"missing {f.key} (column {f.column!r})" if f.column else f"missing {f.key}")
    return value


def _number(f: Field | None, row: Mapping[str, str], default: float | None = None) -> float | None:
    if f is None:
        return default
    value = f.raw(row)
    if value is None or value == "":
        return default
    try:
        # No guessing about "1,5" vs "1,299": a comma is not a number, and the row is reported.
        return float(value)
    except ValueError:
        raise RowError(f"not a number in {f.key} (column {f.column!r})") from None


def _time(mapping: CsvMapping, f: Field | None, row: Mapping[str, str]) -> datetime | None:
    if f is None:
        return None
    value = f.raw(row)
    if value is None or value == "":
        return None
    text = str(value)
    parsed = None
    for fmt in ([f.date_format] if f.date_format else []) + list(mapping.date_formats):
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None and not f.date_format:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise RowError(f"bad date in {f.key} (column {f.column!r})")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=mapping.timezone)
    return parsed


# --- rows to events --------------------------------------------------------------------------


def _item(mapping: CsvMapping, order_id: str, position: int, row: Mapping[str, str]) -> dict:
    f = mapping.items
    quantity = _number(f.get("quantity"), row, 1.0)
    if quantity is None or quantity != int(quantity) or quantity < 1:
        raise RowError("quantity must be a whole number of at least 1")
    item: dict[str, Any] = {
        "item_id": _text(f.get("item_id"), row) or f"{order_id}-{position}",
        "product_id": _required_text(f["product_id"], row),
        "quantity": int(quantity),
        "unit_price": round(_number(f["unit_price"], row) or 0.0, 2),
        "discount": round(_number(f.get("discount"), row, 0.0) or 0.0, 2),
        "freight": round(_number(f.get("freight"), row, 0.0) or 0.0, 2),
    }
    if _text(f["unit_price"], row) is None:
        raise RowError(f"missing items.unit_price (column {f['unit_price'].column!r})")
    for key in ("product_name", "category", "department", "seller_id"):
        if key in f:
            item[key] = _text(f[key], row)
    if "weight" in f:
        weight = _number(f["weight"], row)
        if weight is not None:
            item["weight_g"] = round(weight * WEIGHT_UNITS[f["weight"].unit or "g"], 3)
    return item


def _order_events(
    mapping: CsvMapping, order_id: str, rows: list[Mapping[str, str]]
) -> list[SourceEvent]:
    first = rows[0]
    o = mapping.orders
    source = mapping.source
    placed = _time(mapping, o["placed_at"], first)
    if placed is None:
        raise RowError(f"missing orders.placed_at (column {o['placed_at'].column!r})")
    promised = _time(mapping, o.get("promised_at"), first)
    days = _number(o.get("promised_days"), first)
    if promised is None and days is not None:
        promised = placed + timedelta(days=days)
    if promised is None:
        raise RowError("missing promise: no promised_at and no promised_days")
    customer_raw = _required_text(o["customer_id"], first)
    customer: dict[str, Any] = {"customer_id": pseudonymise(f"{source}-customer-{customer_raw}")}
    for key, name in (("segment", "customer_segment"), ("city", "customer_city"),
                      ("state", "customer_state"), ("country", "customer_country"),
                      ("zip_prefix", "customer_zip")):  # fmt: skip
        if name in o:
            customer[key] = _text(o[name], first)
    destination = {
        key: _text(o[name], first)
        for key, name in (("city", "destination_city"), ("state", "destination_state"),
                          ("country", "destination_country"), ("zip_prefix", "destination_zip"))
        if name in o
    }  # fmt: skip
    items = [_item(mapping, order_id, i, row) for i, row in enumerate(rows, start=1)]
    order_fields: dict[str, Any] = {
        key: _text(o[key], first)
        for key in ("market", "region", "channel", "shipping_mode", "carrier", "payment_type")
        if key in o
    }
    if days is not None:
        order_fields["scheduled_days"] = days
    if destination:
        order_fields["destination"] = destination
    events = [
        make_event(
            source,
            "order_placed",
            placed,
            (order_id,),
            order_id,
            order_id=order_id,
            customer=customer,
            promised_delivery_date=iso(promised),
            items=items,
            **order_fields,
        )
    ]
    if mapping.payments is not None:
        p = mapping.payments
        amount_field = p["amount"]
        if amount_field.column is None and amount_field.const == "items_total":
            amount = sum(
                i["unit_price"] * i["quantity"] - i["discount"] + i["freight"] for i in items
            )
        else:
            amount = _number(amount_field, first)
            if amount is None:
                raise RowError(f"missing payments.amount (column {amount_field.column!r})")
        installments = _number(p.get("installments"), first, 1.0) or 1.0
        events.append(
            make_event(
                source,
                "payment_captured",
                _time(mapping, p.get("paid_at"), first) or placed,
                (order_id, 1),
                order_id,
                order_id=order_id,
                payment_type=_text(p.get("type"), first)
                or order_fields.get("payment_type")
                or "unknown",
                installments=int(installments),
                sequence=1,
                amount=round(amount, 2),
            )
        )
    if mapping.shipments is not None:
        s = mapping.shipments
        common = {
            "order_id": order_id,
            "order_time": iso(placed),
            "carrier": _text(s.get("carrier"), first) or order_fields.get("carrier"),
            "shipping_mode": order_fields.get("shipping_mode"),
        }
        status = _text(s.get("status"), first)
        if status is not None and status in mapping.canceled_values:
            at = _time(mapping, s.get("canceled_at"), first) or placed
            events.append(
                make_event(
                    source,
                    "shipment_status",
                    at,
                    (order_id, "canceled"),
                    order_id,
                    status="canceled",
                    detail=f"status {status}",
                    **common,
                )
            )
            return events
        for status_name, key in (("shipped", "shipped_at"), ("delivered", "delivered_at")):
            at = _time(mapping, s.get(key), first)
            if at is not None:
                events.append(
                    make_event(
                        source,
                        "shipment_status",
                        at,
                        (order_id, status_name),
                        order_id,
                        status=status_name,
                        **common,
                    )
                )
    return events


def _check_contracts(events: list[SourceEvent]) -> None:
    for event in events:
        result = validate_event(event.topic, event.payload)
        if not result.ok:
            raise RowError(f"{event.payload['event_type']}: {result.reason}")


def map_csv(
    mapping: CsvMapping, path: Path | None = None, report: MappingReport | None = None
) -> tuple[list[SourceEvent], MappingReport]:
    """Map the CSV at ``path`` (or the mapping's ``file``); events sorted by event time."""
    path = Path(path) if path is not None else mapping.file
    if path is None:
        raise MappingError("file: no CSV given (set 'file' in the mapping or pass --data)")
    report = report or MappingReport(mapping.source)
    prefix = f"{mapping.source}-"
    orders: dict[str, list[tuple[int, dict[str, str]]]] = {}
    with Path(path).open(newline="", encoding=mapping.encoding) as handle:
        reader = csv.DictReader(handle, delimiter=mapping.delimiter)
        header = set(reader.fieldnames or [])
        missing = sorted(mapping.columns() - header)
        if missing:
            raise MappingError(
                f"{Path(path).name}: column(s) {missing} named in the mapping are not in the "
                f"CSV header {sorted(header)}"
            )
        id_field = mapping.orders["order_id"]
        for line_no, row in enumerate(reader, start=2):
            report.rows_read += 1
            raw_id = _text(id_field, row)
            if raw_id is None:
                report.reject(
                    f"missing orders.order_id (column {id_field.column!r})", f"line {line_no}"
                )
                continue
            order_id = raw_id if raw_id.startswith(prefix) else prefix + raw_id
            if mapping.rows == "order" and order_id in orders:
                report.reject("duplicate order id (rows: order)", f"line {line_no}: {raw_id}")
                continue
            orders.setdefault(order_id, []).append((line_no, row))
    events: list[SourceEvent] = []
    for order_id, numbered in orders.items():
        rows = [row for _, row in numbered]
        try:
            for line_no, row in numbered:
                try:
                    _item(mapping, order_id, 1, row)
                except RowError as error:
                    raise RowError(f"{error}\x1f{line_no}") from None
            made = _order_events(mapping, order_id, rows)
            _check_contracts(made)
        except RowError as error:
            reason, _, bad_line = str(error).partition("\x1f")
            bad = int(bad_line) if bad_line else numbered[0][0]
            report.reject(reason, f"line {bad}: order {order_id}")
            for line_no, _ in numbered:
                if line_no != bad:
                    report.reject("order has a rejected row", f"line {line_no}: order {order_id}")
            continue
        for event in made:
            report.events[event.payload["event_type"]] += 1
        events.extend(made)
    events.sort()
    return events, report


def load(mapping_path: Path, data: Path | None = None) -> tuple[list[SourceEvent], MappingReport]:
    """Load a mapping file and map its CSV (``data`` overrides the mapping's ``file``)."""
    return map_csv(load_mapping(mapping_path), data)
