"""OpenLineage run events for every asset materialization, through the OpenLineage client.

Each Dagster asset that a run materializes becomes one OpenLineage *job* (``namespace`` = ``scpro``
or ``SCPRO_OPENLINEAGE_NAMESPACE``, ``name`` = the asset key) with one *run* per (Dagster run,
asset, partition): a START event when its step started, then COMPLETE when it was materialized,
FAIL when its step failed, or ABORT when the Dagster run was canceled first. Inputs are the asset's
upstream assets in the code location's asset graph; the output is the asset itself, with the
``schema`` facet from ``dagster/column_schema``, ``columnLineage`` from ``dagster/column_lineage``
and ``outputStatistics`` from ``dagster/row_count`` when the materialization carries them (dbt
models, the Spark clean assets and the ML score assets do). The OpenLineage ``runId`` is a UUID
derived from the Dagster run id, asset key and partition, so re-emitting a run produces the same
ids and a consumer can deduplicate.

Events and facets are the typed classes of ``openlineage-python`` (``event_v2``, ``facet_v2``),
serialized by its ``Serde`` and sent by its transports, chosen from SCPro's settings:

- file (default): the client's ``FileTransport`` in append mode, one JSON line per event, to
  ``SCPRO_HOME/lineage/openlineage.ndjson``;
- HTTP when ``SCPRO_OPENLINEAGE_URL`` is set: the client's ``HttpTransport`` POSTs to
  ``<url>/api/v1/lineage`` (Marquez and compatible APIs) with ``SCPRO_OPENLINEAGE_API_KEY`` as a
  Bearer token, and retries within the call (urllib3: ``SCPRO_OPENLINEAGE_RETRIES`` more attempts
  on a refused connection, a timeout or a 500/502/503/504, with backoff);
- Kafka when ``SCPRO_OPENLINEAGE_KAFKA_TOPIC`` is set: the client's ``KafkaTransport`` to SCPro's
  cluster (``SCPRO_KAFKA_*``), keyed by job so a job's events stay in order.

SCPro configures the transport itself; the client's own configuration sources (``openlineage.yml``,
``OPENLINEAGE__*``) are not read, so a stray file cannot send SCPro's lineage elsewhere.

Delivery is explicit. The client's HTTP and file transports *raise* when an event was not
delivered (after the HTTP retries); its Kafka transport only *logs* a failed delivery and waits
without a deadline, so :class:`AcknowledgedKafkaTransport` waits at most the timeout and raises
unless the broker acknowledged the event. :class:`LineageEmitter` turns a raise into ``False``, a
log line and a count: a run never fails on lineage, and the sensor keeps its cursor on the run to
send it again next tick (at least once; the stable runIds make the repeats recognisable).

Why walk *finished runs* (``fetch_run_status_changes`` on RUN_SUCCESS / RUN_FAILURE /
RUN_CANCELED, cursor = the status event's storage id) rather than materializations:

- In Dagster 1.13 ``get_event_records(EventRecordsFilter(...))`` is deprecated and
  ``fetch_materializations`` needs one asset key per query; the run status changes are one indexed,
  instance-wide stream with a storage-id cursor, on SQLite and Postgres alike.
- A finished run's own records (``get_records_for_run``) hold everything an event needs, in one
  query: the planned assets with their step keys, STEP_START times (START), materializations
  (COMPLETE) and STEP_FAILURE errors (FAIL). On SQLite, run records and index records use different
  storage-id sequences, so mixing a global materialization walk with per-run lookups would not
  give a consistent cursor.
- ``@run_status_sensor`` would need two sensors (success, failure) and advances its cursor itself
  even when emission failed; our sensor advances its cursor only past runs whose events were
  delivered, so a Marquez outage delays lineage instead of losing it.

The price: lineage for a run appears when the run ends (not at each step), and runless asset
events (``report_runless_asset_event``) are not emitted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import DagsterEventType
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport
from pydantic import SecretStr

from scpro_assets.settings import (
    DEFAULT_LINEAGE_NAMESPACE,
    KafkaSettings,
    LineageSettings,
    Settings,
)

log = logging.getLogger(__name__)

#: Identifies SCPro as the producer of every event and facet.
PRODUCER = "https://github.com/scpro/scpro/tree/main/scpro_assets/lineage.py"
#: Fixed namespace for deriving OpenLineage run ids from Dagster identities (uuid5).
RUN_ID_NAMESPACE = uuid.UUID("6f1c2a4e-7d3b-5e8f-9a0b-3c5d7e9f1a2b")
DEFAULT_NAMESPACE = DEFAULT_LINEAGE_NAMESPACE
LINEAGE_FILE = "openlineage.ndjson"
#: The path Marquez (and OpenLineage-compatible APIs) receive events on.
LINEAGE_ENDPOINT = "api/v1/lineage"
#: HTTP statuses retried within one call; others (a 400 for a bad event, a 401 for a bad key) are
#: not: the event is retried next tick instead.
RETRIED_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True)
class LineageConfig:
    """Where events go: a NDJSON file under ``Settings.lineage_dir``, a URL, or a Kafka topic.

    The API key is only ever read from the environment and never shown (``repr=False``); the
    Kafka settings hide their password the same way.
    """

    lineage_dir: Path
    namespace: str = DEFAULT_NAMESPACE
    url: str | None = None
    api_key: SecretStr | None = field(default=None, repr=False)
    timeout_seconds: float = 5.0
    retries: int = 3
    kafka_topic: str | None = None
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def __post_init__(self) -> None:
        if self.url and self.kafka_topic:
            raise ValueError(
                "SCPRO_OPENLINEAGE_URL and SCPRO_OPENLINEAGE_KAFKA_TOPIC are both set: lineage "
                "goes to one place; unset one of them"
            )
        if self.timeout_seconds <= 0:
            raise ValueError(
                f"SCPRO_OPENLINEAGE_TIMEOUT: expected seconds > 0, got {self.timeout_seconds}"
            )
        if self.retries < 0:
            raise ValueError(f"SCPRO_OPENLINEAGE_RETRIES: expected 0 or more, got {self.retries}")

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> LineageConfig:
        """The ``SCPRO_OPENLINEAGE_*`` variables, read now (:class:`LineageSettings`).

        ``URL``, ``API_KEY``, ``NAMESPACE``, ``TIMEOUT`` (seconds), ``RETRIES`` (HTTP) and
        ``KAFKA_TOPIC``; Kafka's connection and the lineage folder come from ``settings``.
        """
        settings = settings or Settings.from_env()
        lineage = LineageSettings()
        return cls(
            lineage_dir=settings.lineage_dir,
            namespace=lineage.namespace,
            url=lineage.url,
            api_key=lineage.api_key,
            timeout_seconds=lineage.timeout_seconds,
            retries=lineage.retries,
            kafka_topic=lineage.kafka_topic,
            kafka=settings.kafka,
        )


# --- pure event builders -------------------------------------------------------------------


def asset_name(key: dg.AssetKey) -> str:
    """OpenLineage job/dataset name of an asset: its key path joined by ``/``."""
    return key.to_user_string()


def lineage_run_id(dagster_run_id: str, key: dg.AssetKey, partition: str | None = None) -> str:
    """Stable OpenLineage runId for one asset in one Dagster run (and partition)."""
    identity = "\x1f".join([dagster_run_id, asset_name(key), partition or ""])
    return str(uuid.uuid5(RUN_ID_NAMESPACE, identity))


def event_time(timestamp: float) -> str:
    """ISO-8601 UTC with milliseconds, from a Dagster (epoch seconds) timestamp."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _value(entry: Any) -> Any:
    """A metadata entry's value, whether it came as a ``MetadataValue`` or raw."""
    return getattr(entry, "value", entry)


