"""Versioned event contracts (schema version 1) for the four Kafka topics.

Every event carries ``event_id`` (stable across replays, the deduplication key), ``event_type``,
``event_time`` (when it happened in the business, timezone-aware) and ``schema_version``.
Personal data never enters a contract: customer ids are pseudonymised (hashed) by the producer,
and names, e-mails, passwords and street addresses have no field here, so they are dropped.

Validation is done by pydantic-core in Rust. :func:`validate_events` validates a whole Kafka fetch
in one call and only falls back to event-by-event validation, chunk by chunk, to find the reasons
when the batch holds bad events, which keeps the ingest path close to the speed of a bare consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from scpro_assets.perf import paused_gc
from scpro_assets.settings import ContractLimits

SCHEMA_VERSION = 1

#: Upper bounds of quantities, money and weights: large enough for real B2B histories, set per
#: deployment with ``SCPRO_MAX_*`` (see :class:`~scpro_assets.settings.ContractLimits` for why
#: these values). Read once, at import, so producers and landing must share the environment.
LIMITS = ContractLimits.from_env()

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=512)]
Money = Annotated[float, Field(ge=0, le=LIMITS.max_money)]
Quantity = Annotated[int, Field(ge=1, le=LIMITS.max_quantity)]
WeightGrams = Annotated[float, Field(ge=0, le=LIMITS.max_weight_g)]


class _Event(BaseModel):
    """Envelope fields shared by every event."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, Field(min_length=8, max_length=128)]
    event_time: AwareDatetime
    schema_version: Literal[1] = SCHEMA_VERSION
    source: NonEmptyStr = "unknown"


class Location(BaseModel):
    """Where something is, as far as it is known."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    city: str | None = None
    state: str | None = None
    country: str | None = None
    zip_prefix: str | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class Customer(Location):
    """The buying customer: a pseudonymous id (hashed at the source) and where they are."""

    customer_id: NonEmptyStr
    segment: str | None = None


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    item_id: NonEmptyStr
    product_id: NonEmptyStr
    product_name: str | None = None
    category: str | None = None
    department: str | None = None
    seller_id: str | None = None
    quantity: Quantity
    unit_price: Money
    discount: Money = 0.0
    freight: Money = 0.0
    weight_g: WeightGrams | None = None

    @model_validator(mode="after")
    def _discount_within_price(self) -> OrderItem:
        if self.discount > self.unit_price * self.quantity + 1e-6:
            raise ValueError("discount exceeds the line's price")
        return self


class OrderPlaced(_Event):
    """``orders`` topic: an order was placed, with everything known at that moment."""

    event_type: Literal["order_placed"]
    order_id: NonEmptyStr
    customer: Customer
    market: str | None = None
    region: str | None = None
    channel: str | None = None
    shipping_mode: str | None = None
    carrier: str | None = None
    origin: Location | None = None
    destination: Location | None = None
    promised_delivery_date: AwareDatetime
    scheduled_days: Annotated[float, Field(ge=0, le=365)] | None = None
    payment_type: str | None = None
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _promise_after_order(self) -> OrderPlaced:
        if self.promised_delivery_date < self.event_time:
            raise ValueError("promised_delivery_date is before the order was placed")
        return self


class PaymentEvent(_Event):
    """``payments`` topic: a payment was captured or refused."""

    event_type: Literal["payment_captured", "payment_refused"]
    order_id: NonEmptyStr
    payment_type: NonEmptyStr
    installments: Annotated[int, Field(ge=0, le=100)] = 1
    sequence: Annotated[int, Field(ge=1, le=1000)] = 1
    amount: Money


ShipmentStatus = Literal["shipped", "in_transit", "delivered", "exception", "canceled"]


class ShipmentEvent(_Event):
    """``shipments`` topic: carrier tracking for an order."""

    event_type: Literal["shipment_status"]
    order_id: NonEmptyStr
    status: ShipmentStatus
    carrier: str | None = None
    shipping_mode: str | None = None
    order_time: AwareDatetime | None = None
    location: Location | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _not_before_order(self) -> ShipmentEvent:
        if self.order_time is not None and self.event_time < self.order_time:
            raise ValueError(f"{self.status} event is before the order was placed")
        return self


class WebAccess(_Event):
    """``ops_logs`` topic: one web access log line (the client IP is hashed at the source)."""

    event_type: Literal["web_access"]
    order_id: str | None = None
    client_hash: str | None = None
    url: Annotated[str, Field(max_length=4096)]
    department: str | None = None
    category: str | None = None
    product: str | None = None


IncidentKind = Literal["warehouse", "carrier", "system"]


class IncidentOpened(_Event):
    """``ops_logs`` topic: a warehouse, carrier or system incident started."""

    event_type: Literal["incident_opened"]
    incident_id: NonEmptyStr
    order_id: str | None = None
    kind: IncidentKind
    severity: Literal["low", "medium", "high"] = "medium"
    carrier: str | None = None
    location: Location | None = None
    description: str | None = None


class IncidentResolved(_Event):
    """``ops_logs`` topic: an incident was resolved (resolution time = resolved - opened)."""

    event_type: Literal["incident_resolved"]
    incident_id: NonEmptyStr
    order_id: str | None = None
    kind: IncidentKind
    resolution: str | None = None


_ORDER_EVENT = OrderPlaced
_PAYMENT_EVENT = PaymentEvent
_SHIPMENT_EVENT = ShipmentEvent
_OPS_EVENT = Annotated[
    WebAccess | IncidentOpened | IncidentResolved, Field(discriminator="event_type")
]

_ADAPTERS: dict[str, TypeAdapter] = {
    "orders": TypeAdapter(_ORDER_EVENT),
    "payments": TypeAdapter(_PAYMENT_EVENT),
    "shipments": TypeAdapter(_SHIPMENT_EVENT),
    "ops_logs": TypeAdapter(_OPS_EVENT),
}
_LIST_ADAPTERS: dict[str, TypeAdapter] = {
    "orders": TypeAdapter(list[_ORDER_EVENT]),
    "payments": TypeAdapter(list[_PAYMENT_EVENT]),
    "shipments": TypeAdapter(list[_SHIPMENT_EVENT]),
    "ops_logs": TypeAdapter(list[_OPS_EVENT]),
}

EVENT_TYPES_BY_TOPIC: dict[str, tuple[str, ...]] = {
    "orders": ("order_placed",),
    "payments": ("payment_captured", "payment_refused"),
    "shipments": ("shipment_status",),
    "ops_logs": ("web_access", "incident_opened", "incident_resolved"),
}

#: Largest event accepted on any topic; larger ones are quarantined without being parsed.
MAX_EVENT_BYTES = 256 * 1024


def topic_for_event_type(event_type: str) -> str:
    """Return the topic an event type is published on."""
    for topic, types in EVENT_TYPES_BY_TOPIC.items():
        if event_type in types:
            return topic
    raise KeyError(f"unknown event_type {event_type!r}")


@dataclass(frozen=True)
class ValidationResult:
    """The outcome for one event: the parsed event, or the reason it is invalid."""

    event: _Event | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the event satisfies its contract."""
        return self.event is not None


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in detail["loc"]) or "event"
        parts.append(f"{where}: {detail['msg']}")
    return "contract violation: " + "; ".join(parts)


