"""The dbt warehouse as Dagster assets: a green `dbt build` on a synthetic clean lake, marts that
agree with the clean Parquet, KPIs empty-but-valid before the models score and filled after, dbt
tests as asset checks, and the published snapshot."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_assets.outputs import ML_OUTPUTS
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql, naive_utc_select
from scpro_assets.settings import REPO_ROOT, KafkaSettings, Settings
from scpro_assets.testing.warehouse import (
    materialize_warehouse,
    shared_synthetic_lake,
    write_example_ml_outputs,
)
from scpro_assets.warehouse.assets import dbt_target
from scpro_assets.warehouse.inputs import CLEAN_DATASETS, prepare_inputs
from scpro_assets.warehouse.serving import PARTITIONS, open_snapshot
from spark.tables import current_version

CONTRACT_TABLES = (
    "fct_deliveries",
    "fct_orders",
    "fct_order_items",
    "fct_payments",
    "fct_incidents",
    "at_risk_orders",
    "customer_segment_profiles",
    "fct_demand",
    "dim_models",
    "data_health",
    "kpi_delivery_daily",
    "kpi_delivery_weekly",
    "kpi_incidents_daily",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One synthetic clean lake (shared by the session) and one warehouse build over it."""
    settings = shared_synthetic_lake(tmp_path_factory.getbasetemp())
    with dg.instance_for_test() as instance:
        result = materialize_warehouse(settings, instance)
        yield settings, result


def _clean(settings: Settings, name: str) -> pa.Table:
    """The clean table ``name`` as Spark wrote it, timestamps naive UTC as the warehouse reads it."""
    with connect_lake() as con:
        select = naive_utc_select(con, delta_scan_sql(settings.clean_dir / name))
        return con.execute(select).to_arrow_table()


def _query(settings: Settings, sql: str) -> list[tuple]:
    _, con = open_snapshot(settings)
    with con:
        return con.execute(sql).fetchall()


def test_dbt_build_is_green_and_dbt_tests_are_asset_checks(built):
    settings, result = built
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) > 150
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    checked = {(e.asset_key, e.check_name) for e in evaluations}
    assert (dg.AssetKey("fct_deliveries"), "not_null_fct_deliveries_order_id") in checked
    assert (dg.AssetKey("fct_deliveries"), "unique_fct_deliveries_order_id") in checked
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {dg.AssetKey(t) for t in CONTRACT_TABLES} <= materialized
    assert dg.AssetKey("serving_snapshot") in materialized
    # unit tests ran in the same `dbt build` (a failing one fails the run)
    run_results = list(dbt_target(settings).glob("run_results.json"))
    assert len(run_results) == 1
    units = [
        r
        for r in json.loads(run_results[0].read_text())["results"]
        if r["unique_id"].startswith("unit_test.")
    ]
    assert len(units) >= 6 and {r["status"] for r in units} == {"pass"}


def test_marts_agree_with_the_clean_parquet(built):
    settings, _ = built
    orders = _clean(settings, "cleaned_orders").to_pandas()
    deliveries = _clean(settings, "cleaned_deliveries").to_pandas()
    items = _clean(settings, "cleaned_order_items")
    payments = _clean(settings, "cleaned_payments")

    assert _query(settings, "select count(*) from fct_orders") == [(len(orders),)]
    assert _query(settings, "select count(*) from fct_deliveries") == [(len(orders),)]
    assert _query(settings, "select count(*) from fct_order_items") == [(items.num_rows,)]
    assert _query(settings, "select count(*) from fct_payments") == [(payments.num_rows,)]

    delivered = deliveries[deliveries["delivered_at"].notna()]
    late = int(delivered["is_late"].sum())
    assert late > 0
    assert _query(
        settings, "select count(delivered_at), count(*) filter (where is_late) from fct_deliveries"
    ) == [(len(delivered), late)]
    assert _query(
        settings, "select sum(delivered_orders), sum(late_orders) from kpi_delivery_weekly"
    ) == [(len(delivered), late)]

    expected = (
        orders.assign(region=orders["region"].fillna("unknown"))
        .groupby("region")["net_value"]
        .sum()
        .round(2)
        .to_dict()
    )
    got = dict(
        _query(
            settings,
            "select region, round(sum(revenue), 2) from kpi_delivery_daily group by region",
        )
    )
    assert got == pytest.approx(expected, abs=0.005)
    assert len(expected) > 1

    modes = orders["carrier"].fillna(orders["shipping_mode"]).fillna("unknown")
    assert dict(_query(settings, "select carrier_mode, count(*) from fct_orders group by 1")) == (
        modes.value_counts().to_dict()
    )
    # p90 delay per week, from the clean deliveries, equals the KPI mart's
    delivered = delivered.assign(week=delivered["order_time"].dt.to_period("W-SUN").dt.start_time)
    p90 = delivered.groupby("week")["delay_days"].quantile(0.9)
    got = dict(
        _query(
            settings,
            "select order_week, quantile_cont(delay_days, 0.9) from "
            "fct_deliveries where delivered_at is not null group by 1",
        )
    )
    assert {str(k.date()): v for k, v in p90.items()} == pytest.approx(
        {str(k): v for k, v in got.items()}
    )


