"""Landing never raises on a record's content, and no implausible event time reaches raw.

Issue #14: one message nested a few thousand levels deep made landing raise, so its range failed
on every retry and never landed; one order dated 2099 moved the dashboard's "Data as of". The
property-based tests (hypothesis) fuzz validation and ``chunk_rows``, the pure step from a chunk
of records to its raw and quarantine rows, with stand-in records; one test lands a hostile range
from the real broker.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scpro_assets.contracts.events import (
    MAX_EVENT_BYTES,
    MAX_JSON_DEPTH,
    validate_event,
    validate_events,
)
from scpro_assets.ingest import landing
from scpro_assets.ingest.landing import (
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    OffsetRange,
    RangeUnavailableError,
    chunk_rows,
    land_range,
)
from scpro_assets.settings import TOPICS, KafkaSettings, LandingSettings

#: The landing time of the pure tests (a fixed clock, so every example is reproducible).
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CATEGORIES = {
    "empty",
    "too large",
    "invalid utf-8",
    "too deep",
    "invalid json",
    "contract violation",
    "unstorable",
    "event_time in the future",
    "event_time before floor",
}
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID: dict[str, dict] = {
    "orders": {
        "event_id": "order-event-1",
        "event_type": "order_placed",
        "event_time": "2024-03-01T10:00:00Z",
        "order_id": "o-1",
        "customer": {"customer_id": "c-hash", "city": "Venlo"},
        "promised_delivery_date": "2024-03-05T10:00:00Z",
        "items": [{"item_id": "i-1", "product_id": "p-1", "quantity": 2, "unit_price": 9.5}],
    },
    "payments": {
        "event_id": "payment-event-1",
        "event_type": "payment_captured",
        "event_time": "2024-03-01T10:05:00Z",
        "order_id": "o-1",
        "payment_type": "card",
        "amount": 19.0,
    },
    "shipments": {
        "event_id": "shipment-event-1",
        "event_type": "shipment_status",
        "event_time": "2024-03-02T08:00:00Z",
        "order_id": "o-1",
        "status": "shipped",
        "order_time": "2024-03-01T10:00:00Z",
    },
    "ops_logs": {
        "event_id": "web-access-1",
        "event_type": "web_access",
        "event_time": "2024-03-01T09:58:00Z",
        "url": "/product/p-1",
    },
    "actions": {
        "event_id": "action-event-1",
        "event_type": "order_action",
        "event_time": "2024-03-02T09:00:00Z",
        "order_id": "o-1",
        "action": "assign",
        "actor": "ana",
        "assignee": "Team Red",
        "note": "<b>call the carrier</b>",
    },
}


@dataclass(frozen=True)
class FakeMessage:
    """A stand-in for confluent-kafka's ``Message``: what landing reads from a record."""

    raw_value: bytes | None
    raw_key: bytes | None
    at: int
    stamp: tuple[int, int]

    def value(self) -> bytes | None:
        return self.raw_value

    def key(self) -> bytes | None:
        return self.raw_key

    def offset(self) -> int:
        return self.at

    def timestamp(self) -> tuple[int, int]:
        return self.stamp


# --- strategies ------------------------------------------------------------------------------

#: Any code point, lone surrogates included (hypothesis leaves them out of text by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=16,
)


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy = json_values) -> bytes:
    """A value as JSON text the way a careless producer might write it.

    ``ensure_ascii`` writes lone surrogates as ``\\ud800`` escapes; without it they become bytes
    that are not UTF-8 (``surrogatepass``). ``allow_nan`` writes the ``NaN``/``Infinity`` tokens.
    """
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


