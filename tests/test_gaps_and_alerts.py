"""Gaps are seen and healed, alerts go out once, and each snapshot says how complete it is.

Against the real broker: a range whose run fails is seen by the raw asset's check once past the
deadline, requested again with backoff (and not while a run of it is queued), alerted once after
N attempts (even after a restart that lost the cursor), and once it lands the check passes and
every offset is accounted for exactly once. The sensors' clock is moved instead of sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from scpro_assets.alerts import Alert, outbox_path, read_outbox, send_alert
from scpro_assets.clean.watermark import save_watermark, watermark_path
from scpro_assets.definitions.platform import build_definitions
from scpro_assets.ingest import landing as ingest_landing
from scpro_assets.ingest import runs as landing_runs
from scpro_assets.ingest.gaps import CHECK_NAME, gap_status_path, parse_state, uncovered
from scpro_assets.kafka.clients import producer
from scpro_assets.runner import (
    RUN_KEY_TAG,
    SENSOR_TAG,
    CursorStore,
    evaluate_sensor,
    ingest_once,
)
from scpro_assets.settings import TOPICS, GapSettings, Settings
from scpro_assets.sources.common import make_event
from sensors import kafka_sensors
from sensors.alert_sensors import run_failure_alerts
from sensors.kafka_sensors import sensor_name

pytestmark = pytest.mark.kafka

TOPIC = "payments"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _payment(i: int) -> bytes:
    event = make_event(
        "test",
        "payment_captured",
        T0 + timedelta(minutes=i),
        (i,),
        f"order-{i}",
        order_id=f"order-{i}",
        payment_type="card",
        amount=10.0,
    )
    return event.to_json()


def _publish(settings: Settings, values: list[bytes], partition: int = 0) -> None:
    sender = producer(settings.kafka)
    for value in values:
        sender.send(settings.kafka.topic_name(TOPIC), value=value, partition=partition)
    sender.flush()
    sender.close()


def _offsets(settings: Settings, base: Path) -> dict[int, list[int]]:
    """Offsets per partition in the range files under ``base`` (duplicates would show twice)."""
    seen: dict[int, list[int]] = {}
    for path in sorted((base / TOPIC).glob("partition-*/*.parquet")):
        for row in pq.read_table(path, columns=["partition", "offset"]).to_pylist():
            seen.setdefault(row["partition"], []).append(row["offset"])
    return {p: sorted(o) for p, o in seen.items()}


def _accounted(settings: Settings) -> dict[int, list[int]]:
    """Offsets per partition, landed or quarantined."""
    raw, bad = _offsets(settings, settings.raw_dir), _offsets(settings, settings.quarantine_dir)
    return {p: sorted(raw.get(p, []) + bad.get(p, [])) for p in raw.keys() | bad.keys()}


class Clock:
    """The sensors' clock, moved by the test."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Deadline 1 s, alert after 3 attempts, backoff capped at 3 s, on a clock the test moves."""
    monkeypatch.setenv("SCPRO_GAP_DEADLINE_SECONDS", "1")
    monkeypatch.setenv("SCPRO_GAP_ALERT_AFTER_ATTEMPTS", "3")
    monkeypatch.setenv("SCPRO_GAP_BACKOFF_CAP_SECONDS", "3")
    monkeypatch.setenv("SCPRO_ALERT_URLS", "")
    fake = Clock()
    monkeypatch.setattr(kafka_sensors, "now", fake)
    return fake


def _clocked(settings: Settings) -> Settings:
    """``settings`` with the gap policy the ``clock`` fixture set in the environment."""
    return settings.model_copy(update={"gaps": GapSettings()})


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance):
    """One evaluation of the topic's sensor, its events recorded and its cursor stored (as the
    daemon does), without running what it asks for: those runs never land."""
    name = sensor_name(TOPIC)
    store = CursorStore(instance, name)
    data = evaluate_sensor(defs, instance, name, store)
    store.set(data.cursor)
    (check,) = [e for e in data.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    return [r.run_key for r in data.run_requests or []], check, data.run_requests or []


def _range_alerts(settings: Settings) -> list[dict]:
    return [a for a in read_outbox(outbox_path(settings.home)) if a["kind"] == "range_unlanded"]


def _failing_landing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise RuntimeError("the broker cannot serve this range")

    monkeypatch.setattr(ingest_landing, "land_range", refuse)


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> bool:
    """Run what the sensor asked for, as the daemon would."""
    tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_TAG: sensor_name(TOPIC)}
    result = defs.resolve_job_def(f"land_{TOPIC}").execute_in_process(
        run_config=request.run_config, instance=instance, tags=tags, raise_on_error=False
    )
    return result.success


