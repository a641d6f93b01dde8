"""Dagster assets of the warehouse: the lake inventory, every dbt model, and the serving snapshot.

One ``@dbt_assets`` definition covers the whole dbt project (group ``warehouse``, kinds ``dbt`` and
``duckdb``). Its translator maps the dbt sources onto the assets that write them: ``clean.<name>``
to the Spark asset ``<name>``, ``raw.raw_<topic>`` to the landing asset ``raw_<topic>`` (the
``actions`` topic, which dbt reads without a Spark pass), ``ml.<name>`` to the ML asset ``<name>``,
``lake.lake_inventory`` to :func:`lake_inventory`. dbt tests are asset checks. The manifest is
prepared ahead of time (``python -m scpro_assets.warehouse.prepare``), never parsed at import.

A build first pins its inputs (:mod:`scpro_assets.warehouse.inputs`) and passes them to dbt as
vars; after a successful build, :func:`serving_snapshot` publishes a read-only copy.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from pydantic import Field

from ml_assets.outputs import ML_OUTPUTS
from scpro_assets.automation import AUTOMATION_TAG
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import TOPICS, KafkaSettings, Settings
from scpro_assets.warehouse.changes import commit_changes
from scpro_assets.warehouse.completeness import measure_completeness
from scpro_assets.warehouse.inputs import CLEAN_DATASETS, prepare_inputs, write_lake_inventory
from scpro_assets.warehouse.project import dbt_project, manifest_path
from scpro_assets.warehouse.serving import changed_parts, publish_snapshot

OWNER = "team:analytics-engineering"

#: dbt source name -> how its tables are named in the Dagster graph.
_SOURCE_KEYS = {"clean": "table", "ml": "table", "raw": "table", "lake": "lake_inventory"}


def lake_settings(lake: LakeResource) -> Settings:
    """The :class:`Settings` of the lake resource's home (Kafka plays no part here)."""
    return Settings(home=Path(lake.home), kafka=KafkaSettings())


class SCProDbtTranslator(DagsterDbtTranslator):
    """dbt sources become the upstream Spark/ML assets; models join the ``warehouse`` group."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """The default spec, re-keyed for sources and grouped/owned for models."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            mapping = _SOURCE_KEYS.get(props["source_name"])
            if mapping is None:
                return spec
            name = props["name"] if mapping == "table" else mapping
            return spec.replace_attributes(key=dg.AssetKey(name))
        # Models are keyed by name alone (fct_deliveries, not main/fct_deliveries).
        return spec.replace_attributes(
            key=dg.AssetKey(props["name"]), group_name="warehouse", owners=[OWNER]
        )


TRANSLATOR = SCProDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_metadata=False)
)


@dg.asset(
    group_name="warehouse",
    kinds={"python", "parquet"},
    owners=[OWNER],
    deps=[
        *(dg.AssetKey(f"raw_{t}") for t in TOPICS),
        *(dg.AssetKey(name) for name in (*CLEAN_DATASETS, *ML_OUTPUTS)),
    ],
    description=(
        "What the lake holds, from Parquet footers: rows, quarantined rows and last update of "
        "every raw, quarantine, clean and ML dataset "
        "(SCPRO_HOME/warehouse_inputs/lake_inventory.parquet). dbt's data_health model reads it."
    ),
)
def lake_inventory(lake: LakeResource) -> dg.MaterializeResult:
    """Inventory the lake for ``data_health``."""
    path, rows = write_lake_inventory(lake_settings(lake))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "path": dg.MetadataValue.path(str(path))}
    )


#: dbt's selection of the tests that run on their own schedule (:data:`warehouse_all_tests`)
#: rather than in every cycle: the per-column data tests declared with the models and sources
#: (tagged ``scheduled`` in ``dbt_project.yml``) and the unit tests (they test SQL, not data).
SCHEDULED_TESTS = ("tag:scheduled", "test_type:unit")


class WarehouseBuildConfig(dg.Config):
    """Run options of the warehouse build."""

    all_tests: bool = Field(
        default=False,
        description=(
            "Run every dbt test: the per-column data tests and unit tests too, not only the "
            "singular tests that guard every snapshot (the warehouse_all_tests schedule does)."
        ),
    )
    full_refresh: bool = Field(
        default=False,
        description=(
            "Rebuild every model from all of the lake (`dbt build --full-refresh`) instead of "
            "replacing only what changed since the last complete build. Gives the same tables; "
            "fct_at_risk_entries (first listed at, on the wall clock) starts its history again."
        ),
    )


def build_args(dbt_vars: str, config: WarehouseBuildConfig) -> list[str]:
    """The ``dbt build`` arguments of a warehouse run (Dagster adds its selection)."""
    args = ["build", "--vars", dbt_vars]
    if config.full_refresh:
        args.append("--full-refresh")
    if not config.all_tests:
        # one value: dagster-dbt moves an --exclude it finds to the end, with its first value only
        args += ["--exclude", " ".join(SCHEDULED_TESTS)]
    return args


