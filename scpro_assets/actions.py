"""Actions on at-risk orders (issue #15): what a person typed, as a contract event on Kafka.

The At-risk page turns a click into an :class:`~scpro_assets.contracts.events.OrderAction` with
:func:`new_action` and publishes it with :func:`publish_action` on the ``actions`` topic, keyed by
order id. From there it travels like every other event: the topic's sensor lands it exactly once,
dbt reads the landed ranges (``fct_order_actions``, deduplicated by event id) and the next
snapshot shows the order's status and owner.

Both functions raise with a message a person can act on, never a traceback: :class:`ActionRefused`
when what was typed cannot be an action (nothing is sent, the text stays on the page), and
:class:`ActionNotSent` when Kafka did not take it (nothing is recorded, the text stays too).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka.errors import KafkaError

from scpro_assets.contracts.events import (
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    OrderAction,
    validate_event,
)
from scpro_assets.kafka.clients import producer
from scpro_assets.settings import ACTIONS_TOPIC, KafkaSettings

#: The actions a person can take, with the words the page uses for them.
ACTION_LABELS: dict[str, str] = {
    "acknowledge": "Acknowledged",
    "assign": "Assigned",
    "note": "Note added",
    "resolve": "Resolved",
}

#: The ``source`` of every action event the dashboard sends.
SOURCE = "scpro-dashboard"

#: How long the page waits for Kafka's acknowledgement before saying the action was not sent.
PUBLISH_TIMEOUT_S = 10.0


class ActionRefused(ValueError):
    """What was typed cannot become an action; the message says why (nothing was sent)."""


class ActionNotSent(RuntimeError):
    """Kafka did not acknowledge the action; the message says so (nothing was recorded)."""


@dataclass(frozen=True)
class SentAction:
    """An action Kafka acknowledged, and where it is."""

    event: OrderAction
    partition: int
    offset: int


def _refuse_on_length(name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise ActionRefused(
            f"The {name} is {len(text):,} characters long; the limit is {limit:,}. "
            "Nothing was sent: shorten it and try again (your text is still there)."
        )


def new_action(
    order_id: str,
    action: str,
    actor: str,
    assignee: str | None = None,
    note: str | None = None,
    snapshot_version: str | None = None,
    now: datetime | None = None,
) -> OrderAction:
    """The action event for what a person did, validated by the ``actions`` contract.

    Texts are kept as typed (a note holding ``<b>`` is a note holding ``<b>``: it is escaped
    where shown, never interpreted); surrounding blanks of the ids and names are dropped. Raises
    :class:`ActionRefused` with a message for the page when the input cannot be an action.
    """
    order_id = (order_id or "").strip()
    assignee = (assignee or "").strip() or None
    note = note if note and note.strip() else None
    if not order_id:
        raise ActionRefused("Choose an order first (click its row, or type its id).")
    if action not in ACTION_LABELS:
        raise ActionRefused(f"Unknown action {action!r}: one of {', '.join(ACTION_LABELS)}.")
    if action == "assign" and assignee is None:
        raise ActionRefused("Say who takes the order: type a team or a person to assign it to.")
    if action == "note" and note is None:
        raise ActionRefused("The note is empty: type the note, then add it.")
    _refuse_on_length("note", note or "", MAX_NOTE_CHARS)
    _refuse_on_length("assignee", assignee or "", MAX_NAME_CHARS)
    payload = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_action",
        "event_time": (now or datetime.now(UTC)).isoformat(),
        "source": SOURCE,
        "order_id": order_id,
        "action": action,
        "actor": (actor or "").strip()[:MAX_NAME_CHARS] or "unknown",
        "assignee": assignee if action == "assign" else None,
        "note": note,
        "snapshot_version": snapshot_version,
    }
    result = validate_event(ACTIONS_TOPIC, payload)
    if not result.ok:
        raise ActionRefused(f"This action breaks the actions contract: {result.reason}")
    return result.event  # type: ignore[return-value]


def publish_action(
    settings: KafkaSettings, event: OrderAction, timeout_s: float = PUBLISH_TIMEOUT_S
) -> SentAction:
    """Send one action to the ``actions`` topic and wait for Kafka's acknowledgement.

    Acknowledged by every in-sync replica (``acks=all``) before the page says "sent". A retry
    by the client may write the event twice; ``fct_order_actions`` keeps each event id once.
    """
    client = None
    try:
        timeout_ms = int(timeout_s * 1000)
        client = producer(
            settings,
            linger_ms=0,
            # a partition without a leader for a moment (a new topic, a broker restarting) is
            # retried; the whole delivery still gives up within the timeout, so a person waits
            # at most that long and "not sent" means Kafka will not write it later
            retries=20,
            retry_backoff_ms=250,
            bootstrap_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,
            request_timeout_ms=timeout_ms // 2,
            delivery_timeout_ms=timeout_ms,
        )
        future = client.send(
            settings.topic_name(ACTIONS_TOPIC),
            key=event.order_id.encode(),
            value=event.model_dump_json().encode(),
        )
        metadata = future.get(timeout=timeout_s)
    except KafkaError as error:
        raise ActionNotSent(
            f"Kafka ({settings.bootstrap_servers}) did not take the action: "
            f"{type(error).__name__}. Nothing was recorded; your text is still there, "
            "try again in a moment."
        ) from error
    finally:
        if client is not None:
            client.close(timeout=2)
    return SentAction(event=event, partition=metadata.partition, offset=metadata.offset)
