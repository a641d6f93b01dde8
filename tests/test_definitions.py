"""The Dagster code location loads, validates and describes itself."""

from __future__ import annotations

import importlib
import subprocess
import sys

import dagster as dg
import yaml

from scpro_assets.definitions import build_definitions, defs
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
    """What `dagster dev -w workspace.yaml` does first: load the locations from the workspace."""
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


def test_the_landing_location_imports_nothing_heavy():
    """A landing run imports its location first: Spark, dbt, TF or DuckDB would slow each one."""
    heavy = ("pyspark", "dbt", "dagster_dbt", "dagster_pyspark", "tensorflow", "sklearn", "duckdb")
    probe = (
        "import sys, scpro_assets.ingest.definitions as d; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_lineage_describes_landing_runs_from_the_platform_location():
    """The OpenLineage sensor lives in the platform location but follows landing runs too."""
    from scpro_assets.definitions import whole_asset_graph

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