def schema_facet(metadata: Mapping[str, Any]) -> schema_dataset.SchemaDatasetFacet | None:
    """The ``schema`` facet from ``dagster/column_schema`` (a ``TableSchema``), if any."""
    table_schema = _value(metadata.get("dagster/column_schema"))
    columns = getattr(table_schema, "columns", None)
    if not columns:
        return None
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=column.name,
                type=str(column.type),
                description=column.description or None,
                ordinal_position=position,
                fields=None,  # no nested fields (the client's default is an empty list)
            )
            for position, column in enumerate(columns, start=1)
        ],
        producer=PRODUCER,
    )


def column_lineage_facet(
    metadata: Mapping[str, Any], namespace: str
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """The ``columnLineage`` facet from ``dagster/column_lineage`` (dbt models), if any."""
    lineage = _value(metadata.get("dagster/column_lineage"))
    deps_by_column = getattr(lineage, "deps_by_column", None)
    if not deps_by_column:
        return None
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            column: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=namespace,
                        name=asset_name(dep.asset_key),
                        field=dep.column_name,
                        transformations=None,
                    )
                    for dep in deps
                ]
            )
            for column, deps in deps_by_column.items()
        },
        dataset=None,
        producer=PRODUCER,
    )


def output_dataset(
    key: dg.AssetKey, namespace: str, metadata: Mapping[str, Any] | None = None
) -> OutputDataset:
    """The asset as an output dataset, with the facets its materialization's metadata allows."""
    metadata = metadata or {}
    facets: dict[str, Any] = {}
    if schema := schema_facet(metadata):
        facets["schema"] = schema
    if columns := column_lineage_facet(metadata, namespace):
        facets["columnLineage"] = columns
    out_facets: dict[str, Any] = {}
    rows = _value(metadata.get("dagster/row_count"))
    if isinstance(rows, int) and not isinstance(rows, bool):
        out_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=rows, producer=PRODUCER
            )
        )
    return OutputDataset(
        namespace=namespace,
        name=asset_name(key),
        facets=facets or None,
        outputFacets=out_facets or None,
    )