#: Raw JSON fragments that break parsers: deep nesting, huge numbers and strings, bad escapes.
hostile_fragments = st.one_of(
    st.builds(_nested, st.integers(1, 6000), st.sampled_from(["array", "object"])),
    st.integers(1, 6000).map(lambda n: b"9" * n),
    st.integers(300, 400).map(lambda n: b"1e" + str(n).encode()),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"-0", b"1e-400"]),
    st.sampled_from([0, 100, MAX_EVENT_BYTES - 500, MAX_EVENT_BYTES, 300_000]).map(
        lambda n: b'"' + b"x" * n + b'"'
    ),
    st.sampled_from(
        [
            b'"\\ud800"',
            b'"\\udc00x"',
            b'"\\ud83d\\ude00"',
            b'"a\\u0000b"',
            b'"a\x00b"',
            b'"\xf0\x9f\x98\x80"',
        ]
    ),
    st.binary(max_size=40).map(lambda junk: b'"' + junk.replace(b'"', b"") + b'"'),
    encoded(),
)
hostile_keys = st.one_of(
    st.binary(max_size=8).map(
        lambda junk: b'"' + junk.replace(b'"', b"").replace(b"\\", b"") + b'"'
    ),
    st.sampled_from([b'"\\ud800"', b'"event_id"', b'"amount"', b'"event_time"', b'""']),
    any_text.map(lambda k: json.dumps(k).encode()),
)
event_times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]),
)


@st.composite
def hostile_event(draw: st.DrawFn, topic: str) -> bytes:
    """A valid event of ``topic`` with one hostile change spliced into its bytes."""
    base = dict(VALID[topic])
    base["event_id"] = f"{topic}-{draw(st.integers(0, 10**6)):07d}"
    change = draw(st.sampled_from(["value", "extra", "duplicate", "event_time", "none"]))
    if change == "event_time":
        base["event_time"] = draw(event_times).isoformat()
        return json.dumps(base).encode()
    if change == "none":
        return json.dumps(base).encode()
    fragment = draw(hostile_fragments)
    if change == "value":
        field = draw(st.sampled_from(sorted(base)))
        return json.dumps({**base, field: "__X__"}).encode().replace(b'"__X__"', fragment)
    key = (
        draw(hostile_keys)
        if change == "extra"
        else json.dumps(draw(st.sampled_from(sorted(base)))).encode()
    )
    return json.dumps(base).encode()[:-1] + b", " + key + b": " + fragment + b"}"


@st.composite
def messages(draw: st.DrawFn, topic: str) -> bytes | None:
    """Any record value: hostile events, JSON of any shape, raw bytes, glued or empty messages."""
    kind = draw(st.sampled_from(["event", "event", "event", "json", "bytes", "glued", "empty"]))
    if kind == "event":
        return draw(hostile_event(topic))
    if kind == "json":
        return draw(encoded())
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "glued":  # two messages in one, or one with something after it
        first = draw(hostile_event(topic))
        return first + draw(st.sampled_from([b",", b" ", b"]", b"\n"])) + draw(hostile_event(topic))
    return draw(st.sampled_from([None, b""]))


@st.composite
def chunks(draw: st.DrawFn) -> tuple[str, list[FakeMessage], LandingSettings]:
    """A topic, a chunk of stand-in records from offset 1000 on, and the event-time settings."""
    topic = draw(st.sampled_from(TOPICS))
    values = draw(st.lists(messages(topic), min_size=1, max_size=12))
    stamps = st.one_of(
        st.just((0, -1)),  # a record without a timestamp: compared with the landing time
        st.integers(NOW_MS - 10**12, NOW_MS + 10**9).map(lambda ms: (1, ms)),
        st.integers(0, NOW_MS).map(lambda ms: (2, ms)),
    )
    records = [
        FakeMessage(
            value, draw(st.one_of(st.none(), st.binary(max_size=6))), 1000 + i, draw(stamps)
        )
        for i, value in enumerate(values)
    ]
    settings_ = LandingSettings(
        event_time_tolerance_hours=draw(st.sampled_from([0, 1, 24, 24 * 365])),
        event_time_floor=draw(
            st.sampled_from(
                [datetime(2000, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, 10, tzinfo=UTC)]
            )
        ),
    )
    return topic, records, settings_


def _expected_in_raw(record: FakeMessage, topic: str, sanity: LandingSettings) -> bool:
    """The rule, restated with datetimes: valid, not before the floor, not after its reference."""
    result = validate_event(topic, record.value())
    if not result.ok:
        return False
    kind, ms = record.timestamp()
    reference = min(ms, NOW_MS) if kind else NOW_MS
    event_time = result.event.event_time
    try:
        utc = event_time.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC: far outside any floor or clock
        return False
    limit = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=reference)
    limit += timedelta(hours=sanity.event_time_tolerance_hours)
    return sanity.event_time_floor <= utc <= limit


