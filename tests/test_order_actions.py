"""The actions contract and the page's side of the exception queue, without a browser (fast).

An action is what a person did about an at-risk order: valid actions pass the ``actions``
contract, bad input is refused with a message and nothing sent, Kafka being down is said plainly,
and every text the queue shows is escaped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from scpro_assets.actions import ActionNotSent, ActionRefused, new_action, publish_action
from scpro_assets.contracts import topic_for_event_type, validate_batch, validate_event
from scpro_assets.contracts.events import MAX_NOTE_CHARS
from scpro_assets.settings import ACTIONS_TOPIC, BUSINESS_TOPICS, TOPICS, KafkaSettings

ACTION = {
    "event_id": "3f1c2b9e-8a4d-4e55-9b1a-0c2d3e4f5a6b",
    "event_type": "order_action",
    "event_time": "2026-11-30T08:00:00Z",
    "schema_version": 1,
    "order_id": "o-1",
    "action": "assign",
    "actor": "ana",
    "assignee": "Team Blue",
}


def _with(**changes):
    return json.dumps({**ACTION, **changes}).encode()


def test_actions_is_a_landed_topic_that_spark_does_not_clean():
    assert ACTIONS_TOPIC in TOPICS and ACTIONS_TOPIC not in BUSINESS_TOPICS
    assert topic_for_event_type("order_action") == "actions"


def test_valid_actions_pass_and_html_in_a_note_is_kept_as_text():
    note = '<script>alert("x")</script> call the carrier & the customer'
    result = validate_event("actions", _with(action="note", note=note, assignee=None))
    assert result.ok, result.reason
    assert result.event.note == note
    for action in ("acknowledge", "resolve"):
        assert validate_event("actions", _with(action=action, assignee=None)).ok


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"action": "escalate"}, "contract violation: action: Input should be 'acknowledge'"),
        ({"assignee": None}, "contract violation: event: Value error, an assign action needs"),
        ({"action": "note", "note": "  "}, "contract violation: event: Value error, a note action"),
        ({"note": "x" * (MAX_NOTE_CHARS + 1)}, "contract violation: note: String should have at"),
        ({"actor": ""}, "contract violation: actor: String should have at least 1 character"),
        ({"order_id": ""}, "contract violation: order_id: String should have at least 1"),
        ({"schema_version": 2}, "contract violation: schema_version: Input should be 1"),
        ({"event_time": "2026-11-30T08:00:00"}, "contract violation: event_time: Input should"),
    ],
)
def test_invalid_actions_say_why(changes, reason):
    result = validate_event("actions", _with(**changes))
    assert not result.ok
    assert result.reason.startswith(reason), result.reason


def test_batch_validation_agrees_with_single_validation_on_actions():
    values = [_with(), _with(action="escalate"), b"{", _with(event_id="another-event-id")]
    batch = validate_batch("actions", values)
    assert [r.reason for r in batch] == [validate_event("actions", v).reason for v in values]
    assert [r.ok for r in batch] == [True, False, False, True]


def test_new_action_builds_a_contract_event_on_the_wall_clock():
    before = datetime.now(UTC)
    event = new_action(" o-1 ", "assign", "ana", assignee=" Team Blue ", snapshot_version="v7")
    assert (event.order_id, event.action, event.assignee, event.actor) == (
        "o-1",
        "assign",
        "Team Blue",
        "ana",
    )
    assert before <= event.event_time <= datetime.now(UTC)
    assert event.snapshot_version == "v7" and len(event.event_id) == 36
    assert new_action("o-1", "assign", "ana", assignee="x").event_id != event.event_id
    # an assignee typed next to another action is not the order's owner
    assert new_action("o-1", "acknowledge", "ana", assignee="Team Blue").assignee is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_id": " "}, "Choose an order first"),
        ({"action": "escalate"}, "Unknown action 'escalate'"),
        ({"action": "assign"}, "Say who takes the order"),
        ({"action": "note", "note": " \n "}, "The note is empty"),
        (
            {"action": "note", "note": "x" * 1234},
            "The note is 1,234 characters long; the limit is 1,000.",
        ),
        ({"action": "assign", "assignee": "y" * 121}, "The assignee is 121 characters long"),
    ],
)
def test_bad_input_is_refused_with_a_message(kwargs, message):
    args = {"order_id": "o-1", "action": "acknowledge", "actor": "ana", **kwargs}
    with pytest.raises(ActionRefused, match="^" + message.replace("(", r"\(")):
        new_action(**args)


def test_kafka_down_is_said_plainly_and_nothing_is_recorded(free_port):
    event = new_action("o-1", "note", "ana", note="call them")
    dead = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port}")
    with pytest.raises(ActionNotSent, match=r"did not take the action.*your text is still there"):
        publish_action(dead, event, timeout_s=2)


def test_the_trail_escapes_every_text_and_shows_unsnapshotted_sends():
    from panel_app.views.action_queue import trail_html
    from scpro_assets.actions import SentAction

    hostile = '<img src=x onerror="alert(1)">'
    trail = pd.DataFrame(
        [
            {
                "action_id": "a1",
                "acted_at": pd.Timestamp("2026-11-30 08:00:00"),
                "action": "assign",
                "actor": "<b>ana</b>",
                "assignee": hostile,
                "note": None,
                "is_after_resolution": False,
                "snapshot_version": "v1",
            }
        ]
    )
    sent = SentAction(new_action("o-1", "note", "bob", note=hostile), partition=0, offset=5)
    page = trail_html("o-1", trail, [sent])
    assert "<img" not in page and "<b>ana" not in page
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") == 2
    assert "Note added (sent, not in a snapshot yet)" in page
    # once a snapshot holds the sent action, it shows once, as done
    landed = pd.concat(
        [trail, trail.assign(action_id=sent.event.event_id, action="note", note=hostile)]
    )
    assert "not in a snapshot yet" not in trail_html("o-1", landed, [sent])
    assert "&lt;script&gt;" in trail_html("<script>", trail.iloc[0:0], [])


def test_waiting_time_reads_like_a_person_would_say_it():
    from panel_app.queue_store import waited

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert waited(pd.Timestamp("2026-11-30 11:48:00"), now) == "12 min"
    assert waited(now - timedelta(hours=3, minutes=5), now) == "3 h 05 min"
    assert waited(now - timedelta(days=2, hours=4), now) == "2 d 4 h"
    assert waited(None, now) == waited(pd.NaT, now) == "—"
