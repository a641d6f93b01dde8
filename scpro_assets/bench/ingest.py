"""Ingest benchmark: landing Kafka to Parquet next to bare consumers, and produce-to-file latency.

Landing's own runs under a stream are measured by :mod:`scpro_assets.bench.landing`.
"""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scpro_assets.bench.common import bench_settings, landing_metadata, timed
from scpro_assets.bench.report import Report
from scpro_assets.settings import TOPICS, KafkaSettings, Settings


def _read_every_event(
    kafka: KafkaSettings,
    assign: Callable[[list[tuple[str, int]]], None],
    read: Callable[[int], int],
) -> int:
    """Read the four topics from their beginning with a bare client; the number of records.

    ``assign(partitions)`` points the client at every ``(topic_name, partition)`` from offset 0
    at once; ``read(at_most)`` fetches one batch and returns how many records it held.
    """
    from scpro_assets.kafka.clients import end_offsets

    partitions, want = [], 0
    for topic in TOPICS:
        offsets = end_offsets(kafka, topic)
        partitions += [(kafka.topic_name(topic), p) for p in sorted(offsets)]
        want += sum(end for _b, end in offsets.values())
    assign(partitions)
    got = 0
    while got < want:
        got += read(want - got)
    return got


def _bare_kafka_python_read(kafka: KafkaSettings) -> int:
    """Issue 3's baseline: kafka-python reads every event of the four topics and does nothing."""
    from kafka import TopicPartition

    from scpro_assets.kafka.clients import consumer

    reader = consumer(kafka)

    def assign(partitions: list[tuple[str, int]]) -> None:
        tps = [TopicPartition(name, p) for name, p in partitions]
        reader.assign(tps)
        for tp in tps:
            reader.seek(tp, 0)

    def read(_at_most: int) -> int:
        batch = reader.poll(timeout_ms=1000, max_records=20_000)
        return sum(len(records) for records in batch.values())

    try:
        return _read_every_event(kafka, assign, read)
    finally:
        reader.close()


def _bare_confluent_read(kafka: KafkaSettings) -> int:
    """The client landing reads with (librdkafka, landing's own consumer settings), doing nothing.

    Landing over this one is our overhead on the same client: validation, Arrow, Parquet and
    Dagster's runs.
    """
    from confluent_kafka import KafkaError, TopicPartition

    from scpro_assets.ingest.landing import CHUNK_EVENTS
    from scpro_assets.kafka.clients import range_consumer

    reader = range_consumer(kafka)
    ends_to_come = [0]  # end-of-partition events still due from the assigned partitions

    def assign(partitions: list[tuple[str, int]]) -> None:
        reader.assign([TopicPartition(name, p, 0) for name, p in partitions])
        ends_to_come[0] = len(partitions)

    def read(at_most: int) -> int:
        # consume() waits for all it is asked for, end-of-partition events included: never ask
        # past the records and ends still to come, or the read would end on a 1 s timeout.
        wanted = min(at_most + ends_to_come[0], CHUNK_EVENTS)
        batch = reader.consume(num_messages=wanted, timeout=1.0)
        errors = [m.error() for m in batch if m.error() is not None]
        ends_to_come[0] -= sum(e.code() == KafkaError._PARTITION_EOF for e in errors)
        return len(batch) - len(errors)

    try:
        return _read_every_event(kafka, assign, read)
    finally:
        reader.close()


def _with_cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the CPU seconds it took, its worker processes' included once they exit."""

    def cpu() -> float:
        own, kids = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    started = cpu()
    value = fn()
    return value, cpu() - started