def test_kpis_are_empty_but_valid_before_any_model_scored(built):
    settings, _ = built
    for table in ("kpi_predictions_daily", "at_risk_orders", "dim_models", "fct_demand"):
        assert _query(settings, f"select count(*) from {table}") == [(0,)], table
    customers = _query(settings, "select count(distinct customer_id) from fct_orders")[0][0]
    assert _query(
        settings, "select customer_segment, customers from customer_segment_profiles"
    ) == [("Unsegmented", customers)]
    assert _query(settings, "select distinct risk_band, is_high_risk from fct_deliveries") == [
        ("unscored", False)
    ]
    assert _query(
        settings,
        "select sum(high_risk_open_orders), sum(scored_delivered_orders), "
        "sum(sum_abs_prediction_gap_days) from kpi_delivery_daily",
    ) == [(0, 0, 0.0)]
    # dim_customers keeps the source's own segment next to the (missing) ML one
    assert _query(
        settings,
        "select count(*) from dim_customers where source_segment is null "
        "or customer_segment <> 'Unsegmented'",
    ) == [(0,)]


def test_snapshot_holds_every_contract_table_as_duckdb_and_parquet(built):
    settings, _ = built
    version = settings.serving_current.resolve()
    published = json.loads((version / "published.json").read_text())
    assert published["version"] == version.name
    assert set(CONTRACT_TABLES) <= set(published["tables"])
    for table, rows in published["tables"].items():
        assert _query(settings, f"select count(*) from main.{table}") == [(rows,)]
        # one file per table, or one per month for the tables that grow with history
        files = [version / "parquet" / f"{table}.parquet"]
        if table in PARTITIONS:
            files = sorted((version / "parquet" / table).glob("*.parquet"))
        assert sum(pq.read_metadata(f).num_rows for f in files) == rows
    layers = {row[0] for row in _query(settings, "select distinct layer from data_health")}
    assert layers == {"ingest", "quarantine", "clean", "warehouse", "ml"}
    health = dict(
        _query(
            settings,
            "select dataset, row_count from data_health where layer in ('clean', 'warehouse')",
        )
    )
    assert health["fct_orders"] == health["cleaned_orders"] == published["tables"]["fct_orders"]
    # staging views read lake paths: they stay in the writer's file, not in the snapshot
    assert _query(
        settings, "select count(*) from information_schema.tables where table_schema <> 'main'"
    ) == [(0,)]
    _, con = open_snapshot(settings)
    with con, pytest.raises(duckdb.Error):
        con.execute("create table main.scribble (x int)")


def _empty_table(source: Path, target: Path) -> None:
    """A Delta table with ``source``'s schema and no row: its first commit without its files."""
    first = source / "_delta_log" / f"{0:020d}.json"
    actions = [line for line in first.read_text().splitlines() if '"add"' not in line[:8]]
    (target / "_delta_log").mkdir(parents=True)
    (target / "_delta_log" / first.name).write_text("\n".join(actions) + "\n")


