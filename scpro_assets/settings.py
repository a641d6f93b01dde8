"""Configuration from the environment, in one place.

Every component (CLI, Dagster resources, tests) builds a :class:`Settings` from the environment,
so pointing SCPro at an external Kafka cluster, a Spark master or another home folder needs no
code change. Secrets (SASL passwords, hashing keys) are only ever read from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The four event topics; their names are prefixed with ``SCPRO_TOPIC_PREFIX`` on the broker.
TOPICS: tuple[str, ...] = ("orders", "payments", "shipments", "ops_logs")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka: the embedded broker by default, any cluster by configuration."""

    bootstrap_servers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topic_prefix: str = ""
    partitions: int = 3
    retention_hours: int = 24 * 30

    @classmethod
    def from_env(cls) -> KafkaSettings:
        """Read ``SCPRO_KAFKA_*`` variables."""
        return cls(
            bootstrap_servers=_env("SCPRO_KAFKA_BOOTSTRAP", "localhost:9092"),
            security_protocol=_env("SCPRO_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=_env("SCPRO_KAFKA_SASL_MECHANISM"),
            sasl_username=_env("SCPRO_KAFKA_SASL_USERNAME"),
            sasl_password=_env("SCPRO_KAFKA_SASL_PASSWORD"),
            ssl_cafile=_env("SCPRO_KAFKA_SSL_CAFILE"),
            ssl_certfile=_env("SCPRO_KAFKA_SSL_CERTFILE"),
            ssl_keyfile=_env("SCPRO_KAFKA_SSL_KEYFILE"),
            topic_prefix=_env("SCPRO_TOPIC_PREFIX", ""),
            partitions=int(_env("SCPRO_KAFKA_PARTITIONS", "3")),
            retention_hours=int(_env("SCPRO_KAFKA_RETENTION_HOURS", str(24 * 30))),
        )

    def topic_name(self, topic: str) -> str:
        """Broker-side name of one of the logical :data:`TOPICS`."""
        return f"{self.topic_prefix}{topic}"

    def client_options(self) -> dict[str, object]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                options[key] = getattr(self, key)
        return options


@dataclass(frozen=True)
class Settings:
    """Where SCPro keeps its state, and how it reaches Kafka and Spark."""

    home: Path
    kafka: KafkaSettings
    spark_master: str = "local[*]"

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``SCPRO_HOME``, ``SCPRO_SPARK_MASTER`` and the Kafka variables."""
        home = Path(_env("SCPRO_HOME", str(REPO_ROOT / ".scpro"))).expanduser().resolve()
        return cls(
            home=home,
            kafka=KafkaSettings.from_env(),
            spark_master=_env("SCPRO_SPARK_MASTER", "local[*]"),
        )

    @property
    def kafka_dir(self) -> Path:
        """Embedded broker data and logs."""
        return self.home / "kafka"

    @property
    def lake_dir(self) -> Path:
        """Parquet lake: ``raw/``, ``quarantine/``, ``clean/``."""
        return self.home / "lake"

    @property
    def raw_dir(self) -> Path:
        """Landed Kafka offset ranges, one Parquet file per range."""
        return self.lake_dir / "raw"

    @property
    def quarantine_dir(self) -> Path:
        """Events that could not be landed, with the reason."""
        return self.lake_dir / "quarantine"

    @property
    def clean_dir(self) -> Path:
        """Spark's cleaned entities and feature tables."""
        return self.lake_dir / "clean"

    @property
    def ml_dir(self) -> Path:
        """Model outputs that dbt reads as sources (scores, segments, forecasts, the registry)."""
        return self.lake_dir / "ml"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file dbt writes."""
        return self.home / "warehouse.duckdb"

    @property
    def serving_dir(self) -> Path:
        """Read-only snapshots for dashboards."""
        return self.home / "serving"

    @property
    def models_dir(self) -> Path:
        """Versioned model artifacts."""
        return self.home / "models"

    @property
    def serving_current(self) -> Path:
        """The published snapshot readers use: a link swapped atomically after each build."""
        return self.serving_dir / "current"

    @property
    def lineage_dir(self) -> Path:
        """OpenLineage events (newline-delimited JSON) when no HTTP transport is configured."""
        return self.home / "lineage"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME for ``dagster dev`` and ``scpro ingest``."""
        return self.home / "dagster"


# --- gaps and alerts (issue #14) ----------------------------------------------------------------


def _env_number(name: str, default: float, minimum: float, cast: type = float) -> float:
    """A number from the environment, or a clear error naming the variable."""
    text = _env(name)
    if text is None:
        return cast(default)
    try:
        value = cast(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {cast.__name__}") from None
    if value < minimum:
        raise ValueError(f"{name}={text!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class GapSettings:
    """When an offset range that was requested but never landed counts as a gap, and what then.

    A range without a raw file ``deadline_seconds`` after it was requested fails the raw asset's
    ``requested_ranges_landed`` check and is requested again, waiting twice as long after each
    attempt (capped at ``backoff_cap_seconds``); after ``alert_after_attempts`` attempts it
    raises an alert.
    """

    deadline_seconds: float = 600.0
    alert_after_attempts: int = 3
    backoff_cap_seconds: float = 3600.0

    @classmethod
    def from_env(cls) -> GapSettings:
        """Read ``SCPRO_GAP_DEADLINE_SECONDS``, ``_ALERT_AFTER_ATTEMPTS``, ``_BACKOFF_CAP_SECONDS``.

        The backoff cap is never below the deadline.
        """
        deadline = _env_number("SCPRO_GAP_DEADLINE_SECONDS", 600.0, 0.0)
        return cls(
            deadline_seconds=deadline,
            alert_after_attempts=int(_env_number("SCPRO_GAP_ALERT_AFTER_ATTEMPTS", 3, 1, int)),
            backoff_cap_seconds=max(
                deadline, _env_number("SCPRO_GAP_BACKOFF_CAP_SECONDS", 3600.0, 0.0)
            ),
        )


def alert_urls_from_env() -> tuple[str, ...]:
    """Apprise URLs of the alert channels (``SCPRO_ALERT_URLS``, comma-separated).

    Read at the moment of sending, never stored: the URLs carry the channels' tokens.
    """
    text = _env("SCPRO_ALERT_URLS", "") or ""
    return tuple(url.strip() for url in text.split(",") if url.strip())
