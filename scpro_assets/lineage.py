"""OpenLineage run events for every asset materialization, sent to a file or to Marquez.

Each Dagster asset that a run materializes becomes one OpenLineage *job* (``namespace`` = ``scpro``
or ``SCPRO_OPENLINEAGE_NAMESPACE``, ``name`` = the asset key) with one *run* per (Dagster run,
asset, partition): a START event when its step started, then COMPLETE when it was materialized,
FAIL when its step failed, or ABORT when the Dagster run was canceled first. Inputs are the asset's
upstream assets in the code location's asset graph; the output is the asset itself, with a
``schema`` facet from ``dagster/column_schema`` and ``outputStatistics`` from
``dagster/row_count`` when the materialization carries them (dbt models and our Spark/ML assets
do). The OpenLineage ``runId`` is a UUID derived from the Dagster run id, asset key and partition,
so re-emitting a run produces the same ids and a consumer can deduplicate.

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

Transports never raise into the pipeline: failures are logged and counted on the transport, and
the emitter returns whether every event was delivered.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
from dagster import DagsterEventType

from scpro_assets.settings import Settings

log = logging.getLogger(__name__)

#: Identifies SCPro as the producer of every event and facet.
PRODUCER = "https://github.com/scpro/scpro/tree/main/scpro_assets/lineage.py"
#: The OpenLineage core spec version the events follow (vendored in tests/schemas/openlineage).
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
)
OUTPUT_STATISTICS_FACET_URL = (
    "https://openlineage.io/spec/1-0-1/OutputStatisticsOutputDatasetFacet.json"
    "#/$defs/OutputStatisticsOutputDatasetFacet"
)
ERROR_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
JOB_TYPE_FACET_URL = (
    "https://openlineage.io/spec/facets/2-0-2/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
)
#: Fixed namespace for deriving OpenLineage run ids from Dagster identities (uuid5).
RUN_ID_NAMESPACE = uuid.UUID("6f1c2a4e-7d3b-5e8f-9a0b-3c5d7e9f1a2b")
DEFAULT_NAMESPACE = "scpro"
LINEAGE_FILE = "openlineage.ndjson"


@dataclass(frozen=True)
class LineageConfig:
    """Where events go: a NDJSON file under ``Settings.lineage_dir``, or a Marquez-style URL.

    The API key is only ever read from the environment and never shown (``repr=False``).
    """

    lineage_dir: Path
    namespace: str = DEFAULT_NAMESPACE
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> LineageConfig:
        """Read ``SCPRO_OPENLINEAGE_URL``, ``_API_KEY``, ``_NAMESPACE``, ``_TIMEOUT``."""
        settings = settings or Settings.from_env()
        return cls(
            lineage_dir=settings.lineage_dir,
            namespace=os.environ.get("SCPRO_OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE,
            url=os.environ.get("SCPRO_OPENLINEAGE_URL") or None,
            api_key=os.environ.get("SCPRO_OPENLINEAGE_API_KEY") or None,
            timeout_seconds=float(os.environ.get("SCPRO_OPENLINEAGE_TIMEOUT") or 5.0),
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


def _facet(schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **fields}


def output_facets(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dataset facets, output facets) from a materialization's metadata, where cheap.

    ``dagster/column_schema`` becomes the ``schema`` facet, ``dagster/row_count`` the
    ``outputStatistics`` facet; anything else is left out.
    """
    facets: dict[str, Any] = {}
    out_facets: dict[str, Any] = {}
    schema = metadata.get("dagster/column_schema")
    table_schema = getattr(schema, "schema", schema)
    columns = getattr(table_schema, "columns", None)
    if columns:
        fields = []
        for column in columns:
            entry = {"name": column.name, "type": str(column.type)}
            if column.description:
                entry["description"] = column.description
            fields.append(entry)
        facets["schema"] = _facet(SCHEMA_FACET_URL, fields=fields)
    rows = metadata.get("dagster/row_count")
    rows = getattr(rows, "value", rows)
    if isinstance(rows, int) and not isinstance(rows, bool):
        out_facets["outputStatistics"] = _facet(OUTPUT_STATISTICS_FACET_URL, rowCount=rows)
    return facets, out_facets


