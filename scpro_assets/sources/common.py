"""Building blocks shared by every source adapter.

An adapter turns rows of some dataset into :class:`SourceEvent` records (topic, key, event time,
contract-shaped payload) and reports every row it could not map in a :class:`MappingReport`, so
nothing is silently dropped.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scpro_assets.contracts.events import SCHEMA_VERSION, topic_for_event_type
from scpro_assets.settings import PrivacySettings


def stable_event_id(source: str, *parts: object) -> str:
    """Deterministic event id from the source name and the identity of the fact it records.

    Replaying the same data twice gives the same ids, which is what deduplication keys on.
    """
    digest = hashlib.sha256("\x1f".join([source, *map(str, parts)]).encode()).hexdigest()
    return f"{source}-{digest[:24]}"


@functools.cache
def _pii_key() -> bytes:
    """``SCPRO_PII_KEY`` (:class:`PrivacySettings`), read once per process.

    Sources call :func:`pseudonymise` for every row; reading the settings each time would cost
    more than the hash.
    """
    key = PrivacySettings().pii_key
    return key.get_secret_value().encode() if key else b""


def pseudonymise(value: object) -> str:
    """Hash a personal identifier (customer id, client IP) before it leaves the source.

    With ``SCPRO_PII_KEY`` set (a secret, from the environment) this is an HMAC-SHA256, so the
    hashes cannot be reversed by hashing guesses; without it, a plain namespaced SHA-256 that keeps
    joins working for local demos.
    """
    key = _pii_key()
    data = str(value).encode()
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]
    return hashlib.sha256(b"scpro-pii\x1f" + data).hexdigest()[:32]


def iso(ts: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, the wire format of every timestamp."""
    if ts.tzinfo is None:
        raise ValueError("timestamps on the wire must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, order=True)
class SourceEvent:
    """One contract event ready to publish: ordered by event time, then id."""

    event_time: datetime
    event_id: str
    topic: str = field(compare=False)
    key: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False, hash=False)

    def to_json(self) -> bytes:
        """The Kafka message value."""
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode()


def make_event(
    source: str,
    event_type: str,
    event_time: datetime,
    identity: tuple[object, ...],
    key: str,
    **fields: Any,
) -> SourceEvent:
    """Build a :class:`SourceEvent` with the envelope filled in.

    ``identity`` names the fact (e.g. order id and status) and makes the event id stable.
    """
    event_id = stable_event_id(source, event_type, *identity)
    payload = {
        "event_id": event_id,
        "event_type": event_type,
        "event_time": iso(event_time),
        "schema_version": SCHEMA_VERSION,
        "source": source,
        **fields,
    }
    return SourceEvent(
        event_time=event_time.astimezone(UTC),
        event_id=event_id,
        topic=topic_for_event_type(event_type),
        key=key,
        payload=payload,
    )


#: What every contract reason starts with (``scpro_assets.contracts.events``), then
#: ``location: message`` details joined with ``; ``.
CONTRACT_VIOLATION = "contract violation: "
#: A list position in a pydantic error location: the ``3`` of ``items.3.quantity`` or ``items.3``.
_POSITION = re.compile(r"(?<=\.)\d+(?=\.|$)")


def group_positions(reason: str) -> str:
    """``reason`` with every list position of its contract error locations written ``*``.

    One broken rule is one reason whichever line of an order breaks it: ``items.0.quantity`` and
    ``items.1.quantity`` both read ``items.*.quantity``, so a report counts them on one line
    instead of one line per position. Details repeated within one reason (several lines of an
    order breaking the same rule) are kept once. Other reasons are returned unchanged.
    """
    head, marker, details = reason.partition(CONTRACT_VIOLATION)
    if not marker:
        return reason
    parts: list[str] = []
    for detail in details.split("; "):
        where, colon, message = detail.partition(": ")
        part = _POSITION.sub("*", where) + colon + message
        if part not in parts:
            parts.append(part)
    return head + marker + "; ".join(parts)


@dataclass
class MappingReport:
    """What an adapter did with its input: rows read, events made, rows rejected and why."""

    source: str
    rows_read: int = 0
    events: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def reject(self, reason: str, where: str) -> None:
        """Count a row that could not be mapped, keeping the first example of each reason.

        Reasons are grouped by :func:`group_positions`; ``where`` keeps the exact row.
        """
        reason = group_positions(reason)
        self.rejected[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def rejected_total(self) -> int:
        """Number of rejected rows."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One human-readable paragraph for the CLI."""
        mix = ", ".join(f"{k}={v}" for k, v in sorted(self.events.items()))
        lines = [
            f"{self.source}: {self.rows_read} rows read, "
            f"{sum(self.events.values())} events ({mix}), {self.rejected_total} rows rejected"
        ]
        lines += [
            f"  rejected {n} x {reason} (first: {self.examples[reason]})"
            for reason, n in self.rejected.most_common()
        ]
        return "\n".join(lines)
