"""The ``scpro`` code location (``platform_defs``), and both locations as one whole (``defs``).

``workspace.yaml`` loads two code locations, whose roots sit side by side in this package:

- ``scpro_ingest`` (:mod:`scpro_assets.definitions.landing`): the Kafka topics, the raw event
  assets, their landing jobs and the Kafka sensors. It is kept light because a stream asks for
  many short landing runs and each run imports its location first (see that module).
- ``scpro`` (``platform_defs`` here): everything that follows the raw data: the Spark clean
  layer, the models, the dbt warehouse, the serving snapshot, the automation sensor, the model
  schedules and sensors, and the OpenLineage sensor (which describes the runs of both).

The asset graph is one graph across both: the clean assets depend on ``raw_*`` by key, and the
automation follows updates across the two locations. :func:`build_definitions` merges both into
one ``Definitions`` for in-process use (``scpro ingest``, ``scpro run``, tests).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import dagster as dg

from ml_assets.assets import ml_assets
from ml_assets.automation import ml_jobs, ml_schedules, ml_sensors
from scpro_assets.automation import apply_automation, automation_sensor
from scpro_assets.clean.assets import clean_assets, spark_resource
from scpro_assets.definitions.landing import build_ingest_definitions, ingest_resources
from scpro_assets.definitions.landing import defs as ingest_defs
from scpro_assets.settings import Settings
from scpro_assets.warehouse.assets import warehouse_assets, warehouse_jobs, warehouse_schedules
from scpro_assets.warehouse.project import dbt_resource
from sensors.alert_sensors import PLATFORM_ALERT_SENSORS
from sensors.lineage_sensor import build_openlineage_sensor


def build_platform_definitions(
    settings: Settings | None = None,
    resources: dict[str, dg.ConfigurableResource] | None = None,
) -> dg.Definitions:
    """Every asset downstream of the raw events, with its automation, jobs and sensors."""
    settings = settings or Settings.from_env()
    resources = resources or ingest_resources(settings)
    return dg.Definitions(
        assets=apply_automation([*clean_assets, *ml_assets, *warehouse_assets]),
        # Steps run one after another in the run's own process. A process per step (the
        # multiprocess default) re-imported the code location and started a Spark JVM for each
        # step: 5-13 s per step on 2 cores, most of a streaming cycle's time, where the steps
        # themselves are single-threaded Python, Spark (local[*] uses every core), TensorFlow
        # and dbt, which gain little from running side by side and starved each other when
        # they did. Runs still run side by side (the instance's run queue).
        executor=dg.in_process_executor,
        jobs=[*ml_jobs, *warehouse_jobs],
        schedules=[*ml_schedules, *warehouse_schedules],
        # Lineage covers the runs of both locations, so it reads the whole asset graph.
        sensors=[
            build_openlineage_sensor(asset_graph=whole_asset_graph),
            *ml_sensors,
            automation_sensor(),
            *PLATFORM_ALERT_SENSORS,
        ],
        resources={**resources, "pyspark": spark_resource(settings), "dbt": dbt_resource(settings)},
    )


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Both locations as one ``Definitions`` (for running in-process), from ``settings``."""
    ingest = build_ingest_definitions(settings)
    return dg.Definitions.merge(
        ingest, build_platform_definitions(settings, dict(ingest.resources or {}))
    )


@cache
def whole_asset_graph() -> Any:
    """The asset graph of both locations (resolved once per process, on first use)."""
    return defs.resolve_asset_graph()


platform_defs = build_platform_definitions(resources=dict(ingest_defs.resources or {}))
defs = dg.Definitions.merge(ingest_defs, platform_defs)