# --- pure parts ------------------------------------------------------------------------------


def test_uncovered_spans_and_plain_cursors_of_older_versions():
    assert uncovered(0, 20, []) == [(0, 20)]
    assert uncovered(0, 20, [(0, 19)]) == []
    assert uncovered(0, 20, [(5, 9), (15, 29)]) == [(0, 5), (10, 15)]
    assert uncovered(10, 20, [(0, 12), (18, 18)]) == [(13, 18), (19, 20)]
    old = parse_state('{"0": 12, "1": 3}')
    assert old.next_offsets == {0: 12, 1: 3} and old.open_ranges == {}
    assert kafka_sensors.parse_cursor('{"0": 12}') == {0: 12}


def test_gap_settings_read_the_environment_and_name_a_malformed_variable(monkeypatch):
    monkeypatch.setenv("SCPRO_GAP_DEADLINE_SECONDS", "30")
    monkeypatch.setenv("SCPRO_GAP_BACKOFF_CAP_SECONDS", "5")
    # the cap is at least the deadline
    assert GapSettings.from_env() == GapSettings(
        deadline_seconds=30.0, alert_after_attempts=3, backoff_cap_seconds=30.0
    )
    monkeypatch.setenv("SCPRO_GAP_ALERT_AFTER_ATTEMPTS", "three")
    with pytest.raises(ValueError, match="SCPRO_GAP_ALERT_AFTER_ATTEMPTS='three'"):
        GapSettings.from_env()
    monkeypatch.setenv("SCPRO_GAP_ALERT_AFTER_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="SCPRO_GAP_ALERT_AFTER_ATTEMPTS='0' must be at least 1"):
        GapSettings.from_env()


# --- against the broker ----------------------------------------------------------------------


def test_unlanded_range_is_seen_requested_again_with_backoff_alerted_once_and_healed(
    scpro_settings, dagster_instance, clock, monkeypatch
):
    _publish(scpro_settings, [_payment(i) for i in range(10)])
    defs = build_definitions(_clocked(scpro_settings))
    real_land_range = ingest_landing.land_range
    _failing_landing(monkeypatch)
    (first,) = ingest_once(defs, dagster_instance, topics=(TOPIC,))
    assert first.failed == ["payments-0-0-9"]  # the range's run fails: nothing lands

    requested, check, _ = _tick(defs, dagster_instance)
    assert requested == [] and check.passed  # unlanded, but not past the deadline yet
    (pending,) = check.metadata["unlanded_ranges"].value
    assert (pending["first_offset"], pending["last_offset"], pending["overdue"]) == (0, 9, False)

    clock.advance(1)
    requested, check, _ = _tick(defs, dagster_instance)
    assert requested == ["payments-0-0-9-retry2"]
    assert not check.passed and check.check_name == CHECK_NAME
    assert check.asset_key == dg.AssetKey("raw_payments")
    assert check.metadata["overdue_offsets"].value == 10
    (gap,) = check.metadata["unlanded_ranges"].value
    assert gap["unlanded_offsets"] == 10 and gap["age_seconds"] == 1 and gap["attempts"] == 2
    check_key = dg.AssetCheckKey(dg.AssetKey("raw_payments"), CHECK_NAME)
    history = dagster_instance.event_log_storage.get_asset_check_execution_history(check_key, 5)
    assert history[0].status.value == "FAILED"  # as the UI shows it

    # Backoff: the next request waits twice the deadline, then four times (capped at 3 s).
    clock.advance(1.9)
    assert _tick(defs, dagster_instance)[0] == []
    clock.advance(0.1)
    assert _tick(defs, dagster_instance)[0] == ["payments-0-0-9-retry3"]
    assert _range_alerts(scpro_settings) == []  # not yet: 3 attempts are not all over
    clock.advance(2.9)
    assert _tick(defs, dagster_instance)[0] == []
    clock.advance(0.1)
    requested, check, _ = _tick(defs, dagster_instance)
    assert requested == ["payments-0-0-9-retry4"]
    (alert,) = _range_alerts(scpro_settings)
    assert alert["severity"] == "error" and alert["subject"]["range"] == "0-9"
    assert alert["subject"]["attempts"] == "3" and "payments" in alert["title"]

    # The dashboard's view of the gap.
    status = json.loads(gap_status_path(scpro_settings.home, TOPIC).read_text())
    assert status["unlanded_offsets"] == 10 and status["ranges"][0]["attempts"] == 4

    # A restart that lost the cursor's ranges (an older plain cursor): the gap is adopted again
    # and, once it has failed 3 attempts again, its alert is not sent twice.
    CursorStore(dagster_instance, sensor_name(TOPIC)).set('{"0": 10, "1": 0}')
    for _ in range(4):
        clock.advance(3)
        _tick(defs, dagster_instance)
    state = parse_state(CursorStore(dagster_instance, sensor_name(TOPIC)).get())
    assert state.open_ranges["0-0-9"].attempts >= 4
    assert len(_range_alerts(scpro_settings)) == 1

    # While a run of the range is queued, it is not requested again.
    queued = dagster_instance.create_run_for_job(
        defs.resolve_job_def("land_payments"),
        run_config={"ops": {"raw_payments": {"config": {"partition": 0, "start": 0, "stop": 10}}}},
        tags={"scpro/topic": TOPIC, "scpro/partition": "0", "scpro/range": "0-9"},  # an older run
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    clock.advance(3)
    requested, check, _ = _tick(defs, dagster_instance)
    assert requested == [] and not check.passed
    dagster_instance.report_run_canceled(queued)

    # The cause is gone: the sensor's next request lands the range, and the check passes.
    monkeypatch.setattr(ingest_landing, "land_range", real_land_range)
    clock.advance(3)
    requested, _check, requests = _tick(defs, dagster_instance)
    assert requested == ["payments-0-0-9-retry5"]  # adopted at 1, then 2, 3, 4 since
    assert _execute(defs, dagster_instance, requests[0])
    requested, check, _ = _tick(defs, dagster_instance)
    assert requested == [] and check.passed
    assert check.metadata["open_ranges"].value == 0
    history = dagster_instance.event_log_storage.get_asset_check_execution_history(check_key, 1)
    assert history[0].status.value == "SUCCEEDED"
    assert parse_state(CursorStore(dagster_instance, sensor_name(TOPIC)).get()).open_ranges == {}
    assert _accounted(scpro_settings) == {0: list(range(10))}  # once each, nothing lost
    (raw_file,) = (scpro_settings.raw_dir / TOPIC).rglob("*.parquet")
    assert pq.read_metadata(raw_file).num_rows == 10
    assert json.loads(gap_status_path(scpro_settings.home, TOPIC).read_text())["ranges"] == []


def test_gap_check_runs_by_hand_from_the_sensors_cursor(scpro_settings, dagster_instance, clock):
    """The same check, executed as a Dagster run, reads the sensor's open ranges."""
    _publish(scpro_settings, [_payment(i) for i in range(4)])
    defs = build_definitions(_clocked(scpro_settings))
    assert _tick(defs, dagster_instance)[0] == ["payments-0-0-3"]  # requested, never run
    clock.advance(5)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={dg.AssetCheckKey(dg.AssetKey("raw_payments"), CHECK_NAME)},
        asset_selection=set(),
    )
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["overdue_offsets"].value == 4


def test_run_failure_sensor_alerts_once_per_failed_run(
    scpro_settings, dagster_instance, monkeypatch
):
    monkeypatch.setenv("SCPRO_ALERT_URLS", "")
    _publish(scpro_settings, [_payment(i) for i in range(3)])
    defs = build_definitions(scpro_settings)
    _failing_landing(monkeypatch)
    (tick,) = ingest_once(defs, dagster_instance, topics=(TOPIC,))
    assert tick.failed == ["payments-0-0-2"]
    (run,) = dagster_instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: "payments-0-0-2"}))
    assert run.tags[SENSOR_TAG] == sensor_name(TOPIC)
    (failure,) = dagster_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    for _ in range(2):  # evaluated twice on the same failure (a daemon restart)
        context = dg.build_run_status_sensor_context(
            sensor_name="scpro_run_failure_alerts",
            dagster_event=failure.dagster_event,
            dagster_instance=dagster_instance,
            dagster_run=run,
            resources={"lake": defs.resources["lake"]},
        ).for_run_failure()
        run_failure_alerts(context)
    alerts = [a for a in read_outbox(outbox_path(scpro_settings.home)) if a["kind"] == "run_failed"]
    assert len(alerts) == 1
    assert alerts[0]["subject"]["run_id"] == run.run_id
    assert alerts[0]["subject"]["scpro/range"] == "0-2"
    assert "land_payments" in alerts[0]["title"]


