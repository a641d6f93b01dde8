"""The Dagster code location loads, validates and describes itself."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import dagster as dg
import yaml

from scpro_assets.definitions.platform import build_definitions, defs
from scpro_assets.kafka.clients import kafka_python_config
from scpro_assets.settings import REPO_ROOT, TOPICS


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_group_kind_owner_and_description():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.group_name in {"ingest", "clean", "warehouse", "ml", "serving"}, key
        assert spec.kinds, key
        assert spec.owners, key
        assert spec.description and len(spec.description) > 30, key


def test_raw_assets_follow_their_topics():
    graph = defs.resolve_asset_graph()
    for topic in TOPICS:
        node = graph.get(dg.AssetKey(f"raw_{topic}"))
        assert dg.AssetKey(["kafka", topic]) in node.parent_keys


def test_resources_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCPRO_KAFKA_BOOTSTRAP", "kafka-1.example:9093,kafka-2.example:9093")
    monkeypatch.setenv("SCPRO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SCPRO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SCPRO_KAFKA_SASL_USERNAME", "scpro")
    monkeypatch.setenv("SCPRO_KAFKA_SASL_PASSWORD", "from-the-environment")
    monkeypatch.setenv("SCPRO_HOME", str(tmp_path))
    configured = build_definitions()
    kafka = configured.resources["kafka"]
    assert kafka.bootstrap_servers == "kafka-1.example:9093,kafka-2.example:9093"
    options = kafka_python_config(kafka.settings())
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_password"] == "from-the-environment"
    assert "from-the-environment" not in repr(kafka)  # the secret is not part of the resource
    assert configured.resources["lake"].home == str(tmp_path)


def test_workspace_yaml_loads_the_code_locations():
    """What `dg dev -w workspace.yaml` does first: load the locations from the workspace.

    `dg check defs` only checks dg projects (one location per pyproject); our two locations share
    one package, so the workspace file is validated by `dagster definitions validate`."""
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _workspace_locations() -> dict[str, dg.Definitions]:
    """``{location name: Definitions}`` as workspace.yaml names them."""
    entries = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"]
    locations = {}
    for entry in entries:
        target = entry["python_module"]
        module = importlib.import_module(target["module_name"])
        locations[target["location_name"]] = getattr(module, target["attribute"])
    return locations


def test_the_two_locations_split_the_graph_without_overlap_or_loss():
    """Each asset is defined in exactly one location; together they are the whole graph."""
    locations = _workspace_locations()
    assert set(locations) == {"scpro_ingest", "scpro"}
    owned = {
        name: {
            key
            for key in location.resolve_asset_graph().get_all_asset_keys()
            if location.resolve_asset_graph().get(key).is_materializable or key.path[0] == "kafka"
        }
        for name, location in locations.items()
    }
    assert not owned["scpro_ingest"] & owned["scpro"]
    assert owned["scpro_ingest"] | owned["scpro"] == set(
        defs.resolve_asset_graph().get_all_asset_keys()
    )
    assert {k.to_user_string() for k in owned["scpro_ingest"] if k.path[0] != "kafka"} == {
        f"raw_{t}" for t in TOPICS
    }
    # The platform's clean layer depends on the landing location's raw assets by key.
    cleaned = locations["scpro"].resolve_asset_graph().get(dg.AssetKey("cleaned_orders"))
    assert dg.AssetKey("raw_orders") in cleaned.parent_keys
    ingest_sensors = {s.name for s in locations["scpro_ingest"].sensors}
    assert ingest_sensors == {f"kafka_{t}_sensor" for t in TOPICS} | {"scpro_run_failure_alerts"}


#: Imports both code locations with an audit hook that records what SCPro's own code does while
#: they are imported: files opened, connections, processes. What libraries do while Python
#: imports them (dagster's croniter asks ``file`` for the architecture, urllib3 probes IPv6) is
#: theirs: an event whose nearest frame is an import, not one of our files, is not recorded.
_IMPORT_PROBE = """
import json, sys
HEAVY = ("pyspark", "dbt", "dagster_dbt", "dagster_pyspark", "tensorflow", "sklearn", "duckdb")
REPO = sys.argv[1]
EVENTS = ("open", "socket.connect", "socket.bind", "subprocess.Popen", "os.system", "os.fork")
work = []

def ours(frame):
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib"):
            return False
        if name.startswith(REPO) and "/.venv/" not in name and "site-packages" not in name:
            return True
        frame = frame.f_back
    return False

def hook(event, args):
    if event == "open" and str(args[0]).endswith((".py", ".pyc")):
        return  # Python's own reading of source (a warning's line), not work
    if event == "open" and str(args[0]).endswith("/.env"):
        return  # the settings' own file of variables (when a deployment has one): configuration
    if event in EVENTS and ours(sys._getframe(1)):
        work.append(f"{event} {args[0]}" if event == "open" else event)

sys.addaudithook(hook)
import scpro_assets.definitions.landing
report = {"heavy": [m for m in HEAVY if m in sys.modules], "ingest": sorted(set(work))}
work.clear()
import scpro_assets.definitions.platform
report["platform"] = sorted(set(work))
print(json.dumps(report))
"""


def test_importing_the_code_locations_does_no_work(tmp_path):
    """Every run imports its code location first: importing one connects to nothing, starts no
    process and reads no file of ours, and the landing location (a run per range) imports no
    heavy library (Spark, dbt, TF, DuckDB would slow each run).

    The platform reads one file, on purpose: the dbt manifest (``@dbt_assets`` are built from
    it; ``make setup`` prepares it, nothing parses dbt at import). Where Spark runs (the embedded
    Spark Connect server's status file, its port) is looked at when a run first asks for a
    session, not at import (``SparkSessionResource``).
    """
    env = {**os.environ, "SCPRO_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(REPO_ROOT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["heavy"] == []
    assert report["ingest"] == []
    manifest = REPO_ROOT / "dbt_project" / "target" / "manifest.json"
    assert report["platform"] == sorted(
        {
            f"open {REPO_ROOT / 'dbt_project' / 'dbt_project.yml'}",
            f"open {manifest.resolve()}",
        }
    )


def test_lineage_describes_landing_runs_from_the_platform_location():
    """The OpenLineage sensor lives in the platform location but follows landing runs too."""
    from scpro_assets.definitions.platform import whole_asset_graph

    graph = whole_asset_graph()
    raw = graph.get(dg.AssetKey("raw_orders"))
    assert raw.is_materializable and dg.AssetKey(["kafka", "orders"]) in raw.parent_keys


def test_the_dagster_instance_is_configured_and_user_edits_are_kept(tmp_path):
    from scpro_assets.automation import AUTOMATION_TAG
    from scpro_assets.instance import DAGSTER_YAML, prepare_dagster_home
    from scpro_assets.settings import KafkaSettings, Settings

    settings = Settings(home=tmp_path / "scpro", kafka=KafkaSettings())
    home = prepare_dagster_home(settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        coordinator = instance.run_coordinator
        assert coordinator.dequeue_interval_seconds == 1
        queue = coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 4
        limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
        assert limits == {"scpro/topic": 2, AUTOMATION_TAG: 1}
        assert instance.run_retries_enabled

    config = home / "dagster.yaml"
    config.write_text("# Written by scpro; an older default\nrun_retries:\n  enabled: false\n")
    prepare_dagster_home(settings)
    assert config.read_text() == DAGSTER_YAML  # an older scpro default is brought up to date

    edited = "run_retries:\n  enabled: false\n"
    config.write_text(edited)
    prepare_dagster_home(settings)
    assert config.read_text() == edited  # the user's own file is theirs


def test_the_spark_resource_looks_for_a_connect_server_only_when_a_session_is_asked_for(
    tmp_path, monkeypatch
):
    """Building the ``pyspark`` resource (at every import of the platform) probes nothing; the
    choice between a Spark Connect server and in-process Spark is made when a run first asks for
    a session, so a server started after the location was loaded is used."""
    from scpro_assets.clean import spark_resource as module
    from scpro_assets.clean.assets import spark_resource
    from scpro_assets.settings import KafkaSettings, Settings, SparkConnectSettings

    asked: list[Settings] = []
    answers = iter([None, "sc://127.0.0.1:15999"])

    def session_remote(settings: Settings) -> str | None:
        asked.append(settings)
        return next(answers)

    monkeypatch.setattr(module, "session_remote", session_remote)
    settings = Settings(
        home=tmp_path,
        kafka=KafkaSettings(),
        spark_master="local[1]",
        spark_connect=SparkConnectSettings(remote=None, port=15999),
    )
    resource = spark_resource(settings)
    assert asked == []
    in_process = resource.session_config()
    assert in_process["spark.master"] == "local[1]" and "spark.remote" not in in_process
    assert asked[0].home == tmp_path and asked[0].spark_connect.port == 15999
    connected = resource.session_config()  # the server has started meanwhile
    assert connected["spark.remote"] == "sc://127.0.0.1:15999" and "spark.master" not in connected
