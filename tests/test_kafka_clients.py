"""One settings object, two client libraries: kafka-python and librdkafka reach Kafka the same way.

Each library gets :class:`KafkaSettings` through its own translator; these tests read both
translations back into one vocabulary and require them to agree, for any valid settings, and
then connect a client of each library to the session's real broker with the same settings.
"""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from scpro_assets.kafka.clients import kafka_python_config, range_consumer, rdkafka_config
from scpro_assets.settings import KAFKA_SASL_MECHANISMS, KAFKA_SECURITY_PROTOCOLS, KafkaSettings

#: One vocabulary: (kafka-python keyword, librdkafka property) of each setting both receive.
SHARED = {
    "servers": ("bootstrap_servers", "bootstrap.servers"),
    "client_id": ("client_id", "client.id"),
    "protocol": ("security_protocol", "security.protocol"),
    "mechanism": ("sasl_mechanism", "sasl.mechanism"),
    "username": ("sasl_plain_username", "sasl.username"),
    "password": ("sasl_plain_password", "sasl.password"),
    "ca": ("ssl_cafile", "ssl.ca.location"),
    "cert": ("ssl_certfile", "ssl.certificate.location"),
    "key": ("ssl_keyfile", "ssl.key.location"),
}


def _read_back(config: dict[str, object], library: int) -> dict[str, str]:
    """A translation in the shared vocabulary; fails on any key the other library never gets."""
    names = {pair[library]: ours for ours, pair in SHARED.items()}
    assert set(config) <= set(names), sorted(set(config) - set(names))
    neutral = {names[key]: value for key, value in config.items()}
    if isinstance(neutral["servers"], list):
        neutral["servers"] = ",".join(neutral["servers"])
    return neutral


def _agree(kafka: KafkaSettings) -> dict[str, str]:
    python_side = _read_back(kafka_python_config(kafka), 0)
    rdkafka_side = _read_back(rdkafka_config(kafka), 1)
    assert python_side == rdkafka_side
    return python_side


names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
servers = st.lists(st.tuples(names, st.integers(1, 65535)), min_size=1, max_size=3).map(
    lambda hosts: ",".join(f"{host}:{port}" for host, port in hosts)
)


@st.composite
def kafka_settings(draw: st.DrawFn) -> KafkaSettings:
    protocol = draw(st.sampled_from(KAFKA_SECURITY_PROTOCOLS))
    sasl = protocol.startswith("SASL_")
    tls = protocol.endswith("SSL")
    path = st.one_of(st.none(), names.map(lambda n: f"/etc/kafka/{n}.pem")) if tls else st.none()
    return KafkaSettings(
        bootstrap_servers=draw(servers),
        security_protocol=protocol,
        sasl_mechanism=draw(st.sampled_from(KAFKA_SASL_MECHANISMS)) if sasl else None,
        sasl_username=draw(names) if sasl else None,
        sasl_password=draw(names) if sasl else None,
        ssl_cafile=draw(path),
        ssl_certfile=draw(path),
        ssl_keyfile=draw(path),
        client_id=draw(names),
    )


@given(kafka_settings())
@settings(max_examples=60, deadline=None)
def test_both_translations_agree_for_any_valid_settings(kafka: KafkaSettings):
    agreed = _agree(kafka)
    assert agreed["servers"] == kafka.bootstrap_servers
    assert agreed["client_id"] == kafka.client_id
    assert agreed["protocol"] == kafka.security_protocol
    assert agreed.get("mechanism") == kafka.sasl_mechanism


