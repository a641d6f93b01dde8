"""The Dagster code location loads, validates and describes itself."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from scpro_assets.definitions import build_definitions, defs
from scpro_assets.settings import REPO_ROOT


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
    for topic in ("orders", "payments", "shipments", "ops_logs"):
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
    options = kafka.settings().client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_password"] == "from-the-environment"
    assert "from-the-environment" not in repr(kafka)  # the secret is not part of the resource
    assert configured.resources["lake"].home == str(tmp_path)


def test_workspace_yaml_loads_the_code_location():
    """What `dagster dev -w workspace.yaml` does first: load the location from the workspace."""
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
