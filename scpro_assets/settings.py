"""Configuration from the environment, in one place: typed ``pydantic-settings`` models.

Every SCPro variable is a field here, named by its ``validation_alias`` (the variable the README
documents), so ``grep SCPRO_X`` lands on its one definition. Each part is its own
``BaseSettings`` (:class:`KafkaSettings`, :class:`LandingSettings`, :class:`DashboardSettings`,
:class:`AlertSettings`, :class:`LineageSettings` ...), readable alone where a module needs only
that part, and :class:`Settings` holds them all. Values come, highest first, from keyword
arguments, the process environment, then a ``.env`` file in the working directory (see
``.env.example``; ``.env`` is git-ignored); an empty variable counts as unset.

Secrets (SASL password, PII key, alert URLs with their tokens, the OpenLineage key, dashboard
credentials) are ``SecretStr``: they never show in a ``repr``, a log line or the Dagster UI, and
are only unwrapped (``get_secret_value()``) where a client needs them. A value that cannot be
used fails with a ``ValueError`` (pydantic's ``ValidationError``) that names the variable to fix.

Nothing else in SCPro reads the environment for configuration: the Dagster resources are built
from a :class:`Settings` in one function per code location (see :mod:`scpro_assets.resources`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The business event topics the Spark clean layer reads (the replayed or live operations).
BUSINESS_TOPICS: tuple[str, ...] = ("orders", "payments", "shipments", "ops_logs")

#: What the people working the At-risk page did to an order (acknowledge, assign, note, resolve).
#: Landed exactly once like the business topics; dbt reads its raw ranges directly (a few events
#: a minute do not need a Spark pass, and an action reaches the dashboard without one).
ACTIONS_TOPIC = "actions"

#: Every topic SCPro lands; names are prefixed with ``SCPRO_TOPIC_PREFIX`` on the broker.
TOPICS: tuple[str, ...] = (*BUSINESS_TOPICS, ACTIONS_TOPIC)

#: The file of variables read after the environment (relative to the working directory).
ENV_FILE = ".env"


class SettingsPart(BaseSettings):
    """One part of the settings: frozen, read from the environment and ``.env``.

    Fields are named by ``validation_alias`` (the variable) and may also be given by field name
    in code (``KafkaSettings(bootstrap_servers=...)``); fields not given are read from the
    environment. ``model_validate({...})`` reads only the mapping given (tests, a dict of
    variables) and never the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="SCPRO_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        # An error names the variable; it never echoes the input, which may hold a secret.
        hide_input_in_errors=True,
    )

    @classmethod
    def from_env(cls) -> Self:
        """The part as the environment (and ``.env``) configure it."""
        return cls()

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field`` (its alias)."""
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else field


def _variable(cls: type[SettingsPart], info: ValidationInfo) -> str:
    return cls.variable(info.field_name or "")


def _number_at_least(name: str, value: object, minimum: float, cast: type = float) -> Any:
    """``value`` as ``cast``, at least ``minimum``; an error naming ``name`` otherwise."""
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a valid {cast.__name__}") from None
    if number < minimum:
        raise ValueError(f"{name}={value!r} must be at least {minimum}")
    return number


#: Security protocols kafka-python and librdkafka both speak, under the same names.
KAFKA_SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: SASL mechanisms both client libraries authenticate with from a user name and a password.
KAFKA_SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(SettingsPart):
    """How to reach Kafka: the embedded broker by default, any cluster by configuration.

    The one description of a connection: :mod:`scpro_assets.kafka.clients` translates it for
    kafka-python and for librdkafka, so every client of either library reaches the cluster the
    same way. A combination one of them would reject or silently ignore (SASL credentials
    without a SASL protocol, a mechanism without a password) is refused here, naming the
    variable to fix, instead of failing later in one library only.
    """

    bootstrap_servers: str = Field("localhost:9092", validation_alias="SCPRO_KAFKA_BOOTSTRAP")
    security_protocol: str = Field("PLAINTEXT", validation_alias="SCPRO_KAFKA_SECURITY_PROTOCOL")
    sasl_mechanism: str | None = Field(None, validation_alias="SCPRO_KAFKA_SASL_MECHANISM")
    sasl_username: str | None = Field(None, validation_alias="SCPRO_KAFKA_SASL_USERNAME")
    sasl_password: SecretStr | None = Field(None, validation_alias="SCPRO_KAFKA_SASL_PASSWORD")
    ssl_cafile: str | None = Field(None, validation_alias="SCPRO_KAFKA_SSL_CAFILE")
    ssl_certfile: str | None = Field(None, validation_alias="SCPRO_KAFKA_SSL_CERTFILE")
    ssl_keyfile: str | None = Field(None, validation_alias="SCPRO_KAFKA_SSL_KEYFILE")
    client_id: str = Field("scpro", validation_alias="SCPRO_KAFKA_CLIENT_ID")
    topic_prefix: str = Field("", validation_alias="SCPRO_TOPIC_PREFIX")
    partitions: int = Field(3, ge=1, validation_alias="SCPRO_KAFKA_PARTITIONS")
    retention_hours: int = Field(24 * 30, ge=1, validation_alias="SCPRO_KAFKA_RETENTION_HOURS")

    @model_validator(mode="after")
    def _one_library_would_not_refuse(self) -> KafkaSettings:
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
        if sasl and not (self.sasl_password and self.sasl_password.get_secret_value()):
            raise ValueError(
                f"SCPRO_KAFKA_SASL_PASSWORD: {self.sasl_mechanism} needs a password "
                "(read from the environment only)"
            )
        return self

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers, one ``host:port`` each."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def topic_name(self, topic: str) -> str:
        """Broker-side name of one of the logical :data:`TOPICS`."""
        return f"{self.topic_prefix}{topic}"


class BrokerSettings(SettingsPart):
    """The embedded single-node broker ``scpro kafka start`` runs (not an external cluster)."""

    controller_port: int | None = Field(
        None, gt=0, lt=65536, validation_alias="SCPRO_KAFKA_CONTROLLER_PORT"
    )
    """The KRaft controller's port; the broker's port + 1 when unset."""
    heap: str = Field("512m", pattern=r"^\d+[mMgG]$", validation_alias="SCPRO_KAFKA_HEAP")
    """The broker JVM's maximum heap (``-Xmx``), e.g. ``512m`` or ``2g``."""


