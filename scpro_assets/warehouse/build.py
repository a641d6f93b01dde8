"""``dbt`` as analytics engineers type it, on SCPro's project, profile and lake: ``scpro dbt ...``.

``scpro dbt build --select fct_deliveries+`` (or ``python -m scpro_assets.warehouse.build``) runs
the venv's dbt in ``dbt_project/`` with the project's own ``profiles.yml`` and the platform's
``SCPRO_HOME``. Commands that read the lake (:data:`LAKE_COMMANDS`) first pin every source table
to one file or glob, as the Dagster asset does (:mod:`scpro_assets.warehouse.inputs`), so a build
never joins two versions of a dataset and a dataset with no file yet reads as typed and empty.
The others (``ls``, ``parse``, ``debug``, ``docs``...) touch no lake file.

Artifacts go to ``dbt_project/target/scpro-dbt`` (``DBT_TARGET_PATH`` or ``--target-path`` choose
another), never to ``target/manifest.json``, the manifest Dagster reads. A plain ``dbt build`` in
``dbt_project/`` works too: it reads the same profile (``SCPRO_HOME`` defaults to the repo's
``.scpro``) and the lake's stable paths, unpinned.

:func:`generate_docs` writes dbt's docs site for the published warehouse (``make docs``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scpro_assets.settings import Settings
from scpro_assets.warehouse.changes import ChangeSet, commit_changes
from scpro_assets.warehouse.project import DBT_PROJECT_DIR, dbt_executable
from scpro_assets.warehouse.serving import changed_parts

#: dbt commands that read lake files, so the lake is pinned before they start.
LAKE_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "show", "compile", "retry"})

#: Where ``scpro dbt`` keeps dbt's artifacts unless told otherwise.
CLI_TARGET = DBT_PROJECT_DIR / "target" / "scpro-dbt"

#: Where ``make docs`` writes the docs site of the published warehouse.
DOCS_TARGET = DBT_PROJECT_DIR / "target" / "docs"


#: dbt flags that narrow a build to part of the project.
SELECTION_FLAGS = frozenset({"-s", "--select", "--exclude", "--selector", "-m", "--models"})


@dataclass(frozen=True)
class DbtInvocation:
    """One dbt command line and the environment it runs in (cwd: the project folder).

    ``changes`` are the lake changes the command reads (commands that read the lake): a build
    of the whole project that succeeds commits them (:func:`run_dbt`).
    """

    command: list[str]
    env: dict[str, str]
    target_path: Path
    changes: ChangeSet | None = None

    def builds_whole_project(self) -> bool:
        """Whether this is a ``build`` or ``run`` of every model (no selection)."""
        words = [arg.split("=", 1)[0] for arg in self.command[1:]]
        command = next((arg for arg in self.command[1:] if not arg.startswith("-")), "build")
        return command in ("build", "run") and not SELECTION_FLAGS & set(words)


def _with_vars(args: list[str], pins: dict[str, Any]) -> list[str]:
    """``args`` with one ``--vars``: ``pins``, under any ``--vars`` the user gave."""
    rest: list[str] = []
    given: dict[str, Any] = {}
    values = iter(args)
    for arg in values:
        if arg == "--vars":
            given.update(yaml.safe_load(next(values, "{}")) or {})
        elif arg.startswith("--vars="):
            given.update(yaml.safe_load(arg.removeprefix("--vars=")) or {})
        else:
            rest.append(arg)
    inputs = {**pins.get("scpro_inputs", {}), **given.get("scpro_inputs", {})}
    return [*rest, "--vars", json.dumps({**pins, **given, "scpro_inputs": inputs})]


def _target_path(args: list[str], environ: dict[str, str], default: Path) -> Path:
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            return DBT_PROJECT_DIR / args[i + 1]
        if arg.startswith("--target-path="):
            return DBT_PROJECT_DIR / arg.removeprefix("--target-path=")
    return Path(environ.get("DBT_TARGET_PATH") or default)


def dbt_invocation(
    settings: Settings,
    args: list[str],
    environ: dict[str, str] | None = None,
    target_path: Path = CLI_TARGET,
) -> DbtInvocation:
    """The dbt command for ``args`` (default ``build``), pinning the lake when it reads it.

    Raises ``FileNotFoundError`` (naming the dataset) when such a command finds a clean dataset
    that was never published.
    """
    env = dict(os.environ if environ is None else environ)
    args = list(args) or ["build"]
    # dbt's global flags come before its command (`dbt --quiet build`): the first word is it.
    command = next((arg for arg in args if not arg.startswith("-")), "build")
    changes = None
    if command in LAKE_COMMANDS:
        from scpro_assets.warehouse.inputs import prepare_inputs

        inputs = prepare_inputs(settings)
        changes = inputs.changes
        args = _with_vars(args, inputs.dbt_vars(settings.warehouse_path))
        env.update(inputs.dbt_env())
    target = _target_path(args, env, target_path)
    env.update(
        {
            # The profile reads SCPRO_HOME (warehouse path) and SCPRO_DBT_TARGET / _THREADS.
            "SCPRO_HOME": str(settings.home),
            "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_TARGET_PATH": str(target),
            "DBT_LOG_PATH": str(target),
        }
    )
    return DbtInvocation([dbt_executable(), *args], env, target, changes)


def run_dbt(settings: Settings, args: list[str] | None = None) -> int:
    """Run ``dbt <args>`` (default ``build``) on SCPro's project; return dbt's exit code.

    A build of the whole project that succeeds records the lake state it read, which the next
    build's incremental models start from (:mod:`scpro_assets.warehouse.changes`).
    """
    invocation = dbt_invocation(settings, args or [])
    process = subprocess.run(
        invocation.command, cwd=DBT_PROJECT_DIR, env=invocation.env, check=False
    )
    if process.returncode == 0 and invocation.changes and invocation.builds_whole_project():
        full_refresh = "--full-refresh" in invocation.command
        parts = changed_parts(invocation.changes, settings.clean_dir, full_refresh)
        commit_changes(settings, invocation.changes, parts)
    return process.returncode


def generate_docs(settings: Settings, target_path: Path = DOCS_TARGET) -> Path:
    """``dbt docs generate`` for the published warehouse; return the folder of ``index.html``.

    The catalog (columns, types, row counts) is read from a copy of the serving snapshot, the
    tables analysts and the dashboard query: the live ``warehouse.duckdb`` is locked by a running
    build, and dbt opens its database for writing, which the dashboard's read-only connections to
    the published file forbid. Raises ``FileNotFoundError`` when nothing is published yet.
    """
    from scpro_assets.warehouse.serving import current_version

    published = current_version(settings) / "warehouse.duckdb"
    if not published.exists():
        raise FileNotFoundError(f"{published} is missing: the snapshot holds no warehouse")
    target_path.mkdir(parents=True, exist_ok=True)
    # Same file name as the build's warehouse, so dbt names the database as in the manifest.
    copy = target_path / "published" / "warehouse.duckdb"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(published, copy)
    try:
        args = ["docs", "generate", "--vars", json.dumps({"warehouse_path": str(copy)})]
        invocation = dbt_invocation(settings, args, target_path=target_path)
        process = subprocess.run(
            invocation.command,
            cwd=DBT_PROJECT_DIR,
            env=invocation.env,
            check=False,
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"dbt docs generate failed:\n{process.stdout}{process.stderr}")
    return invocation.target_path


if __name__ == "__main__":
    sys.exit(run_dbt(Settings.from_env(), sys.argv[1:]))