def _category(reason: str) -> str:
    return reason.split(":")[0]


# --- validation ------------------------------------------------------------------------------


@FUZZ
@given(topic=st.sampled_from(TOPICS), data=st.data())
def test_validate_event_never_raises_and_always_says_why(topic, data):
    value = data.draw(
        st.one_of(
            messages(topic),
            encoded().map(lambda b: b.decode("utf-8", "surrogatepass")),  # str, surrogates too
            json_values,  # any Python value, dicts included
            st.builds(bytearray, st.binary(max_size=30)),
        )
    )
    result = validate_event(topic, value)
    assert result.ok == (result.reason is None)
    if not result.ok:
        assert _category(result.reason) in CATEGORIES, result.reason
        assert len(result.reason) <= 1000
        result.reason.encode("utf-8")  # storable as Parquet text: no lone surrogate


@FUZZ
@given(topic=st.sampled_from(TOPICS), data=st.data())
def test_batch_gives_the_verdicts_and_reasons_of_one_by_one(topic, data):
    values = data.draw(st.lists(messages(topic), max_size=12))
    events, reasons = validate_events(topic, values)
    single = [validate_event(topic, v) for v in values]
    assert reasons == {i: r.reason for i, r in enumerate(single) if not r.ok}
    assert events == [r.event for r in single]


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


#: Strings made of what confuses a bracket counter: brackets, quotes and backslashes.
tricky_text = st.text(st.sampled_from('[]{}"\\a\ud800'), max_size=8)


@FUZZ
@given(
    value=st.recursive(
        tricky_text | st.integers(),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
        ),
        max_leaves=30,
    ),
    ascii_only=st.booleans(),
)
def test_nesting_depth_counts_structure_not_brackets_in_strings(value, ascii_only):
    from scpro_assets.contracts.events import _nesting_depth

    text = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _nesting_depth(text) == _depth(value)


def test_depth_limit_is_the_same_in_the_batch_and_alone():
    def order(depth: int) -> bytes:
        return (
            json.dumps(VALID["orders"]).encode()[:-1]
            + b', "x": '
            + _nested(depth - 1, "array")
            + b"}"
        )

    at_limit, beyond = order(MAX_JSON_DEPTH), order(MAX_JSON_DEPTH + 1)
    events, reasons = validate_events("orders", [at_limit, beyond, at_limit])
    assert [e is not None for e in events] == [True, False, True]
    assert reasons == {
        1: f"too deep: more than {MAX_JSON_DEPTH} levels of nested arrays and objects"
    }
    assert validate_event("orders", at_limit).ok
    # Brackets inside strings are text, not nesting.
    assert validate_event("orders", json.dumps({**VALID["orders"], "note": "[" * 5000}).encode()).ok


def test_a_message_holding_two_events_cannot_shift_its_neighbours():
    """Joining messages into one JSON array let `{a},{b}` take its neighbour's offset."""
    one, two = (
        json.dumps({**VALID["payments"], "event_id": f"payment-{i}"}).encode() for i in (1, 2)
    )
    opened, closer = b'{"event_id": "x', b'"}'
    events, reasons = validate_events("payments", [one + b"," + two, opened, closer, two])
    assert sorted(reasons) == [0, 1, 2]
    assert reasons[0].startswith("invalid json: trailing characters")
    assert events[3].event_id == "payment-2"


# --- landing a chunk -------------------------------------------------------------------------


@FUZZ
@given(chunk=chunks())
def test_every_record_lands_or_is_quarantined_with_a_reason(chunk):
    topic, records, sanity = chunk
    rows = chunk_rows(OffsetRange(topic, 0, 1000, 1000 + len(records)), records, NOW, sanity)

    assert rows.raw.schema == RAW_SCHEMA and rows.quarantine.schema == QUARANTINE_SCHEMA
    raw_offsets = rows.raw.column("offset").to_pylist()
    held = dict(
        zip(rows.quarantine.column("offset").to_pylist(), rows.quarantine.to_pylist(), strict=True)
    )
    # landed + quarantined = the chunk (no record is expired or already landed here)
    assert sorted(raw_offsets + list(held)) == [r.offset() for r in records]
    for record in records:
        assert (record.offset() in raw_offsets) == _expected_in_raw(record, topic, sanity)
        if record.offset() in held:
            row = held[record.offset()]
            assert _category(row["reason"]) in CATEGORIES, row["reason"]
            assert row["payload_raw"] == record.value() and row["key"] == record.key()
    # No landed event can move the data's clock past its reference, or before the floor.
    limit = NOW + timedelta(hours=sanity.event_time_tolerance_hours)
    assert all(
        sanity.event_time_floor <= t <= limit for t in rows.raw.column("event_time").to_pylist()
    )
    for table in (rows.raw, rows.quarantine):  # both tables can be written as they are
        pq.write_table(table, io.BytesIO())


