"""Replay publishes source events to the real broker in event-time order, repeatably."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from kafka import TopicPartition

from scpro_assets.kafka.clients import consumer, end_offsets
from scpro_assets.replay import replay
from scpro_assets.settings import TOPICS
from scpro_assets.sources import dataco
from scpro_assets.sources.common import make_event

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
    from dataclasses import replace

    events, _ = dataco.load(dataco_dir)
    stats = replay(events, scpro_settings.kafka)
    assert stats.total == len(events) and stats.events_per_second > 0
    first = _consume_all(scpro_settings)
    assert Counter({t: len(v) for t, v in first.items()}) == stats.published

    # Replay again into fresh topics: the same event ids land on the same partitions.
    from scpro_assets.kafka.clients import ensure_topics

    second_settings = replace(
        scpro_settings,
        kafka=replace(
            scpro_settings.kafka, topic_prefix=scpro_settings.kafka.topic_prefix + "again."
        ),
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
