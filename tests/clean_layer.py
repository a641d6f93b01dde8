"""The Spark clean layer as the tests drive it: materialized through Dagster, read back.

Shared by the Olist clean test and the DataCo end-to-end run, which both check the layer.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ml_assets.data import read_clean
from scpro_assets.clean.assets import clean_entities, order_features
from scpro_assets.definitions.platform import build_definitions
from scpro_assets.settings import Settings


def asset_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Each materialized asset's metadata values, by asset name."""
    return {
        event.asset_key.to_user_string(): {
            key: value.value
            for key, value in event.event_specific_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def materialize_clean(
    settings: Settings, instance: dg.DagsterInstance, full_refresh: bool = False
) -> dict[str, dict]:
    """Materialize the clean entities and features (incremental unless ``full_refresh``)."""
    result = dg.materialize(
        [clean_entities, order_features],
        instance=instance,
        resources=build_definitions(settings).resources,
        run_config={"ops": {"clean_entities": {"config": {"full_refresh": full_refresh}}}},
    )
    assert result.success
    return asset_metadata(result)


def count_rows(clean_dir: Path, name: str) -> int:
    """Rows of the clean table ``name``, read as the models read it."""
    return len(read_clean(clean_dir, name).frame)
