"""Dagster resources, built from :class:`~scpro_assets.settings.Settings`: one source of truth.

The settings are read once, by the code location (``ingest_resources`` in
:mod:`scpro_assets.definitions.landing`, ``build_platform_definitions`` in
:mod:`scpro_assets.definitions.platform`), and each resource is built from them by its
``from_settings``: that is the only place a resource's fields are set, so a resource never
disagrees with the environment it was built from, and the Dagster UI shows the values in use.

Secrets are not copied into a resource (its fields are shown in the UI): :meth:`KafkaResource.
settings` rebuilds a :class:`~scpro_assets.settings.KafkaSettings` from the resource's visible
fields, and the fields it does not give (the SASL password, the TLS key files, the client id) are
read by the settings layer from the environment at the moment of use, as ``SecretStr``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from scpro_assets.settings import (
    DEFAULT_MAX_EVENTS_PER_RUN,
    BackpressureSettings,
    KafkaSettings,
    LandingSettings,
    Settings,
    parse_event_time_floor,
    parse_event_time_tolerance,
)


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
    landing_pace_seconds: float = 120.0

    @classmethod
    def from_settings(
        cls, settings: KafkaSettings, backpressure: BackpressureSettings | None = None
    ) -> KafkaResource:
        """Build from :class:`KafkaSettings` and the sensors' :class:`BackpressureSettings`."""
        backpressure = backpressure or BackpressureSettings()
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            ssl_cafile=settings.ssl_cafile,
            topic_prefix=settings.topic_prefix,
            max_events_per_run=backpressure.max_events_per_run,
            max_runs_per_tick=backpressure.max_runs_per_tick,
            max_runs_in_flight=backpressure.max_runs_in_flight,
            landing_pace_seconds=backpressure.landing_pace_seconds,
        )

    def settings(self) -> KafkaSettings:
        """Client settings: this resource's fields, and the secrets read now (see the module)."""
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            ssl_cafile=self.ssl_cafile,
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
        return Settings(home=Path(self.home))

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
