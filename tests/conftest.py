"""Shared fixtures: the real data in ../shared/data, a temporary SCPRO_HOME, the real Kafka broker."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from scpro_assets.settings import REPO_ROOT

SHARED_DATA = Path(os.environ.get("SCPRO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

#: Seconds each slow module took in a whole run on the 2-core box (``--durations=0``, summed
#: per file, 2026-12-01; refresh them when a module's cost changes a lot). ``make test`` hands
#: whole files to two workers (``--dist loadfile``) in collection order
#: (``--no-loadscope-reorder``): the slowest first, so the last files to start are short ones and
#: both workers end together. xdist's own order (most tests first) left the files with one or two
#: long tests, such as the whole platform on DataCo, for the end, where one worker ran them while
#: the other sat idle.
MODULE_SECONDS = {
    "test_lake_format.py": 500,
    "test_dbt_warehouse.py": 340,
    "test_clean_assets.py": 280,
    "test_end_to_end.py": 250,
    "test_ml_dagster.py": 170,
    "test_ml.py": 140,
    "test_spark_connect.py": 120,
    "test_incremental_warehouse.py": 110,
    "test_panel_browser.py": 100,
    "test_ingest.py": 90,
    "test_chaos.py": 75,
    "test_spark_transforms.py": 65,
    "test_cli.py": 55,
    "test_evidence_compat.py": 45,
    "test_replay.py": 40,
    "test_serving_snapshot.py": 40,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest modules first (see :data:`MODULE_SECONDS`); a stable sort keeps the rest."""
    items.sort(key=lambda item: -MODULE_SECONDS.get(item.path.name, 0))


def _require_data(sub: str) -> Path:
    """Return ../shared/data/<sub>; fail under CI, skip (saying why) on a clone without it."""
    path = SHARED_DATA / sub
    if path.is_dir():
        return path
    message = (
        f"real data {path} is not there: these tests read ../shared/data "
        "(see ../shared/data/README.md); they run whenever it is present"
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


def _free_port_pair() -> int:
    from scpro_assets.kafka.broker import free_port_pair

    return free_port_pair()


@pytest.fixture
def free_port() -> int:
    """A free port whose successor (the controller's) is free too."""
    return _free_port_pair()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    """A real Apache Kafka broker (the project's embedded one) for the whole test session.

    Fails, never skips, when it cannot start: Kafka is a real part of SCPro.
    """
    from scpro_assets.kafka.broker import EmbeddedKafka
    from scpro_assets.settings import KafkaSettings, Settings

    port = _free_port_pair()
    home = tmp_path_factory.mktemp("broker-home")
    settings = Settings(home=home, kafka=KafkaSettings(bootstrap_servers=f"localhost:{port}"))
    broker = EmbeddedKafka(settings)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def scpro_settings(kafka_broker, tmp_path: Path, request: pytest.FixtureRequest):
    """Settings for one test: its own SCPRO_HOME and its own topics on the shared broker."""
    import re
    import uuid

    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.settings import KafkaSettings, Settings

    prefix = re.sub(r"[^a-zA-Z0-9]", "", request.node.name)[:40] + "-" + uuid.uuid4().hex[:6] + "."
    settings = Settings(
        home=tmp_path / "scpro",
        kafka=KafkaSettings(bootstrap_servers=kafka_broker.bootstrap, topic_prefix=prefix),
    )
    ensure_topics(settings.kafka, partitions=2)
    return settings


@pytest.fixture
def dagster_instance(tmp_path: Path):
    """A throwaway Dagster instance with real (sqlite) storage."""
    import dagster as dg

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


#: Runtime settings of the tests' Spark session. Tiny inputs: two shuffle partitions, two tasks to
#: replay a Delta table's log, and no adaptive re-planning between stages (it costs more than it
#: saves here). Results do not depend on any of them.
TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
}


@pytest.fixture(scope="session")
def _spark_session():
    """One in-process Spark (``local[2]``, Delta Lake loaded) for every test module that needs it.

    Starting the JVM and loading Delta's classes costs 20-30 s: paid once per pytest session,
    not once per module. Stopped when the session ends.
    """
    from spark.session import build_spark_session

    session = build_spark_session("local[2]", app_name="scpro-tests", extra_conf=TEST_SPARK_CONF)
    yield session
    session.stop()


@pytest.fixture
def spark(_spark_session):
    """The shared Spark session with the tests' runtime settings put back.

    Code under test in the same process (a Dagster materialization, ``build_spark_session``)
    reuses the running session and sets SCPro's own runtime settings on it.
    """
    for key, value in TEST_SPARK_CONF.items():
        _spark_session.conf.set(key, value)
    return _spark_session


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A JSON webhook on the loopback interface: (apprise URL, payloads received)."""
    handler = type("Hook", (_Webhook,), {"received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", handler.received
    finally:
        server.shutdown()
        server.server_close()