def run_event(
    event_type: str,
    when: float,
    run_id: str,
    key: dg.AssetKey,
    upstream: Iterable[dg.AssetKey],
    namespace: str = DEFAULT_NAMESPACE,
    metadata: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> RunEvent:
    """One OpenLineage ``RunEvent``.

    ``run_id`` is the OpenLineage runId (see :func:`lineage_run_id`); ``upstream`` are the asset's
    parents, sent as input datasets; the asset itself is the output dataset.
    """
    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="PYTHON", producer=PRODUCER
        )
    return RunEvent(
        eventType=RunState(event_type),
        eventTime=event_time(when),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=run_facets or None),
        job=Job(
            namespace=namespace,
            name=asset_name(key),
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH",
                    integration="DAGSTER",
                    jobType="ASSET",
                    producer=PRODUCER,
                )
            },
        ),
        inputs=[
            InputDataset(
                namespace=namespace, name=asset_name(parent), facets=None, inputFacets=None
            )
            for parent in sorted(upstream, key=asset_name)
        ],
        outputs=[output_dataset(key, namespace, metadata)],
    )


def as_json(event: RunEvent) -> dict[str, Any]:
    """The event as the transports send it (the client's ``Serde``: no nulls, enums as values)."""
    return Serde.to_dict(event)


# --- transports ----------------------------------------------------------------------------


