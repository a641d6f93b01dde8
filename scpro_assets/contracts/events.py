"""Versioned event contracts (schema version 1) for the Kafka topics.

Every event carries ``event_id`` (stable across replays, the deduplication key), ``event_type``,
``event_time`` (when it happened in the business, timezone-aware) and ``schema_version``.
Personal data never enters a contract: customer ids are pseudonymised (hashed) by the producer,
and names, e-mails, passwords and street addresses have no field here, so they are dropped.

Validation is done by pydantic-core in Rust. :func:`validate_events` validates a whole Kafka fetch
in a few calls and validates event by event only the events a call rejects, to find the reasons,
which keeps the ingest path close to the speed of a bare consumer. Neither it nor
:func:`validate_event` raises for any message: whatever the bytes, the answer is an event or a
reason (nesting depth, size, encoding, JSON, contract).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import from_json

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


ActionKind = Literal["acknowledge", "assign", "note", "resolve"]

#: Longest note an action may carry: a few paragraphs, not a document (a longer one is refused by
#: the page with the count, so nothing typed is silently cut).
MAX_NOTE_CHARS = 1000

#: Longest assignee (a team or a person's name) and actor (a login) accepted.
MAX_NAME_CHARS = 120

PersonOrTeam = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class OrderAction(_Event):
    """``actions`` topic: what a person did about an at-risk order on the dashboard.

    ``event_time`` is the wall clock when the person acted (not the business time of a replayed
    stream), so an action's age and the time from high risk to the first action are measured on
    one clock. Texts are stored as typed: a note holding HTML is data, escaped wherever shown.
    """

    event_type: Literal["order_action"]
    order_id: NonEmptyStr
    action: ActionKind
    actor: PersonOrTeam
    assignee: PersonOrTeam | None = None
    note: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] | None = None
    #: The serving snapshot the person was looking at when they acted (for the audit trail).
    snapshot_version: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _what_the_action_needs(self) -> OrderAction:
        if self.action == "assign" and (self.assignee is None or not self.assignee.strip()):
            raise ValueError("an assign action needs an assignee")
        if self.action == "note" and (self.note is None or not self.note.strip()):
            raise ValueError("a note action needs a note")
        return self


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
    "actions": TypeAdapter(OrderAction),
}
#: A fetch validated in one pydantic-core call, each message parsed as JSON on its own (``Json``):
#: joining messages into one JSON array let a message such as ``{...},{...}`` or an unterminated
#: string shift the array's items onto its neighbours' offsets.
_LIST_ADAPTERS: dict[str, TypeAdapter] = {
    "orders": TypeAdapter(list[Json[_ORDER_EVENT]]),
    "payments": TypeAdapter(list[Json[_PAYMENT_EVENT]]),
    "shipments": TypeAdapter(list[Json[_SHIPMENT_EVENT]]),
    "ops_logs": TypeAdapter(list[Json[_OPS_EVENT]]),
    "actions": TypeAdapter(list[Json[OrderAction]]),
}

EVENT_TYPES_BY_TOPIC: dict[str, tuple[str, ...]] = {
    "orders": ("order_placed",),
    "payments": ("payment_captured", "payment_refused"),
    "shipments": ("shipment_status",),
    "ops_logs": ("web_access", "incident_opened", "incident_resolved"),
    "actions": ("order_action",),
}

#: Largest event accepted on any topic; larger ones are quarantined without being parsed.
MAX_EVENT_BYTES = 256 * 1024

#: Deepest nesting of JSON arrays and objects accepted in a message. A contract event is three
#: levels deep (an order, its items, an item); the limit leaves producers room for extra fields
#: (which are dropped) and stays far below the JSON parser's own limit (200 levels), so a deeply
#: nested message is quarantined as ``too deep`` by SCPro's rule, not by a parser's accident.
MAX_JSON_DEPTH = 64

#: Errors that validating a message can raise because of what it holds. Validation is computation
#: on the message alone (no I/O), so any of these is the message's fault, never the platform's.
_CONTENT_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError)

#: Longest reason kept for a quarantine row (a message can make pydantic quote long inputs).
_MAX_REASON_CHARS = 1000


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


def printable_reason(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    """``text`` as valid UTF-8 of bounded length, whatever it quotes from a message.

    Lone surrogates (which Python strings can hold and UTF-8 cannot) are escaped, so a reason can
    always be written to Parquet.
    """
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in detail["loc"]) or "event"
        parts.append(f"{where}: {detail['msg']}")
    return printable_reason("contract violation: " + "; ".join(parts))


#: Nesting step of each byte value: +1 opens an array or object, -1 closes one.
_NESTING_STEP = np.zeros(256, np.int8)
_NESTING_STEP[list(b"[{")], _NESTING_STEP[list(b"]}")] = 1, -1


def _nesting_depth(raw: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text (brackets inside strings ignored).

    Once escaped backslashes and quotes are dropped, every quote left opens or closes a string,
    so a byte is outside strings where the count of quotes before it is even. The depth is the
    largest running sum of the brackets' steps there: vectorised, without recursion, a few
    milliseconds for 256 KB however it nests.
    """
    text = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), np.uint8)
    outside_strings = np.cumsum(text == ord('"')) % 2 == 0
    steps = np.where(outside_strings, _NESTING_STEP[text], 0)
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def _shallow(raw: bytes) -> bool:
    """True if ``raw`` nests at most :data:`MAX_JSON_DEPTH` levels.

    Counting the opening brackets is a quick upper bound that clears nearly every event; only
    messages with more brackets than the limit are measured exactly.
    """
    return raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH or (
        _nesting_depth(raw) <= MAX_JSON_DEPTH
    )