def test_an_empty_clean_table_gives_a_typed_empty_input(built, tmp_path):
    """A clean table with no row yet is pinned at its version and read empty, with its types."""
    settings, _ = built
    home = tmp_path / "home"
    for name in CLEAN_DATASETS:
        _empty_table(settings.clean_dir / name, home / "lake" / "clean" / name)
    empty = Settings(home=home, kafka=settings.kafka)
    inputs = prepare_inputs(empty)
    assert inputs.versions == dict.fromkeys(CLEAN_DATASETS, 0)
    assert inputs.paths["cleaned_orders"] == str(empty.clean_dir / "cleaned_orders")
    # No ML asset has run: the warehouse reads typed placeholders of its own and writes nothing
    # into the ML layer (each layer writes only its own outputs).
    assert sorted(inputs.ml_placeholders) == sorted(ML_OUTPUTS)
    assert not empty.ml_dir.exists()
    assert all(
        Path(inputs.paths[name]).parent == home / "warehouse_inputs" / "empty"
        for name in ML_OUTPUTS
    )
    with connect_lake() as con:
        deliveries = delta_scan_sql(inputs.paths["cleaned_deliveries"], 0)
        types = dict(
            con.execute(
                f"select column_name, column_type from (describe select * from {deliveries})"
            ).fetchall()
        )
        orders = delta_scan_sql(inputs.paths["cleaned_orders"], 0)
        assert con.execute(f"select count(*) from {orders}").fetchall() == [(0,)]
    assert types["delivered_at"] == "TIMESTAMP WITH TIME ZONE"  # staging casts it to naive UTC
    assert types["is_late"] == "BOOLEAN"
    assert types["exception_count"] == "BIGINT"


PLAIN_READER = """
import json, sys
import duckdb

# No extension loaded, none installed or loaded on demand: what Evidence's driver can do.
config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
with duckdb.connect(sys.argv[1], read_only=True, config=config) as con:
    views = con.execute(
        "select schema_name, view_name, sql from duckdb_views() where not internal"
    ).fetchall()
    for schema, name, _ in views:
        con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()
    staging = con.execute(
        "select table_type from information_schema.tables where table_name = 'stg_clean__orders'"
    ).fetchall()
    loaded = con.execute(
        "select count(*) from duckdb_extensions() where extension_name = 'delta' and loaded"
    ).fetchone()[0]
print(json.dumps({
    "views": len(views),
    "over_delta": [name for _, name, sql in views if "delta_scan" in sql.lower()],
    "staging": [row[0] for row in staging],
    "delta_loaded": loaded,
}))
"""


def test_the_warehouse_reads_the_lake_itself_and_is_readable_without_the_extension(built, tmp_path):
    """dbt read the clean tables through delta_scan, at the versions pinned; no view over it is
    left in the warehouse, so a fresh DuckDB without the extension reads every relation."""
    import subprocess
    import sys

    settings, _ = built
    run_results = dbt_target(settings)  # the home's one target folder: this build's artifacts
    compiled = (
        run_results / "compiled/scpro/models/staging/clean/stg_clean__orders.sql"
    ).read_text()
    table = settings.clean_dir / "cleaned_orders"
    assert f"delta_scan('{table}', version => " in compiled
    # A process of its own (this one has DuckDB instances open with other settings), and a home
    # of its own: no extension DuckDB may have installed elsewhere can be picked up.
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_READER, str(settings.warehouse_path)],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["views"] > 0 and found["over_delta"] == []
    assert found["staging"] == ["BASE TABLE"] and found["delta_loaded"] == 0


def test_ml_outputs_fill_the_prediction_kpis(built, dagster_instance):
    """Runs last in this module: it writes ML outputs into the shared lake and rebuilds."""
    settings, _ = built
    written = write_example_ml_outputs(settings)
    result = materialize_warehouse(settings, dagster_instance)
    assert result.success

    open_orders = _query(settings, "select count(*) from fct_deliveries where is_open")[0][0]
    assert open_orders == written["late_risk_scores"] > 0
    high = len(range(0, open_orders, 3))
    assert _query(
        settings,
        "select count(*), min(risk_rank), max(risk_rank), "
        "count(*) filter (where risk_band = 'high') from at_risk_orders",
    ) == [(open_orders, 1, open_orders, high)]
    assert _query(settings, "select late_risk from at_risk_orders where risk_rank = 1") == [(0.9,)]
    (scored, gap, high_open, opened) = _query(
        settings,
        "select sum(scored_delivered_orders), sum(sum_abs_prediction_gap_days) / "
        "sum(scored_delivered_orders), sum(high_risk_open_orders), sum(open_orders) "
        "from kpi_delivery_weekly",
    )[0]
    assert scored == written["delivery_time_predictions"] - open_orders
    assert gap == pytest.approx(0.5)
    assert (high_open, opened) == (high, open_orders)
    daily = _query(
        settings,
        "select sum(scored_delivered_orders), sum(high_risk_open_orders), "
        "sum(scored_open_orders) from kpi_predictions_daily",
    )
    assert daily == [(scored, high, open_orders)]
    segments = dict(
        _query(settings, "select customer_segment, customers from customer_segment_profiles")
    )
    customers = _query(settings, "select count(*) from dim_customers")[0][0]
    assert set(segments) == {"Loyal", "Occasional"} and sum(segments.values()) == customers
    assert _query(settings, "select count(*) from dim_models where is_serving") == [(2,)]
    # the ETA and its 80% range flow from the scores to the work list; coverage to dim_models
    assert _query(
        settings,
        "select count(*), min(eta_low), max(predicted_delivery_date), max(eta_high) "
        "from at_risk_orders where eta_low is not null",
    ) == [(open_orders, date(2024, 6, 3), date(2024, 6, 5), date(2024, 6, 8))]
    assert _query(
        settings,
        "select interval_level, interval_coverage from dim_models where task = 'delivery_time'",
    ) == [(0.8, 0.79)]
    assert _query(settings, "select count(*), count(actual_orders) from fct_demand") == [(4, 2)]


