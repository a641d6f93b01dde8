"""The embedded Spark Connect server: one long-lived Spark driver that every run connects to.

Without it, each Dagster run that touches Spark starts its own JVM (10-30 s on two busy cores)
before it does any work. ``scpro spark start`` starts Spark's own ``SparkConnectServer`` from the
installed pyspark distribution (``bin/spark-submit``; its jars carry ``spark-connect_2.13``), with
:data:`spark.session.SPARK_CONF` applied at server start (driver memory, time zone, shuffle
partitions) and Delta Lake's jars (``--jars``) and SQL extension, since the lake's tables are
Delta tables the server writes and merges for every run; listening on loopback only, port
``SCPRO_SPARK_CONNECT_PORT`` (default 15002), with its status file, log and scratch space under
``SCPRO_HOME/spark``. Runs then connect over ``sc://`` (:func:`session_remote`) in about a second.
``stop`` asks the server to shut down (SIGTERM) and waits. A server that SCPro does not manage is
named by ``SCPRO_SPARK_REMOTE``; with neither, sessions run in-process on ``SCPRO_SPARK_MASTER``
as before.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyspark

from scpro_assets.kafka.broker import java_major_version, port_is_free
from scpro_assets.settings import Settings
from spark.session import SPARK_CONF, SPARK_JARS_DIR

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
HOST = "127.0.0.1"
MIN_JAVA = 17


class SparkServerError(RuntimeError):
    """The embedded Spark Connect server cannot be started or stopped; the message says why."""


def spark_submit() -> Path:
    """The ``spark-submit`` launcher inside the installed pyspark."""
    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


@dataclass(frozen=True)
class SparkServerStatus:
    """What ``scpro spark status`` reports."""

    running: bool
    ready: bool
    pid: int | None
    port: int
    master: str
    log_file: Path

    @property
    def remote(self) -> str:
        """The ``sc://`` URL clients use."""
        return f"sc://{HOST}:{self.port}"

    def describe(self) -> str:
        """One line for people."""
        if self.running and self.ready:
            return (
                f"Spark Connect is running (pid {self.pid}) at {self.remote}, port {self.port}, "
                f"master {self.master}, log {self.log_file}"
            )
        if self.running:
            return f"Spark Connect is starting (pid {self.pid}), port {self.port}"
        return f"Spark Connect is not running (embedded server, port {self.port})"


class EmbeddedSparkConnect:
    """Start, stop and inspect the project's own Spark Connect server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.spark_connect.port
        self.dir = settings.spark_dir
        self.status_file = self.dir / "connect.json"
        self.log_file = self.dir / "logs" / "connect-server.out"

    def _recorded(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _pid(self, recorded: dict) -> int | None:
        pid = recorded.get("pid")
        if not isinstance(pid, int):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        _reap(pid)
        cmdline = Path(f"/proc/{pid}/cmdline")
        try:
            if SERVER_CLASS.encode() not in cmdline.read_bytes():
                return None  # the pid was reused by another program
        except FileNotFoundError:
            return None
        return pid

    def status(self) -> SparkServerStatus:
        """Is our server running (and answering), and where."""
        recorded = self._recorded()
        pid = self._pid(recorded)
        return SparkServerStatus(
            running=pid is not None,
            ready=pid is not None and bool(recorded.get("ready")),
            pid=pid,
            port=int(recorded.get("port", self.port)) if pid else self.port,
            master=str(recorded.get("master", self.settings.spark_master)),
            log_file=self.log_file,
        )

    def _command(self, extra_conf: dict[str, str]) -> list[str]:
        conf = {
            **SPARK_CONF,
            "spark.connect.grpc.binding.address": HOST,
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.local.dir": str(self.dir / "scratch"),
            "spark.sql.warehouse.dir": str(self.dir / "warehouse"),
            "spark.log.level": "WARN",
            **extra_conf,
        }
        jars = conf.pop("spark.jars")
        if not jars:
            raise SparkServerError(
                f"Delta Lake's jars are missing from {SPARK_JARS_DIR}, and the lake's tables are "
                "Delta tables: run `make setup` (mvn -f infra/spark/pom.xml "
                "dependency:copy-dependencies) before `scpro spark start`"
            )
        command = [str(spark_submit()), "--class", SERVER_CLASS, "--name", "SCPro Spark Connect"]
        command += ["--master", self.settings.spark_master, "--jars", jars]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        return command

    def start(
        self, timeout: float = 180.0, extra_conf: dict[str, str] | None = None
    ) -> SparkServerStatus:
        """Start the server in the background and wait until a client gets an answer.

        A no-op when it already runs. ``extra_conf`` overrides :data:`SPARK_CONF` at the
        server's start (say, more driver memory for a bigger machine).
        """
        current = self.status()
        if current.running:
            return current
        _check_java()
        if not port_is_free(HOST, self.port):
            raise SparkServerError(
                f"port {self.port} on {HOST} is taken by another process, so the embedded Spark "
                "Connect server cannot listen there. Stop that process, or choose another port "
                "with SCPRO_SPARK_CONNECT_PORT=<port>."
            )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
        env |= {"SPARK_HOME": str(spark_submit().parent.parent), "PYSPARK_PYTHON": sys.executable}
        with self.log_file.open("ab") as out:
            process = subprocess.Popen(
                self._command(extra_conf or {}),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
                env=env,
            )
        self._record(process.pid, ready=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.status_file.unlink(missing_ok=True)
                raise SparkServerError(
                    f"the Spark Connect server exited with code {process.returncode} while "
                    f"starting; last lines of {self.log_file}:\n{self._tail()}"
                )
            if not port_is_free(HOST, self.port) and answers(self.status().remote):
                self._record(process.pid, ready=True)
                return self.status()
            time.sleep(0.5)
        self.stop()
        raise SparkServerError(
            f"the Spark Connect server did not answer within {timeout:.0f}s:\n{self._tail()}"
        )

    def _record(self, pid: int, ready: bool) -> None:
        """Write the status file atomically: readers see the old state or the new one."""
        state = {"pid": pid, "port": self.port, "master": self.settings.spark_master}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**state, "ready": ready}))
        os.replace(tmp, self.status_file)

    def _tail(self, lines: int = 25) -> str:
        if self.log_file.exists():
            text = self.log_file.read_text(errors="replace").splitlines()
            if text:
                return "\n".join(text[-lines:])
        return "(no server output)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the server to shut down, killing it after ``timeout``; True if it ran."""
        pid = self._pid(self._recorded())
        if pid is None:
            self.status_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            _signal(pid, signal.SIGKILL)
            time.sleep(0.5)
            _reap(pid)
        self.status_file.unlink(missing_ok=True)
        return True


