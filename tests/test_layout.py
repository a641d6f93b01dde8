"""Where code lives is kept by import-linter's contracts (``[tool.importlinter]`` in pyproject.toml).

The product imports no test fixture (``scpro_assets/testing``) and no benchmark
(``scpro_assets/bench``; ``scpro bench`` imports them inside the command), ``spark/`` holds pure
transforms, and no package has an import cycle between its modules or subpackages. The same
``lint-imports`` runs in ``make lint``; here it runs on the repository as it is, and on a copy
with one rule broken, to prove each contract catches what it is there for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scpro_assets.settings import REPO_ROOT

PACKAGES = ("scpro_assets", "spark", "ml_assets", "sensors", "panel_app")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root``, with ``root``'s pyproject.toml."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def contract_names() -> dict[str, str]:
    """Each contract's id and name, as pyproject.toml declares them."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def broken_contracts(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ids of the contracts ``lint-imports`` reported broken in its summary."""
    flat = " ".join(result.stdout.split())  # long names wrap over two lines
    return [id_ for id_, name in contract_names().items() if f"{name} BROKEN" in flat]


def test_every_import_contract_is_kept():
    result = lint_imports(REPO_ROOT)
    broken = broken_contracts(result)
    assert result.returncode == 0 and not broken, (
        f"import contracts broken: {broken}\n{result.stdout}\n{result.stderr}"
    )
    assert f"{len(contract_names())} kept, 0 broken" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def copy_of_the_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product packages and pyproject.toml, copied (sources only) for breaking rules in."""
    root = tmp_path_factory.mktemp("layout")
    shutil.copy2(REPO_ROOT / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.png", "*.md", "*.yaml"),
        )
    return root


@pytest.mark.parametrize(
    ("contract", "module", "line"),
    [
        # The dashboard reaching for the sample snapshot, as if it were part of the product.
        (
            "product-imports-no-fixture-or-benchmark",
            "panel_app/store.py",
            "from scpro_assets.testing.sample_snapshot import publish",
        ),
        # A model module importing a benchmark, lazily: still an import.
        (
            "product-imports-no-fixture-or-benchmark",
            "ml_assets/training.py",
            "def _bench():\n    from scpro_assets.bench.models import PROTOCOLS\n",
        ),
        # spark/ building rows with the contracts again, as spark/raw.py once did.
        (
            "spark-is-pure-transforms",
            "spark/raw.py",
            "from scpro_assets.contracts.events import validate_event",
        ),
        # Landing importing the warehouse, which imports landing: a cycle in scpro_assets.
        (
            "no-import-cycles",
            "scpro_assets/ingest/in_flight.py",
            "from scpro_assets.warehouse import completeness",
        ),
    ],
)
def test_each_contract_catches_its_violation(copy_of_the_packages, contract, module, line):
    path = copy_of_the_packages / module
    original = path.read_text()
    path.write_text(f"{original}\n{line}\n")
    try:
        result = lint_imports(copy_of_the_packages)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    assert broken_contracts(result) == [contract], result.stdout