def validate_event(topic: str, value: bytes | str | dict | None) -> ValidationResult:
    """Validate one event for ``topic``; never raises, returns the reason instead.

    Reasons start with a category (``empty``, ``too large``, ``invalid utf-8``, ``invalid json``,
    ``contract violation``) so quarantine rows can be grouped by what went wrong.
    """
    if topic not in _ADAPTERS:
        raise KeyError(f"unknown topic {topic!r}; expected one of {sorted(_ADAPTERS)}")
    if value is None or value in (b"", ""):
        return ValidationResult(None, "empty: the message has no value")
    if isinstance(value, dict):
        payload: object = value
    else:
        raw = value.encode() if isinstance(value, str) else value
        if len(raw) > MAX_EVENT_BYTES:
            return ValidationResult(
                None, f"too large: {len(raw)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return ValidationResult(None, f"invalid utf-8: {error.reason} at byte {error.start}")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            return ValidationResult(None, f"invalid json: {error.msg} at char {error.pos}")
    if not isinstance(payload, dict):
        return ValidationResult(
            None, f"invalid json: expected an object, got {type(payload).__name__}"
        )
    try:
        return ValidationResult(_ADAPTERS[topic].validate_python(payload), None)
    except ValidationError as error:
        return ValidationResult(None, _describe(error))


#: Events validated per pydantic-core call when a batch has to be narrowed down to its bad events.
_CHUNK = 2048


def _validate_array(topic: str, values: list[bytes]) -> list[_Event] | None:
    """All ``values`` validated in one pydantic-core call, or ``None`` if any of them is bad."""
    try:
        return _LIST_ADAPTERS[topic].validate_json(b"[" + b",".join(values) + b"]")  # type: ignore[no-any-return]
    except (ValidationError, ValueError):
        return None


def validate_events(
    topic: str, values: list[bytes | None]
) -> tuple[list[_Event | None], dict[int, str]]:
    """Validate a Kafka fetch; returns one event per value (``None`` if bad) and the reasons.

    The same verdicts and reasons as :func:`validate_event`, at batch speed: messages are joined
    into JSON arrays and parsed and validated by pydantic-core in Rust in one call, without Python
    JSON or per-event wrappers (this is the landing hot path). Messages that cannot be valid on
    their face (empty, too large, not an object) go straight to :func:`validate_event`. If an
    array holds a bad event, it is split into chunks and only the chunks that fail are validated
    event by event for their reasons, so one poison message costs its chunk, not the whole range.
    """
    if topic not in _LIST_ADAPTERS:
        raise KeyError(f"unknown topic {topic!r}; expected one of {sorted(_LIST_ADAPTERS)}")
    events: list[_Event | None] = [None] * len(values)
    reasons: dict[int, str] = {}
    plausible: list[int] = []
    for i, value in enumerate(values):
        if value and len(value) <= MAX_EVENT_BYTES and value[:1] == b"{":
            plausible.append(i)
        else:
            reasons[i] = validate_event(topic, value).reason or "invalid"
    with paused_gc():
        pending = [plausible] if plausible else []
        while pending:
            indices = pending.pop()
            parsed = _validate_array(topic, [values[i] for i in indices])  # type: ignore[misc]
            if parsed is not None:
                for i, event in zip(indices, parsed, strict=True):
                    events[i] = event
            elif len(indices) > _CHUNK:
                pending += [indices[j : j + _CHUNK] for j in range(0, len(indices), _CHUNK)]
            else:
                for i in indices:
                    result = validate_event(topic, values[i])
                    events[i] = result.event
                    if result.event is None:
                        reasons[i] = result.reason or "invalid"
    return events, reasons


def validate_batch(topic: str, values: list[bytes | None]) -> list[ValidationResult]:
    """Validate many events for ``topic`` at once; same results as :func:`validate_event`.

    See :func:`validate_events`, which this wraps in one :class:`ValidationResult` per value.
    """
    if not values:
        return []
    events, reasons = validate_events(topic, values)
    return [ValidationResult(event, reasons.get(i)) for i, event in enumerate(events)]


def event_time_of(event: _Event) -> datetime:
    """Business time of an event (for ordering replays)."""
    return event.event_time
