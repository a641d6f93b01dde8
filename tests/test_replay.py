"""Replay publishes source events to the real broker in event-time order, repeatably."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.admin import NewTopic

from scpro_assets.kafka.clients import admin, consumer, end_offsets
from scpro_assets.replay import replay
from scpro_assets.settings import TOPICS, KafkaSettings
from scpro_assets.sources import dataco
from scpro_assets.sources.common import SourceEvent, make_event

pytestmark = pytest.mark.kafka


def _consume_all(settings) -> dict[str, list[tuple[int, bytes, dict]]]:
    out: dict[str, list[tuple[int, bytes, dict]]] = {}
    reader = consumer(settings.kafka)
    try:
        for topic in TOPICS:
            offsets = end_offsets(settings.kafka, topic)
            name = settings.kafka.topic_name(topic)
            tps = [TopicPartition(name, p) for p in offsets]
            reader.assign(tps)
            for tp in tps:
                reader.seek(tp, 0)
            want = sum(end for _b, end in offsets.values())
            got: list[tuple[int, bytes, dict]] = []
            while len(got) < want:
                for tp, records in reader.poll(timeout_ms=2000).items():
                    got += [(tp.partition, r.key, json.loads(r.value)) for r in records]
            out[topic] = got
    finally:
        reader.close()
    return out


def test_dataco_replay_is_deterministic_keyed_and_ordered(dataco_dir, scpro_settings, tmp_path):

    events, _ = dataco.load(dataco_dir)
    stats = replay(events, scpro_settings.kafka)
    assert stats.total == len(events) and stats.events_per_second > 0
    first = _consume_all(scpro_settings)
    assert Counter({t: len(v) for t, v in first.items()}) == stats.published

    # Replay again into fresh topics: the same event ids land on the same partitions.
    from scpro_assets.kafka.clients import ensure_topics

    again = scpro_settings.kafka.topic_prefix + "again."
    second_settings = scpro_settings.model_copy(
        update={"kafka": scpro_settings.kafka.model_copy(update={"topic_prefix": again})}
    )
    ensure_topics(second_settings.kafka, partitions=2)
    replay(dataco.load(dataco_dir)[0], second_settings.kafka)
    second = _consume_all(second_settings)
    for topic in TOPICS:

        def ids(rows):
            return sorted((p, e["event_id"]) for p, _k, e in rows)

        assert ids(first[topic]) == ids(second[topic])

    # Keyed by order id: all events of one order share a partition, in event-time order.
    partitions_of: dict[str, set[int]] = {}
    for topic in ("orders", "payments", "shipments"):
        for partition, key, event in first[topic]:
            assert key.decode() == event["order_id"]
            partitions_of.setdefault(event["order_id"], set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    shipments: dict[str, list[str]] = {}
    for _p, _k, event in first["shipments"]:
        shipments.setdefault(event["order_id"], []).append(event["status"])
    assert shipments["dataco-31299"] == ["shipped", "delivered"]


def test_replay_paces_in_business_hours_per_second(scpro_settings):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    events = [
        make_event(
            "test",
            "payment_captured",
            start + timedelta(hours=h),
            (h,),
            f"o{h}",
            order_id=f"o{h}",
            payment_type="card",
            amount=1.0,
        )
        for h in (0, 1, 2)
    ]
    began = time.perf_counter()
    replay(events, scpro_settings.kafka, speed=2.0)  # 2 business hours per second
    assert time.perf_counter() - began >= 0.95  # two hours of history took at least a second


def _event(event_type: str, n: int, **fields) -> SourceEvent:
    """Event ``n`` of order ``o<n>``, ``n`` minutes into 2024."""
    return make_event(
        "test",
        event_type,
        datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        (n,),
        f"o{n}",
        order_id=f"o{n}",
        **fields,
    )


def _payment(n: int, **extra) -> SourceEvent:
    return _event("payment_captured", n, payment_type="card", amount=1.0, **extra)


def _order(n: int, **extra) -> SourceEvent:
    return _event("order_placed", n, **extra)


def test_replay_counts_only_events_the_broker_acknowledged(kafka_broker):
    """Refused sends are failures with their reason, never "published": a record larger than its
    topic accepts (refused by the broker), one larger than any request (refused by the client),
    and events of a topic that does not exist (the broker creates none on a first send)."""
    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap, topic_prefix=f"acked-{uuid.uuid4().hex[:6]}."
    )
    client = admin(kafka)
    try:
        client.create_topics(
            [
                NewTopic(kafka.topic_name("orders"), num_partitions=2, replication_factor=1),
                NewTopic(
                    kafka.topic_name("payments"),
                    num_partitions=2,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": "4096"},
                ),
            ]
        )
    finally:
        client.close()
    deadline = time.monotonic() + 30  # new partitions need their leader before the first send
    while time.monotonic() < deadline and any(
        len(end_offsets(kafka, t)) < 2 for t in ("orders", "payments")
    ):
        time.sleep(0.2)
    events = [
        *(_order(n) for n in range(5)),
        _order(5, note="x" * (3 * 1024 * 1024)),  # over the producer's 2 MiB request limit
        *(_payment(n) for n in range(10, 15)),
        big_payment := _payment(15, note="y" * 8000),  # over the payments topic's 4 KiB
        *(_payment(n) for n in range(16, 20)),
        *(
            make_event(
                "test",
                "shipment_status",
                datetime(2024, 1, 2, tzinfo=UTC),
                (n,),
                f"o{n}",
                order_id=f"o{n}",
                carrier="c",
            )
            for n in range(3)
        ),
    ]
    acknowledged: list[str] = []

    stats = replay(events, kafka, on_acknowledged=lambda e: acknowledged.append(e.event_id))

    on_broker = _consume_all(SimpleNamespace(kafka=kafka))
    assert stats.published == Counter({t: len(rows) for t, rows in on_broker.items() if rows})
    assert sorted(acknowledged) == sorted(
        e["event_id"] for rows in on_broker.values() for _p, _k, e in rows
    )
    assert stats.total + stats.failed_total == len(events)  # every event accounted for, once
    # The client refuses the 3 MiB order at once; shipments has no topic: both exact.
    assert (stats.published["orders"], stats.failed["orders"], stats.failed["shipments"]) == (
        5,
        1,
        3,
    )
    # The broker refuses the 8 KB payment (and kafka-python may fail a batch-mate with it).
    assert stats.failed["payments"] >= 1 and stats.published["payments"] >= 8
    assert big_payment.event_id not in acknowledged
    reasons = "\n".join(stats.errors)
    assert "orders: MessageSizeTooLargeError" in reasons
    assert "payments: MessageSizeTooLargeError" in reasons
    assert f"shipments: topic '{kafka.topic_name('shipments')}' does not exist" in reasons
