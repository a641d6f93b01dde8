"""Event contracts: valid events pass, invalid ones come back with the reason."""

from __future__ import annotations

import json

import pytest

from scpro_assets.contracts import topic_for_event_type, validate_batch, validate_event

ORDER = {
    "event_id": "order-event-1",
    "event_type": "order_placed",
    "event_time": "2024-03-01T10:00:00Z",
    "schema_version": 1,
    "order_id": "o-1",
    "customer": {"customer_id": "c-hash", "segment": "Consumer"},
    "promised_delivery_date": "2024-03-05T10:00:00Z",
    "items": [{"item_id": "i-1", "product_id": "p-1", "quantity": 2, "unit_price": 9.5}],
}


def _with(**changes):
    return json.dumps({**ORDER, **changes}).encode()


def test_valid_order_passes_and_unknown_fields_are_dropped():
    result = validate_event("orders", _with(customer_email="someone@example.com"))
    assert result.ok and result.reason is None
    assert "customer_email" not in result.event.model_dump_json()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty: the message has no value"),
        (b"\xff", "invalid utf-8: invalid start byte at byte 0"),
        (b"[1, 2]", "invalid json: expected an object, got list"),
        (_with(schema_version=2), "contract violation: schema_version: Input should be 1"),
        (
            _with(event_time="2024-03-01T10:00:00"),
            "contract violation: event_time: Input should have timezone info",
        ),
        (
            _with(promised_delivery_date="2024-02-01T00:00:00Z"),
            "contract violation: event: Value error, promised_delivery_date is before the order was placed",
        ),
        (
            _with(items=[]),
            "contract violation: items: List should have at least 1 item after validation, not 0",
        ),
        (
            _with(
                items=[
                    {
                        "item_id": "i",
                        "product_id": "p",
                        "quantity": 1,
                        "unit_price": 5,
                        "discount": 9,
                    }
                ]
            ),
            "contract violation: items.0: Value error, discount exceeds the line's price",
        ),
    ],
)
def test_invalid_events_say_why(value, reason):
    result = validate_event("orders", value)
    assert not result.ok
    assert result.reason == reason


def test_batch_matches_single_validation_and_finds_the_bad_one():
    values = [_with(), _with(order_id=""), b"nope", _with(event_id="order-event-2")]
    batch = validate_batch("orders", values)
    single = [validate_event("orders", v) for v in values]
    assert [r.reason for r in batch] == [r.reason for r in single]
    assert [r.ok for r in batch] == [True, False, False, True]


def test_ops_logs_are_a_discriminated_union():
    base = {"event_id": "incident-1", "event_time": "2024-03-01T10:00:00Z", "incident_id": "inc-1"}
    opened = validate_event(
        "ops_logs", {**base, "event_type": "incident_opened", "kind": "carrier"}
    )
    assert opened.ok and type(opened.event).__name__ == "IncidentOpened"
    wrong = validate_event("ops_logs", {**base, "event_type": "incident_closed", "kind": "carrier"})
    assert "does not match any of the expected tags" in wrong.reason


def test_every_event_type_belongs_to_one_topic():
    assert topic_for_event_type("payment_refused") == "payments"
    assert topic_for_event_type("incident_resolved") == "ops_logs"
    with pytest.raises(KeyError):
        topic_for_event_type("order_shipped")


def test_bad_events_deep_in_a_large_batch_are_found_chunk_by_chunk(monkeypatch):
    """One poison message among thousands: same verdicts as one by one, good events kept."""
    from scpro_assets.contracts import events, validate_events

    monkeypatch.setattr(events, "_CHUNK", 16)
    values = [_with(event_id=f"order-event-{i:05d}") for i in range(100)]
    values[37] = _with(order_id="")
    values[80] = b'{"event_id": '
    values[81] = None
    found, reasons = validate_events("orders", values)
    single = [validate_event("orders", v) for v in values]
    assert reasons == {i: r.reason for i, r in enumerate(single) if not r.ok}
    assert sorted(reasons) == [37, 80, 81]
    assert [e is not None for e in found] == [r.ok for r in single]
    assert found[0] == single[0].event


def test_batch_drops_unknown_fields_like_single_validation():
    from scpro_assets.contracts import validate_events

    (event,), reasons = validate_events("orders", [_with(customer_email="someone@example.com")])
    assert not reasons
    assert "customer_email" not in event.model_dump_json()
