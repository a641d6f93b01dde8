"""Alerts for the people who act: orders newly at high risk, failed checks, stale marts.

Orders newly in the high-risk band are alerted once per order and band, across restarts (the
ledger is read back from disk by another process), in one message per snapshot, with whatever
comes from data made inert. Failed ERROR checks alert once per materialization they judged. The
stale-mart test runs the real ``dagster-daemon``: its freshness evaluation flags the marts whose
last update is past their window and the alert sensor tells data engineers, once per stale period.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import dagster as dg
import duckdb
import pytest

from scpro_assets.alerts import outbox_path, read_outbox, safe_text
from scpro_assets.resources import LakeResource
from scpro_assets.risk_alerts import alert_new_risky_orders, alerted_orders, ledger_path
from scpro_assets.settings import REPO_ROOT, KafkaSettings, Settings
from scpro_assets.warehouse.serving import publish_snapshot
from sensors.alert_sensors import (
    build_check_failure_sensor,
    build_high_risk_sensor,
    build_stale_mart_sensor,
)

PROMISED = datetime(2026, 12, 1, 18, 0)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "scpro", kafka=KafkaSettings())


def _publish(settings: Settings, orders: list[tuple[str, float, str, str]]) -> str:
    """Publish a snapshot whose ``at_risk_orders`` holds ``orders`` (id, risk, band, reasons).

    Through SCPro's own publication (copy of the warehouse, atomic swap of ``current``).
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.warehouse_path.unlink(missing_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "create table at_risk_orders (risk_rank bigint, order_id varchar, late_risk double, "
            "risk_band varchar, top_reasons varchar, promised_delivery_time timestamp)"
        )
        con.executemany(
            "insert into at_risk_orders values (?, ?, ?, ?, ?, ?)",
            [(i, o, r, b, why, PROMISED) for i, (o, r, b, why) in enumerate(orders, start=1)],
        )
        con.execute(
            "create table fct_deliveries as select order_id, 'risk-v7' as risk_model_version "
            "from at_risk_orders"
        )
    return publish_snapshot(settings).version


def _evaluate(settings: Settings, version: str) -> list:
    warehouse = settings.serving_dir / "versions" / version / "warehouse.duckdb"
    return alert_new_risky_orders(settings.home, warehouse, version, urls=())


def _risk_alerts(settings: Settings) -> list[dict]:
    return [a for a in read_outbox(outbox_path(settings.home)) if a["kind"] == "high_risk_orders"]