def _message_bytes(value: object) -> bytes | str:
    """The message as bytes, or the reason it cannot be one (a ``str`` starting with a category)."""
    if value is None:
        return "empty: the message has no value"
    if isinstance(value, str):
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError as error:
            return f"invalid utf-8: {error.reason} at char {error.start}"
    elif isinstance(value, bytearray | memoryview):
        value = bytes(value)
    elif not isinstance(value, bytes):
        return f"invalid json: expected an object, got {type(value).__name__}"
    return value if value else "empty: the message has no value"


def _unreadable(raw: bytes) -> str | None:
    """Why ``raw`` cannot be parsed as an event (size, encoding, nesting), or ``None``."""
    if len(raw) > MAX_EVENT_BYTES:
        return f"too large: {len(raw)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"invalid utf-8: {error.reason} at byte {error.start}"
    if not _shallow(raw):
        return f"too deep: more than {MAX_JSON_DEPTH} levels of nested arrays and objects"
    return None


def _json_type(payload: object) -> str:
    return "null" if payload is None else type(payload).__name__


def _validate_payload(topic: str, payload: dict) -> ValidationResult:
    try:
        return ValidationResult(_ADAPTERS[topic].validate_python(payload), None)
    except ValidationError as error:
        return ValidationResult(None, _describe(error))
    except _CONTENT_ERRORS as error:  # raised by a validator rather than reported by pydantic
        return ValidationResult(
            None, printable_reason(f"contract violation: {type(error).__name__}: {error}")
        )


