"""Kafka clients built from one :class:`~scpro_assets.settings.KafkaSettings`.

Everything that talks to Kafka goes through these factories, so SASL/TLS settings for an external
cluster apply everywhere at once. Two client libraries are used: kafka-python for producing,
administration and offsets (the library the platform's users asked for), and librdkafka
(confluent-kafka) for landing's reads, where decoding records in C instead of Python halves the
cost of landing an event (see ``make bench``). Each library gets the settings through one
translator (:func:`kafka_python_config`, :func:`rdkafka_config`), and the two are tested
together: same servers, client id, security protocol, SASL and TLS
(``tests/test_kafka_clients.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import confluent_kafka

from scpro_assets.settings import TOPICS, KafkaSettings

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

# kafka-python is imported where a client is built, not here: landing runs read with librdkafka
# only, and each one imports this module; kafka-python's import (about 0.35 s) is paid by the
# processes that produce, administer or ask for offsets (the sensors' code server, replay, CLI).

#: Our TLS file settings and librdkafka's names for them (kafka-python's are ours).
_TLS_FILES: tuple[tuple[str, str], ...] = (
    ("ssl_cafile", "ssl.ca.location"),
    ("ssl_certfile", "ssl.certificate.location"),
    ("ssl_keyfile", "ssl.key.location"),
)


def kafka_python_config(settings: KafkaSettings) -> dict[str, object]:
    """Connection, identity and security of ``settings`` in kafka-python's keyword arguments.

    Shared by its producer, consumer and admin client. kafka-python's ``sasl_plain_username``
    and ``sasl_plain_password`` serve PLAIN and SCRAM alike; it verifies the broker's host name
    under TLS by default (``ssl_check_hostname``), as librdkafka does.
    """
    config: dict[str, object] = {
        "bootstrap_servers": settings.servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = _password(settings)
    for ours, _theirs in _TLS_FILES:
        if getattr(settings, ours):
            config[ours] = getattr(settings, ours)
    return config


def _password(settings: KafkaSettings) -> str:
    """The SASL password, unwrapped only here, where a client library needs it."""
    return settings.sasl_password.get_secret_value() if settings.sasl_password else ""


def rdkafka_config(settings: KafkaSettings) -> dict[str, str]:
    """The same connection, identity and security in librdkafka's configuration properties.

    A librdkafka client thus reaches a cluster exactly as the kafka-python ones do
    (:func:`kafka_python_config`). librdkafka verifies the broker's host name under TLS by
    default (``ssl.endpoint.identification.algorithm=https``).
    """
    config = {
        "bootstrap.servers": ",".join(settings.servers),
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username or ""
        config["sasl.password"] = _password(settings)
    for ours, theirs in _TLS_FILES:
        if getattr(settings, ours):
            config[theirs] = getattr(settings, ours)
    return config


def producer(settings: KafkaSettings, **overrides: object) -> KafkaProducer:
    """A producer tuned for throughput with full acknowledgement (no loss on broker restart).

    A send is retried until kafka-python's delivery timeout (120 s), not a number of times: ten
    retries 100 ms apart can run out while a busy broker is still electing a new partition's
    leader, and an event replay now reports as failed would have been lost for a moment's wait.
    """
    options: dict[str, object] = {
        **kafka_python_config(settings),
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "max_request_size": 2 * 1024 * 1024,
    }
    options.update(overrides)
    from kafka import KafkaProducer

    return KafkaProducer(**options)


def consumer(settings: KafkaSettings, **overrides: object) -> KafkaConsumer:
    """A consumer without a group: callers assign partitions and seek (offsets live elsewhere)."""
    options: dict[str, object] = {
        **kafka_python_config(settings),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 32 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "max_poll_records": 5000,
        "request_timeout_ms": 15000,
    }
    options.update(overrides)
    from kafka import KafkaConsumer

    return KafkaConsumer(**options)


def range_consumer(settings: KafkaSettings) -> confluent_kafka.Consumer:
    """A librdkafka consumer for reading assigned offset ranges, never committing anything.

    librdkafka insists on a ``group.id``; with ``assign()`` (no subscribe) the group is never
    joined, and with auto-commit and offset storing off nothing is ever committed to it.
    ``read_uncommitted`` matches kafka-python's default and the sensors' end offsets (high
    watermarks), so a range is read exactly as planned. The prefetch queue is capped (16 MiB) to
    keep a landing run's memory bounded: landing, not the network, is the slower side.
    """
    fetch_max = 32 * 1024 * 1024
    return confluent_kafka.Consumer(
        {
            **rdkafka_config(settings),
            "group.id": "scpro-landing-never-committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
            "fetch.max.bytes": fetch_max,
            "receive.message.max.bytes": fetch_max + 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "queued.max.messages.kbytes": 32 * 1024,
            "fetch.queue.backoff.ms": 10,
            "socket.timeout.ms": 15000,
        }
    )


def admin(settings: KafkaSettings, **overrides: object) -> KafkaAdminClient:
    """An admin client."""
    options: dict[str, object] = {
        **kafka_python_config(settings),
        "request_timeout_ms": 15000,
    }
    options.update(overrides)
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**options)


def ensure_topics(settings: KafkaSettings, partitions: int | None = None) -> dict[str, int]:
    """Create the four event topics if missing (idempotent); return partitions per topic.

    New topics get ``partitions`` (default ``settings.partitions``). Existing topics are grown only
    when ``partitions`` is given explicitly and exceeds theirs (never shrunk).
    """
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

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


def existing_topics(settings: KafkaSettings) -> set[str]:
    """Names of the topics on the cluster.

    SCPro creates its topics itself (:func:`ensure_topics`), never by a first send to a broker
    that creates topics automatically (the embedded one does not).
    """
    client = admin(settings)
    try:
        return set(client.list_topics())
    finally:
        client.close()


def partition_counts(settings: KafkaSettings, client: KafkaAdminClient) -> dict[str, int]:
    """Number of partitions of each event topic that exists."""
    names = [settings.topic_name(t) for t in TOPICS]
    described = client.describe_topics(names)
    return {d["name"]: len(d["partitions"]) for d in described if not d.get("error_code")}


def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (beginning, end)}`` offsets of a logical topic, fresh from the broker."""
    from kafka import TopicPartition

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
