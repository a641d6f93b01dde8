"""The embedded Apache Kafka broker: starts, answers, creates topics, carries events, stops."""

from __future__ import annotations

import socket

import pytest
from kafka import TopicPartition

from scpro_assets.kafka.broker import BrokerError, EmbeddedKafka
from scpro_assets.kafka.clients import consumer, end_offsets, ensure_topics, producer
from scpro_assets.settings import TOPICS, KafkaSettings, Settings

pytestmark = pytest.mark.kafka


def test_broker_is_real_apache_kafka_and_reports_status(kafka_broker):
    status = kafka_broker.status()
    assert status.running and status.pid
    cmdline = open(f"/proc/{status.pid}/cmdline", "rb").read().split(b"\0")
    assert b"kafka.Kafka" in cmdline  # Apache Kafka's own main class, from Maven jars
    classpath = cmdline[cmdline.index(b"-cp") + 1].decode()
    jars = list(__import__("glob").glob(classpath))
    assert any("kafka_2.13-4." in j for j in jars)
    assert (kafka_broker.data_dir / "meta.properties").exists()  # KRaft-formatted storage
    assert "running" in status.describe()


def test_topics_are_created_with_partitions_and_retention(scpro_settings):
    from scpro_assets.kafka.clients import admin

    counts = ensure_topics(scpro_settings.kafka, partitions=2)
    assert counts == {scpro_settings.kafka.topic_name(t): 2 for t in TOPICS}
    client = admin(scpro_settings.kafka)
    try:
        from kafka.admin import ConfigResource, ConfigResourceType

        name = scpro_settings.kafka.topic_name("orders")
        response = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        configs = response["topic"][name]
        retention = str(scpro_settings.kafka.retention_hours * 3_600_000)
        assert configs["retention.ms"]["value"] == retention
        assert configs["max.message.bytes"]["value"] == "2097152"
    finally:
        client.close()
    # idempotent: a second call changes nothing
    assert ensure_topics(scpro_settings.kafka, partitions=2) == counts


def test_produce_and_consume_round_trip(scpro_settings):
    name = scpro_settings.kafka.topic_name("ops_logs")
    sender = producer(scpro_settings.kafka)
    for i in range(50):
        sender.send(name, key=b"k", value=f'{{"n": {i}}}'.encode(), partition=1)
    sender.flush()
    sender.close()
    assert end_offsets(scpro_settings.kafka, "ops_logs")[1] == (0, 50)
    reader = consumer(scpro_settings.kafka)
    tp = TopicPartition(name, 1)
    reader.assign([tp])
    reader.seek(tp, 0)
    got: list[bytes] = []
    while len(got) < 50:
        for records in reader.poll(timeout_ms=2000).values():
            got += [r.value for r in records]
    reader.close()
    assert got == [f'{{"n": {i}}}'.encode() for i in range(50)]


def test_port_taken_is_said_exactly(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("localhost", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedKafka(
            Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers=f"localhost:{port}"))
        )
        with pytest.raises(BrokerError, match=f"port {port} on localhost is taken"):
            broker.start()


def test_missing_java_is_said_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on this PATH
    broker = EmbeddedKafka(
        Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers="localhost:1"))
    )
    with pytest.raises(BrokerError, match="'java' is not on PATH"):
        broker.start()


def test_stop_when_not_running_is_harmless(tmp_path):
    broker = EmbeddedKafka(
        Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers="localhost:1"))
    )
    assert broker.stop() is False
    assert not broker.status().running


def test_cluster_id_starting_with_a_dash_formats(tmp_path, monkeypatch, free_port):
    """Base64 cluster ids start with '-' one time in 64; the storage tool must not read an option."""
    import uuid as uuid_module

    monkeypatch.setattr(
        uuid_module, "uuid4", lambda: uuid_module.UUID(bytes=b"\xf8" + b"\x01" * 15)
    )
    broker = EmbeddedKafka(
        Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers=f"localhost:{free_port}"))
    )
    broker.log_file.parent.mkdir(parents=True)
    broker.data_dir.mkdir(parents=True)
    broker._write_config()
    broker._format_storage()
    meta = (broker.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta
