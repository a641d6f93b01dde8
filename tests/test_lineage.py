"""OpenLineage: events for a small asset graph, schema-valid, via the sensor, file and HTTP."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import jsonschema
import pytest
from referencing import Registry, Resource

from scpro_assets.lineage import (
    FileTransport,
    HttpTransport,
    LineageConfig,
    emit_lineage_for_run,
    events_for_run,
    lineage_run_id,
)
from sensors.lineage_sensor import build_openlineage_sensor

SCHEMAS = Path(__file__).parent / "schemas" / "openlineage"
CORE = json.loads((SCHEMAS / "OpenLineage.json").read_text())
FACETS = {
    path.stem: json.loads(path.read_text()) for path in sorted((SCHEMAS / "facets").glob("*.json"))
}


def _registry() -> Registry:
    """Every vendored schema under its $id; the facets' refs to older core versions resolve to
    the vendored 2-0-2 core (BaseFacet and the facet bases are unchanged since 1-0-1)."""
    core = Resource.from_contents(CORE)
    resources = [(CORE["$id"], core)]
    resources += [
        (f"https://openlineage.io/spec/{v}/OpenLineage.json", core) for v in ("1-0-1", "1-0-2")
    ]
    resources += [(s["$id"], Resource.from_contents(s)) for s in FACETS.values()]
    return Registry().with_resources(resources)


REGISTRY = _registry()
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validate(event: dict) -> None:
    """Validate a RunEvent against the core spec and each facet it carries against its own."""
    jsonschema.Draft202012Validator(CORE, registry=REGISTRY, format_checker=FORMATS).validate(event)
    facets = {
        **event["run"].get("facets", {}),
        **event["job"].get("facets", {}),
    }
    for dataset in event.get("outputs", []):
        facets.update(dataset.get("facets", {}))
        facets.update(dataset.get("outputFacets", {}))
    for name, facet in facets.items():
        schema_url = facet["_schemaURL"]
        document = schema_url.split("#")[0]
        facet_schema = next(s for s in FACETS.values() if s["$id"] == document)
        validator = jsonschema.Draft202012Validator(
            facet_schema, registry=REGISTRY, format_checker=FORMATS
        )
        validator.validate({name: facet})


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
def orders_clean() -> None:
    return None


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


def test_schema_rejects_what_it_should():
    """The vendored schema is live: a broken event and a broken facet fail validation."""
    good = {
        "eventType": "START",
        "eventTime": "2024-01-01T00:00:00.000Z",
        "producer": "https://example.org/p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "3f3b2c1e-8a7d-4a36-9c8e-1f2e3d4c5b6a"},
        "job": {"namespace": "scpro", "name": "a"},
    }
    validate(good)
    with pytest.raises(jsonschema.ValidationError):
        validate({**good, "eventType": "DONE"})
    with pytest.raises(jsonschema.ValidationError):
        validate({**good, "run": {"runId": "not-a-uuid"}})
    stats = {
        "_producer": "https://example.org/p",
        "_schemaURL": "https://openlineage.io/spec/1-0-1/OutputStatisticsOutputDatasetFacet.json"
        "#/$defs/OutputStatisticsOutputDatasetFacet",
        "size": 3,
    }
    broken = {**good, "outputs": [{"namespace": "scpro", "name": "a", "outputFacets": {}}]}
    broken["outputs"][0]["outputFacets"]["outputStatistics"] = stats
    with pytest.raises(jsonschema.ValidationError, match="rowCount"):
        validate(broken)


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
    assert [i["name"] for i in kpis["inputs"]] == ["orders_clean", "orders_raw"]
    assert kpis["outputs"] == [{"namespace": "scpro", "name": "order_kpis"}]
    assert by_key["orders_raw", "START"]["inputs"] == []
    raw_out = by_key["orders_raw", "COMPLETE"]["outputs"][0]
    assert raw_out["facets"]["schema"]["fields"] == [
        {"name": "order_id", "type": "string", "description": "the order"},
        {"name": "amount", "type": "double"},
    ]
    assert raw_out["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "outputFacets" not in by_key["orders_raw", "START"]["outputs"][0]
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
    unreachable = HttpTransport("http://127.0.0.1:9", timeout_seconds=0.5)
    sensor = build_openlineage_sensor(LineageConfig(lineage_dir=tmp_path), unreachable)
    context = dg.build_sensor_context(instance=dagster_instance, definitions=DEFS)
    result = sensor(context)
    assert "could not be delivered" in result.skip_message
    assert unreachable.failures == 1
    file_sink = FileTransport(tmp_path / "retry.ndjson")
    retry = build_openlineage_sensor(LineageConfig(lineage_dir=tmp_path), file_sink)
    retry(
        dg.build_sensor_context(instance=dagster_instance, definitions=DEFS, cursor=context.cursor)
    )
    events = _lines(tmp_path / "retry.ndjson")
    assert len(events) == 4
    assert {e["run"]["runId"] for e in events} == {
        lineage_run_id(run.run_id, dg.AssetKey(k)) for k in ("orders_raw", "orders_clean")
    }


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict, str | None]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body), self.headers.get("Authorization")))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_http_transport_posts_the_same_events(dagster_instance, tmp_path: Path, monkeypatch):
    run = dg.materialize([orders_raw, orders_clean, order_kpis], instance=dagster_instance)
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("SCPRO_OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("SCPRO_OPENLINEAGE_API_KEY", "secret-key")
        monkeypatch.setenv("SCPRO_OPENLINEAGE_NAMESPACE", "acme")
        from scpro_assets.settings import KafkaSettings, Settings

        settings = Settings(home=tmp_path / "home", kafka=KafkaSettings())
        config = LineageConfig.from_env(settings)
        assert "secret-key" not in repr(config)
        assert emit_lineage_for_run(dagster_instance, DEFS, run.run_id, settings)
    finally:
        server.shutdown()
        server.server_close()
    expected = events_for_run(dagster_instance, DEFS, run.run_id, namespace="acme")
    assert [body for _, body, _ in _Collector.received] == expected
    assert {path for path, _, _ in _Collector.received} == {"/api/v1/lineage"}
    assert {auth for _, _, auth in _Collector.received} == {"Bearer secret-key"}
    assert Counter(e["eventType"] for e in expected) == {"START": 3, "COMPLETE": 3}
    assert {e["job"]["namespace"] for e in expected} == {"acme"}
    for event in expected:
        validate(event)
    # Nothing was written to the file transport when HTTP is configured.
    assert not (tmp_path / "home" / "lineage").exists()


def test_file_transport_lines_stay_whole_under_concurrent_writers(tmp_path: Path):
    sink = FileTransport(tmp_path / "l.ndjson")
    payload = {"x": "y" * 5000}

    def write(n: int) -> None:
        for i in range(50):
            sink.emit({**payload, "n": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = _lines(tmp_path / "l.ndjson")
    assert len(lines) == 200 and sink.sent == 200 and sink.failures == 0
    assert {(e["n"], e["i"]) for e in lines} == {(n, i) for n in range(4) for i in range(50)}
