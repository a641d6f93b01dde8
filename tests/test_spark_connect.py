"""Spark Connect: the embedded server started like the broker, and the clean layer over ``sc://``.

One real Spark Connect server (Spark's own ``SparkConnectServer`` from the pyspark distribution)
is started for the module through ``scpro spark start`` on a free port under a temporary
SCPRO_HOME. The clean layer materialized by Dagster through dagster-pyspark's resource over
``sc://`` must give the same tables, row for row, as the tests' in-process Spark. Connect clients
run in subprocesses, as Dagster runs do (a process holds either a classic or a Connect session);
the in-process build runs while the Dagster run works.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scpro_assets.clean.pipeline import (
    ENTITIES,
    FEATURES,
    build_entities,
    build_features,
    update_event_stores,
)
from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql
from scpro_assets.settings import Settings
from scpro_assets.spark_server import SERVER_CLASS, EmbeddedSparkConnect, session_remote
from scpro_assets.testing.offline import synthetic_events, write_raw_lake

TABLES = [*ENTITIES, FEATURES]

DAGSTER_RUN = """
import json
import socket
import dagster as dg
from scpro_assets.clean.assets import clean_entities, order_features, spark_resource
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import Settings
settings = Settings.from_env()
pyspark = spark_resource(settings)
with socket.socket() as sock:  # a lake written without a broker: no Kafka answers
    sock.bind(("127.0.0.1", 0))
    nobody = f"127.0.0.1:{sock.getsockname()[1]}"
