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
        # Two cores: at most two steps of a run at once (Spark, a TensorFlow training and dbt
        # side by side starved each other in the daemon's runs).
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
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