@pytest.mark.parametrize(
    ("event_time", "stamp", "where"),
    [
        (NOW + timedelta(hours=24), (1, NOW_MS), "raw"),  # exactly the tolerance: accepted
        (NOW + timedelta(hours=24, microseconds=1), (1, NOW_MS), "event_time in the future"),
        (NOW - timedelta(hours=1), (1, NOW_MS - 26 * 3_600_000), "event_time in the future"),
        (NOW + timedelta(hours=23), (1, NOW_MS + 10 * 3_600_000), "raw"),  # stamp ahead: now
        (NOW + timedelta(hours=25), (1, NOW_MS + 10 * 3_600_000), "event_time in the future"),
        (NOW + timedelta(hours=25), (0, -1), "event_time in the future"),  # no stamp: now
        (datetime(2099, 1, 1, tzinfo=UTC), (1, NOW_MS), "event_time in the future"),
        (datetime(2000, 1, 1, tzinfo=UTC), (1, NOW_MS), "raw"),  # exactly the floor
        (datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), (1, NOW_MS), "event_time before floor"),
        (datetime(1970, 1, 1, tzinfo=UTC), (0, -1), "event_time before floor"),
    ],
)
def test_event_time_sanity_rule(event_time, stamp, where):
    value = json.dumps({**VALID["payments"], "event_time": event_time.isoformat()}).encode()
    rows = chunk_rows(
        OffsetRange("payments", 0, 0, 1),
        [FakeMessage(value, None, 0, stamp)],
        NOW,
        LandingSettings(),
    )
    if where == "raw":
        assert rows.raw.num_rows == 1 and rows.quarantine.num_rows == 0
    else:
        (reason,) = rows.quarantine.column("reason").to_pylist()
        assert _category(reason) == where and rows.raw.num_rows == 0
        assert event_time.isoformat() in reason


def test_a_row_arrow_refuses_is_quarantined_and_the_rest_of_the_chunk_lands(monkeypatch):
    """The conversion guard: a row that cannot be stored costs itself, not its chunk."""
    convert = landing._raw_table

    def refusing(rng, messages, events, now):
        if any(e.event_id == "payment-poison" for e in events):
            raise OverflowError("value out of range for Arrow")
        return convert(rng, messages, events, now)

    monkeypatch.setattr(landing, "_raw_table", refusing)
    values = [
        json.dumps({**VALID["payments"], "event_id": f"payment-{i:05d}"}).encode() for i in range(9)
    ]
    values[6] = json.dumps({**VALID["payments"], "event_id": "payment-poison"}).encode()
    records = [FakeMessage(v, b"k", i, (1, NOW_MS)) for i, v in enumerate(values)]
    rows = chunk_rows(OffsetRange("payments", 0, 0, 9), records, NOW, LandingSettings())
    assert rows.raw.column("offset").to_pylist() == [0, 1, 2, 3, 4, 5, 7, 8]
    assert rows.quarantine.to_pylist()[0]["reason"] == (
        "unstorable: OverflowError: value out of range for Arrow"
    )


# --- settings and sources --------------------------------------------------------------------


