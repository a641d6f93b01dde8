"""Configuration from the environment, in one place.

Every component (CLI, Dagster resources, tests) builds a :class:`Settings` from the environment,
so pointing SCPro at an external Kafka cluster, a Spark master or another home folder needs no
code change. Secrets (SASL passwords, hashing keys) are only ever read from the environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The business event topics the Spark clean layer reads (the replayed or live operations).
BUSINESS_TOPICS: tuple[str, ...] = ("orders", "payments", "shipments", "ops_logs")

#: What the people working the At-risk page did to an order (acknowledge, assign, note, resolve).
#: Landed exactly once like the business topics; dbt reads its raw ranges directly (a few events
#: a minute do not need a Spark pass, and an action reaches the dashboard without one).
ACTIONS_TOPIC = "actions"

#: Every topic SCPro lands; names are prefixed with ``SCPRO_TOPIC_PREFIX`` on the broker.
TOPICS: tuple[str, ...] = (*BUSINESS_TOPICS, ACTIONS_TOPIC)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


#: Security protocols kafka-python and librdkafka both speak, under the same names.
KAFKA_SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: SASL mechanisms both client libraries authenticate with from a user name and a password.
KAFKA_SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka: the embedded broker by default, any cluster by configuration.

    The one description of a connection: :mod:`scpro_assets.kafka.clients` translates it for
    kafka-python and for librdkafka, so every client of either library reaches the cluster the
    same way. A combination one of them would reject or silently ignore (SASL credentials
    without a SASL protocol, a mechanism without a password) is refused here, naming the
    variable to fix, instead of failing later in one library only.
    """

    bootstrap_servers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "scpro"
    topic_prefix: str = ""
    partitions: int = 3
    retention_hours: int = 24 * 30

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError(
                "SCPRO_KAFKA_BOOTSTRAP: expected host:port[,host:port...], "
                f"got {self.bootstrap_servers!r}"
            )
        if self.security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise ValueError(
                f"SCPRO_KAFKA_SECURITY_PROTOCOL: expected one of "
                f"{', '.join(KAFKA_SECURITY_PROTOCOLS)}, got {self.security_protocol!r}"
            )
        if not self.client_id.strip():
            raise ValueError("SCPRO_KAFKA_CLIENT_ID: expected a name, got an empty one")
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ValueError(
                f"SCPRO_KAFKA_SASL_MECHANISM: {self.security_protocol} needs one of "
                f"{', '.join(KAFKA_SASL_MECHANISMS)}, got {self.sasl_mechanism!r}"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"SCPRO_KAFKA_SASL_MECHANISM is {self.sasl_mechanism!r} but "
                f"SCPRO_KAFKA_SECURITY_PROTOCOL is {self.security_protocol}: set it to "
                "SASL_SSL or SASL_PLAINTEXT, or unset the mechanism"
            )
        if sasl and not self.sasl_username:
            raise ValueError(f"SCPRO_KAFKA_SASL_USERNAME: {self.sasl_mechanism} needs a user name")
        if sasl and not self.sasl_password:
            raise ValueError(
                f"SCPRO_KAFKA_SASL_PASSWORD: {self.sasl_mechanism} needs a password "
                "(read from the environment only)"
            )

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
            client_id=_env("SCPRO_KAFKA_CLIENT_ID", "scpro"),
            topic_prefix=_env("SCPRO_TOPIC_PREFIX", ""),
            partitions=int(_env("SCPRO_KAFKA_PARTITIONS", "3")),
            retention_hours=int(_env("SCPRO_KAFKA_RETENTION_HOURS", str(24 * 30))),
        )

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers, one ``host:port`` each."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def topic_name(self, topic: str) -> str:
        """Broker-side name of one of the logical :data:`TOPICS`."""
        return f"{self.topic_prefix}{topic}"


