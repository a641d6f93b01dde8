"""A real Spark standalone cluster on this machine (one master, N workers), for the scale proof.

Started from the pyspark distribution's own ``spark-class`` (no separate Spark download): the same
``Master`` and ``Worker`` daemons a production standalone cluster runs. The tests and ``make bench``
run the clean layer against it and compare the output with ``local[*]``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spark_class() -> Path:
    """The ``spark-class`` launcher inside the installed pyspark."""
    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@contextmanager
def standalone_cluster(
    workdir: Path, workers: int = 2, cores: int = 1, memory: str = "2g", timeout: float = 90.0
) -> Iterator[str]:
    """Start a master and ``workers`` workers; yield the ``spark://`` URL; stop them all."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, ui = _free_port(), _free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_class().parent.parent),
        "SPARK_LOG_DIR": str(workdir),
        "SPARK_NO_DAEMONIZE": "1",
    }
    launcher = str(spark_class())
    processes: list[subprocess.Popen] = []

    def start(args: list[str], log: str) -> None:
        with (workdir / log).open("ab") as out:
            processes.append(
                subprocess.Popen(
                    [launcher, *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    url = f"spark://127.0.0.1:{port}"
    try:
        start(
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui),
            ],
            "master.log",
        )
        for i in range(workers):
            start(
                [
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--webui-port",
                    str(_free_port()),
                    "--work-dir",
                    str(workdir / f"worker-{i}"),
                ],
                f"worker-{i}.log",
            )
        deadline = time.monotonic() + timeout
        alive = 0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as reply:
                    alive = json.load(reply).get("aliveworkers", 0)
            except OSError:
                alive = 0
            if alive >= workers:
                break
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a Spark daemon exited while starting; see logs in {workdir}")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{alive} of {workers} Spark workers registered in {timeout:.0f}s")
        yield url
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
