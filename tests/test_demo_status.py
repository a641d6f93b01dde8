"""The demo's quiet terminal: its status line and its shutdown, without a broker or Dagster.

The whole demo (Kafka, Dagster, Spark Connect, the dashboard) is checked by hand; see the README's
demo section. These parts are what the status line reads and how the demo stops its children.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from scpro_assets.alerts import Alert, send_alert
from scpro_assets.clean.watermark import save_watermark, watermark_path
from scpro_assets.cli import _stop_process_groups
from scpro_assets.demo_status import DemoStatus
from scpro_assets.ingest.landing import RAW_SCHEMA
from scpro_assets.settings import KafkaSettings, Settings
from scpro_assets.warehouse.serving import publish_snapshot


def _warehouse(settings: Settings, scored: bool) -> None:
    """A warehouse with the one mart the status line reads: 3 open orders, 1 closed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    risk = "0.9" if scored else "null"
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("drop table if exists main.fct_deliveries")
        con.execute(
            "create table main.fct_deliveries as select * from (values "
            f"('o-1', true, {risk}::double, {str(scored).lower()}), "
            f"('o-2', true, {risk}::double, false), ('o-3', true, null::double, false), "
            "('o-4', false, 0.1, false)) t(order_id, is_open, late_risk, is_high_risk)"
        )


def _land(raw_dir: Path, topic: str, first: int, last: int) -> None:
    """A range file: the status line counts its offsets from its name alone."""
    folder = raw_dir / topic / "partition-0"
    folder.mkdir(parents=True, exist_ok=True)
    empty = pa.Table.from_pylist([], schema=RAW_SCHEMA)
    pq.write_table(empty, folder / f"{topic}-p0-{first:012d}-{last:012d}.parquet")


def test_status_line_reads_landing_the_snapshot_its_watermark_and_the_alerts(tmp_path):
    settings = Settings(home=tmp_path / "scpro", kafka=KafkaSettings())
    status = DemoStatus(settings, started=100.0)
    assert status.refresh(110.0) == []
    line = status.line(110.0, published=42)
    assert line.startswith("[0m10s] published 42 · landed 0 · no snapshot yet")
    assert line.endswith("alerts 0")

    _land(settings.raw_dir, "orders", 0, 99)
    _land(settings.raw_dir, "shipments", 0, 9)
    _warehouse(settings, scored=False)
    save_watermark(
        watermark_path(settings.clean_dir),
        {"watermark": "2016-03-04T11:00:00+00:00", "computed_at": None, "topics": []},
    )
    publish_snapshot(settings)
    assert status.refresh(290.0) == ["first snapshot after 3m10s: data as of 2016-03-04 11:00"]
    line = status.line(290.0, published=500)
    assert "published 500 · landed 110 · snapshot " in line
    assert "data as of 2016-03-04 11:00 · open orders 3 (0 scored, 0 high risk)" in line

    # The models serve: the next snapshot has scores, and an alert went out.
    _warehouse(settings, scored=True)
    publish_snapshot(settings)
    send_alert(Alert("a-1", "range_unlanded", "error", "orders 0-9", "not landed"), settings.home)
    assert status.refresh(400.0) == [
        "first scored open orders after 5m00s: 2 scored, 1 at high risk (see the At-risk page)"
    ]
    line = status.line(400.0, published=900)
    assert "open orders 3 (2 scored, 1 high risk) · alerts 1" in line
    assert status.refresh(410.0) == []  # same snapshot: nothing read again, no new milestone
    assert status.open_orders_seen == [3, 3]


def test_children_are_stopped_together_and_killed_after_one_grace_period():
    # One child stops on SIGTERM, one ignores it (a run busy in a JVM, say), with a grandchild.
    polite = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen(['sleep', '60'])\n"
            "time.sleep(60)",
        ],
        start_new_session=True,
    )
    time.sleep(0.5)  # the stubborn one has set its handler and started its grandchild
    started = time.monotonic()
    _stop_process_groups([("polite", polite), ("stubborn", stubborn)], grace_s=2.0)
    assert time.monotonic() - started < 6  # one grace period for both, not one each
    assert polite.returncode is not None and stubborn.returncode is not None

    def group_alive() -> bool:
        found = subprocess.run(["pgrep", "-g", str(stubborn.pid)], capture_output=True, check=False)
        return found.returncode == 0

    deadline = time.monotonic() + 5  # SIGKILL is sent; the kernel may take a moment under load
    while group_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive()  # the grandchild went with its group
