"""Kafka clients configured from :class:`~scpro_assets.settings.KafkaSettings`.

Everything that talks to Kafka goes through these factories, so SASL/TLS settings for an external
cluster apply everywhere at once.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

from scpro_assets.settings import TOPICS, KafkaSettings


def producer(settings: KafkaSettings, **overrides: object) -> KafkaProducer:
    """A producer tuned for throughput with full acknowledgement (no loss on broker restart)."""
    options: dict[str, object] = {
        **settings.client_options(),
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "max_request_size": 2 * 1024 * 1024,
        "retries": 10,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def consumer(settings: KafkaSettings, **overrides: object) -> KafkaConsumer:
    """A consumer without a group: callers assign partitions and seek (offsets live elsewhere)."""
    options: dict[str, object] = {
        **settings.client_options(),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 32 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "max_poll_records": 5000,
        "request_timeout_ms": 15000,
    }
    options.update(overrides)
    return KafkaConsumer(**options)


def admin(settings: KafkaSettings, **overrides: object) -> KafkaAdminClient:
    """An admin client."""
    options: dict[str, object] = {
        **settings.client_options(),
        "request_timeout_ms": 15000,
    }
    options.update(overrides)
    return KafkaAdminClient(**options)


def ensure_topics(settings: KafkaSettings, partitions: int | None = None) -> dict[str, int]:
    """Create the four event topics if missing (idempotent); return partitions per topic.

    New topics get ``partitions`` (default ``settings.partitions``). Existing topics are grown only
    when ``partitions`` is given explicitly and exceeds theirs (never shrunk).
    """
    wanted = partitions or settings.partitions
    retention_ms = str(settings.retention_hours * 3600 * 1000)
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        new = [
            NewTopic(
                name=settings.topic_name(topic),
                num_partitions=wanted,
                replication_factor=1,
                topic_configs={"retention.ms": retention_ms, "max.message.bytes": "2097152"},
            )
            for topic in TOPICS
            if settings.topic_name(topic) not in existing
        ]
        if new:
            try:
                client.create_topics(new, validate_only=False)
            except TopicAlreadyExistsError:
                pass
        counts = partition_counts(settings, client)
        grow = {
            name: NewPartitions(total_count=wanted)
            for name, n in counts.items()
            if partitions is not None and n < wanted
        }
        if grow:
            client.create_partitions(grow)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and min(counts.values()) < wanted:
                time.sleep(0.2)
                counts = partition_counts(settings, client)
        return counts
    finally:
        client.close()


def partition_counts(settings: KafkaSettings, client: KafkaAdminClient) -> dict[str, int]:
    """Number of partitions of each event topic that exists."""
    names = [settings.topic_name(t) for t in TOPICS]
    described = client.describe_topics(names)
    return {d["name"]: len(d["partitions"]) for d in described if not d.get("error_code")}


def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (beginning, end)}`` offsets of a logical topic, fresh from the broker."""
    client = consumer(settings)
    try:
        name = settings.topic_name(topic)
        partitions = client.partitions_for_topic(name) or set()
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        if not tps:
            return {}
        begin = client.beginning_offsets(tps)
        end = client.end_offsets(tps)
        return {tp.partition: (begin[tp], end[tp]) for tp in tps}
    finally:
        client.close()
