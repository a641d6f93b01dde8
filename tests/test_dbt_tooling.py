"""`scpro dbt` without a lake: which commands pin the lake, how a user's --vars are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scpro_assets.settings import KafkaSettings, Settings
from scpro_assets.warehouse.build import CLI_TARGET, dbt_invocation
from scpro_assets.warehouse.project import DBT_PROJECT_DIR


@pytest.fixture
def empty_home(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", kafka=KafkaSettings())


def _vars(command: list[str]) -> dict:
    return json.loads(command[command.index("--vars") + 1])


def test_commands_that_read_no_lake_run_on_the_project_profile_without_pins(empty_home):
    invocation = dbt_invocation(empty_home, ["ls", "--select", "marts"], environ={})
    assert invocation.command[1:] == ["ls", "--select", "marts"]  # nothing pinned, no lake read
    assert invocation.env["SCPRO_HOME"] == str(empty_home.home)
    assert invocation.env["DBT_PROFILES_DIR"] == str(DBT_PROJECT_DIR)
    assert invocation.env["DBT_PROJECT_DIR"] == str(DBT_PROJECT_DIR)
    # never the manifest Dagster reads
    assert invocation.target_path == CLI_TARGET != DBT_PROJECT_DIR / "target"
    assert not empty_home.home.exists()


@pytest.mark.parametrize("args", [["build", "--select", "fct_orders"], ["--quiet", "build"]])
def test_a_build_on_a_lake_never_published_names_the_missing_dataset(empty_home, args):
    """Global flags first (the warehouse benchmark's `--quiet build`) still pin the lake."""
    with pytest.raises(FileNotFoundError, match="cleaned_orders has never been published"):
        dbt_invocation(empty_home, args, environ={})


def test_the_users_vars_and_target_path_are_kept_over_the_pins(empty_home, monkeypatch):
    from scpro_assets.warehouse import inputs

    class Pinned:
        changes = None  # no change sets: nothing to commit after the run

        def dbt_vars(self, warehouse: Path) -> dict:
            return {
                "scpro_inputs": {"a": "/pin/a", "b": "/pin/b"},
                "warehouse_path": str(warehouse),
            }

        def dbt_env(self) -> dict:
            return {"SCPRO_DBT_BUILD": "{}"}

    monkeypatch.setattr(inputs, "prepare_inputs", lambda settings: Pinned())
    args = ["run", "--vars", "{scpro_inputs: {b: /mine/b}, high_risk_threshold: 0.9}"]
    invocation = dbt_invocation(empty_home, [*args, "--target-path", "elsewhere"], environ={})
    assert invocation.command.count("--vars") == 1
    assert _vars(invocation.command) == {
        "scpro_inputs": {"a": "/pin/a", "b": "/mine/b"},
        "warehouse_path": str(empty_home.warehouse_path),
        "high_risk_threshold": 0.9,
    }
    assert invocation.target_path == DBT_PROJECT_DIR / "elsewhere"
    assert invocation.env["DBT_TARGET_PATH"] == str(DBT_PROJECT_DIR / "elsewhere")


def test_the_dbt_resource_knows_this_venv_s_dbt_version_without_starting_dbt(monkeypatch):
    """dagster-dbt would run ``dbt --version`` before every build (3-5 s a cycle)."""
    import subprocess
    from importlib.metadata import version

    from dagster_dbt.core import resource as dagster_dbt_resource

    from scpro_assets.warehouse.project import dbt_resource

    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_process)
    monkeypatch.setattr(subprocess, "check_output", no_process)
    assert str(dbt_resource()._cli_version) == version("dbt-core")

    other = dbt_resource().model_copy(update={"dbt_executable": "/opt/elsewhere/dbt"})
    with pytest.raises(AssertionError, match="a process was started"):
        other._cli_version  # noqa: B018 -- any other dbt is still asked
