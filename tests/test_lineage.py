"""OpenLineage through its client: events for a small asset graph, schema-valid, via the sensor,
and the client's file, HTTP (with retries) and Kafka transports, with delivery made explicit."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import jsonschema
import pytest
from openlineage.client.event_v2 import RunEvent
from openlineage_spec import validate

from scpro_assets.lineage import (
    LineageConfig,
    LineageEmitter,
    as_json,
    emit_lineage_for_run,
    events_for_run,
    lineage_run_id,
    run_event,
    transport_for,
)
from scpro_assets.settings import REPO_ROOT, KafkaSettings, Settings
from sensors.lineage_sensor import build_openlineage_sensor


@dg.asset(group_name="test")
def orders_raw() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": 3,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn("order_id", "string", description="the order"),
                    dg.TableColumn("amount", "double"),
                ]
            ),
        }
    )


@dg.asset(deps=[orders_raw], group_name="test")
def orders_clean() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/column_lineage": dg.TableColumnLineage(
                deps_by_column={
                    "order_id": [
                        dg.TableColumnDep(asset_key=orders_raw.key, column_name="order_id")
                    ]
                }
            )
        }
    )


@dg.asset(deps=[orders_raw, orders_clean], group_name="test")
def order_kpis() -> None:
    return None


@dg.asset(deps=[orders_clean], group_name="test")
def broken_model() -> None:
    raise ValueError("training data is empty")


DEFS = dg.Definitions(assets=[orders_raw, orders_clean, order_kpis, broken_model])


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_job(events: list[dict]) -> dict[str, list[str]]:
    jobs: dict[str, list[str]] = {}
    for event in events:
        jobs.setdefault(event["job"]["name"], []).append(event["eventType"])
    return jobs


def _event(name: str = "a", event_type: str = "START") -> RunEvent:
    return run_event(
        event_type, 1_700_000_000.0, lineage_run_id("r", dg.AssetKey(name)), dg.AssetKey(name), []
    )


def test_schema_rejects_what_it_should():
    """The schemas are live: a broken event and a broken facet fail validation."""
    good = as_json(_event())
    validate(good)
    with pytest.raises(jsonschema.ValidationError):
        validate({**good, "eventType": "DONE"})
    with pytest.raises(jsonschema.ValidationError):
        validate({**good, "run": {"runId": "not-a-uuid"}})
    complete = as_json(
        run_event("COMPLETE", 1.0, good["run"]["runId"], dg.AssetKey("a"), [], metadata={"x": 1})
    )
    stats = {
        "_producer": "https://example.org/p",
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/"
        "OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
        "rowCount": "three",
    }
    complete["outputs"][0]["outputFacets"] = {"outputStatistics": stats}
    with pytest.raises(jsonschema.ValidationError, match="three"):
        validate(complete)
    unknown = {**stats, "_schemaURL": "https://openlineage.io/spec/facets/9-9-9/X.json"}
    complete["outputs"][0]["outputFacets"] = {"outputStatistics": unknown}
    with pytest.raises(AssertionError, match="has no schema"):
        validate(complete)


def test_sensor_writes_start_complete_fail_once_per_asset(dagster_instance, tmp_path: Path):
    ok = dg.materialize(
        [orders_raw, orders_clean, order_kpis], instance=dagster_instance, raise_on_error=False
    )
    assert ok.success
    failed = dg.materialize(
        [broken_model],
        instance=dagster_instance,
        raise_on_error=False,
        selection=[broken_model.key],
    )
    assert not failed.success
    config = LineageConfig(lineage_dir=tmp_path / "lineage")
    sensor = build_openlineage_sensor(config)
    context = dg.build_sensor_context(instance=dagster_instance, definitions=DEFS)
    result = sensor(context)
    assert "2 finished runs" in result.skip_message

    out = tmp_path / "lineage" / "openlineage.ndjson"
    events = _lines(out)
    for event in events:
        validate(event)
    assert _by_job(events) == {
        "orders_raw": ["START", "COMPLETE"],
        "orders_clean": ["START", "COMPLETE"],
        "order_kpis": ["START", "COMPLETE"],
        "broken_model": ["START", "FAIL"],
    }
    by_key = {(e["job"]["name"], e["eventType"]): e for e in events}
    kpis = by_key["order_kpis", "COMPLETE"]
    assert kpis["inputs"] == [
        {"namespace": "scpro", "name": "orders_clean"},
        {"namespace": "scpro", "name": "orders_raw"},
    ]
    assert kpis["outputs"] == [{"namespace": "scpro", "name": "order_kpis"}]
    assert kpis["job"]["facets"]["jobType"]["integration"] == "DAGSTER"
    assert by_key["orders_raw", "START"]["inputs"] == []
    raw_out = by_key["orders_raw", "COMPLETE"]["outputs"][0]
    assert raw_out["facets"]["schema"]["fields"] == [
        {"name": "order_id", "type": "string", "description": "the order", "ordinal_position": 1},
        {"name": "amount", "type": "double", "ordinal_position": 2},
    ]
    assert raw_out["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "outputFacets" not in by_key["orders_raw", "START"]["outputs"][0]
    clean_out = by_key["orders_clean", "COMPLETE"]["outputs"][0]
    assert clean_out["facets"]["columnLineage"]["fields"] == {
        "order_id": {
            "inputFields": [{"namespace": "scpro", "name": "orders_raw", "field": "order_id"}]
        }
    }
    # START and its ending share the stable runId derived from the Dagster run and asset key.
    assert by_key["orders_clean", "START"]["run"]["runId"] == lineage_run_id(
        ok.run_id, dg.AssetKey("orders_clean")
    )
    assert by_key["orders_clean", "COMPLETE"]["run"]["runId"] == lineage_run_id(
        ok.run_id, dg.AssetKey("orders_clean")
    )
    fail = by_key["broken_model", "FAIL"]
    assert "training data is empty" in fail["run"]["facets"]["errorMessage"]["message"]
    assert [i["name"] for i in fail["inputs"]] == ["orders_clean"]
    assert (
        by_key["orders_raw", "START"]["eventTime"] <= by_key["orders_raw", "COMPLETE"]["eventTime"]
    )

    # A second evaluation on the advanced cursor emits nothing; a new run only its own events.
    context2 = dg.build_sensor_context(
        instance=dagster_instance, definitions=DEFS, cursor=context.cursor
    )
    assert "no runs finished" in sensor(context2).skip_message
    assert len(_lines(out)) == len(events)
    again = dg.materialize([orders_raw], instance=dagster_instance)
    context3 = dg.build_sensor_context(
        instance=dagster_instance, definitions=DEFS, cursor=context2.cursor
    )
    sensor(context3)
    new = _lines(out)[len(events) :]
    assert [(e["job"]["name"], e["eventType"]) for e in new] == [
        ("orders_raw", "START"),
        ("orders_raw", "COMPLETE"),
    ]
    assert new[0]["run"]["runId"] == lineage_run_id(again.run_id, dg.AssetKey("orders_raw"))


def test_cursor_stays_on_a_run_whose_lineage_could_not_be_delivered(
    dagster_instance, tmp_path: Path
):
    run = dg.materialize([orders_raw, orders_clean], instance=dagster_instance)
    down = LineageConfig(lineage_dir=tmp_path, url="http://127.0.0.1:9", retries=1)
    unreachable = LineageEmitter.from_config(down)
    sensor = build_openlineage_sensor(down, unreachable)
    context = dg.build_sensor_context(instance=dagster_instance, definitions=DEFS)
    result = sensor(context)
    assert "could not be delivered (ConnectionError" in result.skip_message
    assert (unreachable.sent, unreachable.failures) == (0, 1)
    file_sink = LineageEmitter.from_config(LineageConfig(lineage_dir=tmp_path / "retry"))
    retry = build_openlineage_sensor(LineageConfig(lineage_dir=tmp_path), file_sink)
    retry(
        dg.build_sensor_context(instance=dagster_instance, definitions=DEFS, cursor=context.cursor)
    )
    events = _lines(tmp_path / "retry" / "openlineage.ndjson")
    assert len(events) == 4
    assert {e["run"]["runId"] for e in events} == {
        lineage_run_id(run.run_id, dg.AssetKey(k)) for k in ("orders_raw", "orders_clean")
    }


class _Collector(BaseHTTPRequestHandler):
    """Answers each POST with the next status of ``statuses`` (then 201), recording the body."""

    received: ClassVar[list[tuple[str, dict, str | None]]] = []
    statuses: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body), self.headers.get("Authorization")))
        status = type(self).statuses.pop(0) if type(self).statuses else 201
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector():
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received, _Collector.statuses = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_transport_posts_the_same_events(
    dagster_instance, tmp_path: Path, monkeypatch, collector
):
    run = dg.materialize([orders_raw, orders_clean, order_kpis], instance=dagster_instance)
    monkeypatch.setenv("SCPRO_OPENLINEAGE_URL", collector)
    monkeypatch.setenv("SCPRO_OPENLINEAGE_API_KEY", "secret-key")
    monkeypatch.setenv("SCPRO_OPENLINEAGE_NAMESPACE", "acme")
    settings = Settings(home=tmp_path / "home", kafka=KafkaSettings())
    config = LineageConfig.from_env(settings)
    assert "secret-key" not in repr(config)
    assert emit_lineage_for_run(dagster_instance, DEFS, run.run_id, settings)
    expected = [
        as_json(e) for e in events_for_run(dagster_instance, DEFS, run.run_id, namespace="acme")
    ]
    assert [body for _, body, _ in _Collector.received] == expected
    assert {path for path, _, _ in _Collector.received} == {"/api/v1/lineage"}
    assert {auth for _, _, auth in _Collector.received} == {"Bearer secret-key"}
    assert Counter(e["eventType"] for e in expected) == {"START": 3, "COMPLETE": 3}
    assert {e["job"]["namespace"] for e in expected} == {"acme"}
    for event in expected:
        validate(event)
    # Nothing was written to the file transport when HTTP is configured.
    assert not (tmp_path / "home" / "lineage").exists()


def test_http_transport_retries_within_the_call_and_reports_what_it_could_not_send(
    tmp_path: Path, collector
):
    """A 503 then a 201: one emit, two POSTs of the same event. A server that keeps failing, or
    refuses the event (400, not retried), makes ``emit`` return False and count the failure."""
    config = LineageConfig(lineage_dir=tmp_path, url=collector + "/", retries=2)
    emitter = LineageEmitter.from_config(config)
    _Collector.statuses = [503]
    assert emitter.emit(_event("a"))
    assert [body for _, body, _ in _Collector.received] == [as_json(_event("a"))] * 2
    assert (emitter.sent, emitter.failures) == (1, 0)

    _Collector.received, _Collector.statuses = [], [500, 502, 504]
    assert not emitter.emit(_event("b"))
    assert len(_Collector.received) == 3  # the first attempt and two retries
    assert emitter.failures == 1 and "RetryError" in emitter.last_error

    _Collector.received, _Collector.statuses = [], [400]
    assert not emitter.emit(_event("c"))
    assert len(_Collector.received) == 1
    assert emitter.failures == 2 and "400" in emitter.last_error

    # A URL that already names the endpoint, behind a path prefix, is used as it is.
    _Collector.received = []
    prefixed = LineageConfig(lineage_dir=tmp_path, url=collector + "/marquez/api/v1/lineage")
    assert LineageEmitter.from_config(prefixed).emit(_event("d"))
    assert [path for path, _, _ in _Collector.received] == ["/marquez/api/v1/lineage"]


def test_file_transport_appends_whole_lines_and_reports_an_unwritable_file(tmp_path: Path):
    emitter = LineageEmitter.from_config(LineageConfig(lineage_dir=tmp_path / "lineage"))

    def write(n: int) -> None:
        for i in range(50):
            emitter.emit(_event(f"job-{n}-{i}-" + "x" * 2000))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = _lines(tmp_path / "lineage" / "openlineage.ndjson")
    assert len(lines) == 200 and emitter.sent == 200 and emitter.failures == 0
    assert {e["job"]["name"].removesuffix("-" + "x" * 2000) for e in lines} == {
        f"job-{n}-{i}" for n in range(4) for i in range(50)
    }
    validate(lines[0])

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the lineage folder should be")
    stuck = LineageEmitter.from_config(LineageConfig(lineage_dir=blocked))
    assert not stuck.emit(_event())
    assert stuck.failures == 1 and "RuntimeError" in stuck.last_error


def test_config_reads_the_environment_and_rejects_two_destinations(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers="k1:9092"))
    monkeypatch.setenv("SCPRO_OPENLINEAGE_KAFKA_TOPIC", "lineage")
    monkeypatch.setenv("SCPRO_OPENLINEAGE_TIMEOUT", "2.5")
    monkeypatch.setenv("SCPRO_OPENLINEAGE_RETRIES", "0")
    config = LineageConfig.from_env(settings)
    assert (config.kafka_topic, config.timeout_seconds, config.retries) == ("lineage", 2.5, 0)
    assert config.kafka.bootstrap_servers == "k1:9092"
    assert transport_for(config).kind == "kafka"
    monkeypatch.setenv("SCPRO_OPENLINEAGE_URL", "http://marquez:5000")
    with pytest.raises(ValueError, match="both set"):
        LineageConfig.from_env(settings)
    monkeypatch.delenv("SCPRO_OPENLINEAGE_KAFKA_TOPIC")
    monkeypatch.setenv("SCPRO_OPENLINEAGE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SCPRO_OPENLINEAGE_TIMEOUT"):
        LineageConfig.from_env(settings)


@pytest.mark.kafka
def test_kafka_transport_waits_for_the_broker_and_reports_a_dead_one(kafka_broker, tmp_path):
    """Every event is acknowledged by the session's broker before emit returns True; with no
    broker, emit returns False within the timeout (the client's transport would only log)."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    from scpro_assets.kafka.clients import rdkafka_config

    kafka = kafka_broker.settings.kafka
    topic = "openlineage-test"
    admin = AdminClient(rdkafka_config(kafka))  # kept alive until the topic exists
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=30)
    config = LineageConfig(lineage_dir=tmp_path, kafka_topic=topic, kafka=kafka)
    emitter = LineageEmitter.from_config(config)
    sent = [_event("a", "START"), _event("a", "COMPLETE")]
    assert all(emitter.emit(e) for e in sent)
    emitter.close()

    consumer = confluent_kafka.Consumer(
        {**rdkafka_config(kafka), "group.id": "lineage-test", "enable.auto.commit": "false"}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    received = []
    deadline = time.monotonic() + 60
    while len(received) < 2 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            received.append((message.key().decode(), json.loads(message.value())))
    consumer.close()
    assert received == [("run:scpro/a", as_json(e)) for e in sent]

    dead = LineageConfig(
        lineage_dir=tmp_path,
        kafka_topic=topic,
        timeout_seconds=1.0,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
    )
    unreachable = LineageEmitter.from_config(dead)
    assert not unreachable.emit(_event())
    assert unreachable.failures == 1 and "ConnectionError" in unreachable.last_error


#: An import of Dagster's private modules (``dagster._core``, ``dagster_dbt._...``), or one named
#: as a string (``python -m dagster._daemon``, ``importlib.import_module`` of one).
PRIVATE_DAGSTER = re.compile(
    r"^\s*(from|import)\s+dagster(_\w+)?\._|[\"']dagster(_\w+)?\._\w", re.MULTILINE
)
#: Folders that are not SCPro's code: environments, build output, installed packages, state.
NOT_OURS = {".venv", "node_modules", "target", "dbt_packages", ".scpro", ".git"}


def _python_files_of_the_repo() -> list[Path]:
    return [
        path
        for path in REPO_ROOT.rglob("*.py")
        if not any(
            part in NOT_OURS or part.startswith((".tmp", ".venv"))
            for part in path.relative_to(REPO_ROOT).parts
        )
    ]


def test_no_private_dagster_imports_anywhere_in_the_repo():
    """Product, sensors, tests and benchmarks alike use Dagster's public API and CLIs only."""
    files = _python_files_of_the_repo()
    assert {"scpro_assets", "sensors", "tests", "spark", "ml_assets", "panel_app"} <= {
        path.relative_to(REPO_ROOT).parts[0] for path in files
    }
    offenders = sorted(
        path.relative_to(REPO_ROOT).as_posix()
        for path in files
        if PRIVATE_DAGSTER.search(path.read_text(encoding="utf-8"))
    )
    assert offenders == []
    assert PRIVATE_DAGSTER.search("from dagster._core.event_api import X")
    assert PRIVATE_DAGSTER.search("import dagster._check as check")
    assert PRIVATE_DAGSTER.search("    from dagster_dbt._internal import thing")
    daemon_module = '"dagster' + '._daemon"'  # split, so this file does not name it itself
    assert PRIVATE_DAGSTER.search(f'[sys.executable, "-m", {daemon_module}, "run"]')
    assert not PRIVATE_DAGSTER.search("from dagster import RunStatusChangeRecordsFilter")
    assert not PRIVATE_DAGSTER.search('[dagster_daemon, "run", "-w", "workspace.yaml"]')
