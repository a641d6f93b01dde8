"""Landing's librdkafka client reaches a cluster exactly as the kafka-python clients do."""

from __future__ import annotations

import confluent_kafka
import pytest

from scpro_assets.kafka.clients import range_consumer, rdkafka_config
from scpro_assets.settings import KafkaSettings


def test_plaintext_maps_to_bootstrap_and_protocol_only():
    config = rdkafka_config(KafkaSettings(bootstrap_servers="a:9092,b:9092"))
    assert config == {"bootstrap.servers": "a:9092,b:9092", "security.protocol": "PLAINTEXT"}


def test_sasl_and_tls_settings_map_to_librdkafka_names():
    settings = KafkaSettings(
        bootstrap_servers="broker.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="lander",
        sasl_password="s3cret",
        ssl_cafile="/etc/kafka/ca.pem",
        ssl_certfile="/etc/kafka/client.pem",
        ssl_keyfile="/etc/kafka/client.key",
    )
    assert rdkafka_config(settings) == {
        "bootstrap.servers": "broker.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "lander",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/client.pem",
        "ssl.key.location": "/etc/kafka/client.key",
    }


def test_librdkafka_accepts_every_mapped_property():
    """librdkafka checks property names and values when a client is created (no broker needed)."""
    sasl = KafkaSettings(
        bootstrap_servers="localhost:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password="p",
    )
    range_consumer(sasl).close()
    tls = KafkaSettings(
        bootstrap_servers="localhost:1",
        security_protocol="SSL",
        ssl_cafile="/nonexistent/ca.pem",
        ssl_certfile="/nonexistent/client.pem",
        ssl_keyfile="/nonexistent/client.key",
    )
    # Without TLS the file properties are checked by name only; with it, the files are opened.
    names_only = {**rdkafka_config(tls), "security.protocol": "PLAINTEXT", "group.id": "check"}
    confluent_kafka.Consumer(names_only).close()
    with pytest.raises(confluent_kafka.KafkaException, match=r"ssl\.ca\.location failed"):
        range_consumer(tls)