# --- the outbox and apprise channels ---------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_alert_goes_to_the_outbox_and_a_webhook_once_and_a_dead_channel_is_recorded(
    tmp_path: Path, webhook, monkeypatch
):
    url, received = webhook
    dead = f"json://127.0.0.1:{_closed_port()}/nobody"
    monkeypatch.setenv("SCPRO_ALERT_URLS", f"{url}, {dead}")
    alert = Alert(
        id="range_unlanded:orders-0-0-9:band1",
        kind="range_unlanded",
        severity="error",
        title="orders 0-9 <not landed>",
        body="10 offsets & counting",
        subject={"topic": "orders"},
    )
    record = send_alert(alert, tmp_path)
    assert record is not None
    assert send_alert(alert, tmp_path) is None  # the same id again: not sent twice
    assert len(received) == 1
    assert received[0]["title"] == alert.title and received[0]["message"] == alert.body
    assert received[0]["type"] == "failure"
    (line,) = read_outbox(outbox_path(tmp_path))
    assert {k: line[k] for k in ("id", "kind", "severity", "title", "body", "subject")} == {
        "id": alert.id,
        "kind": "range_unlanded",
        "severity": "error",
        "title": alert.title,
        "body": alert.body,
        "subject": {"topic": "orders"},
    }
    assert line["time"]
    assert [d["channel"] for d in line["deliveries"]] == ["json#1", "json#2"]
    assert line["deliveries"][0]["status"] == "sent"
    assert line["deliveries"][1]["status"].startswith("failed")
    assert "127.0.0.1" not in json.dumps(line["deliveries"])  # URLs (tokens) are never written


