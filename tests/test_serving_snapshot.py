"""The serving snapshot is swapped atomically: a reader querying it in a loop while the pipeline
rebuilds and republishes sees no error and never a half-built state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import dagster as dg
import duckdb
import pytest

from scpro_assets.testing.warehouse import (
    copy_lake,
    materialize_warehouse,
    shared_synthetic_lake,
    write_example_ml_outputs,
)
from scpro_assets.warehouse.serving import KEEP_VERSIONS, open_snapshot, publish_snapshot

#: Tables a reader counts in the tests below.
TABLES = ("fct_orders", "at_risk_orders", "kpi_delivery_daily")

#: Runs in its own process: resolve `current` once per batch, open it read-only, count the rows of
#: three tables and compare them with that version's published.json.
READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import duckdb

    current, log, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    tables = ("fct_orders", "at_risk_orders", "kpi_delivery_daily")
    final = None
    with log.open("w") as out:
        while True:
            if stop.exists() and final is None:
                final = stop.read_text().strip()
            record = {}
            try:
                version = current.resolve()
                record["version"] = version.name
                published = json.loads((version / "published.json").read_text())
                with duckdb.connect(str(version / "warehouse.duckdb"), read_only=True) as con:
                    counts = {t: con.execute(f"select count(*) from main.{t}").fetchone()[0]
                              for t in tables}
                record["counts"] = counts
                record["consistent"] = all(published["tables"][t] == counts[t] for t in tables)
            except Exception as error:
                record["error"] = f"{type(error).__name__}: {error}"
            out.write(json.dumps(record) + "\\n")
            out.flush()
            if final is not None and record.get("version") == final:
                break
            time.sleep(0.02)
    """
)


@pytest.fixture(scope="module")
def serving_home(tmp_path_factory: pytest.TempPathFactory):
    """A private copy of the session's synthetic lake and warehouse, published once."""
    shared = shared_synthetic_lake(tmp_path_factory.getbasetemp())
    home = tmp_path_factory.mktemp("serving") / "home"
    settings = copy_lake(shared, home, with_warehouse=True)
    with dg.instance_for_test() as instance:
        if settings.warehouse_path.exists():  # built by test_dbt_warehouse: publish that
            publish_snapshot(settings)
        else:
            assert materialize_warehouse(settings, instance).success
        yield settings, instance


def test_reader_sees_only_complete_versions_while_the_pipeline_rebuilds(serving_home, tmp_path):
    settings, instance = serving_home
    first = settings.serving_current.resolve()
    published = json.loads((first / "published.json").read_text())
    first = first.name
    log, stop = tmp_path / "reads.jsonl", tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.serving_current), str(log), str(stop)]
    )
    try:
        expected_at_risk = {first: published["tables"]["at_risk_orders"]}
        # One cycle (new model outputs, dbt build, publish) swaps the version under the reader;
        # a second cycle cost 50 s of the suite and proved nothing more.
        write_example_ml_outputs(settings, open_scored=7)
        # the automation's cycle: an incremental build, guarded by the singular tests only
        result = materialize_warehouse(settings, instance, all_tests=False)
        assert result.success
        checks = {e.check_name for e in result.get_asset_check_evaluations()}
        assert "assert_incremental_facts_hold_each_key_once" in checks
        assert not any(name.startswith(("unique_", "not_null_")) for name in checks)
        expected_at_risk[settings.serving_current.resolve().name] = 7
        last = settings.serving_current.resolve().name
        stop.write_text(last)
        assert reader.wait(timeout=120) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [r["error"] for r in reads if "error" in r]
    assert errors == []
    assert all(r["consistent"] for r in reads)
    seen = {r["version"] for r in reads}
    assert seen == {first, last} and first != last
    for r in reads:
        assert r["counts"]["at_risk_orders"] == expected_at_risk[r["version"]]
    assert len(reads) > 20


def test_publishing_keeps_the_newest_versions_and_points_current_at_the_last(serving_home):
    settings, _ = serving_home
    # versions replaced within the grace period stay: a reader may still be on them
    kept = [publish_snapshot(settings) for _ in range(KEEP_VERSIONS + 2)]
    assert all(p.pruned == [] for p in kept)
    publications = [publish_snapshot(settings, grace_seconds=0) for _ in range(KEEP_VERSIONS + 2)]
    versions = sorted(p.name for p in (settings.serving_dir / "versions").iterdir())
    assert versions == [p.version for p in publications][-KEEP_VERSIONS:]
    assert settings.serving_current.resolve() == publications[-1].path
    assert not list((settings.serving_dir).glob(".current.*"))
    # nothing changed in the warehouse: every part of every version is the first one's file
    assert publications[-1].parts_written == 0 and publications[-1].parts_linked > 0
    with duckdb.connect(str(publications[-1].path / "warehouse.duckdb"), read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from main.{t}").fetchone()[0] for t in TABLES}
    assert counts == {t: publications[-1].tables[t] for t in TABLES}


def test_a_reader_keeps_its_version_files_while_newer_ones_are_published(serving_home):
    """A reader that resolved a version just before it was replaced still reads all of it."""
    settings, _ = serving_home
    version, con = open_snapshot(settings)
    with con:
        before = con.execute("select count(*), sum(net_value) from main.fct_orders").fetchone()
        for _ in range(KEEP_VERSIONS + 1):
            publish_snapshot(settings)  # default grace: nothing just replaced is pruned
        assert version.exists()
        after = con.execute("select count(*), sum(net_value) from main.fct_orders").fetchone()
    assert after == before
