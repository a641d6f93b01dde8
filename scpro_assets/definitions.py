"""SCPro's single Dagster code location (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from ml_assets.assets import ml_assets
from ml_assets.automation import ml_jobs, ml_schedules, ml_sensors
from scpro_assets.automation import apply_automation, automation_sensor
from scpro_assets.clean.assets import clean_assets, spark_resource
from scpro_assets.ingest.assets import kafka_topic_specs, land_jobs, raw_assets
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import Settings
from scpro_assets.warehouse.assets import warehouse_assets
from scpro_assets.warehouse.project import dbt_resource
from sensors.kafka_sensors import kafka_sensors
from sensors.lineage_sensor import openlineage_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, jobs, sensors and resources, configured from ``settings`` (or the env)."""
    settings = settings or Settings.from_env()
    assets = apply_automation(
        [*kafka_topic_specs, *raw_assets, *clean_assets, *ml_assets, *warehouse_assets]
    )
    return dg.Definitions(
        assets=assets,
        # Steps run one after another in the run's own process. A process per step (the
        # multiprocess default) re-imported the code location and started a Spark JVM for each
        # step: 5-13 s per step on 2 cores, most of a streaming cycle's time, where the steps
        # themselves are single-threaded Python, Spark (local[*] uses every core), TensorFlow
        # and dbt, which gain little from running side by side and starved each other when
        # they did. Runs still run side by side (the instance's run queue).
        executor=dg.in_process_executor,
        jobs=[*land_jobs, *ml_jobs],
        schedules=ml_schedules,
        sensors=[*kafka_sensors, openlineage_sensor, *ml_sensors, automation_sensor()],
        resources={
            "kafka": KafkaResource.from_settings(settings.kafka),
            "lake": LakeResource.from_settings(settings),
            "pyspark": spark_resource(settings),
            "dbt": dbt_resource(),
        },
    )


defs = build_definitions()
