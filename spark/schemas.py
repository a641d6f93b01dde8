"""Spark schemas of the raw landing table and of each topic's event payload.

The payload column of a raw file is the validated contract event
(:mod:`scpro_assets.contracts.events`) serialised by pydantic, so these schemas mirror the
contracts field by field: times are ``TimestampType`` (ISO-8601 with a zone on the wire), money
and coordinates ``DoubleType``, counts ``IntegerType``/``LongType``. Parsing with an explicit
schema, rather than letting Spark infer one, keeps the column types stable when a batch happens to
lack a field (all-null columns would otherwise become strings) and ignores fields a newer producer
adds until the contract and this module learn them.

``ops_logs`` carries three event types; its schema is the union of their fields, the ones an event
type lacks being null.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _fields(*specs: tuple[str, object]) -> list[StructField]:
    return [StructField(name, kind, nullable=True) for name, kind in specs]  # type: ignore[arg-type]


#: Spark twin of ``scpro_assets.ingest.landing.RAW_SCHEMA`` (one landed event per row).
RAW_SPARK_SCHEMA = StructType(
    _fields(
        ("topic", StringType()),
        ("partition", IntegerType()),
        ("offset", LongType()),
        ("kafka_timestamp", TimestampType()),
        ("key", StringType()),
        ("event_id", StringType()),
        ("event_type", StringType()),
        ("event_time", TimestampType()),
        ("schema_version", ShortType()),
        ("source", StringType()),
        ("order_id", StringType()),
        ("payload", StringType()),
        ("landed_at", TimestampType()),
    )
)

#: Raw metadata columns, kept next to the parsed payload fields.
RAW_COLUMNS: tuple[str, ...] = tuple(RAW_SPARK_SCHEMA.fieldNames())

_LOCATION_FIELDS = (
    ("city", StringType()),
    ("state", StringType()),
    ("country", StringType()),
    ("zip_prefix", StringType()),
    ("lat", DoubleType()),
    ("lon", DoubleType()),
)

#: ``Location``: where something is, as far as it is known.
LOCATION = StructType(_fields(*_LOCATION_FIELDS))

#: ``Customer``: the pseudonymous id, the segment and the customer's location.
CUSTOMER = StructType(
    _fields(("customer_id", StringType()), ("segment", StringType()), *_LOCATION_FIELDS)
)

#: ``OrderItem``: one line of an order.
ORDER_ITEM = StructType(
    _fields(
        ("item_id", StringType()),
        ("product_id", StringType()),
        ("product_name", StringType()),
        ("category", StringType()),
        ("department", StringType()),
        ("seller_id", StringType()),
        ("quantity", LongType()),
        ("unit_price", DoubleType()),
        ("discount", DoubleType()),
        ("freight", DoubleType()),
        ("weight_g", DoubleType()),
    )
)

_ENVELOPE = (
    ("event_id", StringType()),
    ("event_type", StringType()),
    ("event_time", TimestampType()),
    ("schema_version", ShortType()),
    ("source", StringType()),
)

#: ``orders``: ``OrderPlaced``.
ORDER_PLACED = StructType(
    _fields(
        *_ENVELOPE,
        ("order_id", StringType()),
        ("customer", CUSTOMER),
        ("market", StringType()),
        ("region", StringType()),
        ("channel", StringType()),
        ("shipping_mode", StringType()),
        ("carrier", StringType()),
        ("origin", LOCATION),
        ("destination", LOCATION),
        ("promised_delivery_date", TimestampType()),
        ("scheduled_days", DoubleType()),
        ("payment_type", StringType()),
        ("items", ArrayType(ORDER_ITEM)),
    )
)

#: ``payments``: ``PaymentEvent`` (captured or refused).
PAYMENT = StructType(
    _fields(
        *_ENVELOPE,
        ("order_id", StringType()),
        ("payment_type", StringType()),
        ("installments", IntegerType()),
        ("sequence", IntegerType()),
        ("amount", DoubleType()),
    )
)

#: ``shipments``: ``ShipmentEvent`` (carrier tracking).
SHIPMENT = StructType(
    _fields(
        *_ENVELOPE,
        ("order_id", StringType()),
        ("status", StringType()),
        ("carrier", StringType()),
        ("shipping_mode", StringType()),
        ("order_time", TimestampType()),
        ("location", LOCATION),
        ("detail", StringType()),
    )
)

#: ``ops_logs``: union of ``WebAccess``, ``IncidentOpened`` and ``IncidentResolved``.
OPS_LOG = StructType(
    _fields(
        *_ENVELOPE,
        ("order_id", StringType()),
        # web_access
        ("client_hash", StringType()),
        ("url", StringType()),
        ("department", StringType()),
        ("category", StringType()),
        ("product", StringType()),
        # incident_opened / incident_resolved
        ("incident_id", StringType()),
        ("kind", StringType()),
        ("severity", StringType()),
        ("carrier", StringType()),
        ("location", LOCATION),
        ("description", StringType()),
        ("resolution", StringType()),
    )
)

#: Payload schema of each topic.
PAYLOAD_SCHEMAS: dict[str, StructType] = {
    "orders": ORDER_PLACED,
    "payments": PAYMENT,
    "shipments": SHIPMENT,
    "ops_logs": OPS_LOG,
}
