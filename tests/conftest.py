"""Shared fixtures: the real data in ../shared/data, a temporary SCPRO_HOME, the real Kafka broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scpro_assets.settings import REPO_ROOT

SHARED_DATA = Path(os.environ.get("SCPRO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require_data(sub: str) -> Path:
    """Return ../shared/data/<sub>; fail under CI, skip (saying why) on a clone without it."""
    path = SHARED_DATA / sub
    if path.is_dir():
        return path
    message = (
        f"real data {path} is not there: these tests read ../shared/data "
        "(see tests/README.md); they run whenever it is present"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " -- and CI must have it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def dataco_dir() -> Path:
    """The DataCo sample folder."""
    return _require_data("dataco")


@pytest.fixture(scope="session")
def olist_dir() -> Path:
    """The Olist sample folder."""
    return _require_data("olist")