#: Events per landing run (``SCPRO_MAX_EVENTS_PER_RUN``). Each run costs Dagster about a second
#: or two whatever its size (run record, event-log shard), so ranges are large; landing streams
#: a range in chunks (``scpro_assets.ingest.landing.CHUNK_EVENTS``), so memory does not grow with
#: it. At 250k a run lands in well under a minute on two cores, so a failed run retries little.
DEFAULT_MAX_EVENTS_PER_RUN = 250_000


class BackpressureSettings(SettingsPart):
    """How much the Kafka sensors ask for at once (range size, runs per tick, runs in flight)."""

    max_events_per_run: int = Field(
        DEFAULT_MAX_EVENTS_PER_RUN, ge=1, validation_alias="SCPRO_MAX_EVENTS_PER_RUN"
    )
    max_runs_per_tick: int = Field(20, ge=1, validation_alias="SCPRO_MAX_RUNS_PER_TICK")
    max_runs_in_flight: int = Field(2, ge=1, validation_alias="SCPRO_MAX_RUNS_IN_FLIGHT")
    #: While an automation run is in flight, a topic's sensor asks for a landing run of new
    #: offsets at most this often (seconds), unless a whole run's worth is waiting; 0 lands on
    #: every tick (``sensors.kafka_sensors``, "Landing paced by the cycle").
    landing_pace_seconds: float = Field(120.0, ge=0, validation_alias="SCPRO_LANDING_PACE_SECONDS")