def dbt_target(settings: Settings) -> Path:
    """The warehouse asset's dbt target folder (artifacts, logs, partial parse) for a home."""
    return settings.home / "dbt_target"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block.

    dagster-dbt's ``cli`` starts dbt with the process environment and takes no other.
    """
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=manifest_path(),
    project=dbt_project(),
    dagster_dbt_translator=TRANSLATOR,
    name="warehouse_dbt",
)
def warehouse_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    lake: LakeResource,
    config: WarehouseBuildConfig,
) -> Iterator[Any]:
    """``dbt build`` of the selected models (and their tests) over pinned lake inputs.

    The incremental models replace only what changed since the last complete build
    (:mod:`scpro_assets.warehouse.changes`); once a build of the whole project succeeded, its
    inputs become the state the next build's changes are measured from.
    """
    settings = lake_settings(lake)
    inputs = prepare_inputs(settings)
    plan = inputs.changes.summary() if inputs.changes and not config.full_refresh else "full"
    context.log.info(
        f"pinned {len(inputs.versions)} clean datasets; empty placeholders for "
        f"{inputs.placeholders or 'none'}; ML outputs not published yet: "
        f"{inputs.ml_placeholders or 'none'}; {plan}"
    )
    dbt_vars = json.dumps(inputs.dbt_vars(settings.warehouse_path))
    # One target folder per home: dbt keeps its partial parse there from build to build (the
    # vars stay the same, the changing pins go in the environment), so a cycle does not parse
    # the project again. dagster-dbt copies the prepared one in only while there is none.
    with _environment(inputs.dbt_env()):  # dbt's process starts here, with this environment
        invocation = dbt.cli(
            build_args(dbt_vars, config), context=context, target_path=dbt_target(settings)
        )
    # Each table's row count and each model's column types, read back once the model is built:
    # Dagster's Columns tab and the OpenLineage schema/outputStatistics facets show them.
    yield from (
        invocation.stream().fetch_row_counts().fetch_column_metadata(with_column_lineage=False)
    )
    # Reached only when dbt succeeded (a failure raises at the end of the stream); a subset left
    # models behind, so the changes it read stay to apply.
    if inputs.changes and not context.is_subset:
        parts = changed_parts(inputs.changes, settings.clean_dir, config.full_refresh)
        commit_changes(settings, inputs.changes, parts)


@dg.asset(
    group_name="serving",
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    deps=list(warehouse_dbt.keys),
    description=(
        "Read-only snapshot of the warehouse for the dashboard and Evidence, published after a "
        "successful dbt build: SCPRO_HOME/serving/current -> versions/<version>/ with "
        "warehouse.duckdb (views over the Parquet files), parquet/<model>.parquet or "
        "parquet/<model>/<month>.parquet (unchanged ones hard-linked from the version before) "
        "and published.json; the link is swapped atomically so readers never see a half-built "
        "state."
    ),
)
def serving_snapshot(
    context: dg.AssetExecutionContext, lake: LakeResource, kafka: KafkaResource
) -> dg.MaterializeResult:
    """Publish the warehouse's marts as a new snapshot version and switch readers to it.

    The snapshot records its completeness: Kafka's end offsets now against the raw files.
    """
    settings = lake_settings(lake)
    completeness = measure_completeness(
        kafka.settings(),
        settings.raw_dir,
        settings.quarantine_dir,
        row_counts=settings.serving_dir / "_state" / "row_counts.json",
    )
    publication = publish_snapshot(settings, completeness=completeness)
    unlanded = [c.offsets_unlanded for c in completeness]
    context.log.info(f"published {publication.version} ({len(publication.tables)} tables)")
    return dg.MaterializeResult(
        metadata={
            "version": publication.version,
            "path": dg.MetadataValue.path(str(publication.path)),
            "tables": dg.MetadataValue.json(publication.tables),
            "seconds": round(publication.seconds, 2),
            "parts_written": publication.parts_written,
            "parts_linked": publication.parts_linked,
            "pruned_versions": len(publication.pruned),
            "completeness": dg.MetadataValue.json([asdict(c) for c in completeness]),
            "events_landed": sum(c.events_landed for c in completeness),
            "events_quarantined": sum(c.events_quarantined for c in completeness),
            # None when Kafka did not answer: unknown, not zero.
            "offsets_unlanded": None if None in unlanded else sum(unlanded),
            "complete": "unknown"
            if None in unlanded
            else ("yes" if all(c.is_complete for c in completeness) else "no"),
        }
    )


warehouse_assets = [lake_inventory, warehouse_dbt, serving_snapshot]

#: The warehouse build with every dbt test. Its runs are tagged as the automation's, so the
#: instance runs them one at a time with the cycles (one writer of the warehouse file).
warehouse_all_tests_job = dg.define_asset_job(
    "warehouse_all_tests",
    selection=dg.AssetSelection.assets(warehouse_dbt),
    config=dg.RunConfig(ops={"warehouse_dbt": WarehouseBuildConfig(all_tests=True)}),
    tags={AUTOMATION_TAG: "all_tests"},
    description=(
        "dbt build of every model (incremental: little to do) with all its data and unit tests, "
        "the ones the automation's cycles leave out."
    ),
)

#: Hourly: a per-column problem is reported within the hour, and costs no cycle its latency.
warehouse_all_tests = dg.ScheduleDefinition(
    name="warehouse_all_tests",
    job=warehouse_all_tests_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: every dbt test of the warehouse (the cycles run only the guards).",
)

warehouse_jobs = [warehouse_all_tests_job]
warehouse_schedules = [warehouse_all_tests]