def test_event_time_settings_come_from_the_environment_with_clear_errors(monkeypatch):
    from scpro_assets.resources import LakeResource
    from scpro_assets.settings import Settings

    monkeypatch.setenv("SCPRO_EVENT_TIME_TOLERANCE_HOURS", "2.5")
    monkeypatch.setenv("SCPRO_EVENT_TIME_FLOOR", "2010-05-01")
    settings_ = Settings.from_env()
    assert settings_.landing == LandingSettings(
        event_time_tolerance_hours=2.5, event_time_floor=datetime(2010, 5, 1, tzinfo=UTC)
    )
    assert LakeResource.from_settings(settings_).landing_settings() == settings_.landing
    monkeypatch.setenv("SCPRO_EVENT_TIME_FLOOR", "01/05/2010")
    with pytest.raises(ValueError, match="SCPRO_EVENT_TIME_FLOOR must be an ISO date"):
        LandingSettings.from_env()
    monkeypatch.setenv("SCPRO_EVENT_TIME_FLOOR", "2010-05-01")
    for bad in ("a day", "-1", "nan", "inf"):
        monkeypatch.setenv("SCPRO_EVENT_TIME_TOLERANCE_HOURS", bad)
        with pytest.raises(ValueError, match="SCPRO_EVENT_TIME_TOLERANCE_HOURS must be a number"):
            LandingSettings.from_env()
    monkeypatch.delenv("SCPRO_EVENT_TIME_TOLERANCE_HOURS")
    monkeypatch.delenv("SCPRO_EVENT_TIME_FLOOR")
    assert LandingSettings.from_env() == LandingSettings(
        event_time_tolerance_hours=24.0, event_time_floor=datetime(2000, 1, 1, tzinfo=UTC)
    )


def test_the_real_data_sets_pass_the_event_time_rule(dataco_dir, olist_dir):
    """DataCo (2015-2018) and Olist (2016-2018) replayed now: none of it is quarantined."""
    from scpro_assets.sources import dataco, olist

    sanity, now = LandingSettings(), datetime.now(UTC)
    for events in (dataco.load(dataco_dir)[0], olist.load(olist_dir)[0]):
        times = [e.event_time for e in events]
        assert sanity.event_time_floor <= min(times) and max(times) <= now


def test_a_paced_synthetic_stream_never_runs_ahead_of_its_records(monkeypatch):
    """At any pace, replay publishes an event no earlier than its business time.

    The synthetic source (at 500k orders a day) starts five minutes ago and is replayed at 3,600
    business hours a second: the past is published at once, and the last events, due in the next
    two seconds, wait for their time. Each record is stamped as Kafka would stamp it (when it is produced)
    and landed: none is quarantined as being in the future.
    """
    from scpro_assets.kafka import clients
    from scpro_assets.replay import replay
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    sent: list[tuple[str, bytes, int]] = []

    class Acknowledged:
        """A delivery future the broker has already acknowledged."""

        def add_callback(self, callback, *args):
            callback(*args, None)

        def add_errback(self, errback, *args):
            pass

    class StampingProducer:
        def send(self, topic, key=None, value=None):
            sent.append((topic, value, int(time.time() * 1000)))
            return Acknowledged()

        def flush(self):
            pass

        def close(self, timeout=None):
            pass

    monkeypatch.setattr(clients, "producer", lambda _kafka: StampingProducer())
    everything = {KafkaSettings().topic_name(topic) for topic in TOPICS}
    monkeypatch.setattr(clients, "existing_topics", lambda _kafka: everything)
    began = datetime.now(UTC)
    start = began - timedelta(minutes=5)
    config = SyntheticConfig(orders=10_000, seed=3, start=start, orders_per_day=500_000)
    horizon = began + timedelta(seconds=2)
    events: list = []
    stream = (events.append(e) or e for e in generate(config))  # generated while replaying
    replay(itertools.takewhile(lambda e: e.event_time <= horizon, stream), KafkaSettings(), 3600.0)
    events.pop()  # the first event after the horizon, read by takewhile and not published

    assert any(e.event_time > began for e in events)  # some were due after the replay began
    assert len(sent) == len(events)
    for event, (_topic, _value, stamp_ms) in zip(events, sent, strict=True):
        assert stamp_ms >= math.floor(event.event_time.timestamp() * 1000) - 1
    for topic in TOPICS:
        records = [
            FakeMessage(value, None, i, (1, ms))
            for i, (value, ms) in enumerate((v, ms) for t, v, ms in sent if t == topic)
        ]
        if records:
            rows = chunk_rows(
                OffsetRange(topic, 0, 0, len(records)),
                records,
                datetime.now(UTC),
                LandingSettings(event_time_tolerance_hours=0),
            )
            assert rows.quarantine.num_rows == 0, rows.quarantine.column("reason").to_pylist()[:3]


