"""The dbt project as Dagster sees it, and its manifest, prepared ahead of time (never at import).

``python -m scpro_assets.warehouse.prepare`` runs ``dbt parse`` once (``make setup`` does it); the
asset definitions then read ``dbt_project/target/manifest.json``. A clean clone that has not run
the set-up yet still loads: the first import prepares the manifest once and says so.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from functools import cache, cached_property
from importlib.metadata import version as package_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import using_dagster_dev
from packaging.version import Version

from scpro_assets.settings import REPO_ROOT, Settings

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

log = logging.getLogger(__name__)


@cache
def dbt_project() -> DbtProject:
    """The dbt project (its manifest is prepared ahead, see :func:`manifest_path`)."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """The dbt of this interpreter's venv (which need not be activated), else the PATH's."""
    local = Path(sys.executable).parent / "dbt"
    return os.fspath(local) if local.exists() else shutil.which("dbt") or "dbt"


def dbt_environment(settings: Settings) -> None:
    """Make ``SCPRO_HOME`` visible to dbt's profile for a parse (runs pass it as a var too)."""
    os.environ.setdefault("SCPRO_HOME", str(settings.home))


def prepare_manifest(settings: Settings | None = None) -> Path:
    """Run ``dbt parse`` and return the manifest's path (no packages, so no ``dbt deps``)."""
    dbt_environment(settings or Settings.from_env())
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    cli = DbtCliResource(
        project_dir=os.fspath(DBT_PROJECT_DIR),
        profiles_dir=os.fspath(DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
    )
    cli.cli(["--quiet", "parse"], target_path=project.target_path).wait()
    return project.manifest_path


def manifest_path() -> Path:
    """The prepared manifest; re-parsed under ``dagster dev`` so SQL edits show up there.

    This is ``DbtProject.prepare_if_dev`` with this venv's dbt (``prepare_if_dev`` calls the dbt
    on PATH, absent when the venv is not activated). A clean clone that skipped the set-up step
    gets its manifest prepared once, with a warning.
    """
    path = dbt_project().manifest_path
    if using_dagster_dev():
        prepare_manifest()
    elif not path.exists():
        log.warning("%s is missing: running `dbt parse` once (make setup does it ahead)", path)
        prepare_manifest()
    return path


class ScproDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, which knows this venv's dbt version without starting dbt.

    Before each ``dbt build``, dagster-dbt asks the executable for its version (``dbt
    --version``, a whole dbt start-up: 3-5 s on two cores), once per resource instance, and
    Dagster makes a new instance for every run: so every automation cycle paid it. When the
    executable is this interpreter's own dbt (:func:`dbt_executable`), its version is the installed
    ``dbt-core``'s; any other executable is still asked.
    """

    @cached_property
    def _cli_version(self) -> Version:
        if Path(self.dbt_executable) == Path(sys.executable).parent / "dbt":
            return Version(package_version("dbt-core"))
        return super()._cli_version


def dbt_resource(settings: Settings | None = None) -> DbtCliResource:
    """The ``dbt`` resource: the project folder, its profiles, and the target of ``settings``."""
    settings = settings or Settings.from_env()
    return ScproDbtCliResource(
        project_dir=os.fspath(DBT_PROJECT_DIR),
        profiles_dir=os.fspath(DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
        target=settings.dbt_target,
    )
