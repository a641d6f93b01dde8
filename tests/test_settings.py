"""One settings layer: typed, read from the environment and ``.env``, secrets hidden, clear errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from scpro_assets.resources import KafkaResource
from scpro_assets.settings import (
    REPO_ROOT,
    AlertSettings,
    DashboardSettings,
    KafkaSettings,
    LineageSettings,
    PrivacySettings,
    Settings,
    SettingsPart,
)

SASL = {
    "SCPRO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "SCPRO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "SCPRO_KAFKA_SASL_USERNAME": "lander",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCPRO_KAFKA_PARTITIONS", "three"),
        ("SCPRO_KAFKA_RETENTION_HOURS", "0"),
        ("SCPRO_SPARK_CONNECT_PORT", "99999"),
        ("SCPRO_SPARK_REMOTE", "http://spark:15002"),
        ("SCPRO_MAX_EVENTS_PER_RUN", "lots"),
        ("SCPRO_KAFKA_HEAP", "half a gig"),
        ("SCPRO_INGEST_START_METHOD", "thread"),
        ("SCPRO_EVENT_TIME_FLOOR", "yesterday"),
    ],
)
def test_a_bad_variable_is_refused_with_its_name(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        Settings()


def test_every_variable_is_in_env_example_and_every_field_reads_one():
    """``.env.example`` lists every variable the settings read (commented, no secrets)."""
    example = (REPO_ROOT / ".env.example").read_text()
    listed = re.findall(r"^# ?(SCPRO_[A-Z0-9_]+)=(.*)$", example, re.M)
    variables = {
        part.variable(name)
        for part in SettingsPart.__subclasses__()
        for name, field in part.model_fields.items()
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, SettingsPart))
    }
    assert "SCPRO_KAFKA_SASL_PASSWORD" in variables and "SCPRO_PANEL_USERS" in variables
    assert all(v.startswith("SCPRO_") for v in variables), variables
    assert variables <= {name for name, _ in listed}, sorted(variables - {n for n, _ in listed})
    secret_values = {name: value for name, value in listed if "PASSWORD" in name or "KEY" in name}
    assert secret_values and not any(secret_values.values()), secret_values


def test_dotenv_is_read_and_the_environment_wins(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    for name in ("SCPRO_TOPIC_PREFIX", "SCPRO_KAFKA_CLIENT_ID", "SCPRO_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "# a deployment's file\n"
        "SCPRO_TOPIC_PREFIX=from-dotenv.\n"
        "SCPRO_KAFKA_CLIENT_ID=dotenv-client\n"
        "SCPRO_HOME=state\n"
        "SCPRO_PANEL_ACTOR=Dot Env\n"
        "UNRELATED=1\n"
    )
    monkeypatch.setenv("SCPRO_KAFKA_CLIENT_ID", "from-the-environment")
    settings = Settings()
    assert settings.kafka.topic_prefix == "from-dotenv."
    assert settings.kafka.client_id == "from-the-environment"
    assert settings.home == tmp_path / "state"
    assert DashboardSettings().actor == "Dot Env"


def test_a_bad_value_in_dotenv_names_its_variable(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCPRO_GAP_DEADLINE_SECONDS", raising=False)
    (tmp_path / ".env").write_text("SCPRO_GAP_DEADLINE_SECONDS=-5\n")
    with pytest.raises(ValueError, match=r"SCPRO_GAP_DEADLINE_SECONDS='-5' must be at least 0"):
        Settings()


def test_secrets_never_show_in_repr_logs_errors_or_the_resource(monkeypatch, caplog):
    secrets = {
        "SCPRO_KAFKA_SASL_PASSWORD": "kafka-s3cret",
        "SCPRO_ALERT_URLS": "json://hooks.example/t0ken-data",
        "SCPRO_ALERT_URLS_OPS": "slack://t0ken-ops/channel",
        "SCPRO_OPENLINEAGE_API_KEY": "lineage-s3cret",
        "SCPRO_PII_KEY": "pii-s3cret",
        "SCPRO_PANEL_USERS": "ana:panel-s3cret",
        "SCPRO_PANEL_COOKIE_SECRET": "cookie-s3cret",
    }
    for name, value in {**SASL, **secrets}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    parts = [settings, AlertSettings(), LineageSettings(), PrivacySettings(), DashboardSettings()]
    resource = KafkaResource.from_settings(settings.kafka, settings.backpressure)
    with caplog.at_level(logging.INFO):
        for part in parts:
            logging.getLogger("scpro.test").info("settings: %s / %r", part, part)
    shown = "\n".join(
        [
            *(f"{p}{p!r}{p.model_dump()}{p.model_dump_json()}" for p in parts),
            repr(resource),
            caplog.text,
        ]
    )
    for value in secrets.values():
        assert value not in shown
    # ... while the clients and the channels still get them where they need them.
    assert resource.settings().sasl_password.get_secret_value() == "kafka-s3cret"
    assert AlertSettings().urls("operations") == ("slack://t0ken-ops/channel",)
    # A refusal names the variable and never echoes the input (which holds the password).
    monkeypatch.delenv("SCPRO_KAFKA_SASL_USERNAME")
    with pytest.raises(ValueError, match="SCPRO_KAFKA_SASL_USERNAME") as refused:
        KafkaSettings()
    assert "kafka-s3cret" not in str(refused.value)


def test_sasl_without_a_sasl_protocol_is_still_refused_clearly(monkeypatch):
    monkeypatch.setenv("SCPRO_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.delenv("SCPRO_KAFKA_SECURITY_PROTOCOL", raising=False)
    with pytest.raises(ValueError, match="SCPRO_KAFKA_SASL_MECHANISM is 'PLAIN' but"):
        Settings()
