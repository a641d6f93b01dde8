"""SCPro's single Dagster code location (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from scpro_assets.clean.assets import clean_assets, spark_resource
from scpro_assets.ingest.assets import kafka_topic_specs, land_jobs, raw_assets
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import Settings
from sensors.kafka_sensors import kafka_sensors
from sensors.lineage_sensor import openlineage_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, jobs, sensors and resources, configured from ``settings`` (or the env)."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[*kafka_topic_specs, *raw_assets, *clean_assets],
        jobs=land_jobs,
        sensors=[*kafka_sensors, openlineage_sensor],
        resources={
            "kafka": KafkaResource.from_settings(settings.kafka),
            "lake": LakeResource.from_settings(settings),
            "pyspark": spark_resource(settings),
        },
    )


defs = build_definitions()