def _evaluate_in_another_process(settings: Settings, version: str) -> list[str]:
    """The evaluation after a restart: a fresh process that knows only what is on disk."""
    code = (
        "import json, sys; from pathlib import Path\n"
        "from scpro_assets.risk_alerts import alert_new_risky_orders\n"
        "home, version = Path(sys.argv[1]), sys.argv[2]\n"
        "warehouse = home / 'serving' / 'versions' / version / 'warehouse.duckdb'\n"
        "(o,) = alert_new_risky_orders(home, warehouse, version, urls=())\n"
        "print(json.dumps([r.order_id for r in o.newly]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(settings.home), version],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_orders_newly_high_are_alerted_once_per_order_and_band_across_a_restart(tmp_path):
    settings = _settings(tmp_path)
    first = _publish(
        settings,
        [
            ("A", 0.91, "high", "First Class: 95% late historically; long distance"),
            ("B", 0.84, "high", "tight promise (2 days)"),
            ("C", 0.55, "medium", "busy origin"),
            ("D", 0.10, "low", ""),
        ],
    )
    (outcome,) = _evaluate(settings, first)
    assert [o.order_id for o in outcome.newly] == ["A", "B"]
    (alert,) = _risk_alerts(settings)
    assert alert["audience"] == "operations" and alert["severity"] == "warning"
    assert alert["title"] == "SCPro: 2 open orders newly at high late risk"
    assert alert["body"].splitlines()[1:] == [
        "- order A: 91% late risk, promised 2026-12-01; First Class: 95% late historically",
        "- order B: 84% late risk, promised 2026-12-01; tight promise (2 days)",
    ]
    # The same snapshot evaluated again (a retried tick): nothing new, nothing sent.
    assert _evaluate(settings, first)[0].newly == []

    # A restart: another process reads the ledger back. A stays high (known), B drops to
    # medium, C crosses into high: one alert, for C only.
    second = _publish(
        settings,
        [
            ("A", 0.93, "high", "long distance"),
            ("C", 0.81, "high", "busy origin"),
            ("B", 0.60, "medium", "tight promise"),
        ],
    )
    assert _evaluate_in_another_process(settings, second) == ["C"]
    # B comes back to high: it was alerted in that band already, so it is not alerted again.
    third = _publish(settings, [("B", 0.88, "high", "tight promise"), ("A", 0.9, "high", "")])
    assert _evaluate_in_another_process(settings, third) == []

    alerts = _risk_alerts(settings)
    assert [a["subject"]["orders"] for a in alerts] == ["2", "1"]
    assert "- order C: 81% late risk" in alerts[1]["body"]
    assert alerted_orders(settings.home) == {"A", "B", "C"}
    with sqlite3.connect(ledger_path(settings.home)) as con:
        rows = con.execute(
            "select order_id, snapshot, model_version from alerted order by 1"
        ).fetchall()
    assert rows == [("A", first, "risk-v7"), ("B", first, "risk-v7"), ("C", second, "risk-v7")]


def test_one_message_per_snapshot_lists_the_riskiest_and_counts_the_rest(tmp_path):
    settings = _settings(tmp_path)
    orders = [(f"o{i:02d}", 0.70 + i / 100, "high", f"reason {i}") for i in range(25)]
    _evaluate(settings, _publish(settings, orders))
    (alert,) = _risk_alerts(settings)
    lines = alert["body"].splitlines()
    assert lines[0].startswith("25 open orders crossed into high late risk")
    listed = [line for line in lines if line.startswith("- order ")]
    assert [line.split(":")[0] for line in listed] == [
        f"- order o{i:02d}" for i in range(24, 14, -1)
    ]
    assert lines[-1] == "... and 15 more (the At-risk page lists them all)."
    assert alerted_orders(settings.home) == {o for o, *_ in orders}  # all 25, listed or counted


HOSTILE_ID = "<script>alert(1)</script>\u202e" + "9" * 300
HOSTILE_REASON = "**urgent** [click](http://evil.example) <!channel> @here\n- order FAKE: 99% late"


def test_order_ids_and_reasons_from_data_are_inert_and_short_in_the_message(tmp_path):
    settings = _settings(tmp_path)
    _evaluate(settings, _publish(settings, [(HOSTILE_ID, 0.97, "high", HOSTILE_REASON)]))
    (alert,) = _risk_alerts(settings)
    lines = alert["body"].splitlines()
    assert len(lines) == 2  # the reason's newline did not make a fake order line
    line = lines[1]
    for markup in ("<", ">", "[", "]", "*", "@", "!", "\u202e", "\n"):
        assert markup not in line, markup
    assert "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e" in line  # full-width look-alikes
    assert "\uff3bclick\uff3d" in line
    order_part, reason_part = line.split("; ", 1)
    assert len(order_part) <= len("- order ") + 64 + len(": 97% late risk, promised 2026-12-01")
    assert "…" in order_part and len(reason_part) <= 120
    # The ledger keeps the real id: dedup works on data, the message shows a safe rendering.
    assert alerted_orders(settings.home) == {HOSTILE_ID}
    assert safe_text("a\tb\u200bc  d", 10) == "a bc d"


def test_high_risk_sensor_alerts_operations_after_each_snapshot(tmp_path, webhook, monkeypatch):
    """On the snapshot's materialization, to the operations channel only (not data engineers)."""
    url, received = webhook
    monkeypatch.setenv("SCPRO_ALERT_URLS_OPS", url)
    monkeypatch.setenv("SCPRO_ALERT_URLS", "json://127.0.0.1:9/data-engineers")
    settings = _settings(tmp_path)
    sensor = build_high_risk_sensor()
    lake = LakeResource(home=str(settings.home))
    with dg.instance_for_test() as instance:
        cursor: list[str | None] = [None]

        def tick() -> None:
            with dg.build_sensor_context(
                instance=instance, cursor=cursor[0], resources={"lake": lake}
            ) as context:
                cursor[0] = sensor.evaluate_tick(context).cursor

        version = _publish(settings, [("A", 0.9, "high", "long distance")])
        folder = settings.serving_dir / "versions" / version
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "serving_snapshot",
                metadata={"version": version, "path": dg.MetadataValue.path(str(folder))},
            )
        )
        tick()
        tick()  # no new snapshot: nothing more
        assert len(received) == 1 and received[0]["title"].startswith("SCPro: 1 open order")
        assert "- order A: 90% late risk" in received[0]["message"]
        (alert,) = _risk_alerts(settings)
        assert alert["deliveries"] == [{"channel": "json#1", "status": "sent"}]
        assert alert["subject"]["snapshot"] == version

        # The next snapshot, whose version folder was pruned meanwhile: current is read.
        _publish(settings, [("A", 0.9, "high", ""), ("E", 0.8, "high", "")])
        instance.report_runless_asset_event(
            dg.AssetMaterialization("serving_snapshot", metadata={"path": "/gone/v0"})
        )
        tick()
    assert [a["subject"]["orders"] for a in _risk_alerts(settings)] == ["1", "1"]
    assert "- order E" in _risk_alerts(settings)[1]["body"]


