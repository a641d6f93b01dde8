"""What Kafka holds that the lake does not yet: each topic's offsets now, and partitions in flight.

Read by the clean layer before it reads the raw files (a partition in flight holds the event-time
watermark, :mod:`spark.watermark`) and by the snapshot's completeness record
(:mod:`scpro_assets.warehouse.completeness`). Both go on without Kafka: a bounded timeout, and
None or an error the caller records instead of a wait.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from scpro_assets.ingest.gaps import uncovered
from scpro_assets.ingest.landing import landed_ranges
from scpro_assets.settings import TOPICS, KafkaSettings

#: Seconds to wait for Kafka's answer at publish time; a snapshot is not held back longer.
KAFKA_TIMEOUT_S = 5.0


def _reachable(bootstrap_servers: str, timeout_s: float) -> bool:
    """Whether any bootstrap server accepts a TCP connection (a stopped broker refuses at once)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_offsets(
    settings: KafkaSettings, topics: Iterable[str] = TOPICS, timeout_s: float = KAFKA_TIMEOUT_S
) -> dict[str, dict[int, tuple[int, int]]]:
    """``{topic: {partition: (beginning, end)}}`` now; raises when Kafka does not answer in time.

    librdkafka with a bounded timeout: kafka-python's client waits 30 s for an absent broker.
    """
    import confluent_kafka

    from scpro_assets.kafka.clients import rdkafka_config

    if not _reachable(settings.bootstrap_servers, timeout_s):
        raise ConnectionError(f"no Kafka broker answers at {settings.bootstrap_servers}")
    client = confluent_kafka.Consumer(
        {
            **rdkafka_config(settings),
            "group.id": "scpro-completeness-never-joined",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = client.list_topics(timeout=timeout_s)
        found: dict[str, dict[int, tuple[int, int]]] = {}
        for topic in topics:
            name = settings.topic_name(topic)
            described = metadata.topics.get(name)
            partitions = sorted(described.partitions) if described and not described.error else []
            found[topic] = {
                p: client.get_watermark_offsets(
                    confluent_kafka.TopicPartition(name, p), timeout=timeout_s
                )
                for p in partitions
            }
        return found
    finally:
        client.close()


def partitions_in_flight(
    kafka: KafkaSettings | None, raw_dir: Path, topics: Iterable[str] = TOPICS
) -> frozenset[tuple[str, int]] | None:
    """The (topic, partition) pairs with offsets in Kafka that no raw range file covers yet.

    These hold the clean layer's event-time watermark (:mod:`spark.watermark`): their events
    are on the way. Measured before the clean layer reads the raw files, so every file that
    makes a partition count as landed here is read by that build. None when Kafka is not
    configured or does not answer: then nothing can be landed either, what the lake holds is
    all there is for now, and the clean layer cuts nothing (a lake written without a broker,
    as benchmarks and tests do, is the same case).
    """
    topics = tuple(topics)
    if kafka is None:
        return None
    try:
        offsets = kafka_offsets(kafka, topics)
    except Exception:  # the clean layer must go on without Kafka's figures
        return None
    return frozenset(
        (topic, p)
        for topic, partitions in offsets.items()
        for p, (beginning, end) in partitions.items()
        if uncovered(beginning, end, landed_ranges(raw_dir, topic).get(p, []))
    )