def test_outbox_alone_is_the_default_channel_and_survives_a_torn_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SCPRO_ALERT_URLS", raising=False)
    path = outbox_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "half-writ')  # a line cut by a crash
    alert = Alert("a-1", "run_failed", "warning", "t", "b")
    assert send_alert(alert, tmp_path)["deliveries"] == []
    assert [a["id"] for a in read_outbox(path)] == ["a-1"]  # ours starts a line of its own
    assert send_alert(Alert("a-2", "run_failed", "warning", "t", "b"), tmp_path) is not None
    with pytest.raises(ValueError, match="severity"):
        Alert("a-3", "run_failed", "loud", "t", "b")


def test_published_range_run_keys_name_the_range_and_attempt():
    rng = ingest_landing.OffsetRange("orders", 0, 100, 200)
    first = kafka_sensors.landing_run_request([rng])
    again = kafka_sensors.landing_run_request([rng], attempt=2)
    assert first.run_key == "orders-0-100-199" and again.run_key == "orders-0-100-199-retry2"
    assert again.tags["scpro/range"] == "100-199" and again.tags["scpro/attempt"] == "2"
    assert again.tags["scpro/partition-0"] == "100-199"
    assert again.run_config == first.run_config
    assert landing_runs.ranges_in_tags(again.tags) == {rng}