def _positive_number(name: str, value: object) -> float:
    """``value`` read as a positive finite number; an error that names the variable otherwise."""
    try:
        number = float(str(value).replace("_", "")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return number


class ContractLimits(SettingsPart):
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

    max_quantity: int = Field(10_000_000, validation_alias="SCPRO_MAX_QUANTITY")
    max_money: float = Field(1e9, validation_alias="SCPRO_MAX_MONEY")
    max_weight_g: float = Field(1e9, validation_alias="SCPRO_MAX_WEIGHT_G")

    @field_validator("max_money", "max_weight_g", mode="before")
    @classmethod
    def _positive(cls, value: object, info: ValidationInfo) -> float:
        return _positive_number(_variable(cls, info), value)

    @field_validator("max_quantity", mode="before")
    @classmethod
    def _whole(cls, value: object, info: ValidationInfo) -> int:
        quantity = _positive_number(_variable(cls, info), value)
        if not quantity.is_integer():
            raise ValueError(f"SCPRO_MAX_QUANTITY: expected a whole number, got {value!r}")
        return int(quantity)


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


class LandingSettings(SettingsPart):
    """Event-time sanity: which business times landing accepts as possibly true.

    An event whose ``event_time`` is later than its Kafka timestamp (or than the landing time,
    when that is earlier or the record has no timestamp) by more than
    ``event_time_tolerance_hours``, or earlier than ``event_time_floor``, is quarantined with the
    reason: one producer's wrong clock must not move the data's "as of".
    """

    event_time_tolerance_hours: float = Field(
        24.0, validation_alias="SCPRO_EVENT_TIME_TOLERANCE_HOURS"
    )
    event_time_floor: datetime = Field(
        DEFAULT_EVENT_TIME_FLOOR, validation_alias="SCPRO_EVENT_TIME_FLOOR"
    )

    @field_validator("event_time_tolerance_hours", mode="before")
    @classmethod
    def _tolerance(cls, value: Any, info: ValidationInfo) -> float:
        return parse_event_time_tolerance(value, _variable(cls, info))

    @field_validator("event_time_floor", mode="before")
    @classmethod
    def _floor(cls, value: Any, info: ValidationInfo) -> datetime:
        if isinstance(value, str):
            return parse_event_time_floor(value, _variable(cls, info))
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"{_variable(cls, info)} must be timezone-aware")
        return value


#: Port of the embedded Spark Connect server (``SCPRO_SPARK_CONNECT_PORT``); Spark's own default.
DEFAULT_SPARK_CONNECT_PORT = 15002


class SparkConnectSettings(SettingsPart):
    """Where Spark sessions run over Spark Connect, if anywhere.

    ``remote`` (``SCPRO_SPARK_REMOTE``, e.g. ``sc://spark.example.com:15002``) is a Connect server
    SCPro does not manage: when set, every session connects there and ``scpro`` starts none of its
    own. ``port`` is where ``scpro spark start`` runs the embedded server otherwise.
    """

    remote: str | None = Field(None, validation_alias="SCPRO_SPARK_REMOTE")
    port: int = Field(DEFAULT_SPARK_CONNECT_PORT, validation_alias="SCPRO_SPARK_CONNECT_PORT")

    @field_validator("remote")
    @classmethod
    def _connect_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("sc://"):
            raise ValueError(f"SCPRO_SPARK_REMOTE: expected an sc://host:port URL, got {value!r}")
        return value

    @field_validator("port", mode="before")
    @classmethod
    def _tcp_port(cls, value: Any) -> int:
        text = str(value).strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ValueError(f"SCPRO_SPARK_CONNECT_PORT: expected a TCP port, got {value!r}")
        return int(text)


class GapSettings(SettingsPart):
    """When an offset range that was requested but never landed counts as a gap, and what then.

    A range without a raw file ``deadline_seconds`` after it was requested fails the raw asset's
    ``requested_ranges_landed`` check and is requested again, waiting twice as long after each
    attempt (capped at ``backoff_cap_seconds``, never below the deadline); after
    ``alert_after_attempts`` attempts it raises an alert.
    """

    deadline_seconds: float = Field(600.0, validation_alias="SCPRO_GAP_DEADLINE_SECONDS")
    alert_after_attempts: int = Field(3, validation_alias="SCPRO_GAP_ALERT_AFTER_ATTEMPTS")
    backoff_cap_seconds: float = Field(3600.0, validation_alias="SCPRO_GAP_BACKOFF_CAP_SECONDS")

    @field_validator("deadline_seconds", mode="before")
    @classmethod
    def _deadline(cls, value: Any, info: ValidationInfo) -> float:
        return _number_at_least(_variable(cls, info), value, 0.0)

    @field_validator("alert_after_attempts", mode="before")
    @classmethod
    def _attempts(cls, value: Any, info: ValidationInfo) -> int:
        return _number_at_least(_variable(cls, info), value, 1, int)

    @field_validator("backoff_cap_seconds", mode="before")
    @classmethod
    def _cap(cls, value: Any, info: ValidationInfo) -> float:
        cap = _number_at_least(_variable(cls, info), value, 0.0)
        return max(cap, info.data.get("deadline_seconds", 0.0))


