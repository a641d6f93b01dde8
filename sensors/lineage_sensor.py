"""``openlineage_sensor``: send OpenLineage events for every finished run, exactly in order.

The sensor walks the instance's run status changes (RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED) past
its cursor, ``{event_type: storage_id}``, builds the run's events with the code location's asset
graph (:func:`scpro_assets.lineage.emit_lineage_for_run`) and sends them through the configured
OpenLineage client transport (file, HTTP or Kafka). The cursor moves past a run only once all of
its events were delivered; if the transport fails (Marquez down after its retries, broker away,
disk full) the tick stops there and the next tick sends that run again, so lineage is delayed,
never lost. See :mod:`scpro_assets.lineage` for why runs, not materializations, are walked.

Only Dagster's public API is used (``dg.RunStatusChangeRecordsFilter``,
``DagsterInstance.fetch_run_status_changes``).

Settings are read from the environment at each tick (``SCPRO_HOME``, ``SCPRO_OPENLINEAGE_*``), or
from the ``settings`` given to :func:`build_openlineage_sensor` (tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster import DagsterEventType

from scpro_assets.lineage import LineageConfig, LineageEmitter, emit_lineage_for_run
from scpro_assets.settings import Settings

SENSOR_NAME = "openlineage_sensor"
#: Run endings the sensor follows, by their event type.
RUN_ENDINGS = (
    DagsterEventType.RUN_SUCCESS,
    DagsterEventType.RUN_FAILURE,
    DagsterEventType.RUN_CANCELED,
)
#: Runs handled per tick at most (per ending), to stay far under Dagster's 60 s tick limit.
MAX_RUNS_PER_TICK = 50


def parse_cursor(cursor: str | None) -> dict[str, int]:
    """``{event_type: last handled storage id}`` from the JSON cursor."""
    return {str(k): int(v) for k, v in json.loads(cursor).items()} if cursor else {}


def dump_cursor(cursor: dict[str, int]) -> str:
    """JSON cursor with keys in order."""
    return json.dumps(dict(sorted(cursor.items())))


def build_openlineage_sensor(
    settings: Settings | LineageConfig | None = None,
    emitter: LineageEmitter | None = None,
    minimum_interval_seconds: int = 15,
    asset_graph: Callable[[], Any] | None = None,
) -> dg.SensorDefinition:
    """The lineage sensor; ``settings``/``emitter`` fixed here or resolved at each tick.

    ``asset_graph`` returns the graph that describes the runs' assets; by default the sensor's
    own code location's graph. SCPro passes the graph of both of its locations, since the sensor
    follows every run of the instance, landing runs included.
    """

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Sends OpenLineage START/COMPLETE/FAIL events for the assets of every finished run "
            "to SCPRO_HOME/lineage/openlineage.ndjson, to SCPRO_OPENLINEAGE_URL "
            "(/api/v1/lineage) or to the Kafka topic SCPRO_OPENLINEAGE_KAFKA_TOPIC. "
            "Cursor: {run ending: storage id}; it moves only after delivery."
        ),
    )
    def openlineage_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        config = (
            settings if isinstance(settings, LineageConfig) else LineageConfig.from_env(settings)
        )
        sink = emitter or LineageEmitter.from_config(config)
        try:
            return _send_finished_runs(context, sink, config, asset_graph)
        finally:
            if emitter is None:
                sink.close()

    return openlineage_sensor


def _send_finished_runs(
    context: dg.SensorEvaluationContext,
    sink: LineageEmitter,
    config: LineageConfig,
    asset_graph: Callable[[], Any] | None,
) -> dg.SkipReason:
    """One tick: send the runs finished past the cursor, in order, stopping at the first failure."""
    cursor = parse_cursor(context.cursor)
    pending: list[tuple[int, str, str]] = []
    for ending in RUN_ENDINGS:
        result = context.instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=ending, after_storage_id=cursor.get(ending.value)
            ),
            limit=MAX_RUNS_PER_TICK,
            ascending=True,
        )
        pending += [(r.storage_id, ending.value, r.run_id) for r in result.records]
    pending.sort()
    if asset_graph is not None:
        graph = asset_graph()
    else:
        graph = context.repository_def.asset_graph if context.repository_def else None
    handled = 0
    for storage_id, ending, run_id in pending:
        if not emit_lineage_for_run(context.instance, graph, run_id, config, sink):
            context.update_cursor(dump_cursor(cursor))
            return dg.SkipReason(
                f"lineage of run {run_id} could not be delivered ({sink.last_error}); "
                f"will send it again next tick ({handled} runs sent this tick)"
            )
        cursor[ending] = storage_id
        handled += 1
    context.update_cursor(dump_cursor(cursor))
    if not handled:
        return dg.SkipReason("no runs finished since the last tick")
    return dg.SkipReason(f"lineage sent for {handled} finished runs")
