"""Dagster resources, configured from the environment (see :mod:`scpro_assets.settings`)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from scpro_assets.settings import (
    KafkaSettings,
    LandingSettings,
    Settings,
    parse_event_time_floor,
    parse_event_time_tolerance,
)

#: Events per landing run (``SCPRO_MAX_EVENTS_PER_RUN``). Each run costs Dagster about a second
#: or two whatever its size (run record, event-log shard), so ranges are large; landing streams
#: a range in chunks (``scpro_assets.ingest.landing.CHUNK_EVENTS``), so memory does not grow with
#: it. At 250k a run lands in well under a minute on two cores, so a failed run retries little.
DEFAULT_MAX_EVENTS_PER_RUN = 250_000


class KafkaResource(dg.ConfigurableResource):
    """How assets and sensors reach Kafka; the SASL password is read from the environment only."""

    bootstrap_servers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    ssl_cafile: str | None = None
    topic_prefix: str = ""
    max_events_per_run: int = DEFAULT_MAX_EVENTS_PER_RUN
    max_runs_per_tick: int = 20
    max_runs_in_flight: int = 2

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> KafkaResource:
        """Build from :class:`KafkaSettings` (itself read from ``SCPRO_KAFKA_*``)."""
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            ssl_cafile=settings.ssl_cafile,
            topic_prefix=settings.topic_prefix,
            max_events_per_run=int(
                os.environ.get("SCPRO_MAX_EVENTS_PER_RUN", DEFAULT_MAX_EVENTS_PER_RUN)
            ),
            max_runs_per_tick=int(os.environ.get("SCPRO_MAX_RUNS_PER_TICK", "20")),
            max_runs_in_flight=int(os.environ.get("SCPRO_MAX_RUNS_IN_FLIGHT", "2")),
        )

    def settings(self) -> KafkaSettings:
        """Client settings, with secrets taken from the environment at the moment of use."""
        env = KafkaSettings.from_env()
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=env.sasl_password,
            ssl_cafile=self.ssl_cafile,
            ssl_certfile=env.ssl_certfile,
            ssl_keyfile=env.ssl_keyfile,
            client_id=env.client_id,
            topic_prefix=self.topic_prefix,
        )

    def topic_name(self, topic: str) -> str:
        """Broker-side topic name."""
        return f"{self.topic_prefix}{topic}"

    def end_offsets(self, topic: str) -> dict[int, tuple[int, int]]:
        """``{partition: (beginning, end)}`` for a logical topic."""
        from scpro_assets.kafka.clients import end_offsets

        return end_offsets(self.settings(), topic)


class LakeResource(dg.ConfigurableResource):
    """SCPRO_HOME, the lake folders under it, and which event times may enter the raw layer."""

    home: str
    #: Event-time sanity (``SCPRO_EVENT_TIME_TOLERANCE_HOURS``): hours an event may be dated after
    #: its Kafka timestamp before it is quarantined as ``event_time in the future``.
    event_time_tolerance_hours: float = 24.0
    #: Event-time sanity (``SCPRO_EVENT_TIME_FLOOR``, an ISO date): earlier events are quarantined
    #: as ``event_time before floor``.
    event_time_floor: str = "2000-01-01"

    @classmethod
    def from_settings(cls, settings: Settings) -> LakeResource:
        """Build from :class:`Settings`."""
        return cls(
            home=str(settings.home),
            event_time_tolerance_hours=settings.landing.event_time_tolerance_hours,
            event_time_floor=settings.landing.event_time_floor.isoformat(),
        )

    def landing_settings(self) -> LandingSettings:
        """What landing accepts, with a clear error naming the field when it is malformed."""
        return LandingSettings(
            event_time_tolerance_hours=parse_event_time_tolerance(
                self.event_time_tolerance_hours, "lake.event_time_tolerance_hours"
            ),
            event_time_floor=parse_event_time_floor(self.event_time_floor, "lake.event_time_floor"),
        )

    @property
    def _settings(self) -> Settings:
        return Settings(home=Path(self.home), kafka=KafkaSettings())

    @property
    def raw_dir(self) -> Path:
        """Landed ranges."""
        return self._settings.raw_dir

    @property
    def quarantine_dir(self) -> Path:
        """Quarantined events."""
        return self._settings.quarantine_dir

    @property
    def clean_dir(self) -> Path:
        """Spark output."""
        return self._settings.clean_dir
