"""Chaos against the real broker and real Dagster: every produced event is accounted for once.

Each test injects one real fault at a moment it makes sure of (SIGKILL while a landing run's
temporary Parquet file exists, a broker restart half-way through a range, a full disk, two ticks
at once, snapshots swapped under 20 reading sessions) and reads the lake back: each produced
offset is landed or quarantined exactly once, no temporary file is visible as data, and no reader
saw an error. Small versions of ``scpro bench --only chaos`` (``scpro_assets/bench/chaos.py``).
"""

from __future__ import annotations

import pytest

from scpro_assets.bench import chaos
from scpro_assets.ingest.landing import landed_ranges

pytestmark = pytest.mark.kafka


def _assert_exactly_once(outcome: chaos.FaultOutcome, produced: int) -> None:
    print(f"\n{outcome.fault}: {outcome.figures()}")
    assert outcome.produced == produced
    assert (outcome.lost, outcome.duplicates, outcome.wrong_event) == (0, 0, 0)
    assert outcome.landed + outcome.quarantined == produced
    assert outcome.quarantined > 0  # poison messages were part of every range
    assert outcome.survived


def _assert_only_committed_files(settings) -> None:
    """Readers list ranges by their committed names only, and every listed file is whole."""
    import pyarrow.parquet as pq

    for base in (settings.raw_dir, settings.quarantine_dir):
        spans = landed_ranges(base, chaos.TOPIC)
        files = sorted((base / chaos.TOPIC).glob("partition-*/*.parquet"))
        assert len(files) == sum(len(s) for s in spans.values())
        for file in files:
            assert pq.ParquetFile(file).metadata.num_rows >= 0


def test_landing_run_killed_mid_write_lands_once_when_ingest_runs_again(scpro_settings):
    """SIGKILL `scpro ingest --once` while its temporary raw file is being written."""
    outcome = chaos.kill_landing_mid_write(scpro_settings, events=3_000, chunk_events=100)
    assert outcome.detail["killed_mid_write"], "the kill must land in the middle of the write"
    assert outcome.detail["exit_signal"] == 9
    assert not outcome.detail["committed_before_retry"]
    assert outcome.detail["ranges_retried"] == 1 and outcome.detail["runs_failed"] == 0
    assert outcome.detail["runs_left_in_flight"] == 0
    _assert_exactly_once(outcome, 3_000)
    _assert_only_committed_files(scpro_settings)


def test_broker_restart_in_the_middle_of_a_large_range_lands_it_once(scpro_settings, kafka_broker):
    outcome = chaos.broker_restart_mid_range(
        scpro_settings, kafka_broker, events=2_000, chunk_events=100
    )
    assert outcome.detail["stopped_mid_range"], "the broker must stop while the run is mid-range"
    assert outcome.detail["first_run_succeeded"] or outcome.detail["retried"] == 1
    _assert_exactly_once(outcome, 2_000)
    assert outcome.detail["temp_files_left"] == 0
    _assert_only_committed_files(scpro_settings)


def test_disk_full_during_a_parquet_write_fails_cleanly_and_the_retry_lands_once(scpro_settings):
    """The raw folder is a 2 MB tmpfs, nearly full: the range's Parquet does not fit."""
    outcome = chaos.disk_full_mid_write(scpro_settings, events=3_000)
    assert outcome.detail["failed_while_full"] == 1
    assert outcome.detail["files_while_full"] == ["filler.bin"]  # no commit record, no temp file
    assert outcome.detail["quarantine_files_while_full"] == 0
    assert outcome.detail["ranges_retried"] == 1
    _assert_exactly_once(outcome, 3_000)
    assert outcome.detail["temp_files_left"] == 0


def test_two_ticks_on_one_cursor_at_once_run_each_range_once(scpro_settings):
    """Two `scpro ingest --once` processes tick together on one instance, so on one cursor."""
    outcome = chaos.concurrent_ticks(scpro_settings, events=400, ranges=4)
    assert outcome.detail["exit_codes"] == [0, 0]
    assert outcome.detail["run_keys"] == 4
    assert outcome.detail["run_keys_run_twice"] == 0
    assert outcome.detail["runs"] == outcome.detail["materializations"] == 4
    _assert_exactly_once(outcome, 400)


def test_twenty_dashboard_sessions_read_complete_versions_while_snapshots_swap(tmp_path):
    from scpro_assets.settings import KafkaSettings, Settings

    settings = Settings(home=tmp_path / "scpro", kafka=KafkaSettings())
    outcome = chaos.readers_while_publishing(settings, sessions=20, publications=4)
    print(f"\n{outcome.fault}: {outcome.figures()}")
    assert outcome.reader_errors == 0, outcome.detail["first_errors"]
    assert outcome.detail["versions_seen"] >= 2
    assert outcome.reads >= 20


def test_daemon_killed_mid_landing_run_then_restarted_lands_everything_once(scpro_settings):
    """`dagster-daemon` (sensors, run queue, run retries) SIGKILLed with its code server and
    the run's process while the run writes: the run is failed by run monitoring (its limit
    scaled down from SCPro's three hours to 15 s) and retried; the restarted daemon lands the
    events produced meanwhile."""
    outcome = chaos.daemon_killed_mid_run(
        scpro_settings, events=2_000, chunk_events=100, whole_group=True, max_runtime_s=15
    )
    print(f"\n{outcome.fault}: {outcome.figures()}")
    assert outcome.detail["killed_mid_write"]
    assert outcome.detail["run_keys_requested_twice"] == 0
    assert outcome.detail["runs"] == {"FAILURE": 1, "SUCCESS": 2}  # killed, its retry, the next
    assert outcome.produced == 4_000
    assert (outcome.lost, outcome.duplicates, outcome.wrong_event) == (0, 0, 0)
    assert outcome.landed + outcome.quarantined == 4_000


def test_a_range_missing_before_landed_ones_is_lag_not_hidden(tmp_path):
    """After a crash the first range may be missing while later ones landed: the landed prefix
    starts at the partition's beginning, so the sensor's `lag_not_landed` shows the hole."""
    from scpro_assets.ingest.landing import OffsetRange, landed_watermarks, partition_dir

    folder = partition_dir(tmp_path, chaos.TOPIC, 0)
    folder.mkdir(parents=True)
    for start, stop in ((2_000, 4_000), (4_000, 4_500)):
        (folder / OffsetRange(chaos.TOPIC, 0, start, stop).file_name).touch()
    (folder / ".payments-p0-000000000000-000000001999.parquet.0a1b.tmp").touch()
    assert landed_watermarks(tmp_path, chaos.TOPIC, {0: 0}) == {0: 0}
    assert landed_watermarks(tmp_path, chaos.TOPIC, {0: 2_000}) == {0: 4_500}
    assert landed_watermarks(tmp_path, chaos.TOPIC, {0: 3_000}) == {0: 4_500}  # retention
    assert landed_watermarks(tmp_path, chaos.TOPIC) == {0: 4_500}
