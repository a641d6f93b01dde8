"""Evidence can read SCPro's DuckDB files: Node's @duckdb/node-api opens what Python duckdb wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date, datetime
from decimal import Decimal

import duckdb

from scpro_assets.settings import REPO_ROOT

NODE_DIR = REPO_ROOT / "tests" / "node"


def _read_with_node(path, sql: str) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed to prove Evidence compatibility (apt-get install nodejs)"
    assert (NODE_DIR / "node_modules" / "@duckdb" / "node-api").is_dir(), (
        "tests/node/node_modules is missing: run `make setup` (npm install --prefix tests/node)"
    )
    result = subprocess.run(
        [node, str(NODE_DIR / "read_duckdb.mjs"), str(path), sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_node_api_reads_a_warehouse_file_written_by_python(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            """
            create schema marts;
            create table marts.kpi_late_rate_by_region (
                region varchar, day date, orders bigint, late_rate double,
                revenue decimal(18, 2), refreshed_at timestamp, note varchar
            )
            """
        )
        con.executemany(
            "insert into marts.kpi_late_rate_by_region values (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    "West of USA",
                    date(2017, 6, 1),
                    42,
                    0.5714,
                    Decimal("1234.50"),
                    datetime(2017, 6, 2, 3, 4, 5),
                    None,
                ),
                (
                    "Southeast Asia",
                    date(2017, 6, 1),
                    7,
                    0.0,
                    Decimal("99.99"),
                    datetime(2017, 6, 2, 3, 4, 5),
                    "é ü",
                ),
            ],
        )
    answer = _read_with_node(
        path, "select * from marts.kpi_late_rate_by_region order by orders desc"
    )
    python_major_minor = ".".join(duckdb.__version__.split(".")[:2])
    assert duckdb.__version__.startswith("1.")
    assert answer["version"].lstrip("v").startswith(python_major_minor)
    assert answer["rows"] == [
        {
            "region": "West of USA",
            "day": "2017-06-01",
            "orders": "42",
            "late_rate": 0.5714,
            "revenue": "1234.50",
            "refreshed_at": "2017-06-02 03:04:05",
            "note": None,
        },
        {
            "region": "Southeast Asia",
            "day": "2017-06-01",
            "orders": "7",
            "late_rate": 0,
            "revenue": "99.99",
            "refreshed_at": "2017-06-02 03:04:05",
            "note": "é ü",
        },
    ]


def test_node_api_reads_the_published_serving_snapshot(tmp_path_factory):
    """Evidence's driver opens SCPro's published snapshot and answers a dashboard KPI query."""
    import dagster as dg

    from scpro_assets.testing.warehouse import materialize_warehouse, shared_synthetic_lake

    settings = shared_synthetic_lake(tmp_path_factory.getbasetemp())
    if not settings.serving_current.exists():  # run alone: build and publish once
        with dg.instance_for_test() as instance:
            assert materialize_warehouse(settings, instance).success
    snapshot = settings.serving_current.resolve() / "warehouse.duckdb"
    sql = (
        "select region, sum(orders) as orders, sum(late_orders) as late_orders, "
        "round(sum(revenue), 2) as revenue, min(period_start) as first_week "
        "from main.kpi_delivery_weekly group by region order by region"
    )
    answer = _read_with_node(snapshot, sql)
    with duckdb.connect(str(snapshot), read_only=True) as con:
        expected = con.execute(sql).fetchall()
    assert len(answer["rows"]) == len(expected) > 1
    for row, (region, orders, late, revenue, first_week) in zip(
        answer["rows"], expected, strict=True
    ):
        assert row == {
            "region": region,
            "orders": str(orders),
            "late_orders": str(late),
            "revenue": revenue,
            "first_week": first_week.isoformat(),
        }
