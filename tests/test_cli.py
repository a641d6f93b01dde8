"""The scpro command as a user runs it: broker lifecycle, replay, ingest."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scpro_assets.cli import main

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(tmp_path, monkeypatch, free_port):
    port = free_port
    monkeypatch.setenv("SCPRO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCPRO_KAFKA_BOOTSTRAP", f"localhost:{port}")
    return port


def test_kafka_start_replay_ingest_status_stop(env):
    runner = CliRunner()
    started = runner.invoke(main, ["kafka", "start", "--partitions", "2"])
    try:
        assert started.exit_code == 0, started.output
        assert "Kafka is running" in started.output and f"localhost:{env}" in started.output
        assert "orders (2 partitions)" in started.output

        replayed = runner.invoke(main, ["replay", "synthetic", "--orders", "200", "--no-progress"])
        assert replayed.exit_code == 0, replayed.output
        published = int(replayed.output.split("published ")[1].split(" ")[0])
        assert published > 200 * 4

        status = runner.invoke(main, ["kafka", "status"])
        assert status.exit_code == 0
        counts = [int(line.split(", ")[1].split(" ")[0]) for line in status.output.splitlines()[1:]]
        assert sum(counts) == published

        landed = runner.invoke(main, ["ingest"])
        assert landed.exit_code == 0, landed.output
        assert "orders: 2 ranges landed, 0 retried, 0 already run, 0 failed" in landed.output
        again = runner.invoke(main, ["ingest", "--once"])
        assert "no new events on 'orders'" in again.output
    finally:
        stopped = runner.invoke(main, ["kafka", "stop"])
    assert "Kafka stopped" in stopped.output
    assert "not running" in runner.invoke(main, ["kafka", "status"]).output
