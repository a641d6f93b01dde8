"""The embedded single-node Apache Kafka broker (KRaft), started from Maven-resolved jars.

``scpro kafka start`` resolves Apache Kafka's jars from Maven Central once
(``infra/kafka/pom.xml``), formats a KRaft storage directory under ``SCPRO_HOME/kafka`` the first
time, starts ``kafka.Kafka`` in the background, and returns when the broker answers metadata
requests. ``stop`` asks it to shut down cleanly (SIGTERM) and waits. Every failure says what is
wrong: Java missing or too old, Maven missing, the port taken, or the broker's own last log lines
when it died.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scpro_assets.settings import REPO_ROOT, Settings

INFRA_DIR = REPO_ROOT / "infra" / "kafka"
POM = INFRA_DIR / "pom.xml"
LIBS_DIR = INFRA_DIR / "target" / "libs"
LOG4J_CONFIG = INFRA_DIR / "log4j2.yaml"
MIN_JAVA = 17


class BrokerError(RuntimeError):
    """The embedded broker cannot be started or stopped; the message says why and what to do."""


def java_major_version(java: str = "java") -> int:
    """Return the major version of ``java``, or raise :class:`BrokerError` if there is none."""
    path = shutil.which(java)
    if path is None:
        raise BrokerError(
            f"Java {MIN_JAVA}+ is needed to run the embedded Kafka broker, but 'java' is not on "
            "PATH. Install a JDK (Debian: apt-get install openjdk-17-jre-headless) or point "
            "SCPRO_KAFKA_BOOTSTRAP at an existing Kafka cluster."
        )
    out = subprocess.run([path, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise BrokerError(f"could not read the Java version from: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def resolve_jars(quiet: bool = True) -> Path:
    """Copy Apache Kafka's runtime jars from Maven Central into ``infra/kafka/target/libs``."""
    if LIBS_DIR.is_dir() and any(LIBS_DIR.glob("kafka_2.13-*.jar")):
        return LIBS_DIR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven ('mvn') is needed once to fetch Apache Kafka's jars from Maven Central, but it "
            "is not on PATH. Install it (Debian: apt-get install maven)."
        )
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies"]
    if quiet:
        cmd.insert(1, "-q")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(LIBS_DIR.glob("kafka_2.13-*.jar")):
        raise BrokerError(
            "Maven could not resolve Apache Kafka's jars:\n"
            + (result.stdout + result.stderr)[-2000:]
        )
    return LIBS_DIR


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free loopback port whose successor (the embedded broker's controller port) is free too."""
    import socket

    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65000 and port_is_free("localhost", port + 1):
            return port
    raise RuntimeError("no free port pair for an embedded broker")


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerStatus:
    """What ``scpro kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path

    def describe(self) -> str:
        """One line for people."""
        if self.running:
            return f"Kafka is running (pid {self.pid}) at {self.bootstrap}, data in {self.data_dir}"
        return f"Kafka is not running (embedded broker data dir {self.data_dir})"


class EmbeddedKafka:
    """Start, stop and inspect the project's own single-node KRaft broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        first = settings.kafka.bootstrap_servers.split(",")[0]
        host, _, port = first.rpartition(":")
        self.host = host or "localhost"
        self.port = int(port)
        self.controller_port = settings.broker.controller_port or self.port + 1
        self.dir = settings.kafka_dir
        self.data_dir = self.dir / "data"
        self.pid_file = self.dir / "broker.pid"
        self.config_file = self.dir / "server.properties"
        self.log_file = self.dir / "logs" / "server.log"
        self.stdout_file = self.dir / "logs" / "broker.out"

    @property
    def bootstrap(self) -> str:
        """``host:port`` clients use."""
        return f"{self.host}:{self.port}"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None
        return pid

    def status(self) -> BrokerStatus:
        """Is our broker running, and where."""
        pid = self._pid()
        return BrokerStatus(pid is not None, pid, self.bootstrap, self.data_dir)

    def _write_config(self) -> None:
        retention_ms = self.settings.kafka.retention_hours * 3600 * 1000
        self.config_file.write_text(
            "\n".join(
                [
                    "# Written by `scpro kafka start`; edit SCPRO_KAFKA_* variables instead.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},"
                    f"CONTROLLER://{self.host}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={self.settings.kafka.partitions}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    f"log.retention.ms={retention_ms}",
                    "message.max.bytes=2097152",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        heap = self.settings.broker.heap.lower()
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{min(256, int(heap.rstrip('mg') or 256))}m" if heap.endswith("m") else "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{LIBS_DIR}/*",
            main,
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            self._java_cmd(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # '=': a base64 id may start with '-'
                "-c",
                str(self.config_file),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker in the background and wait until it answers; no-op if running."""
        current = self.status()
        if current.running:
            return current
        if java_major_version() < MIN_JAVA:
            raise BrokerError(
                f"Java {MIN_JAVA}+ is needed for Apache Kafka 4, found Java {java_major_version()}."
            )
        for port in (self.port, self.controller_port):
            if not port_is_free(self.host, port):
                raise BrokerError(
                    f"port {port} on {self.host} is taken by another process, so the embedded "
                    "Kafka broker cannot listen there. Stop that process, or choose other ports "
                    "with SCPRO_KAFKA_BOOTSTRAP=localhost:<port> (the controller uses <port>+1, or "
                    "SCPRO_KAFKA_CONTROLLER_PORT)."
                )
        resolve_jars()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_storage()
        with self.stdout_file.open("ab") as out:
            process = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.config_file)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the Kafka broker exited with code {process.returncode} while starting; "
                    f"last lines of {self.stdout_file}:\n{self._tail()}"
                )
            if _answers(self.host, self.port) and self._metadata_ok():
                return self.status()
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the Kafka broker did not answer within {timeout:.0f}s:\n{self._tail()}")

    def _metadata_ok(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=[self.bootstrap], request_timeout_ms=3000)
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def _tail(self, lines: int = 25) -> str:
        for path in (self.stdout_file, self.log_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                if text:
                    return "\n".join(text[-lines:])
        return "(no broker output)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the broker to shut down cleanly, killing it after ``timeout``; True if it ran."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