result = dg.materialize(
    [clean_entities, order_features],
    resources={
        "pyspark": pyspark,
        "lake": LakeResource.from_settings(settings),
        "kafka": KafkaResource(bootstrap_servers=nobody),
    },
)
rows = {
    e.event_specific_data.materialization.asset_key.to_user_string():
    e.event_specific_data.materialization.metadata["dagster/row_count"].value
    for e in result.get_asset_materialization_events()
}
print(json.dumps({
    "success": result.success,
    "spark_config": pyspark.session_config(),
    "session": type(pyspark.spark_session).__module__,
    "rows": rows,
}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> str:
    """``scpro *args`` in its own process, as a user runs it (see tests/test_cli.py for why)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "scpro"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_client_env(env),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _settings(env: dict[str, str]) -> Settings:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings.from_env()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def _rows(path: Path) -> list[str]:
    """A lake table's rows (partition column included), as sorted JSON lines."""
    with connect_lake() as con:
        table = con.execute(f"select * from {delta_scan_sql(path)}").to_arrow_table()
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in table.to_pylist())


def _client_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    return {**clean, **env}


class Client:
    """A Spark client script running in its own process, its output in files."""

    def __init__(self, folder: Path, script: str, *args: str, env: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = folder / "stdout.txt", folder / "stderr.txt"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", script, *args],
                stdout=out,
                stderr=err,
                env=_client_env(env),
                start_new_session=True,  # its Spark JVM too, for the kill below
            )

    def wait(self, timeout: float = 600) -> str:
        """Its standard output once it has succeeded (bounded wait)."""
        self.process.wait(timeout=timeout)
        assert self.process.returncode == 0, self.stderr.read_text()[-3000:]
        return self.stdout.read_text()

    def kill(self) -> None:
        """End it and its children if a failed test left it running."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SCPRO_HOME of the Connect server and of the Dagster run."""
    return tmp_path_factory.mktemp("spark-connect-home")


@pytest.fixture(scope="module")
def raw_lake(home: Path) -> Path:
    """Landed raw files of a small synthetic stream."""
    raw = home / "lake" / "raw"
    written, files = write_raw_lake(synthetic_events(1000, seed=11), raw, chunk=500)
    assert written == 1000 and files >= 4
    return raw


@pytest.fixture(scope="module")
def connect_env(home: Path):
    """SCPRO_HOME and port of a Spark Connect server started with ``scpro spark start``.

    Fails, never skips, when it cannot start: Spark is a real part of SCPro.
    """
    env = {"SCPRO_HOME": str(home), "SCPRO_SPARK_CONNECT_PORT": str(_free_port())}
    env["SCPRO_SPARK_REMOTE"] = ""  # the embedded server, whatever the caller's environment
    output = _cli(env, "spark", "start")
    assert "Spark Connect is running" in output
    yield env
    EmbeddedSparkConnect(_settings(env)).stop()


@pytest.fixture(scope="module")
def dagster_run(connect_env, raw_lake: Path, tmp_path_factory: pytest.TempPathFactory):
    """A Dagster materialization of the clean layer over ``sc://``, started as soon as the server
    answers; it runs while the in-process clean layer still does."""
    folder = tmp_path_factory.mktemp("dagster-run")
    client = Client(folder, DAGSTER_RUN, env=connect_env)
    yield client
    client.kill()


@pytest.fixture(scope="module")
def local_tables(raw_lake: Path, _spark_session, dagster_run, tmp_path_factory) -> dict[str, list]:
    """The clean layer's tables from the tests' in-process Spark (``local[2]``).

    Built while the Dagster run works over ``sc://`` (its fixture is asked for first).
    """
    assert type(_spark_session).__module__ == "pyspark.sql.session"
    out = tmp_path_factory.mktemp("local-clean")
    update_event_stores(_spark_session, raw_lake, out / "clean")
    build_entities(_spark_session, out / "clean", out / "quarantine")
    build_features(_spark_session, out / "clean")
    tables = {name: _rows(out / "clean" / name) for name in TABLES}
    tables["clean_rules"] = _rows(out / "quarantine" / "clean_rules")
    assert len(tables["cleaned_orders"]) > 100
    return tables


def test_cli_status_reports_port_and_pid(connect_env, dagster_run):
    settings = _settings(connect_env)
    status = EmbeddedSparkConnect(settings).status()
    assert status.running and status.ready
    assert status.port == int(connect_env["SCPRO_SPARK_CONNECT_PORT"])
    assert SERVER_CLASS.encode() in Path(f"/proc/{status.pid}/cmdline").read_bytes()
    assert (settings.home / "spark" / "connect.json").exists()  # status file under SCPRO_HOME

    output = _cli(connect_env, "spark", "status")
    assert f"pid {status.pid}" in output
    assert f"port {status.port}" in output
    assert f"sessions connect to sc://127.0.0.1:{status.port}" in output
    # A second start is a no-op that reports the same server.
    assert f"pid {status.pid}" in _cli(connect_env, "spark", "start")


CONNECT_SESSION = """
import sys
from spark.session import build_spark_session
spark = build_spark_session(remote=sys.argv[1])
print(type(spark).__module__, spark.conf.get("spark.sql.shuffle.partitions"), spark.range(5).count())
"""


def test_build_spark_session_connects_over_sc(connect_env):
    remote = session_remote(_settings(connect_env))
    assert remote == f"sc://127.0.0.1:{connect_env['SCPRO_SPARK_CONNECT_PORT']}"
    result = subprocess.run(
        [sys.executable, "-c", CONNECT_SESSION, remote],
        capture_output=True,
        text=True,
        timeout=120,
        env=_client_env(connect_env),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # A Connect client session, with SPARK_CONF's runtime part (8 shuffle partitions) set.
    assert result.stdout.split() == ["pyspark.sql.connect.session", "8", "5"]


def test_dagster_clean_layer_over_spark_connect_equals_in_process(
    connect_env, dagster_run, local_tables
):
    """clean_entities and order_features through dagster-pyspark's resource over ``sc://``.

    The resource finds the running server by SCPRO_HOME alone; every table, the rule quarantine
    included, equals Spark in-process row for row.
    """
    run = json.loads(dagster_run.wait().strip().splitlines()[-1])
    assert run["success"]
    assert run["spark_config"]["spark.remote"] == session_remote(_settings(connect_env))
    assert "spark.master" not in run["spark_config"]
    assert run["session"] == "pyspark.sql.connect.session"
    clean = Path(connect_env["SCPRO_HOME"]) / "lake" / "clean"
    for name in TABLES:
        assert run["rows"][name] == len(local_tables[name]), name
        assert _rows(clean / name) == local_tables[name], name
    quarantine = Path(connect_env["SCPRO_HOME"]) / "lake" / "quarantine" / "clean_rules"
    assert _rows(quarantine) == local_tables["clean_rules"]


def test_demo_leaves_alone_a_server_it_did_not_start(connect_env):
    from scpro_assets.cli import _DemoSparkServer

    settings = _settings(connect_env)
    pid = EmbeddedSparkConnect(settings).status().pid
    demo = _DemoSparkServer(settings)
    demo.start()
    assert not demo.thread.is_alive()  # already running: nothing to start
    assert demo.describe() == f"Spark Connect at {session_remote(settings)} (embedded)"
    demo.stop()
    assert EmbeddedSparkConnect(settings).status().pid == pid

    remote = _DemoSparkServer(_settings({**connect_env, "SCPRO_SPARK_REMOTE": "sc://elsewhere:1"}))
    remote.start()
    assert not remote.thread.is_alive()
    assert remote.describe() == "sc://elsewhere:1 (SCPRO_SPARK_REMOTE)"
    remote.stop()
    assert EmbeddedSparkConnect(settings).status().pid == pid


def test_cli_stop_ends_the_server_and_sessions_fall_back_to_in_process(connect_env):
    settings = _settings(connect_env)
    pid = EmbeddedSparkConnect(settings).status().pid
    assert _cli(connect_env, "spark", "stop").strip() == "Spark Connect stopped"
    assert not Path(f"/proc/{pid}").exists()
    assert "Spark Connect is not running" in _cli(connect_env, "spark", "status")
    assert session_remote(settings) is None
    assert _cli(connect_env, "spark", "stop").strip() == "Spark Connect was not running"


def test_spark_remote_setting_is_checked():
    with pytest.raises(ValueError, match="SCPRO_SPARK_REMOTE"):
        _settings({"SCPRO_SPARK_REMOTE": "spark://host:7077"})
    with pytest.raises(ValueError, match="SCPRO_SPARK_CONNECT_PORT"):
        _settings({"SCPRO_SPARK_CONNECT_PORT": "port"})
    configured = _settings({"SCPRO_SPARK_REMOTE": "sc://spark.example.com:15002"})
    assert session_remote(configured) == "sc://spark.example.com:15002"


def test_start_refuses_a_taken_port_and_a_stale_status_file_is_not_a_server(tmp_path):
    from scpro_assets.spark_server import SparkServerError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SCPRO_HOME": str(tmp_path), "SCPRO_SPARK_CONNECT_PORT": str(port)}
        env["SCPRO_SPARK_REMOTE"] = ""
        server = EmbeddedSparkConnect(_settings(env))
        with pytest.raises(SparkServerError, match=f"port {port} .* SCPRO_SPARK_CONNECT_PORT"):
            server.start()
    assert not server.status().running

    # A status file left by a crash, whose pid now belongs to another program (this one).
    server.status_file.parent.mkdir(parents=True, exist_ok=True)
    server.status_file.write_text(json.dumps({"pid": os.getpid(), "port": port, "ready": True}))
    assert not server.status().running
    assert session_remote(_settings(env)) is None  # runs use in-process Spark
    assert server.stop() is False and not server.status_file.exists()


def test_server_command_carries_delta_jars_and_refuses_to_start_without_them(tmp_path):
    """The lake's tables are Delta tables: the server gets Delta's jars (``--jars``) and SQL
    extension at start, and says what to run when the jars were never fetched."""
    from scpro_assets.spark_server import SparkServerError

    env = {"SCPRO_HOME": str(tmp_path), "SCPRO_SPARK_REMOTE": ""}
    server = EmbeddedSparkConnect(_settings(env))
    command = server._command({})
    jars = command[command.index("--jars") + 1].split(",")
    assert any(Path(jar).name.startswith("delta-spark_2.13-") for jar in jars)
    assert all(Path(jar).is_file() for jar in jars)
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in command
    assert not any(arg.startswith("spark.jars=") for arg in command)  # passed once, as --jars
    with pytest.raises(SparkServerError, match=r"Delta Lake's jars are missing.*make setup"):
        server._command({"spark.jars": ""})
