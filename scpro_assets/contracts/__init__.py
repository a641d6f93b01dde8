"""Event contracts: the one vocabulary every source is mapped into.

See :mod:`scpro_assets.contracts.events` for the models and :func:`validate_event` for the
validator that producers, the Kafka sensors' landing step and Spark share.
"""

from scpro_assets.contracts.events import (
    EVENT_TYPES_BY_TOPIC,
    SCHEMA_VERSION,
    Customer,
    IncidentOpened,
    IncidentResolved,
    Location,
    OrderAction,
    OrderItem,
    OrderPlaced,
    PaymentEvent,
    ShipmentEvent,
    ValidationResult,
    WebAccess,
    topic_for_event_type,
    validate_batch,
    validate_event,
    validate_events,
)

__all__ = [
    "EVENT_TYPES_BY_TOPIC",
    "SCHEMA_VERSION",
    "Customer",
    "IncidentOpened",
    "IncidentResolved",
    "Location",
    "OrderAction",
    "OrderItem",
    "OrderPlaced",
    "PaymentEvent",
    "ShipmentEvent",
    "ValidationResult",
    "WebAccess",
    "topic_for_event_type",
    "validate_batch",
    "validate_event",
    "validate_events",
]