def validate_event(topic: str, value: object) -> ValidationResult:
    """Validate one event for ``topic``; never raises for any value, returns the reason instead.

    ``value`` is a Kafka message (bytes; ``str`` is encoded as UTF-8) or an already parsed
    ``dict``. Reasons start with a category (``empty``, ``too large``, ``invalid utf-8``,
    ``too deep``, ``invalid json``, ``contract violation``) so quarantine rows can be grouped by
    what went wrong. Messages are parsed by pydantic-core's JSON parser, the one
    :func:`validate_events` uses, so both agree on every message (big numbers, ``NaN``, escaped
    lone surrogates, duplicate keys). Only an unknown ``topic`` raises (``KeyError``): that is a
    caller's mistake, not a message's.
    """
    if topic not in _ADAPTERS:
        raise KeyError(f"unknown topic {topic!r}; expected one of {sorted(_ADAPTERS)}")
    if isinstance(value, dict):
        return _validate_payload(topic, value)
    raw = _message_bytes(value)
    if isinstance(raw, str):
        return ValidationResult(None, raw)
    reason = _unreadable(raw)
    if reason is not None:
        return ValidationResult(None, reason)
    try:
        payload = from_json(raw)
    except _CONTENT_ERRORS as error:
        return ValidationResult(None, printable_reason(f"invalid json: {error}"))
    if not isinstance(payload, dict):
        return ValidationResult(
            None, f"invalid json: expected an object, got {_json_type(payload)}"
        )
    return _validate_payload(topic, payload)


def _plausible(value: object) -> bool:
    """Whether a message may be valid on its face, so it can go through the batch call."""
    return (
        isinstance(value, bytes)
        and 0 < len(value) <= MAX_EVENT_BYTES
        and value[:1] == b"{"
        and _shallow(value)
    )


def _failed_items(error: ValidationError, count: int) -> set[int]:
    """Positions of the items a batch call rejected (all of them if pydantic does not say)."""
    failed = {
        detail["loc"][0]
        for detail in error.errors(include_url=False, include_context=False, include_input=False)
        if detail["loc"] and isinstance(detail["loc"][0], int)
    }
    return {i for i in failed if 0 <= i < count} or set(range(count))


#: Messages validated per pydantic-core call: bounds what one rejected call costs to redo.
_CHUNK = 2048


def validate_events(
    topic: str, values: list[bytes | None]
) -> tuple[list[_Event | None], dict[int, str]]:
    """Validate a Kafka fetch; returns one event per value (``None`` if bad) and the reasons.

    The same verdicts and reasons as :func:`validate_event`, at batch speed: the messages are
    parsed and validated by pydantic-core in Rust, :data:`_CHUNK` per call, each message parsed on
    its own, without Python JSON or per-event wrappers (this is the landing hot path). Messages
    that cannot be valid on their face (empty, too large, too deep, not an object) go straight to
    :func:`validate_event`. When a call rejects messages, pydantic names them: only those are
    validated one by one for their reasons, and the rest of the chunk is validated again in one
    call, so a poison message costs one extra call. Never raises for any value.
    """
    if topic not in _LIST_ADAPTERS:
        raise KeyError(f"unknown topic {topic!r}; expected one of {sorted(_LIST_ADAPTERS)}")
    adapter = _LIST_ADAPTERS[topic]
    events: list[_Event | None] = [None] * len(values)
    reasons: dict[int, str] = {}

    def one_by_one(indices: Iterable[int]) -> None:
        for i in indices:
            result = validate_event(topic, values[i])
            events[i] = result.event
            if result.event is None:
                reasons[i] = result.reason or "invalid"

    plausible: list[int] = []
    for i, value in enumerate(values):
        if _plausible(value):
            plausible.append(i)
        else:
            one_by_one([i])
    with paused_gc():
        for start in range(0, len(plausible), _CHUNK):
            pending = plausible[start : start + _CHUNK]
            while pending:
                try:
                    parsed = adapter.validate_python([values[i] for i in pending])
                except ValidationError as error:
                    failed = _failed_items(error, len(pending))
                except _CONTENT_ERRORS:  # not attributed to an item: find the culprits one by one
                    failed = set(range(len(pending)))
                else:
                    for i, event in zip(pending, parsed, strict=True):
                        events[i] = event
                    break
                one_by_one(pending[k] for k in sorted(failed))
                pending = [i for k, i in enumerate(pending) if k not in failed]
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