def _positive_number(name: str, default: float) -> float:
    """``name`` read as a positive finite number; an error that names the variable otherwise."""
    text = _env(name)
    if text is None:
        return default
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}: expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class ContractLimits:
    """The largest quantity, money amount and weight an event may carry (per deployment).

    The caps catch garbage (a sentinel such as 9.99e15, an overflow, grams sent as micrograms),
    not implausible business: a real B2B history must fit. An outside pharma shipments history
    has lines of 50,000 units worth 3,000,000 and weighing 2,000,000 g; the former caps (10,000
    units, 1,000,000 money, 1,000,000 g) refused about 2,000 of its 7,000 shipments. The defaults
    leave room for bulk trade: 10 million units a line, 1e9 in any currency (cents stay exact in
    a double up to about 9e13), 1e9 g (1,000 t, a bulk ship-load line). A deployment with larger
    (or, to catch more garbage, smaller) values sets ``SCPRO_MAX_QUANTITY``, ``SCPRO_MAX_MONEY``
    and ``SCPRO_MAX_WEIGHT_G`` in the environment of every SCPro process (producers and Dagster
    alike), since the contracts read them once, at import.
    """

    max_quantity: int = 10_000_000
    max_money: float = 1e9
    max_weight_g: float = 1e9

    @classmethod
    def from_env(cls) -> ContractLimits:
        """Read ``SCPRO_MAX_QUANTITY``, ``SCPRO_MAX_MONEY`` and ``SCPRO_MAX_WEIGHT_G``."""
        quantity = _positive_number("SCPRO_MAX_QUANTITY", float(cls.max_quantity))
        if not quantity.is_integer():
            raise ValueError(f"SCPRO_MAX_QUANTITY: expected a whole number, got {quantity!r}")
        return cls(
            max_quantity=int(quantity),
            max_money=_positive_number("SCPRO_MAX_MONEY", cls.max_money),
            max_weight_g=_positive_number("SCPRO_MAX_WEIGHT_G", cls.max_weight_g),
        )


#: Earliest business time landing accepts by default: before every real data set SCPro replays
#: (DataCo starts in 2015, Olist in 2016, the synthetic generator in 2024), after the zero dates
#: (1970-01-01, 0001-01-01) that broken producers send.
DEFAULT_EVENT_TIME_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)

#: Largest tolerance accepted: beyond a century it means nothing, and adding it to a datetime
#: could overflow.
MAX_EVENT_TIME_TOLERANCE_HOURS = 100 * 366 * 24.0


def parse_event_time_floor(text: str, name: str = "SCPRO_EVENT_TIME_FLOOR") -> datetime:
    """An ISO date or date-time as an aware UTC datetime (naive values are read as UTC).

    Raises ``ValueError`` naming ``name`` (the variable or field it came from) when malformed.
    """
    try:
        floor = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO date such as 2000-01-01 (or an ISO date-time), got {text!r}"
        ) from None
    return floor.replace(tzinfo=UTC) if floor.tzinfo is None else floor.astimezone(UTC)


def parse_event_time_tolerance(
    text: str | float, name: str = "SCPRO_EVENT_TIME_TOLERANCE_HOURS"
) -> float:
    """A number of hours between 0 and a century; ``ValueError`` naming ``name`` otherwise."""
    try:
        hours = float(text)
    except (TypeError, ValueError):
        hours = math.nan
    if not 0 <= hours <= MAX_EVENT_TIME_TOLERANCE_HOURS:  # NaN fails both comparisons
        raise ValueError(
            f"{name} must be a number of hours between 0 and {MAX_EVENT_TIME_TOLERANCE_HOURS:g} "
            f"(24 is one day), got {text!r}"
        )
    return hours


@dataclass(frozen=True)
class LandingSettings:
    """Event-time sanity: which business times landing accepts as possibly true.

    An event whose ``event_time`` is later than its Kafka timestamp (or than the landing time,
    when that is earlier or the record has no timestamp) by more than
    ``event_time_tolerance_hours``, or earlier than ``event_time_floor``, is quarantined with the
    reason: one producer's wrong clock must not move the data's "as of".
    """

    event_time_tolerance_hours: float = 24.0
    event_time_floor: datetime = DEFAULT_EVENT_TIME_FLOOR

    def __post_init__(self) -> None:
        parse_event_time_tolerance(self.event_time_tolerance_hours, "event_time_tolerance_hours")
        if self.event_time_floor.tzinfo is None:
            raise ValueError("event_time_floor must be timezone-aware")

    @classmethod
    def from_env(cls) -> LandingSettings:
        """Read ``SCPRO_EVENT_TIME_TOLERANCE_HOURS`` and ``SCPRO_EVENT_TIME_FLOOR``."""
        tolerance = _env("SCPRO_EVENT_TIME_TOLERANCE_HOURS")
        floor = _env("SCPRO_EVENT_TIME_FLOOR")
        defaults = cls()
        return cls(
            event_time_tolerance_hours=defaults.event_time_tolerance_hours
            if tolerance is None
            else parse_event_time_tolerance(tolerance),
            event_time_floor=defaults.event_time_floor
            if floor is None
            else parse_event_time_floor(floor),
        )