def _signal(pid: int, signum: int) -> None:
    """Signal the server's whole process group, or the process alone if it leads none.

    The server runs in its own session: the launcher scripts, the JVM and any Python workers.
    """
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
            return
    except ProcessLookupError:
        return
    os.kill(pid, signum)


def _check_java() -> None:
    if shutil.which("java") is None:
        raise SparkServerError(
            f"Java {MIN_JAVA}+ is needed to run the Spark Connect server, but 'java' is not on "
            "PATH. Install a JDK (Debian: apt-get install openjdk-17-jre-headless) or point "
            "SCPRO_SPARK_REMOTE at an existing Spark Connect server."
        )
    major = java_major_version()
    if major < MIN_JAVA:
        raise SparkServerError(f"Java {MIN_JAVA}+ is needed for Spark 4, found Java {major}.")


def answers(remote: str) -> bool:
    """True when a Spark Connect client gets the server's version from ``remote``.

    Uses the Connect module's own builder, which (unlike ``SparkSession.builder``) leaves this
    process's environment alone, and releases its session afterwards.
    """
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError as error:
        raise SparkServerError(
            f"the Spark Connect client needs pyspark's 'connect' extra ({error}); install "
            "grpcio-status, googleapis-common-protos and zstandard (requirements.lock has them)"
        ) from error
    from pyspark.errors import PySparkException

    try:
        session = ConnectSession.builder.remote(remote).create()
    except (PySparkException, OSError, ValueError):
        return False
    try:
        return bool(session.version)
    except Exception:  # gRPC errors surface as several types; any of them means "not yet"
        return False
    finally:
        session.stop()


def session_remote(settings: Settings) -> str | None:
    """The ``sc://`` URL sessions should use, or None to run Spark in-process.

    ``SCPRO_SPARK_REMOTE`` wins; else the embedded server when it runs, has answered a client
    and still accepts connections (a socket, not a session: this runs at every code location
    load); else None, and sessions start their own JVM on ``SCPRO_SPARK_MASTER`` (the fallback:
    a run never fails because the server was stopped).
    """
    if settings.spark_connect.remote:
        return settings.spark_connect.remote
    status = EmbeddedSparkConnect(settings).status()
    if not status.ready or port_is_free(HOST, status.port):
        return None
    return status.remote


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


_TIMED_START = """
import sys, time
started = time.perf_counter()
from spark.session import build_spark_session
spark = build_spark_session(sys.argv[1], remote=sys.argv[2] or None)
spark.range(1).count()
print(time.perf_counter() - started)
"""


def time_session_start(master: str, remote: str | None) -> float:
    """Seconds a fresh process takes from importing pyspark to a session's first answer.

    What a Dagster run pays before its first Spark step does any work: in-process, a JVM start;
    over Spark Connect, a gRPC session.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    result = subprocess.run(
        [sys.executable, "-c", _TIMED_START, master, remote or ""],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        raise SparkServerError(f"the timed session failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])