def test_a_run_of_several_partitions_names_every_range_in_its_key_tags_and_config():
    ranges = [
        ingest_landing.OffsetRange("orders", 2, 7, 10),
        ingest_landing.OffsetRange("orders", 0, 100, 200),
    ]
    request = kafka_sensors.landing_run_request(ranges)
    assert request.run_key == "orders-0-100-199+2-7-9"
    assert {k: v for k, v in request.tags.items() if k.startswith("scpro/partition")} == {
        "scpro/partition-0": "100-199",
        "scpro/partition-2": "7-9",
    }
    assert request.tags["scpro/events"] == "103"
    assert landing_runs.ranges_in_tags(request.tags) == set(ranges)
    assert request.run_config["ops"]["raw_orders"]["config"]["ranges"] == [
        {"partition": 0, "start": 100, "stop": 200},
        {"partition": 2, "start": 7, "stop": 10},
    ]
    with pytest.raises(ValueError, match="one range per partition"):
        landing_runs.run_key([ranges[0], ingest_landing.OffsetRange("orders", 2, 10, 12)])


# --- completeness per snapshot, and the Data health page's data -------------------------------


def _tiny_warehouse(settings: Settings) -> None:
    """A warehouse with one mart: enough to publish a snapshot without a dbt build."""
    import duckdb

    settings.home.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create table main.fct_orders as select 'o-1' as order_id")