def test_dbt_sources_map_to_the_spark_and_ml_assets():
    from scpro_assets.definitions.platform import defs

    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("stg_clean__orders") == {"cleaned_orders"}
    assert parents("stg_clean__deliveries") == {"cleaned_deliveries"}
    assert parents("stg_ml__late_risk_scores") == {"late_risk_scores"}
    assert parents("stg_ml__customer_segments") == {"customer_segments"}
    assert parents("stg_lake__inventory") == {"lake_inventory"}
    assert parents("stg_raw__order_actions") == {"raw_actions"}  # dbt reads the landed actions
    assert "fct_order_actions" in parents("at_risk_orders")
    assert "raw_actions" not in parents("cleaned_orders")  # no Spark pass for an action
    assert {"int_orders_segmented", "int_deliveries_scored"} <= parents("fct_deliveries")
    assert "fct_deliveries" in parents("serving_snapshot")
    for name in ("fct_deliveries", "kpi_delivery_daily", "stg_clean__orders"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "warehouse"
        assert {"dbt", "duckdb"} <= set(node.kinds)
    assert graph.get(dg.AssetKey("serving_snapshot")).group_name == "serving"
    checks = {
        key.name for key in graph.asset_check_keys if key.asset_key.path == ["fct_deliveries"]
    }
    assert {"unique_fct_deliveries_order_id", "assert_late_flag_matches_delay"} <= checks
    kpi = {
        key.name for key in graph.asset_check_keys if key.asset_key.path == ["kpi_delivery_daily"]
    }
    assert "assert_kpi_delivery_reconciles" in kpi
    from scpro_assets.warehouse.assets import warehouse_dbt

    spec = next(s for s in warehouse_dbt.specs if s.key == dg.AssetKey("fct_deliveries"))
    columns = {c.name: c.type for c in spec.metadata["dagster/column_schema"].columns}
    assert columns["late_risk"] == "double" and columns["order_week"] == "date"


# ---- dbt as analytics engineers run it (issue #16 item 8): scpro dbt, plain dbt, docs ----


def _compiled(target: Path, model: str) -> str:
    return next(target.rglob(f"compiled/**/{model}.sql")).read_text()


def test_scpro_dbt_pins_the_lake_and_plain_dbt_reads_its_stable_paths(built, tmp_path):
    """`scpro dbt compile` reads what the Dagster asset would (pins, placeholders, the reader's
    options kept); a bare `dbt compile` in dbt_project/ runs on the project's own profile and
    reads the lake's stable paths. Both on a private copy of the module's lake."""
    import subprocess
    import sys

    from scpro_assets.testing.warehouse import copy_lake
    from scpro_assets.warehouse.project import DBT_PROJECT_DIR

    settings = copy_lake(built[0], tmp_path / "home")
    models = ["stg_raw__order_actions", "stg_ml__late_risk_scores", "stg_clean__orders"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCPRO_", "DBT_"))}
    scpro = Path(sys.executable).parent / "scpro"
    pinned_target = tmp_path / "scpro-dbt"
    done = subprocess.run(
        [str(scpro), "dbt", "compile", "--select", *models, "--target-path", str(pinned_target)],
        env={**env, "SCPRO_HOME": str(settings.home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # the landed ranges, or while none has landed the typed placeholder; the options kept
    landed = any((settings.raw_dir / "actions").glob("partition-*/*.parquet"))
    actions = (
        f"{settings.raw_dir}/actions/partition-*/*.parquet"
        if landed
        else f"{settings.home}/warehouse_inputs/empty/raw_actions.parquet"
    )
    pinned = f"read_parquet('{actions}', union_by_name = true)"
    assert pinned in _compiled(pinned_target, "stg_raw__order_actions")
    # the ML layer's score table at its version, or while none is published the warehouse's own
    # placeholder (an empty Delta table, read at its latest)
    scores = settings.ml_dir / "late_risk_scores"
    version = current_version(scores)
    pinned_scores = f"delta_scan('{scores}', version => {version})"
    if version is None:
        empty = settings.home / "warehouse_inputs" / "empty" / "late_risk_scores"
        pinned_scores = f"delta_scan('{empty}')"
    assert pinned_scores in _compiled(pinned_target, "stg_ml__late_risk_scores")
    table = settings.clean_dir / "cleaned_orders"
    pinned_orders = f"delta_scan('{table}', version => {current_version(table)})"
    assert pinned_orders in _compiled(pinned_target, "stg_clean__orders")

    plain_target = tmp_path / "plain"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "compile", "--select", *models],
        cwd=DBT_PROJECT_DIR,  # profiles.yml is found there, as dbt looks in the working folder
        env={**env, "SCPRO_HOME": str(settings.home), "DBT_TARGET_PATH": str(plain_target)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    stable = f"read_parquet('{settings.home}/lake/raw/actions/partition-*/*.parquet', union_by"
    assert stable in _compiled(plain_target, "stg_raw__order_actions")
    ml = f"delta_scan('{settings.ml_dir}/late_risk_scores')"  # its stable path, latest version
    assert ml in _compiled(plain_target, "stg_ml__late_risk_scores")
    latest = f"delta_scan('{settings.home}/lake/clean/cleaned_orders')"  # its latest version
    assert latest in _compiled(plain_target, "stg_clean__orders")


def test_docs_of_the_published_warehouse_list_the_marts(built, tmp_path):
    """`make docs` generates dbt's site from the published snapshot while the dashboard holds it
    open read-only; the catalog has every contract mart with its columns, and the exposures."""
    from scpro_assets.warehouse.build import generate_docs

    settings, _ = built
    _, dashboard = open_snapshot(settings)  # a reader, as the dashboard keeps one
    with dashboard:
        site = generate_docs(settings, tmp_path / "docs")
        assert dashboard.execute("select count(*) from fct_deliveries").fetchone()[0] > 0
    assert (site / "index.html").exists()
    catalog = json.loads((site / "catalog.json").read_text())
    catalogued = {node.split(".")[-1]: node for node in catalog["nodes"]}
    assert set(CONTRACT_TABLES) <= set(catalogued)
    columns = catalog["nodes"][catalogued["fct_deliveries"]]["columns"]
    assert columns["late_risk"]["type"].lower() == "double"
    assert not {name for name in catalogued if name.startswith(("stg_", "int_"))}  # not served
    manifest = json.loads((site / "manifest.json").read_text())
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    at_risk = exposures["dashboard_at_risk_orders"]
    assert "model.scpro.at_risk_orders" in at_risk["depends_on"]["nodes"]
    assert at_risk["url"].startswith("http://localhost:5006/app?page=at_risk")
    assert not list(site.rglob("*.duckdb"))  # the copy it catalogued is gone


# ---- the exception queue (issue #15 item 5): actions through Kafka, landing, dbt, the page ----


@pytest.fixture(scope="module")
def actions_kafka(kafka_broker) -> KafkaSettings:
    """This module's topics on the session's broker (the actions tests share them)."""
    from scpro_assets.kafka.clients import ensure_topics

    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap, topic_prefix=f"dbtactions-{uuid.uuid4().hex[:6]}."
    )
    ensure_topics(kafka, partitions=2)
    return kafka


@pytest.fixture(scope="module")
def scored(built, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The module's warehouse with at-risk orders (ML outputs written, unless a test above did)."""
    settings, _ = built
    if _query(settings, "select count(*) from at_risk_orders") == [(0,)]:
        write_example_ml_outputs(settings)
        with dg.instance_for_test() as instance:
            assert materialize_warehouse(settings, instance).success
    return settings


def _land_actions(settings: Settings, kafka: KafkaSettings) -> dict[str, int]:
    """Land every offset of the actions topic not landed yet, by the generic landing path."""
    from scpro_assets.ingest.landing import OffsetRange, land_range, landed_ranges
    from scpro_assets.kafka.clients import end_offsets

    totals = {"landed": 0, "quarantined": 0, "expired": 0, "already_landed": 0, "size": 0}
    done = landed_ranges(settings.raw_dir, "actions")
    for partition, (_, end) in end_offsets(kafka, "actions").items():
        start = max((last + 1 for _, last in done.get(partition, [])), default=0)
        if end <= start:
            continue
        rng = OffsetRange("actions", partition, start, end)
        result = land_range(kafka, rng, settings.raw_dir, settings.quarantine_dir, 30.0)
        for key in ("landed", "quarantined", "expired", "already_landed"):
            totals[key] += getattr(result, key)
        totals["size"] += rng.size
    return totals


def _build_actions_and_publish(settings: Settings, target: Path) -> None:
    """``dbt build`` of the actions models and what reads them, then a new snapshot.

    One target folder for the module, so the second build parses only what changed.
    """
    import subprocess

    from scpro_assets.warehouse.project import DBT_PROJECT_DIR, dbt_executable
    from scpro_assets.warehouse.serving import publish_snapshot

    inputs = prepare_inputs(settings)
    assert "raw_actions" not in inputs.raw_placeholders  # the landed ranges are read
    command = [
        dbt_executable(), "build", "--select", "stg_raw__order_actions+",
        "--vars", json.dumps(inputs.dbt_vars(settings.warehouse_path)),
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
    ]  # fmt: skip
    env = {**os.environ, "SCPRO_HOME": str(settings.home), "DBT_TARGET_PATH": str(target)}
    done = subprocess.run(
        command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:]
    publish_snapshot(settings)


def test_actions_land_once_and_give_each_order_its_status_and_owner(
    scored, actions_kafka, tmp_path_factory
):
    """A few actions through the real topic and landing; dbt dedupes them and keeps the owner."""
    from scpro_assets.actions import new_action, publish_action

    settings = scored
    first, second, third = (
        r[0] for r in _query(settings, "select order_id from at_risk_orders order by risk_rank")[:3]
    )
    now = datetime.now(UTC)

    def at(minutes: int) -> datetime:
        return now - timedelta(minutes=60 - minutes)

    retried = new_action(first, "assign", "ana", assignee="Team Red", now=at(1))
    for event in (
        retried,
        new_action(first, "assign", "bob", assignee="Team Blue", now=at(2)),
        new_action(first, "note", "bob", note="<b>called</b> the carrier", now=at(3)),
        new_action(second, "resolve", "ana", now=at(4)),
        new_action(second, "assign", "cy", assignee="Too Late", now=at(5)),
        new_action("no-such-order", "acknowledge", "ana", now=at(6)),
    ):
        publish_action(actions_kafka, event)
    counts = _land_actions(settings, actions_kafka)
    publish_action(actions_kafka, retried)  # a producer's retry, landed in a later range
    later = _land_actions(settings, actions_kafka)
    assert counts == {"landed": 6, "quarantined": 0, "expired": 0, "already_landed": 0, "size": 6}
    assert later["landed"] == later["size"] == 1

    _build_actions_and_publish(settings, tmp_path_factory.getbasetemp() / "dbt-actions-target")

    assert _query(
        settings, "select count(*), count(distinct action_id) from fct_order_actions"
    ) == [(6, 6)]
    assert _query(
        settings,
        "select action, assignee, is_after_resolution from fct_order_actions "
        f"where order_id = '{second}' order by action_seq",
    ) == [("resolve", None, False), ("assign", "Too Late", True)]
    rows = {
        r[0]: r[1:]
        for r in _query(
            settings,
            "select order_id, queue_status, owner, action_count from at_risk_orders "
            f"where order_id in ('{first}', '{second}', '{third}')",
        )
    }
    assert rows == {
        first: ("assigned", "Team Blue", 3),
        second: ("resolved", None, 1),
        third: ("new", None, 0),
    }
    # the note is stored as typed (escaped only where shown)
    assert _query(settings, "select note from fct_order_actions where action = 'note'") == [
        ("<b>called</b> the carrier",)
    ]
    # an action on an order the warehouse does not list is kept, and lists nothing
    assert _query(
        settings, "select count(*) from fct_order_actions where order_id = 'no-such-order'"
    ) == [(1,)]
    assert _query(
        settings, "select count(*) from at_risk_orders where order_id = 'no-such-order'"
    ) == [(0,)]
    # waiting times are on the wall clock: from the build that first saw an order at high risk
    # to its first action (0 when the action came first). The top three are all high risk.
    flagged = dict(
        _query(
            settings,
            "select order_id, first_high_risk_at from fct_at_risk_entries "
            f"where order_id in ('{first}', '{second}')",
        )
    )
    waited = [
        max(0.0, (at(minute).replace(tzinfo=None) - flagged[order]).total_seconds() / 60)
        for order, minute in ((first, 1), (second, 4))
    ]
    (high, acted, minutes) = _query(
        settings,
        "select sum(high_risk_orders), sum(acted_orders), sum(sum_minutes_to_first_action) "
        "from kpi_actions_daily",
    )[0]
    assert (
        high == _query(settings, "select count(first_high_risk_at) from fct_at_risk_entries")[0][0]
    )
    assert acted == 2
    assert minutes == pytest.approx(sum(waited), abs=0.05)  # date_diff counts whole seconds


@pytest.fixture(scope="module")
def queue_app(scored, actions_kafka, tmp_path_factory) -> Iterator[str]:
    """``panel serve`` of the dashboard on this module's snapshot, sending actions to its topic."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("queue-panel") / "serve.log"
    env = {
        **os.environ,
        "SCPRO_PANEL_SERVING_CURRENT": str(scored.serving_current),
        "SCPRO_KAFKA_BOOTSTRAP": actions_kafka.bootstrap_servers,
        "SCPRO_TOPIC_PREFIX": actions_kafka.topic_prefix,
        "SCPRO_PANEL_ACTOR": "Test Agent",
    }
    command = [
        sys.executable, "-m", "panel", "serve", str(REPO_ROOT / "panel_app" / "app.py"),
        "--port", str(port), "--address", "127.0.0.1",
        f"--allow-websocket-origin=127.0.0.1:{port}",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"panel serve did not come up:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
    served = log.read_text()
    assert "Error running application handler" not in served, served
    assert "panel_app/" not in served, served


def test_an_action_clicked_on_the_at_risk_page_comes_back_through_kafka_landing_and_dbt(
    scored, actions_kafka, queue_app, tmp_path_factory
):
    """In Chromium: assign and resolve from the page, refuse bad input with a message, then see
    the new owner and status in the list once the events are landed and dbt has run."""
    import re

    from playwright.sync_api import Page, expect, sync_playwright

    from scpro_assets.testing.browser import CHROMIUM_ARGS

    def row_of(page: Page, order_id: str):
        """The list's row of one order (an id can be the prefix of another: match it whole)."""
        cell = page.locator('[tabulator-field="Order"]', has_text=re.compile(f"^{order_id}$"))
        return page.locator(".at-risk-table .tabulator-row", has=cell)

    settings = scored
    listed = {r[0] for r in _query(settings, "select order_id from at_risk_orders")}
    target, resolved = (
        r[0]
        for r in _query(
            settings,
            "select order_id from at_risk_orders where queue_status = 'new' "
            "order by risk_rank limit 2",
        )
    )
    assert "no-such-order" not in listed
    note = '<img src=x onerror="document.title=1"> <b>call</b> the customer'
    wait = 30_000
    chromium = Path(os.environ.get("SCPRO_CHROMIUM", "/usr/bin/chromium"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1400})
        page, stale = context.new_page(), context.new_page()
        for opened in (page, stale):
            opened.goto(f"{queue_app}?page=at_risk")
            opened.locator(".at-risk-table .tabulator-row").first.wait_for(timeout=wait)
        message = page.locator(".q-message")

        # a click on the order's row chooses it; assign it with a note holding HTML
        row_of(page, target).click()
        expect(page.locator(".q-order input")).to_have_value(target, timeout=wait)
        page.locator(".q-assignee input").fill("Team Blue")
        page.locator(".q-note textarea").fill(note)
        page.locator(".q-do-assign button").click()
        expect(message).to_contain_text(f"Assigned to Team Blue: order {target}", timeout=wait)
        expect(message).to_contain_text("as Test Agent")
        trail = page.locator(".q-trail")
        expect(trail).to_contain_text(note)  # shown as text, escaped
        expect(trail.locator("img")).to_have_count(0)
        expect(trail.locator("b")).to_have_count(0)
        expect(page.locator(".q-note textarea")).to_have_value("")  # sent, so cleared

        # bad input: refused with a message, nothing sent, the text kept
        page.locator(".q-order input").fill("no-such-order")
        page.locator(".q-do-acknowledge button").click()
        expect(message).to_contain_text("Order no-such-order is not in the at-risk list")
        long_note = "x" * 1001
        page.locator(".q-order input").fill(resolved)
        page.locator(".q-note textarea").fill(long_note)
        page.locator(".q-do-note button").click()
        expect(message).to_contain_text("The note is 1,001 characters long; the limit is 1,000")
        expect(page.locator(".q-note textarea")).to_have_value(long_note)
        page.locator(".q-note textarea").fill("")

        # resolve the second order, then the page refuses to act on it again
        page.locator(".q-do-resolve button").click()
        expect(message).to_contain_text(f"Resolved: order {resolved}", timeout=wait)
        page.locator(".q-do-acknowledge button").click()
        expect(message).to_contain_text(f"Order {resolved} is already resolved")

        counts = _land_actions(settings, actions_kafka)
        assert counts["landed"] == counts["size"] == 2, counts  # assign and resolve
        _build_actions_and_publish(settings, tmp_path_factory.getbasetemp() / "dbt-actions-target")

        # a page opened before the resolution was published is refused by the newest snapshot
        stale.locator(".q-order input").fill(resolved)
        stale.locator(".q-do-acknowledge button").click()
        expect(stale.locator(".q-message")).to_contain_text(
            f"Order {resolved} is already resolved", timeout=wait
        )

        # the list shows the new owner and status; the trail the note, escaped
        page.reload()
        row = row_of(page, target)
        expect(row).to_contain_text("assigned", timeout=wait)
        expect(row).to_contain_text("Team Blue")
        expect(row_of(page, resolved)).to_contain_text("resolved")
        row.click()
        expect(page.locator(".q-trail")).to_contain_text(note, timeout=wait)
        expect(page.locator(".q-trail")).not_to_contain_text("not in a snapshot yet")
        expect(page.locator(".q-trail img")).to_have_count(0)
        expect(page.locator('[data-kpi="time_to_first_action"] .value')).not_to_have_text("—")
        context.close()
        browser.close()

    assert _query(
        settings,
        f"select queue_status, owner from at_risk_orders where order_id = '{target}'",
    ) == [("assigned", "Team Blue")]
    assert _query(
        settings, f"select actor, note from fct_order_actions where order_id = '{target}'"
    ) == [("Test Agent", note)]


def test_marts_and_spark_outputs_publish_their_columns_to_dagster_and_openlineage(built):
    """The build attaches each table model's row count and every model's columns (Dagster's
    Columns tab); the OpenLineage COMPLETE event of a mart and of a Spark output carries the same
    columns in its schema facet, valid against the spec."""
    from openlineage_spec import validate

    from scpro_assets.column_schema import parquet_column_schema_metadata
    from scpro_assets.lineage import as_json, lineage_run_id, run_event

    settings, result = built
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }

    def complete_event(name: str, meta) -> dict:
        key = dg.AssetKey(name)
        return as_json(
            run_event("COMPLETE", 0.0, lineage_run_id(result.run_id, key), key, [], metadata=meta)
        )

    mart = metadata["fct_deliveries"]
    columns = [
        row[0]
        for row in _query(
            settings,
            "select column_name from information_schema.columns "
            "where table_name = 'fct_deliveries' order by ordinal_position",
        )
    ]
    rows = _query(settings, "select count(*) from fct_deliveries")[0][0]
    assert [c.name for c in mart["dagster/column_schema"].schema.columns] == columns
    assert mart["dagster/row_count"].value == rows > 0
    event = complete_event("fct_deliveries", mart)
    validate(event)
    [output] = event["outputs"]
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == columns
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == rows
    for name in CONTRACT_TABLES:
        assert "dagster/column_schema" in metadata[name], name

    # A Spark output: the columns of the DataFrame that cleaned_orders was written from (the
    # schema its Delta table's first commit records).
    log = settings.clean_dir / "cleaned_orders" / "_delta_log" / f"{0:020d}.json"
    [metadata_action] = [
        json.loads(line) for line in log.read_text().splitlines() if '"metaData"' in line[:12]
    ]
    written = json.loads(metadata_action["metaData"]["schemaString"])
    spark_columns = [f["name"] for f in written["fields"]]
    schema = parquet_column_schema_metadata(settings.clean_dir / "cleaned_orders")
    assert [c.name for c in schema["dagster/column_schema"].columns] == spark_columns
    event = complete_event("cleaned_orders", schema)
    validate(event)
    assert [f["name"] for f in event["outputs"][0]["facets"]["schema"]["fields"]] == spark_columns
