"""The scpro command as a user runs it: broker lifecycle, replay, ingest."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

SCPRO = Path(sys.executable).parent / "scpro"


@dataclass
class Result:
    exit_code: int
    output: str


class Runner:
    """Runs the installed ``scpro`` command in its own process, as a user does.

    Not Click's in-process runner: it swaps ``sys.stdout``/``sys.stderr`` for buffers it closes
    afterwards, and a library that kept a logging handler on them from an earlier test in the same
    process (TensorFlow's, after a model was trained) then crashes pytest itself.
    """

    def invoke(self, args: list[str]) -> Result:
        done = subprocess.run(
            [str(SCPRO), *args], capture_output=True, text=True, timeout=300, check=False
        )
        return Result(done.returncode, done.stdout + done.stderr)


@pytest.fixture
def env(tmp_path, monkeypatch, free_port):
    port = free_port
    monkeypatch.setenv("SCPRO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCPRO_KAFKA_BOOTSTRAP", f"localhost:{port}")
    return port


def test_kafka_start_replay_ingest_status_stop(env):
    runner = Runner()
    started = runner.invoke(["kafka", "start", "--partitions", "2"])
    try:
        assert started.exit_code == 0, started.output
        assert "Kafka is running" in started.output and f"localhost:{env}" in started.output
        assert "orders (2 partitions)" in started.output

        replayed = runner.invoke(["replay", "synthetic", "--orders", "200", "--no-progress"])
        assert replayed.exit_code == 0, replayed.output
        published = int(replayed.output.split("published ")[1].split(" ")[0])
        assert published > 200 * 4

        status = runner.invoke(["kafka", "status"])
        assert status.exit_code == 0
        counts = [int(line.split(", ")[1].split(" ")[0]) for line in status.output.splitlines()[1:]]
        assert sum(counts) == published

        landed = runner.invoke(["ingest"])
        assert landed.exit_code == 0, landed.output
        # One run for the topic, landing each partition's range.
        assert "orders: 2 ranges landed in 1 run, 0 retried, 0 already run, 0 failed" in (
            landed.output
        )
        again = runner.invoke(["ingest", "--once"])
        assert "no new events on 'orders'" in again.output
    finally:
        stopped = runner.invoke(["kafka", "stop"])
    assert "Kafka stopped" in stopped.output
    assert "not running" in runner.invoke(["kafka", "status"]).output