def _snapshot_rows(path: Path) -> dict[str, tuple]:
    import duckdb

    with duckdb.connect(str(path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select topic, kafka_status, partitions, offsets_in_kafka, offsets_landed, "
            "events_landed, events_quarantined, offsets_without_event, offsets_unlanded, "
            "is_complete from snapshot_completeness order by topic"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_snapshot_records_its_completeness_and_the_health_page_shows_it(
    scpro_settings, dagster_instance, monkeypatch
):
    from panel_app.store import DataStore
    from panel_app.views.health import alert_html
    from scpro_assets.runner import ingest_until_caught_up
    from scpro_assets.testing.warehouse import warehouse_resources
    from scpro_assets.warehouse.assets import serving_snapshot

    monkeypatch.setenv("SCPRO_ALERT_URLS", "")
    _publish(scpro_settings, [_payment(i) for i in range(6)] + [b"{not json", b"\xff"])
    _publish(scpro_settings, [_payment(i) for i in range(6, 9)], partition=1)
    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=(TOPIC,))
    _publish(scpro_settings, [_payment(i) for i in range(9, 13)], partition=1)  # not landed
    _tiny_warehouse(scpro_settings)
    # The clean layer's last cut: the payments hold the watermark, 3 of their events wait.
    watermark = {
        "watermark": "2024-05-01T12:00:00+00:00",
        "computed_at": "2024-05-01T12:05:00+00:00",
        "topics": [
            {
                "topic": "payments",
                "events": 9,
                "events_after_watermark": 3,
                "latest_event_time": "2024-05-01T12:00:00+00:00",
                "partitions_in_flight": 1,
                "holds_watermark": True,
            }
        ],
    }
    save_watermark(watermark_path(scpro_settings.clean_dir), watermark)

    resources = {k: v for k, v in warehouse_resources(scpro_settings).items() if k != "dbt"}
    result = dg.materialize([serving_snapshot], instance=dagster_instance, resources=resources)
    snapshot = scpro_settings.serving_current.resolve()
    rows = _snapshot_rows(snapshot)
    # status, partitions, in Kafka, offsets landed, landed, quarantined, no event, unlanded, complete
    assert rows["payments"] == ("read", 2, 15, 11, 9, 2, 0, 4, False)
    for topic in ("orders", "shipments", "ops_logs", "actions"):
        assert rows[topic] == ("read", 2, 0, 0, 0, 0, 0, 0, True)
    (materialization,) = result.asset_materializations_for_node("serving_snapshot")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert (meta["offsets_unlanded"], meta["complete"], meta["events_landed"]) == (4, "no", 9)
    published = json.loads((snapshot / "published.json").read_text())
    assert published["tables"]["snapshot_completeness"] == len(TOPICS)  # one row per topic
    assert published["watermark"] == "2024-05-01T12:00:00+00:00"
    assert published["tables"]["snapshot_watermark"] == 1
    assert (snapshot / "parquet" / "snapshot_completeness.parquet").is_file()

    # The Data health page's data: this snapshot's completeness, the alerts and the gaps now.
    send_alert(
        Alert("x-1", "run_failed", "error", "<script>alert(1)</script>", "a & b"),
        scpro_settings.home,
    )
    store = DataStore(serving_current=scpro_settings.serving_current)
    frame = store.completeness().set_index("topic")
    assert frame.loc["payments", "offsets_unlanded"] == 4
    assert frame.loc["payments", "events_quarantined"] == 2
    assert not frame.loc["payments", "is_complete"]
    assert frame.loc["payments", "events_after_watermark"] == 3
    assert frame.loc["payments", "holds_watermark"]
    assert frame.loc["orders", "events_after_watermark"] == 0
    assert store.watermark() == pd.Timestamp("2024-05-01 12:00")
    assert store.as_of_text() == "01 May 2024 12:00 UTC"
    (alert,) = store.alerts().itertuples()
    assert alert.title == "<script>alert(1)</script>" and alert.severity == "error"
    shown = alert_html(store.alerts(), alert.time)
    assert "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "a &amp; b" in shown
    assert store.gaps().empty  # every requested range landed; the 4 new offsets not requested

    # Kafka down at publish time: the Kafka figures are unknown, the publish goes on.
    from scpro_assets.settings import KafkaSettings
    from scpro_assets.warehouse.completeness import measure_completeness
    from scpro_assets.warehouse.serving import publish_snapshot

    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    measured = measure_completeness(down, scpro_settings.raw_dir, scpro_settings.quarantine_dir)
    publication = publish_snapshot(scpro_settings, completeness=measured)
    status, partitions, in_kafka, covered, landed, bad, _none, unlanded, complete = _snapshot_rows(
        publication.path
    )["payments"]
    assert status.startswith("unknown: ConnectionError")
    assert (partitions, in_kafka, unlanded, complete) == (None, None, None, None)
    assert (covered, landed, bad) == (11, 9, 2)
    assert store.follow() is not None  # the store reads one version until it switches
    assert store.completeness().set_index("topic")["is_complete"].isna().all()

    # Evidence's driver (Node's @duckdb/node-api) reads the table, nulls included.
    from test_evidence_compat import _read_with_node

    answer = _read_with_node(
        publication.path / "warehouse.duckdb",
        "select topic, offsets_in_kafka, events_landed, is_complete from snapshot_completeness "
        "where topic = 'payments'",
    )
    assert answer["rows"] == [
        {"topic": "payments", "offsets_in_kafka": None, "events_landed": "9", "is_complete": None}
    ]


def test_gaps_now_are_read_from_the_sensors_status_files(tmp_path, clock):
    from panel_app.store import DataStore
    from scpro_assets.ingest.gaps import GapReview, OpenRange, UnlandedRange, write_gap_status

    review = GapReview("orders", {})
    stuck = OpenRange(1, 100, 200, requested_at=clock(), last_request=clock(), attempts=3)
    review.unlanded.append(UnlandedRange(stuck, [(150, 200)], 700.0, True))
    write_gap_status(tmp_path, review)
    store = DataStore(serving_current=tmp_path / "serving" / "current")
    (gap,) = store.gaps().to_dict("records")
    assert (gap["topic"], gap["partition"], gap["first_offset"], gap["last_offset"]) == (
        "orders",
        1,
        100,
        199,
    )
    assert gap["unlanded_offsets"] == 50 and gap["attempts"] == 3 and gap["overdue"]
    assert gap["requested_at"] == pd.Timestamp(clock(), unit="s")


def test_row_counts_are_remembered_until_a_file_changes(tmp_path):
    import pyarrow as pa

    from scpro_assets.warehouse.completeness import RowCounts

    folder, cache = tmp_path / "partition-0", tmp_path / "state" / "rows.json"
    folder.mkdir()
    file = folder / "payments-p0-000000000000-000000000009.parquet"
    pq.write_table(pa.table({"offset": list(range(10))}), file)
    first = RowCounts(cache)
    assert first.rows_in(folder) == 10
    first.save()
    pq.write_table(pa.table({"offset": list(range(7))}), file)  # the range landed again
    assert RowCounts(cache).rows_in(folder) == 7
    assert json.loads(cache.read_text())[str(file)][2] == 10  # what the first count remembered
