"""``dbt`` outside Dagster, with the same pinned inputs: ``python -m scpro_assets.warehouse.build``.

Analytics engineers edit SQL and run this (or ``dbt build`` in ``dbt_project/``, which reads the
lake's stable links and fails on a dataset with no file yet). Extra arguments go to dbt, e.g.
``python -m scpro_assets.warehouse.build build --select fct_deliveries+``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

from scpro_assets.settings import Settings
from scpro_assets.warehouse.inputs import prepare_inputs
from scpro_assets.warehouse.project import DBT_PROJECT_DIR, dbt_executable


def run_dbt(settings: Settings, args: list[str] | None = None) -> int:
    """Pin the lake inputs, then run ``dbt <args>`` (default ``build``); return dbt's exit code."""
    inputs = prepare_inputs(settings)
    command = [
        dbt_executable(),
        *(args or ["build"]),
        "--vars",
        json.dumps(inputs.dbt_vars(settings.warehouse_path)),
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    # Own target folder per run, so parallel runs never share a manifest or partial-parse file.
    target = DBT_PROJECT_DIR / "target" / f"cli-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SCPRO_HOME": str(settings.home),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
    }
    try:
        return subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, check=False).returncode
    finally:
        shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_dbt(Settings.from_env(), sys.argv[1:] or None))