def _checked_asset(outcomes: dict[str, bool]):
    """An asset whose ``must_hold`` (ERROR) and ``nice_to_have`` (WARN) checks pass or fail."""

    @dg.asset(
        name="fct_orders",
        check_specs=[
            dg.AssetCheckSpec("must_hold", asset="fct_orders"),
            dg.AssetCheckSpec("nice_to_have", asset="fct_orders"),
        ],
    )
    def fct_orders() -> Iterator[object]:
        yield dg.Output(None)
        yield dg.AssetCheckResult(
            check_name="must_hold",
            passed=outcomes["must_hold"],
            severity=dg.AssetCheckSeverity.ERROR,
            description="3 rows <b>break</b> the rule",
        )
        yield dg.AssetCheckResult(
            check_name="nice_to_have",
            passed=outcomes["nice_to_have"],
            severity=dg.AssetCheckSeverity.WARN,
        )

    return fct_orders


def test_failed_error_check_alerts_once_per_materialization_and_warnings_do_not(tmp_path):
    home = tmp_path / "scpro"
    outcomes = {"must_hold": False, "nice_to_have": False}
    asset = _checked_asset(outcomes)
    sensor = build_check_failure_sensor()
    defs = dg.Definitions(assets=[asset], sensors=[sensor])
    lake = LakeResource(home=str(home))

    def tick(instance: dg.DagsterInstance) -> None:
        with dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"lake": lake}
        ) as context:
            sensor.evaluate_tick(context)

    def check_alerts() -> list[dict]:
        return [a for a in read_outbox(outbox_path(home)) if a["kind"] == "check_failed"]

    with dg.instance_for_test() as instance:
        assert dg.materialize([asset], instance=instance).success  # checks do not fail runs
        tick(instance)
        tick(instance)  # the same failed evaluation again: one alert
        (alert,) = check_alerts()
        assert alert["title"] == "SCPro: check must_hold on fct_orders failed"
        assert alert["audience"] == "data" and alert["severity"] == "error"
        assert "\uff1cb\uff1ebreak\uff1c/b\uff1e" in alert["body"]

        # Fixed by the next materialization: no alert; failing again later: a new one.
        outcomes["must_hold"] = True
        assert dg.materialize([asset], instance=instance).success
        tick(instance)
        outcomes["must_hold"] = False
        assert dg.materialize([asset], instance=instance).success
        tick(instance)
    alerts = check_alerts()
    assert len(alerts) == 2 and alerts[0]["id"] != alerts[1]["id"]
    assert all("nice_to_have" not in a["id"] for a in alerts)