#: Who an alert is for, and the variable holding that audience's apprise URLs: data engineers
#: (failed runs and checks, stale marts, landing gaps) and operations (orders newly at high risk).
ALERT_URL_VARIABLES: dict[str, str] = {
    "data": "SCPRO_ALERT_URLS",
    "operations": "SCPRO_ALERT_URLS_OPS",
}


class AlertSettings(SettingsPart):
    """The apprise URLs of each audience's alert channels (comma-separated; secrets).

    Read at the moment of sending (:func:`alert_urls_from_env`), never stored: the URLs carry the
    channels' tokens. The two audiences do not fall back on each other: customer orders are not
    sent to the data engineers' channel unless a deployment sets both variables to it.
    """

    data: SecretStr = Field(SecretStr(""), validation_alias="SCPRO_ALERT_URLS")
    operations: SecretStr = Field(SecretStr(""), validation_alias="SCPRO_ALERT_URLS_OPS")

    def urls(self, audience: str = "data") -> tuple[str, ...]:
        """The channels of ``audience`` (see :data:`ALERT_URL_VARIABLES`)."""
        if audience not in ALERT_URL_VARIABLES:
            raise ValueError(f"alert audience must be one of {sorted(ALERT_URL_VARIABLES)}")
        text = getattr(self, audience).get_secret_value()
        return tuple(url.strip() for url in text.split(",") if url.strip())


def alert_urls_from_env(audience: str = "data") -> tuple[str, ...]:
    """Apprise URLs of ``audience``'s alert channels, read now (:class:`AlertSettings`)."""
    return AlertSettings().urls(audience)


#: OpenLineage namespace of SCPro's jobs and datasets unless configured.
DEFAULT_LINEAGE_NAMESPACE = "scpro"


class LineageSettings(SettingsPart):
    """Where OpenLineage events go: a URL, a Kafka topic, or (neither) files under SCPRO_HOME."""

    url: str | None = Field(None, validation_alias="SCPRO_OPENLINEAGE_URL")
    api_key: SecretStr | None = Field(None, validation_alias="SCPRO_OPENLINEAGE_API_KEY")
    namespace: str = Field(
        DEFAULT_LINEAGE_NAMESPACE, validation_alias="SCPRO_OPENLINEAGE_NAMESPACE"
    )
    timeout_seconds: float = Field(5.0, validation_alias="SCPRO_OPENLINEAGE_TIMEOUT")
    retries: int = Field(3, validation_alias="SCPRO_OPENLINEAGE_RETRIES")
    kafka_topic: str | None = Field(None, validation_alias="SCPRO_OPENLINEAGE_KAFKA_TOPIC")

    @field_validator("timeout_seconds", "retries", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{_variable(cls, info)}: expected a number, got {value!r}") from None

    @field_validator("retries", mode="after")
    @classmethod
    def _whole_retries(cls, value: int) -> int:
        return int(value)


#: Seconds between two looks for a newly published snapshot, per open dashboard session.
DEFAULT_REFRESH_SECONDS = 3.0


class DashboardSettings(SettingsPart):
    """The Panel dashboard: what it shows, how often it looks, behind which proxy, with which login.

    Login is by configuration, never by code (``auth``: ``basic`` with ``users``, or ``oauth``);
    credentials are secrets. See :mod:`panel_app.server`.
    """

    serving_current: Path | None = Field(None, validation_alias="SCPRO_PANEL_SERVING_CURRENT")
    """The published snapshot to show (``SCPRO_HOME/serving/current`` when unset)."""
    refresh_seconds: float = Field(
        DEFAULT_REFRESH_SECONDS, validation_alias="SCPRO_PANEL_REFRESH_SECONDS"
    )
    actor: str = Field("", validation_alias="SCPRO_PANEL_ACTOR")
    allowed_origins: str = Field("", validation_alias="SCPRO_PANEL_ALLOWED_ORIGINS")
    prefix: str = Field("", validation_alias="SCPRO_PANEL_PREFIX")
    auth: str = Field("", validation_alias="SCPRO_PANEL_AUTH")
    users: SecretStr = Field(SecretStr(""), validation_alias="SCPRO_PANEL_USERS")
    cookie_secret: SecretStr | None = Field(None, validation_alias="SCPRO_PANEL_COOKIE_SECRET")
    oauth_provider: str | None = Field(None, validation_alias="SCPRO_PANEL_OAUTH_PROVIDER")
    oauth_key: str | None = Field(None, validation_alias="SCPRO_PANEL_OAUTH_KEY")
    oauth_secret: SecretStr | None = Field(None, validation_alias="SCPRO_PANEL_OAUTH_SECRET")
    oauth_redirect_uri: str | None = Field(None, validation_alias="SCPRO_PANEL_OAUTH_REDIRECT_URI")
    oauth_encryption_key: SecretStr | None = Field(
        None, validation_alias="SCPRO_PANEL_OAUTH_ENCRYPTION_KEY"
    )

    @field_validator("refresh_seconds", mode="before")
    @classmethod
    def _refresh(cls, value: Any) -> float:
        raw = str(value).strip()
        try:
            seconds = float(raw)
        except ValueError:
            raise ValueError(f"SCPRO_PANEL_REFRESH_SECONDS={raw!r}: give seconds, e.g. 3") from None
        if not 0.2 <= seconds <= 3600:
            raise ValueError(f"SCPRO_PANEL_REFRESH_SECONDS={raw!r}: between 0.2 and 3600 seconds")
        return seconds

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",")):
            if "://" in origin or "/" in origin:
                raise ValueError(
                    f"SCPRO_PANEL_ALLOWED_ORIGINS: {origin!r} must be host or host:port "
                    "(no scheme, no path)"
                )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        prefix = value.strip().strip("/")
        if any(c in prefix for c in "?#: "):
            raise ValueError(f"SCPRO_PANEL_PREFIX: {prefix!r} must be a plain URL path")
        return prefix

    @property
    def origins(self) -> list[str]:
        """The extra ``host[:port]`` names browsers reach the dashboard by."""
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]


