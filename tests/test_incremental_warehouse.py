"""Incremental dbt equals a full refresh, and publishing writes only what changed.

The session's synthetic clean lake gets two micro-batches committed as the clean layer commits
them (Delta merges and deletes by key, with their change feed: new, changed, refused orders, a
removed line, changed incidents) and new model scores; after each, the warehouse is built
incrementally (only the changed keys and periods are replaced) and a snapshot is published. A
full refresh over the final lake must give the same tables row for row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scpro_assets.settings import Settings
from scpro_assets.testing.lake_updates import apply_micro_batch
from scpro_assets.testing.warehouse import (
    copy_lake,
    settings_for,
    shared_synthetic_lake,
    write_example_ml_outputs,
)
from scpro_assets.warehouse.build import dbt_invocation, run_dbt
from scpro_assets.warehouse.changes import ChangeSet, commit_changes, load_state
from scpro_assets.warehouse.serving import (
    PARTITIONS,
    _builds_since,
    open_snapshot,
    publish_snapshot,
)

#: Models that stamp the wall clock of their build: they differ between any two builds.
WALL_CLOCK_MODELS = frozenset({"fct_at_risk_entries", "kpi_actions_daily", "data_health"})


def _build(settings: Settings, *args: str) -> None:
    assert run_dbt(settings, ["--quiet", *args]) == 0


def _tables(con: duckdb.DuckDBPyConnection, database: str, schema: str) -> list[str]:
    rows = con.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = ? "
        "order by 1",
        [database, schema],
    ).fetchall()
    return [name for (name,) in rows]


def _rows(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """``select`` of ``relation`` with doubles rounded: sums of the same values in another order
    differ in their last bits, and nothing else may differ."""
    columns = con.execute(f"describe select * from {relation}").fetchall()
    select = ", ".join(
        f'round("{name}", 6)' if kind in ("DOUBLE", "FLOAT") else f'"{name}"'
        for name, kind, *_ in columns
    )
    return f"select {select} from {relation}"


def _differences(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    a, b = _rows(con, left), _rows(con, right)
    (count,) = con.execute(
        f"select count(*) from (({a} except all {b}) union all ({b} except all {a}))"
    ).fetchone()
    return int(count)


@pytest.fixture(scope="module")
def incremental(tmp_path_factory: pytest.TempPathFactory):
    """A lake built once in full, then twice incrementally after two micro-batches."""
    shared = shared_synthetic_lake(tmp_path_factory.getbasetemp())
    settings = copy_lake(shared, tmp_path_factory.mktemp("incremental") / "home")
    write_example_ml_outputs(settings, open_scored=20)
    _build(settings, "run")
    publications = [publish_snapshot(settings)]
    plans = []
    for batch in (1, 2):
        apply_micro_batch(settings, batch)
        write_example_ml_outputs(settings, open_scored=10 * batch)
        plans.append(dbt_invocation(settings, ["run"]).changes)
        # the second batch is built with the data tests: they hold on incremental tables too
        _build(settings, "run" if batch == 1 else "build")
        publications.append(publish_snapshot(settings))
    return settings, plans, publications


def test_incremental_builds_equal_a_full_refresh_row_for_row(incremental, tmp_path):
    settings, plans, _ = incremental
    # the incremental path really ran: every change set was known, and small
    for plan in plans:
        assert plan is not None and plan.unknown == {}
        assert 0 < plan.changes["cleaned_orders"]["rows"] < 10
        assert plan.changes["cleaned_orders"]["partitions"]  # only their months are read
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        (changed,) = con.execute(
            "select count(distinct order_id) from intermediate.int_order_changes"
        ).fetchone()
        (orders,) = con.execute("select count(*) from fct_orders").fetchone()
    assert 0 < changed < orders / 10

    full = copy_lake(settings, tmp_path / "full", with_warehouse=True)
    shutil.copytree(settings.ml_dir, full.ml_dir)
    _build(full, "run", "--full-refresh")

    with duckdb.connect() as con:
        con.execute(f"attach '{settings.warehouse_path}' as incremental (read_only)")
        con.execute(f"attach '{full.warehouse_path}' as refreshed (read_only)")
        compared = 0
        for schema in ("main", "staging"):
            names = _tables(con, "refreshed", schema)
            assert names == _tables(con, "incremental", schema)
            for name in set(names) - WALL_CLOCK_MODELS:
                left, right = f"incremental.{schema}.{name}", f"refreshed.{schema}.{name}"
                assert _differences(con, left, right) == 0, name
                compared += 1
        assert compared >= 30
        # the batches' refused order is gone, its new orders are in
        assert con.execute(
            "select count(*) from incremental.main.fct_orders where order_id like '%-b2'"
        ).fetchone() == (2,)


def test_publishing_writes_only_the_parts_that_changed(incremental):
    settings, _, publications = incremental
    first, *later = publications
    assert first.parts_written > 0 and first.parts_linked == 0
    assert first.changed == {}  # nothing published before: every table fingerprinted
    for publication in later:  # the changed months and small marts written, the rest linked
        assert publication.parts_written > 0 and publication.parts_linked > 0
        # the example ML outputs were rewritten (segments and scores of unchanged orders moved):
        # the order tables' months are unknown, so they were fingerprinted
        assert publication.changed["fct_orders"] is None
        assert publication.changed["fct_incidents"] is not None

    # A cycle's batch (scores as they were, one customer moved to another segment): every month
    # known from the build's change sets and that customer's orders
    apply_micro_batch(settings, 3)
    segments = settings.ml_dir / "customer_segments" / "data.parquet"
    moved = pq.read_table(segments).to_pylist()
    moved[0]["segment_name"] = "Moved"
    pq.write_table(pa.Table.from_pylist(moved, pq.read_schema(segments)), segments)
    _build(settings, "run")
    last = publish_snapshot(settings)
    assert set(last.changed) == set(PARTITIONS)
    assert all(months is not None for months in last.changed.values())
    assert last.changed["fct_orders"] and last.changed["kpi_delivery_weekly"]
    # its changed months were written, its other months linked
    for name, months in last.changed.items():
        for part in (last.path / "parquet" / name).glob("*.parquet"):
            written = part.stem in months or (part.stem == "empty" and bool(months))
            assert (part.stat().st_nlink == 1) == written, (name, part.stem)
    # the snapshot is views over its own Parquet files; a linked part is the previous file itself
    links = [p for p in (last.path / "parquet").rglob("*.parquet") if p.stat().st_nlink > 1]
    assert links
    published = json.loads((last.path / "published.json").read_text())
    _, con = open_snapshot(settings)
    with con, duckdb.connect(str(settings.warehouse_path), read_only=True) as built:
        for name in PARTITIONS:
            served = con.execute(f"select * from main.{name}").fetchall()
            assert sorted(map(repr, served)) == sorted(
                map(repr, built.execute(f"select * from main.{name}").fetchall())
            ), name
            assert published["tables"][name] == len(served)

    # nothing built since: a publication writes nothing (the large tables not even read)
    again = publish_snapshot(settings)
    assert again.changed == {name: [] for name in PARTITIONS}
    assert again.parts_written == 0
    assert again.parts_linked == last.parts_linked + last.parts_written


def test_a_warehouse_without_committed_state_is_rebuilt_whole_through_the_same_path(
    incremental, tmp_path
):
    """No state (a first build, a lost file): every dataset counts as wholly changed."""
    settings, _, _ = incremental
    assert load_state(settings)["clean"]
    fresh = settings_for(Path(tmp_path / "fresh"))
    copy_lake(settings, fresh.home)
    plan = dbt_invocation(fresh, ["run"]).changes
    assert plan is not None and plan.changes == {}
    assert set(plan.unknown) >= {"cleaned_orders", "late_risk_scores"}


def test_the_cycle_leaves_the_per_column_tests_to_their_schedule():
    from scpro_assets.warehouse.assets import (
        SCHEDULED_TESTS,
        WarehouseBuildConfig,
        build_args,
        warehouse_all_tests,
    )

    cycle = build_args("{}", WarehouseBuildConfig())
    assert cycle[-2:] == ["--exclude", " ".join(SCHEDULED_TESTS)]
    assert "--full-refresh" not in cycle
    everything = build_args("{}", WarehouseBuildConfig(all_tests=True, full_refresh=True))
    assert "--exclude" not in everything and "--full-refresh" in everything
    assert warehouse_all_tests.cron_schedule == "0 * * * *"


def test_a_publication_unites_the_builds_since_its_version_and_trusts_nothing_else(tmp_path):
    """The records chain from the build a version published to the latest; a partial dbt run
    since the latest record (the warehouse file changed) or a broken chain means unknown."""
    settings = settings_for(tmp_path / "home")
    settings.warehouse_path.parent.mkdir(parents=True)
    settings.warehouse_path.write_bytes(b"built")
    (settings.home / "warehouse_inputs").mkdir()
    for build, months in (("A", ["2018-01"]), ("B", ["2018-02"]), ("C", ["2018-03"])):
        parts = dict.fromkeys(PARTITIONS, months)
        parts["fct_payments"] = None if build == "B" else months  # B re-read the payments whole
        commit_changes(settings, ChangeSet(folder=tmp_path / build), parts)

    assert _builds_since(settings, "C") == ("C", {name: [] for name in PARTITIONS})
    latest, changed = _builds_since(settings, "A")
    assert latest == "C" and changed["fct_orders"] == ["2018-02", "2018-03"]
    assert changed["fct_payments"] is None
    assert _builds_since(settings, "B")[1]["fct_payments"] == ["2018-03"]
    assert _builds_since(settings, None) == ("C", {})  # never published: fingerprint all
    assert _builds_since(settings, "gone") == ("C", {})
    settings.warehouse_path.write_bytes(b"a partial dbt run since")
    assert _builds_since(settings, "C") == (None, {})