# --- the real broker -------------------------------------------------------------------------


def test_hostile_range_lands_with_exact_accounting_from_the_real_broker(scpro_settings):
    from scpro_assets.kafka.clients import producer

    def order(i: int, **changes: object) -> dict:
        placed = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i)
        return {
            **VALID["orders"],
            "event_id": f"order-event-{i:04d}",
            "order_id": f"o-{i}",
            "event_time": placed.isoformat(),
            "promised_delivery_date": (placed + timedelta(days=4)).isoformat(),
            **changes,
        }

    def encode(payload: dict) -> bytes:
        return json.dumps(payload).encode()

    nan_price = order(0, items=[{**VALID["orders"]["items"][0], "unit_price": math.nan}])
    hostile: list[tuple[bytes | None, str]] = [
        (encode(order(0))[:-1] + b', "x": ' + _nested(5000, "array") + b"}", "too deep"),
        (encode(order(0, channel="x" * 300_000)), "too large"),
        (encode(order(0))[:-1] + b', "\xff\xfe": 1}', "invalid utf-8"),
        (encode(order(0, order_id="\ud800")), "invalid json"),  # "\ud800" escaped
        (encode(order(0))[:-1] + b', "scheduled_days": ' + b"9" * 5000 + b"}", "invalid json"),
        (encode(nan_price), "contract violation"),  # the NaN token
        (encode(order(0)) + b"," + encode(order(1)), "invalid json"),  # two events glued
        (
            encode(
                order(
                    0,
                    event_time="2099-01-01T00:00:00Z",
                    promised_delivery_date="2099-01-05T00:00:00Z",
                )
            ),
            "event_time in the future",
        ),
        (
            encode(
                order(
                    0,
                    event_time="1970-01-01T00:00:00Z",
                    promised_delivery_date="1970-01-05T00:00:00Z",
                )
            ),
            "event_time before floor",
        ),
        (None, "empty"),
    ]
    values: list[tuple[bytes | None, bytes | None]] = []
    expected: dict[int, str] = {}
    for i, (value, category) in enumerate(hostile):
        values.append((encode(order(i + 1)), f"o-{i + 1}".encode()))
        expected[len(values)] = category
        values.append((value, b"hostile"))
    values.append((encode(order(99)), b"\xff\xfe not utf-8"))  # a valid event, a bad key
    sender = producer(scpro_settings.kafka)
    topic = scpro_settings.kafka.topic_name("orders")
    for value, key in values:
        sender.send(topic, key=key, value=value, partition=0)
    sender.flush()
    sender.close()

    rng = OffsetRange("orders", 0, 0, len(values))
    result = land_range(
        scpro_settings.kafka,
        rng,
        scpro_settings.raw_dir,
        scpro_settings.quarantine_dir,
        landing=LandingSettings(),
    )
    assert (result.landed, result.quarantined, result.expired, result.already_landed) == (
        len(values) - len(hostile),
        len(hostile),
        0,
        0,
    )
    assert result.accounted == rng.size
    raw = pq.read_table(result.raw_file).to_pylist()
    quarantined = pq.read_table(result.quarantine_file).to_pylist()
    assert [r["offset"] for r in raw] == [o for o in range(len(values)) if o not in expected]
    assert {r["offset"]: _category(r["reason"]) for r in quarantined} == expected
    assert [r["payload_raw"] for r in quarantined] == [values[o][0] for o in sorted(expected)]
    assert raw[-1]["key"] == "\ufffd\ufffd not utf-8"
    # The 2099 order moved nothing: the data's clock is the latest valid order.
    assert result.event_time_max == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=99)
    assert dict(result.reasons) == {
        c: list(expected.values()).count(c) for c in set(expected.values())
    }


def test_a_broker_outage_still_fails_the_run(tmp_path, free_port):
    """The content guard is not a blanket one: with no broker the run fails, to be retried."""
    kafka = KafkaSettings(bootstrap_servers=f"localhost:{free_port}")
    with pytest.raises(RangeUnavailableError):
        land_range(
            kafka, OffsetRange("orders", 0, 0, 5), tmp_path / "raw", tmp_path / "q", timeout_s=2.0
        )
    assert not (tmp_path / "raw").exists()