def run_event(
    event_type: str,
    when: float,
    run_id: str,
    key: dg.AssetKey,
    upstream: Iterable[dg.AssetKey],
    namespace: str = DEFAULT_NAMESPACE,
    metadata: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One OpenLineage RunEvent (a plain dict, ready for ``json.dumps``).

    ``run_id`` is the OpenLineage runId (see :func:`lineage_run_id`); ``upstream`` are the asset's
    parents, sent as input datasets; the asset itself is the output dataset.
    """
    dataset_facets, out_facets = output_facets(metadata or {})
    output: dict[str, Any] = {"namespace": namespace, "name": asset_name(key)}
    if dataset_facets:
        output["facets"] = dataset_facets
    if out_facets:
        output["outputFacets"] = out_facets
    run: dict[str, Any] = {"runId": run_id}
    if error is not None:
        run["facets"] = {
            "errorMessage": _facet(ERROR_FACET_URL, message=error, programmingLanguage="PYTHON")
        }
    return {
        "eventType": event_type,
        "eventTime": event_time(when),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": run,
        "job": {
            "namespace": namespace,
            "name": asset_name(key),
            "facets": {
                "jobType": _facet(
                    JOB_TYPE_FACET_URL,
                    processingType="BATCH",
                    integration="DAGSTER",
                    jobType="ASSET",
                )
            },
        },
        "inputs": [
            {"namespace": namespace, "name": asset_name(parent)}
            for parent in sorted(upstream, key=asset_name)
        ],
        "outputs": [output],
    }


# --- transports ----------------------------------------------------------------------------


class Transport(Protocol):
    """Delivers events; returns False (never raises) when an event could not be delivered."""

    failures: int

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Deliver one event."""
        ...


_FILE_LOCK = threading.Lock()


class FileTransport:
    """Appends each event as one JSON line to a file (``lineage_dir/openlineage.ndjson``).

    Each line is written with a single ``write`` on a file opened in append mode, under a
    process-wide lock and an ``fcntl`` lock, so concurrent writers never interleave lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failures = 0
        self.sent = 0

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Append one line; count and log a failure instead of raising."""
        line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _FILE_LOCK, self.path.open("ab") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError as error:
            self.failures += 1
            log.warning("OpenLineage: could not append to %s: %s", self.path, error)
            return False
        self.sent += 1
        return True


class HttpTransport:
    """POSTs each event to ``<url>/api/v1/lineage`` (Marquez and OpenLineage-compatible APIs).

    Uses urllib with a timeout; an API key (from the environment only) goes in a Bearer header.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout_seconds: float = 5.0) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/api/v1/lineage") else base + "/api/v1/lineage"
        self._api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.failures = 0
        self.sent = 0

    def emit(self, event: Mapping[str, Any]) -> bool:
        """POST one event; count and log a failure (HTTP error, timeout, refused) instead."""
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            self.failures += 1
            log.warning("OpenLineage: POST to %s failed: %s", self.endpoint, error)
            return False
        self.sent += 1
        return True


def transport_for(config: LineageConfig) -> Transport:
    """HTTP when ``SCPRO_OPENLINEAGE_URL`` is set, else the NDJSON file."""
    if config.url:
        return HttpTransport(config.url, config.api_key, config.timeout_seconds)
    return FileTransport(config.lineage_dir / LINEAGE_FILE)


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
) -> list[dict[str, Any]]:
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
    events: list[tuple[float, int, dict[str, Any]]] = []
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
    transport: Transport | None = None,
) -> bool:
    """Build and send the lineage of one finished run; True when every event was delivered.

    Never raises for delivery problems (they are logged and counted on the transport), so the
    in-process runner and the sensor can call it after any run.
    """
    config = settings if isinstance(settings, LineageConfig) else LineageConfig.from_env(settings)
    transport = transport or transport_for(config)
    for event in events_for_run(instance, defs_or_asset_graph, run_id, config.namespace):
        if not transport.emit(event):
            # Stop here: the caller retries the whole run later, and the stable runIds let the
            # consumer recognise the events it already has.
            return False
    return True
