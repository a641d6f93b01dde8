"""Kafka sensors land raw ranges exactly once: against the real broker."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from scpro_assets.definitions import build_definitions
from scpro_assets.ingest.runner import ingest_until_caught_up
from scpro_assets.kafka.clients import producer
from scpro_assets.settings import Settings
from scpro_assets.sources.common import make_event
from datetime import UTC, datetime, timedelta

pytestmark = pytest.mark.kafka


def _payment(i: int, amount: float = 10.0) -> bytes:
    event = make_event(
        "test", "payment_captured", datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
        (i,), f"order-{i}", order_id=f"order-{i}", payment_type="card", amount=amount,
    )
    return event.to_json()


def _publish(settings: Settings, topic: str, values: list[bytes], partition: int | None = 0) -> None:
    sender = producer(settings.kafka)
    for value in values:
        sender.send(settings.kafka.topic_name(topic), value=value, partition=partition)
    sender.flush()
    sender.close()


def _rows(settings: Settings, kind: str, topic: str) -> list[dict]:
    base = settings.raw_dir if kind == "raw" else settings.quarantine_dir
    files = sorted((base / topic).glob("partition=*/*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_sensor_lands_every_event_once(scpro_settings, dagster_instance):
    values = [_payment(i) for i in range(25)] + [b"{not json", b"\xff\xfe"]
    _publish(scpro_settings, "payments", values)
    defs = build_definitions(scpro_settings)
    ticks = ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert sum(len(t.succeeded) for t in ticks) >= 1
    raw = _rows(scpro_settings, "raw", "payments")
    bad = _rows(scpro_settings, "quarantine", "payments")
    assert len(raw) == 25 and len(bad) == 2
    assert sorted(r["offset"] for r in raw + bad) == list(range(27))
    assert {r["reason"].split(":")[0] for r in bad} == {"invalid json", "invalid utf-8"}
    assert json.loads(raw[0]["payload"])["amount"] == 10.0