class PrivacySettings(SettingsPart):
    """The key that pseudonymises personal identifiers (customer ids, client IPs), if any."""

    pii_key: SecretStr | None = Field(None, validation_alias="SCPRO_PII_KEY")


class Settings(SettingsPart):
    """Where SCPro keeps its state, how it reaches Kafka and Spark, and every other part.

    ``Settings()`` (or :meth:`from_env`) reads them all; ``Settings(home=..., kafka=...)`` sets
    some in code and reads the rest. Copies with a change: ``settings.model_copy(update={...})``.
    """

    home: Path = Field(REPO_ROOT / ".scpro", validation_alias="SCPRO_HOME")
    spark_master: str = Field("local[*]", validation_alias="SCPRO_SPARK_MASTER")
    dbt_target: str | None = Field(None, validation_alias="SCPRO_DBT_TARGET")
    """The dbt profile's target (its default, ``dev``, when unset)."""
    ingest_start_method: str | None = Field(None, validation_alias="SCPRO_INGEST_START_METHOD")
    """How ``scpro ingest`` starts its workers (``fork`` where available, else ``spawn``)."""
    shared_data: Path = Field(
        REPO_ROOT.parent / "shared" / "data", validation_alias="SCPRO_SHARED_DATA"
    )
    """Where the real sample data sets are read (DataCo, Olist); never copied into the repo."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    backpressure: BackpressureSettings = Field(default_factory=BackpressureSettings)
    landing: LandingSettings = Field(default_factory=LandingSettings)
    gaps: GapSettings = Field(default_factory=GapSettings)
    spark_connect: SparkConnectSettings = Field(default_factory=SparkConnectSettings)

    #: Parts read where they are used rather than held here: the contracts' limits (once, at
    #: import), the alert URLs (when sending), the PII key (by the sources), the OpenLineage
    #: target (when the lineage sensor is built) and the dashboard's (when it is served).
    ELSEWHERE: ClassVar[tuple[type[SettingsPart], ...]] = (
        ContractLimits,
        AlertSettings,
        PrivacySettings,
        LineageSettings,
        DashboardSettings,
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("ingest_start_method")
    @classmethod
    def _start_method(cls, value: str | None) -> str | None:
        if value is not None and value not in ("fork", "spawn", "forkserver"):
            raise ValueError(
                f"SCPRO_INGEST_START_METHOD: expected fork, spawn or forkserver, got {value!r}"
            )
        return value

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