# --- stale marts, with the real daemon ---------------------------------------------------------

_STALE_LOCATION = """\
import dagster as dg

from scpro_assets.automation import MART_FRESHNESS
from scpro_assets.resources import LakeResource
from sensors.alert_sensors import build_stale_mart_sensor


def _mart(name):
    @dg.asset(name=name, freshness_policy=MART_FRESHNESS)
    def mart():
        return None

    return mart


defs = dg.Definitions(
    assets=[_mart(name) for name in ("fct_deliveries", "kpi_delivery_daily", "fct_orders")],
    sensors=[build_stale_mart_sensor(minimum_interval_seconds=1)],
    resources={{"lake": LakeResource(home={home!r})}},
)
"""

_STALE_WORKSPACE = """\
load_from:
  - python_file:
      relative_path: stale_location.py
      attribute: defs
      location_name: scpro
      working_directory: {home}
"""


def _updated(instance: dg.DagsterInstance, name: str, hours_ago: float) -> None:
    """A materialization of ``name`` as if it had happened ``hours_ago`` (its last update).

    Reported through Dagster's public call, with the clock it stamps events by moved back.
    """
    stamp = (datetime.now(UTC) - timedelta(hours=hours_ago)).timestamp()
    with mock.patch("time.time", return_value=stamp):
        instance.report_runless_asset_event(dg.AssetMaterialization(name))


def _wait(predicate, timeout_s: float, what: str, daemon: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if daemon.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"gave up waiting for {what} (daemon exit {daemon.poll()}):\n{tail}")
        time.sleep(0.2)


def _states(instance: dg.DagsterInstance, *names: str) -> dict[str, str]:
    records = instance.get_freshness_state_records([dg.AssetKey(n) for n in names])
    return {k.to_user_string(): r.freshness_state.value for k, r in records.items()}


def test_daemon_flags_a_stale_mart_and_alerts_it_once_per_stale_period(tmp_path):
    """``dagster-daemon`` on SCPro's instance config, the marts' real policy (warn 1 h, fail
    2 h): a mart last updated 3 h ago is flagged FAIL and alerted as an error, one 90 min old is
    WARN and a warning, a fresh one neither. Refreshed, then stale again: one more alert."""
    from scpro_assets.instance import prepare_dagster_home

    settings = _settings(tmp_path)
    home = settings.home
    config = prepare_dagster_home(settings) / "dagster.yaml"
    assert "freshness:\n  enabled: true" in config.read_text()
    (home / "stale_location.py").write_text(_STALE_LOCATION.format(home=str(home)))
    (home / "workspace.yaml").write_text(_STALE_WORKSPACE.format(home=home))

    def stale_alerts() -> list[dict]:
        return [a for a in read_outbox(outbox_path(home)) if a["kind"] == "mart_stale"]

    log = home / "daemon.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DAGSTER_HOME": str(settings.dagster_home),
        "SCPRO_HOME": str(home),
        "SCPRO_ALERT_URLS": "",
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "1",
    }
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        _updated(instance, "fct_deliveries", hours_ago=3)
        _updated(instance, "kpi_delivery_daily", hours_ago=1.5)
        _updated(instance, "fct_orders", hours_ago=0)
        started = time.monotonic()
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dagster-daemon")),
                    "run",
                    "-w",
                    "workspace.yaml",
                ],
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait(lambda: len(stale_alerts()) >= 2, 75, "the stale marts' alerts", daemon, log)
            flagged_s = time.monotonic() - started
            assert _states(instance, "fct_deliveries", "kpi_delivery_daily", "fct_orders") == {
                "fct_deliveries": "FAIL",
                "kpi_delivery_daily": "WARN",
                "fct_orders": "PASS",
            }
            by_asset = {a["subject"]["asset"]: a for a in stale_alerts()}
            assert set(by_asset) == {"fct_deliveries", "kpi_delivery_daily"}
            assert by_asset["fct_deliveries"]["severity"] == "error"
            assert by_asset["kpi_delivery_daily"]["severity"] == "warning"
            assert "fails after 2:00:00" in by_asset["fct_deliveries"]["body"]

            # Refreshed (PASS), then stale again: a new stale period, one more alert. The sensor
            # ticked all along, and the marts that stayed stale were not alerted again.
            _updated(instance, "fct_deliveries", hours_ago=0)
            _wait(
                lambda: _states(instance, "fct_deliveries")["fct_deliveries"] == "PASS",
                30,
                "fct_deliveries fresh again",
                daemon,
                log,
            )
            _updated(instance, "fct_deliveries", hours_ago=2.5)
            _wait(lambda: len(stale_alerts()) >= 3, 30, "the second stale period", daemon, log)
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        # After the daemon: another process (this one) evaluates the sensor on the same
        # instance and outbox, as a restarted daemon would: both marts are still stale, in the
        # same stale periods, so nothing is sent again.
        sensor = build_stale_mart_sensor()
        defs = dg.Definitions(
            assets=[_mart(n) for n in ("fct_deliveries", "kpi_delivery_daily", "fct_orders")],
            sensors=[sensor],
        )
        lake = LakeResource(home=str(home))
        with dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"lake": lake}
        ) as context:
            assert sensor.evaluate_tick(context).skip_message == "no news"
    alerts = stale_alerts()
    print(f"\nstale marts flagged and alerted {flagged_s:.1f} s after the daemon started")
    assert [a["subject"]["asset"] for a in alerts].count("fct_deliveries") == 2
    assert [a["subject"]["asset"] for a in alerts].count("kpi_delivery_daily") == 1
    assert len({a["id"] for a in alerts}) == 3