def bench_ingest(
    settings: Settings, report: Report, events: int, latency_samples: int, workers: int = 2
) -> None:
    """Issue 3: landing 1M events as Parquet next to bare consumers; produce-to-file latency.

    Two baselines read the same events and do nothing: kafka-python (the issue's ratio) and
    librdkafka with landing's own settings (what our landing adds on the same client).
    """
    import dagster as dg
    import pyarrow.parquet as pq

    from scpro_assets.definitions.platform import build_definitions
    from scpro_assets.ingest.landing import CHUNK_EVENTS
    from scpro_assets.kafka.clients import admin, ensure_topics, producer
    from scpro_assets.replay import replay
    from scpro_assets.runner import ingest_once, ingest_until_caught_up
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    section = f"ingest: {events:,} synthetic events, Kafka to Parquet"
    print(f"\n{section}", flush=True)
    run = bench_settings(settings)
    ensure_topics(run.kafka)

    def limited():
        for i, event in enumerate(generate(SyntheticConfig(orders=events, seed=5))):
            if i >= events:
                return
            yield event

    produced = replay(limited(), run.kafka)
    total = produced.total

    load_before = os.getloadavg()[0]
    (read, kafka_python_s), kafka_python_cpu = _with_cpu(
        lambda: timed(lambda: _bare_kafka_python_read(run.kafka))
    )
    assert read == total, f"bare kafka-python consumer read {read} of {total}"
    (read, confluent_s), confluent_cpu = _with_cpu(
        lambda: timed(lambda: _bare_confluent_read(run.kafka))
    )
    assert read == total, f"bare confluent-kafka consumer read {read} of {total}"
    defs = build_definitions(run)
    run.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(run.dagster_home)) as instance:
        (ticks, ingest_s), ingest_cpu = _with_cpu(
            lambda: timed(
                lambda: ingest_until_caught_up(defs, instance, settings=run, workers=workers)
            )
        )
        load_after = os.getloadavg()[0]
        runs = sum(len(t.succeeded) for t in ticks)
        failed = sum(len(t.failed) for t in ticks)
        landed = sum(pq.ParquetFile(f).metadata.num_rows for f in run.raw_dir.rglob("*.parquet"))
        quarantined = sum(
            pq.ParquetFile(f).metadata.num_rows for f in run.quarantine_dir.rglob("*.parquet")
        )
        parquet_mb = sum(f.stat().st_size for f in run.raw_dir.rglob("*.parquet")) / 1e6
        # Seconds the runs spent landing (reading, validating, writing), from each range's
        # materialization: the rest of the workers' time is Dagster's per-run cost (run record,
        # a new event-log shard, ~14 stored events), which only bigger ranges amortise.
        materializations = landing_metadata(instance)
        landing_s = sum(float(m["seconds"].value) for m in materializations)
        stages: Counter[str] = Counter()
        for m in materializations:
            stages.update(m["seconds_by_stage"].value)
        ingest_rate = total / ingest_s
        report.add(
            section,
            events=total,
            load_average_1min_before=load_before,
            load_average_1min_after_ingest=load_after,
            ingest_worker_processes=workers,
            consumer_settings="kafka-python: scpro_assets.kafka.clients.consumer() "
            "(fetch_max_bytes 32 MiB, max_partition_fetch_bytes 8 MiB), poll(max_records=20000); "
            "confluent-kafka and landing: scpro_assets.kafka.clients.range_consumer(), "
            f"consume(num_messages<={CHUNK_EVENTS})",
            bare_kafka_python_events_per_s=total / kafka_python_s,
            bare_confluent_kafka_events_per_s=total / confluent_s,
            ingest_events_per_s=ingest_rate,
            ratio_ingest_to_bare_kafka_python=ingest_rate / (total / kafka_python_s),
            ratio_ingest_to_bare_confluent_kafka=ingest_rate / (total / confluent_s),
            # CPU per event (all processes of each path, the broker's excluded): what the rates
            # above become when other work on the machine takes cores away from our two workers.
            bare_kafka_python_cpu_us_per_event=kafka_python_cpu / total * 1e6,
            bare_confluent_kafka_cpu_us_per_event=confluent_cpu / total * 1e6,
            ingest_cpu_us_per_event=ingest_cpu / total * 1e6,
            ingest_runs=runs,
            failed_runs=failed,
            max_events_per_run=defs.resources["kafka"].max_events_per_run,  # type: ignore[union-attr]
            landing_seconds_in_runs=landing_s,
            landing_events_per_s_per_worker=total / landing_s if landing_s else 0.0,
            worker_seconds_not_landing=max(0.0, ingest_s * workers - landing_s),
            landing_seconds_by_stage=", ".join(f"{k} {v:.1f}" for k, v in stages.most_common()),
            landed=landed,
            quarantined=quarantined,
            accounted_exactly=landed + quarantined == total,
            parquet_mb=parquet_mb,
        )

        # Latency: a steady trickle of events, the sensor ticking on its normal interval.
        interval = 5.0
        stop = threading.Event()

        def daemon_like() -> None:
            while not stop.is_set():
                ingest_once(defs, instance, topics=("payments",))
                stop.wait(interval)

        ticker = threading.Thread(target=daemon_like, daemon=True)
        ticker.start()
        latencies = []
        sender = producer(run.kafka)
        try:
            for i in range(latency_samples):
                from scpro_assets.sources.common import make_event

                event = make_event(
                    "bench",
                    "payment_captured",
                    datetime.now(UTC),
                    (run.home.name, i),
                    f"l{i}",
                    order_id=f"latency-{i}",
                    payment_type="card",
                    amount=1.0,
                )
                before = set(run.raw_dir.rglob("payments/*/*.parquet"))
                sent = time.perf_counter()
                replay([event], run.kafka)
                while True:
                    now = set(run.raw_dir.rglob("payments/*/*.parquet"))
                    if now - before:
                        latencies.append(time.perf_counter() - sent)
                        break
                    time.sleep(0.05)
                time.sleep(1.3)  # land at different phases of the tick interval
        finally:
            stop.set()
            ticker.join(timeout=60)
            sender.close()
        latencies.sort()
        report.add(
            section,
            latency_samples=len(latencies),
            sensor_interval_s=interval,
            produce_to_parquet_latency_p50_s=latencies[len(latencies) // 2],
            produce_to_parquet_latency_max_s=latencies[-1],
        )
    shutil.rmtree(run.home, ignore_errors=True)
    # A 1M-event run leaves ~0.5 GB on the broker: drop the run's own topics with its home.
    client = admin(run.kafka)
    try:
        client.delete_topics([run.kafka.topic_name(t) for t in TOPICS])
    finally:
        client.close()