def test_sasl_ssl_reaches_both_libraries_in_their_own_names():
    kafka = KafkaSettings(
        bootstrap_servers="broker-1.example:9093, broker-2.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="lander",
        sasl_password="s3cret",
        ssl_cafile="/etc/kafka/ca.pem",
        ssl_certfile="/etc/kafka/client.pem",
        ssl_keyfile="/etc/kafka/client.key",
        client_id="scpro-eu",
    )
    assert _agree(kafka) == {
        "servers": "broker-1.example:9093,broker-2.example:9093",
        "client_id": "scpro-eu",
        "protocol": "SASL_SSL",
        "mechanism": "SCRAM-SHA-512",
        "username": "lander",
        "password": "s3cret",
        "ca": "/etc/kafka/ca.pem",
        "cert": "/etc/kafka/client.pem",
        "key": "/etc/kafka/client.key",
    }
    assert "s3cret" not in repr(kafka)
    # Both libraries know every property they are given: kafka-python's three clients...
    for client in (KafkaConsumer, KafkaProducer, KafkaAdminClient):
        assert set(kafka_python_config(kafka)) <= set(client.DEFAULT_CONFIG), client
    # ...and librdkafka, which checks names and values when a client is built.
    names_only = {**rdkafka_config(kafka), "security.protocol": "SASL_PLAINTEXT", "group.id": "x"}
    confluent_kafka.Consumer(names_only).close()
    # Under TLS librdkafka opens the files at once: a wrong path is a clear error there.
    with pytest.raises(confluent_kafka.KafkaException, match=r"ssl\.ca\.location failed"):
        range_consumer(kafka)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"security_protocol": "TLS"}, "SCPRO_KAFKA_SECURITY_PROTOCOL"),
        ({"security_protocol": "SASL_SSL"}, "SCPRO_KAFKA_SASL_MECHANISM"),
        ({"sasl_mechanism": "PLAIN"}, "SCPRO_KAFKA_SASL_MECHANISM"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
            "SCPRO_KAFKA_SASL_MECHANISM",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            "SCPRO_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "SCPRO_KAFKA_SASL_PASSWORD",
        ),
        ({"bootstrap_servers": " , "}, "SCPRO_KAFKA_BOOTSTRAP"),
        ({"client_id": " "}, "SCPRO_KAFKA_CLIENT_ID"),
    ],
)
def test_settings_one_library_would_refuse_or_ignore_name_the_variable(changes, variable):
    with pytest.raises(ValueError, match=variable):
        KafkaSettings(**changes)


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SCPRO_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("SCPRO_KAFKA_CLIENT_ID", "scpro-test")
    monkeypatch.setenv("SCPRO_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SCPRO_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("SCPRO_KAFKA_SASL_USERNAME", "u")
    monkeypatch.delenv("SCPRO_KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="SCPRO_KAFKA_SASL_PASSWORD"):
        KafkaSettings.from_env()
    monkeypatch.setenv("SCPRO_KAFKA_SASL_PASSWORD", "p")
    agreed = _agree(KafkaSettings.from_env())
    assert (agreed["servers"], agreed["client_id"], agreed["password"]) == (
        "k1:9092,k2:9092",
        "scpro-test",
        "p",
    )


def _member_client_ids(client: AdminClient, group: str) -> set[str]:
    description = client.describe_consumer_groups([group])[group].result(timeout=30)
    return {member.client_id for member in description.members}


@pytest.mark.kafka
def test_clients_of_both_libraries_reach_the_real_broker_as_one_client_id(scpro_settings):
    """Built from one settings object, a consumer of each library joins a group on the broker,
    which reports both members under the settings' client id."""
    client_id = f"scpro-both-{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings(
        bootstrap_servers=scpro_settings.kafka.bootstrap_servers,
        topic_prefix=scpro_settings.kafka.topic_prefix,
        client_id=client_id,
    )
    topic = kafka.topic_name("orders")
    python_group, rdkafka_group = f"{client_id}-python", f"{client_id}-rdkafka"
    python_consumer = KafkaConsumer(**kafka_python_config(kafka), group_id=python_group)
    rdkafka_consumer = confluent_kafka.Consumer(
        {**rdkafka_config(kafka), "group.id": rdkafka_group}
    )
    inspector = AdminClient(rdkafka_config(kafka))
    try:
        # The topic was created just now: until kafka-python's metadata holds its partitions, a
        # group join assigns nothing ("No partition metadata"), and the consumer only joins again
        # at its next metadata refresh, minutes later (a loaded suite saw it). Wait for them.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not python_consumer.partitions_for_topic(topic):
            time.sleep(0.2)
        python_consumer.subscribe([topic])
        rdkafka_consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            python_consumer.assignment() and rdkafka_consumer.assignment()
        ):
            python_consumer.poll(timeout_ms=200)
            rdkafka_consumer.poll(0.2)
        assert python_consumer.assignment() and rdkafka_consumer.assignment()
        assert _member_client_ids(inspector, python_group) == {client_id}
        assert _member_client_ids(inspector, rdkafka_group) == {client_id}
        listed = rdkafka_consumer.list_topics(timeout=10).topics
        assert topic in listed and topic in python_consumer.topics()
    finally:
        python_consumer.close()
        rdkafka_consumer.close()