class AcknowledgedKafkaTransport(KafkaTransport):
    """The client's Kafka transport, but an event counts as sent only once the broker has it.

    The client's ``emit`` hands the event to librdkafka and flushes without a deadline; a failed
    delivery is only logged by its callback. Here the flush waits at most ``timeout_seconds``
    (librdkafka gives up on the message by then, too) and ``emit`` raises unless the broker
    acknowledged it, so the sensor sends the run again later.
    """

    def __init__(self, config: KafkaConfig, timeout_seconds: float) -> None:
        super().__init__(config)
        self.timeout_seconds = timeout_seconds

    def emit(self, event: Any) -> None:
        """Produce one event and wait for its acknowledgement; raise if there is none."""
        if self.producer is None:
            self._setup_producer(self.kafka_config.config)
        producer = self.producer
        assert producer is not None
        errors: list[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(str(error))

        producer.produce(
            topic=self.topic,
            key=self.message_key or self._get_message_key(event),
            value=Serde.to_json(event).encode("utf-8"),
            on_delivery=on_delivery,
        )
        left = producer.flush(timeout=self.timeout_seconds)
        if errors or left:
            reason = "; ".join(errors) or f"not acknowledged within {self.timeout_seconds:g} s"
            raise ConnectionError(f"Kafka topic {self.topic}: {reason}")


def _http_transport(config: LineageConfig, url: str) -> HttpTransport:
    """The client's HTTP transport: ``<url>/api/v1/lineage`` unless the URL already ends so."""
    base = url.rstrip("/")
    endpoint = LINEAGE_ENDPOINT
    if base.endswith("/" + LINEAGE_ENDPOINT):
        base, endpoint = base.removesuffix(LINEAGE_ENDPOINT).rstrip("/"), LINEAGE_ENDPOINT
    options: dict[str, Any] = {
        # A trailing slash keeps a path prefix (https://host/marquez/) when the endpoint is joined.
        "url": base + "/",
        "endpoint": endpoint,
        "timeout": config.timeout_seconds,
        "retry": {
            "total": config.retries,
            "connect": config.retries,
            "read": config.retries,
            "status": config.retries,
            "backoff_factor": 0.5,
            "status_forcelist": list(RETRIED_STATUSES),
            "allowed_methods": ["POST"],
            # A Retry-After of an hour must not hold the sensor's tick: the next tick retries.
            "respect_retry_after_header": False,
        },
    }
    if config.api_key:
        options["auth"] = {"type": "api_key", "apiKey": config.api_key.get_secret_value()}
    return HttpTransport(HttpConfig.from_dict(options))


def _kafka_transport(config: LineageConfig, topic: str) -> AcknowledgedKafkaTransport:
    """The Kafka transport on SCPro's cluster, acknowledged by every in-sync replica."""
    from scpro_assets.kafka.clients import rdkafka_config

    timeout_ms = str(int(config.timeout_seconds * 1000))
    producer_config = {
        **rdkafka_config(config.kafka),
        "acks": "all",
        "enable.idempotence": "true",
        "message.timeout.ms": timeout_ms,
        "socket.timeout.ms": timeout_ms,
    }
    return AcknowledgedKafkaTransport(
        KafkaConfig(config=producer_config, topic=topic, flush=True), config.timeout_seconds
    )


def transport_for(config: LineageConfig) -> Transport:
    """The client transport SCPro's settings choose: HTTP, Kafka, or the NDJSON file."""
    if config.url:
        return _http_transport(config, config.url)
    if config.kafka_topic:
        return _kafka_transport(config, config.kafka_topic)
    path = config.lineage_dir / LINEAGE_FILE
    # A folder that cannot be made shows up as the first event's delivery failure instead.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=os.fspath(path), append=True))


@dataclass
class LineageEmitter:
    """Sends events through one client transport and says whether each one was delivered.

    The client's transports raise on failure; this turns that into ``False``, a warning and a
    count, so neither a run nor a sensor tick fails because lineage could not be sent.
    """

    transport: Transport
    sent: int = 0
    failures: int = 0
    last_error: str | None = None

    @classmethod
    def from_config(cls, config: LineageConfig) -> LineageEmitter:
        """An emitter on the transport ``config`` chooses."""
        return cls(transport_for(config))

    def emit(self, event: RunEvent) -> bool:
        """Send one event; True once the transport accepted it, False (never a raise) if not."""
        try:
            self.transport.emit(event)
        except Exception as error:  # any failure of any transport means: send it again later
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning(
                "OpenLineage: %s transport could not send %s of %s: %s",
                self.transport.kind,
                event.eventType.value if event.eventType else "event",
                event.job.name,
                self.last_error,
            )
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Release the transport's connections (HTTP session, Kafka producer)."""
        with contextlib.suppress(Exception):
            self.transport.close(1.0)


# --- from a Dagster run to events ------------------------------------------------------------

_RUN_RECORD_TYPES = {
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.STEP_START,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.STEP_FAILURE,
}


def _asset_graph(defs_or_asset_graph: Any) -> Any:
    if isinstance(defs_or_asset_graph, dg.Definitions):
        return defs_or_asset_graph.resolve_asset_graph()
    if isinstance(defs_or_asset_graph, dg.RepositoryDefinition):
        return defs_or_asset_graph.asset_graph
    return defs_or_asset_graph


def _parents(asset_graph: Any, key: dg.AssetKey) -> Sequence[dg.AssetKey]:
    if asset_graph is not None and asset_graph.has(key):
        return sorted(asset_graph.get(key).parent_keys, key=asset_name)
    return []


def _error_message(error: Any) -> str:
    """The error and its causes on one line each (Dagster wraps the user's exception)."""
    parts = []
    while error is not None and len(parts) < 5:
        parts.append(error.message.strip())
        error = error.cause
    return ("\n".join(parts) or "step failed")[:4000]


def events_for_run(
    instance: dg.DagsterInstance,
    defs_or_asset_graph: Any,
    run_id: str,
    namespace: str = DEFAULT_NAMESPACE,
) -> list[RunEvent]:
    """All RunEvents of one finished Dagster run, in the order they happened.

    Per materialized asset: START (its step's start) and COMPLETE. Per planned asset whose step
    failed without materializing it: START and FAIL with the error. If the run was canceled,
    assets whose step had started but produced nothing get START and ABORT.
    """
    asset_graph = _asset_graph(defs_or_asset_graph)
    run = instance.get_run_by_id(run_id)
    records = []
    cursor = None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=_RUN_RECORD_TYPES)
        records.extend(page.records)
        if not page.has_more:
            break
        cursor = page.cursor
    planned: dict[str, list[dg.AssetKey]] = {}
    started: dict[str, float] = {}
    failures: dict[str, tuple[float, str]] = {}
    done: set[tuple[dg.AssetKey, str | None]] = set()
    events: list[tuple[float, int, RunEvent]] = []
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        step = entry.step_key or event.step_key or ""
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION_PLANNED and event.asset_key:
            planned.setdefault(step, []).append(event.asset_key)
        elif kind == DagsterEventType.STEP_START:
            started.setdefault(step, entry.timestamp)
        elif kind == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            failures[step] = (entry.timestamp, _error_message(data.error if data else None))
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = entry.asset_materialization
            if materialization is None:
                continue
            key = materialization.asset_key
            partition = materialization.partition
            ol_run = lineage_run_id(run_id, key, partition)
            parents = _parents(asset_graph, key)
            start = started.get(step, entry.timestamp)
            events.append((start, 0, run_event("START", start, ol_run, key, parents, namespace)))
            events.append(
                (
                    entry.timestamp,
                    1,
                    run_event(
                        "COMPLETE",
                        entry.timestamp,
                        ol_run,
                        key,
                        parents,
                        namespace,
                        metadata=materialization.metadata,
                    ),
                )
            )
            done.add((key, partition))
    canceled = run is not None and run.status == dg.DagsterRunStatus.CANCELED
    for step, keys in planned.items():
        if step in failures:
            when, message = failures[step]
            ending, error = "FAIL", message
        elif canceled and step in started:
            when, ending, error = (run.end_time or started[step]), "ABORT", "run canceled"
        else:
            continue
        for key in keys:
            if any(k == key for k, _ in done):
                continue
            ol_run = lineage_run_id(run_id, key)
            parents = _parents(asset_graph, key)
            start = started.get(step, when)
            events.append((start, 0, run_event("START", start, ol_run, key, parents, namespace)))
            events.append(
                (when, 1, run_event(ending, when, ol_run, key, parents, namespace, error=error))
            )
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


def emit_lineage_for_run(
    instance: dg.DagsterInstance,
    defs_or_asset_graph: Any,
    run_id: str,
    settings: Settings | LineageConfig | None = None,
    emitter: LineageEmitter | None = None,
) -> bool:
    """Build and send the lineage of one finished run; True when every event was delivered.

    Never raises for delivery problems (they are logged and counted on the emitter), so the
    sensor can call it after any run.
    """
    config = settings if isinstance(settings, LineageConfig) else LineageConfig.from_env(settings)
    emitter = emitter or LineageEmitter.from_config(config)
    for event in events_for_run(instance, defs_or_asset_graph, run_id, config.namespace):
        if not emitter.emit(event):
            # Stop here: the caller retries the whole run later, and the stable runIds let the
            # consumer recognise the events it already has.
            return False
    return True
