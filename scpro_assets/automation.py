"""How the platform keeps itself fresh: one automation policy for the whole asset graph.

Kafka sensors land raw ranges (``sensors/``); everything downstream follows by declarative
automation, so new events reach the dashboard without anyone clicking:

- **Follow the data** (``eager``): the Spark clean layer, the dbt models, the scores and the
  serving snapshot run as soon as an upstream asset was updated and nothing upstream is still in
  progress. A burst of raw ranges therefore coalesces into one clean run, not one per range.
- **Models** retrain when they are missing, on a weekly schedule (Monday 03:00 UTC), and when the
  drift sensor in ``ml_assets`` asks for it; training on every new range would chase noise.

The policy is applied here, by asset key and group, rather than in each asset module, so one page
says how the whole graph moves and the asset modules stay free of scheduling concerns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import dagster as dg

#: Groups whose assets follow their upstream data.
FOLLOW_GROUPS: frozenset[str] = frozenset({"clean", "warehouse", "ml", "serving"})

#: Assets that train models: missing, weekly, or on drift (see module docstring).
TRAINING_ASSETS: frozenset[str] = frozenset({"delivery_time_model", "late_risk_model"})

#: When models retrain by schedule.
RETRAIN_CRON = "0 3 * * 1"

#: How stale the marts the dashboard reads may get while events flow, before a check warns.
MART_FRESHNESS = timedelta(hours=2)

#: The marts whose freshness is checked (the dashboard's main tables).
FRESHNESS_CHECKED: tuple[str, ...] = ("fct_deliveries", "fct_orders", "kpi_delivery_daily")


def condition_for(spec: dg.AssetSpec) -> dg.AutomationCondition | None:
    """The automation condition SCPro gives ``spec`` (None: left to sensors or people)."""
    name = spec.key.path[-1]
    if name in TRAINING_ASSETS:
        return dg.AutomationCondition.on_missing() | dg.AutomationCondition.on_cron(RETRAIN_CRON)
    if spec.group_name in FOLLOW_GROUPS:
        return dg.AutomationCondition.eager()
    return None


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    condition = condition_for(spec)
    if condition is None or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=condition)


def apply_automation(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
) -> Sequence[dg.AssetsDefinition | dg.AssetSpec]:
    """``assets`` with SCPro's policy set wherever an asset has no condition of its own.

    External assets (the Kafka topics) are left alone: nothing materializes them.
    """
    result: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for asset in assets:
        if isinstance(asset, dg.AssetSpec):
            result.append(asset)
        elif not asset.is_materializable:
            result.append(asset)
        else:
            result.extend(dg.map_asset_specs(_with_policy, [asset]))
    return result


def freshness_checks(asset_keys: set[dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    """Last-update freshness checks on the dashboard's marts that exist in this graph."""
    keys = [dg.AssetKey(name) for name in FRESHNESS_CHECKED if dg.AssetKey(name) in asset_keys]
    if not keys:
        return []
    return list(
        dg.build_last_update_freshness_checks(assets=keys, lower_bound_delta=MART_FRESHNESS)
    )


def automation_sensors(
    checks: Sequence[dg.AssetChecksDefinition],
) -> list[dg.SensorDefinition]:
    """The sensor that evaluates the conditions above, and one that runs the freshness checks."""
    sensors: list[dg.SensorDefinition] = [
        dg.AutomationConditionSensorDefinition(
            "scpro_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=15,
            description="Keeps clean, warehouse, ML and serving assets following new raw data.",
        )
    ]
    if checks:
        sensors.append(
            dg.build_sensor_for_freshness_checks(
                freshness_checks=checks,
                name="mart_freshness_sensor",
                default_status=dg.DefaultSensorStatus.RUNNING,
            )
        )
    return sensors
