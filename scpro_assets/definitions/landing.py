"""The ``scpro_ingest`` code location: Kafka topics, raw event assets, landing jobs and sensors.

Landing has its own code location because every Dagster run is a fresh process that imports its
code location first. A landing run lands a few hundred events in well under a second, but the
whole platform's location imports dbt, Spark, TensorFlow's helpers and the dbt manifest: 5.8 s
of imports on an idle core, and 30-40 s on two cores busy with a stream's Spark and model runs,
where a stream asks for a dozen landing runs per round. This module imports only Dagster, the
Kafka clients, pyarrow and the event contracts (about 2 s). The platform location
(:mod:`scpro_assets.definitions.platform`) depends on the raw assets by key, and its automation
follows them across locations.
"""

from __future__ import annotations

import dagster as dg

from scpro_assets.ingest.assets import kafka_topic_specs, land_jobs, raw_assets
from scpro_assets.ingest.gaps import GapPolicy
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import Settings
from sensors.alert_sensors import run_failure_alerts
from sensors.kafka_sensors import gap_checks, kafka_sensors


def ingest_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources landing, the Kafka sensors and the gap checks use."""
    return {
        "kafka": KafkaResource.from_settings(settings.kafka, settings.backpressure),
        "lake": LakeResource.from_settings(settings),
        "gaps": GapPolicy.from_settings(settings.gaps),
    }


def build_ingest_definitions(
    settings: Settings | None = None,
    resources: dict[str, dg.ConfigurableResource] | None = None,
) -> dg.Definitions:
    """Topics, raw assets and their gap checks, landing jobs and sensors, from ``settings``."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[*kafka_topic_specs, *raw_assets],
        asset_checks=gap_checks,
        # A landing job is one step: running it in the run's own process saves a second one.
        executor=dg.in_process_executor,
        jobs=land_jobs,
        sensors=[*kafka_sensors, run_failure_alerts],
        resources=resources or ingest_resources(settings),
    )


defs = build_ingest_definitions()