def _mart(name: str) -> dg.AssetsDefinition:
    """A mart with the dashboard marts' real freshness policy."""
    from scpro_assets.automation import MART_FRESHNESS

    @dg.asset(name=name, freshness_policy=MART_FRESHNESS)
    def mart() -> None:
        return None

    return mart


def test_the_at_risk_page_shows_the_latest_alerts_escaped_on_the_sample_snapshot(tmp_path):
    """On the dashboard's sample snapshot (the mart's real columns): one alert for its high-risk
    orders, shown on the At-risk page's panel with every value escaped."""
    import panel_warehouse

    from panel_app.store import DataStore
    from panel_app.views import alerts_panel

    warehouse = panel_warehouse.build(tmp_path)
    high = warehouse.at_risk[warehouse.at_risk["risk_band"] == "high"]
    assert len(high) > alerts_panel.SHOWN
    version = warehouse.serving_current.resolve()
    (outcome,) = alert_new_risky_orders(
        warehouse.home, version / "warehouse.duckdb", version.name, urls=()
    )
    assert {o.order_id for o in outcome.newly} == set(high["order_id"].astype(str))
    riskiest = high.sort_values("late_risk", ascending=False).iloc[0]
    assert outcome.newly[0].order_id == str(riskiest["order_id"])

    # A hostile alert of the same kind (as a channel-less outbox writer could leave one).
    from scpro_assets.alerts import Alert, send_alert

    send_alert(
        Alert(
            "high_risk_orders:x",
            "high_risk_orders",
            "warning",
            "<img src=x onerror=alert(1)>",
            "line 1\n<b>line 2</b>",
            audience="operations",
        ),
        warehouse.home,
        urls=(),
    )
    store = DataStore(serving_current=warehouse.serving_current)
    shown = alerts_panel.latest(store).object
    assert shown.count('class="risk-alert"') == 2
    assert "<img" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "&lt;b&gt;line 2&lt;/b&gt;" in shown
    assert f"{len(high)} open orders newly at high late risk" in shown
    empty = alerts_panel.latest(DataStore(serving_current=tmp_path / "elsewhere" / "s" / "current"))
    assert "No order has newly crossed" in empty.object