#: Port of the embedded Spark Connect server (``SCPRO_SPARK_CONNECT_PORT``); Spark's own default.
DEFAULT_SPARK_CONNECT_PORT = 15002


@dataclass(frozen=True)
class SparkConnectSettings:
    """Where Spark sessions run over Spark Connect, if anywhere.

    ``remote`` (``SCPRO_SPARK_REMOTE``, e.g. ``sc://spark.example.com:15002``) is a Connect server
    SCPro does not manage: when set, every session connects there and ``scpro`` starts none of its
    own. ``port`` is where ``scpro spark start`` runs the embedded server otherwise.
    """

    remote: str | None = None
    port: int = DEFAULT_SPARK_CONNECT_PORT

    @classmethod
    def from_env(cls) -> SparkConnectSettings:
        """Read ``SCPRO_SPARK_REMOTE`` and ``SCPRO_SPARK_CONNECT_PORT``."""
        remote = _env("SCPRO_SPARK_REMOTE")
        if remote is not None and not remote.startswith("sc://"):
            raise ValueError(f"SCPRO_SPARK_REMOTE: expected an sc://host:port URL, got {remote!r}")
        port = _env("SCPRO_SPARK_CONNECT_PORT", str(DEFAULT_SPARK_CONNECT_PORT))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"SCPRO_SPARK_CONNECT_PORT: expected a TCP port, got {port!r}")
        return cls(remote=remote, port=int(port))


@dataclass(frozen=True)
class Settings:
    """Where SCPro keeps its state, how it reaches Kafka and Spark, and what landing accepts."""

    home: Path
    kafka: KafkaSettings
    spark_master: str = "local[*]"
    landing: LandingSettings = field(default_factory=LandingSettings)
    spark_connect: SparkConnectSettings = field(default_factory=SparkConnectSettings)

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``SCPRO_HOME``, ``SCPRO_SPARK_*``, the Kafka and the landing variables."""
        home = Path(_env("SCPRO_HOME", str(REPO_ROOT / ".scpro"))).expanduser().resolve()
        return cls(
            home=home,
            kafka=KafkaSettings.from_env(),
            spark_master=_env("SCPRO_SPARK_MASTER", "local[*]"),
            landing=LandingSettings.from_env(),
            spark_connect=SparkConnectSettings.from_env(),
        )

    @property
    def kafka_dir(self) -> Path:
        """Embedded broker data and logs."""
        return self.home / "kafka"

    @property
    def spark_dir(self) -> Path:
        """The embedded Spark Connect server's status file, logs and scratch space."""
        return self.home / "spark"

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
        """DAGSTER_HOME for ``dg dev`` and ``scpro ingest``."""
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


#: Who an alert is for, and the variable holding that audience's apprise URLs: data engineers
#: (failed runs and checks, stale marts, landing gaps) and operations (orders newly at high risk).
ALERT_URL_VARIABLES: dict[str, str] = {
    "data": "SCPRO_ALERT_URLS",
    "operations": "SCPRO_ALERT_URLS_OPS",
}


def alert_urls_from_env(audience: str = "data") -> tuple[str, ...]:
    """Apprise URLs of ``audience``'s alert channels (:data:`ALERT_URL_VARIABLES`, comma-separated).

    Read at the moment of sending, never stored: the URLs carry the channels' tokens. The two
    audiences do not fall back on each other: customer orders are not sent to the data engineers'
    channel unless a deployment sets both variables to it.
    """
    if audience not in ALERT_URL_VARIABLES:
        raise ValueError(f"alert audience must be one of {sorted(ALERT_URL_VARIABLES)}")
    text = _env(ALERT_URL_VARIABLES[audience], "") or ""
    return tuple(url.strip() for url in text.split(",") if url.strip())
