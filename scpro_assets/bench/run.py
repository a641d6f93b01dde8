"""``make bench``: every benchmark, with figures and side-by-side ratios, as markdown and JSON.

Each benchmark measures our path next to the bare tool it is built on, in the same run on the same
broker, so ratios stay meaningful on any machine. Benchmarks use their own SCPRO_HOME and topic
prefix under ``.scpro/bench`` and never touch the demo's data.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scpro_assets.settings import REPO_ROOT, TOPICS, KafkaSettings, Settings


@dataclass
class Report:
    """Figures collected by the benchmarks."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, section: str, **figures: Any) -> None:
        """Record figures under ``section`` and print them as they come."""
        self.sections.setdefault(section, {}).update(figures)
        for name, value in figures.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else value
            print(f"  {section} | {name}: {shown}", flush=True)

    def markdown(self) -> str:
        """The report as markdown tables, one per section."""
        lines = [
            "# SCPro benchmark report",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({platform.processor() or platform.machine()}, Python {platform.python_version()})",
            "",
        ]
        for section, figures in self.sections.items():
            lines += [f"## {section}", "", "| figure | value |", "|---|---|"]
            for name, value in figures.items():
                shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
                lines.append(f"| {name} | {shown} |")
            lines.append("")
        return "\n".join(lines)


def _bench_settings(base: Settings) -> Settings:
    """A fresh home and topic prefix for one benchmark run, on the configured broker."""
    run = uuid.uuid4().hex[:8]
    home = base.home / "bench" / run
    kafka = base.kafka.model_copy(update={"topic_prefix": f"{base.kafka.topic_prefix}bench-{run}."})
    return base.model_copy(update={"home": home, "kafka": kafka})


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def bench_replay(settings: Settings, report: Report, orders: int) -> None:
    """Issue 2: synthetic replay throughput next to a bare kafka-python producer."""
    from scpro_assets.kafka.clients import ensure_topics, producer
    from scpro_assets.replay import replay
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    section = f"replay: synthetic source, {orders:,} orders"
    print(f"\n{section}", flush=True)
    run = _bench_settings(settings)
    ensure_topics(run.kafka)
    config = SyntheticConfig(orders=orders, seed=11)

    # (a) bare producer: the same messages, generated and serialised beforehand.
    messages = [
        (run.kafka.topic_name("bare_" + e.topic), e.key.encode(), e.to_json())
        for e in generate(config)
    ]
    bare_topics = run.kafka.model_copy(update={"topic_prefix": run.kafka.topic_prefix + "bare_"})
    ensure_topics(bare_topics)
    sender = producer(run.kafka)

    def send_all() -> None:
        for topic, key, value in messages:
            sender.send(topic, key=key, value=value)
        sender.flush()

    _, bare_s = _timed(send_all)
    sender.close()
    # (b) our replay: generation, mapping to contracts, serialisation and publishing.
    stats = replay(generate(config), run.kafka)
    report.add(
        section,
        events=stats.total,
        bare_producer_events_per_s=len(messages) / bare_s,
        replay_events_per_s=stats.events_per_second,
        ratio_replay_to_bare=stats.events_per_second / (len(messages) / bare_s),
    )


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
    run = _bench_settings(settings)
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
        lambda: _timed(lambda: _bare_kafka_python_read(run.kafka))
    )
    assert read == total, f"bare kafka-python consumer read {read} of {total}"
    (read, confluent_s), confluent_cpu = _with_cpu(
        lambda: _timed(lambda: _bare_confluent_read(run.kafka))
    )
    assert read == total, f"bare confluent-kafka consumer read {read} of {total}"
    defs = build_definitions(run)
    run.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(run.dagster_home)) as instance:
        (ticks, ingest_s), ingest_cpu = _with_cpu(
            lambda: _timed(
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
        materializations = [
            r.asset_materialization.metadata
            for topic in TOPICS
            for r in instance.fetch_materializations(
                dg.AssetKey(f"raw_{topic}"), limit=10_000
            ).records
        ]
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


def bench_clean(settings: Settings, report: Report, sizes: tuple[int, ...]) -> None:
    """Issue 4: Spark cleaning and feature-table throughput, and how time grows with volume."""
    from scpro_assets.clean.pipeline import build_entities, build_features, update_event_stores
    from scpro_assets.spark_server import session_remote
    from scpro_assets.testing.offline import synthetic_events, write_raw_lake
    from spark.session import build_spark_session

    remote = session_remote(settings)  # a Connect server when configured or running
    section = f"spark: clean layer on synthetic events ({remote or settings.spark_master})"
    print(f"\n{section}", flush=True)
    spark = build_spark_session(settings.spark_master, remote=remote)
    times = {}
    for size in sizes:
        run = _bench_settings(settings)
        written, _ = write_raw_lake(synthetic_events(size, seed=3), run.raw_dir)
        _update, clean_s = _timed(
            lambda run=run: update_event_stores(spark, run.raw_dir, run.clean_dir)
        )
        build, entities_s = _timed(
            lambda run=run: build_entities(spark, run.clean_dir, run.quarantine_dir)
        )
        (feature_rows, _path), features_s = _timed(
            lambda run=run: build_features(spark, run.clean_dir)
        )
        times[size] = clean_s + entities_s + features_s
        report.add(
            section,
            **{
                f"{size:,} events: raw events read": written,
                f"{size:,} events: cleaning events/s (parse, dedup, entities)": written
                / (clean_s + entities_s),
                f"{size:,} events: feature rows/s": feature_rows / features_s,
                f"{size:,} events: orders": build.rows["cleaned_orders"],
                f"{size:,} events: seconds in all": times[size],
            },
        )
        shutil.rmtree(run.home, ignore_errors=True)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        report.add(
            section,
            **{
                f"time ratio {large:,} / {small:,} events": times[large] / times[small],
                "volume ratio": large / small,
            },
        )


def run_all(
    settings: Settings,
    which: tuple[str, ...],
    replay_orders: int,
    ingest_events: int,
    latency_samples: int,
    clean_sizes: tuple[int, ...] = (100_000, 1_000_000),
    out_dir: Path = REPO_ROOT,
    warehouse_events: int = 1_000_000,
    latency_seconds: float = 1200.0,
    chaos_repetitions: int = 3,
) -> Report:
    """Run the chosen benchmarks and write ``bench-report.md`` and ``bench-report.json``."""
    report = Report()
    if "replay" in which:
        bench_replay(settings, report, replay_orders)
    if "ingest" in which:
        from scpro_assets.bench.landing import bench_landing_runs

        bench_ingest(settings, report, ingest_events, latency_samples)
        bench_landing_runs(settings, report)
    if "clean" in which:
        bench_clean(settings, report, clean_sizes)
    if "models" in which:
        from scpro_assets.bench.models import bench_models

        bench_models(settings, report)
    if "warehouse" in which or "dashboard" in which:
        from scpro_assets.bench.warehouse import bench_warehouse

        def dashboard(run: Settings, label: str) -> None:
            if "dashboard" in which:
                from scpro_assets.bench.dashboard import bench_dashboard

                bench_dashboard(run.home, report, label)

        bench_warehouse(
            settings, report, synthetic_events=warehouse_events, after_publish=dashboard
        )
    if "latency" in which:
        from scpro_assets.bench.latency import bench_event_to_dashboard

        bench_event_to_dashboard(settings, report, steady_seconds=latency_seconds)
    if "chaos" in which:
        from scpro_assets.bench.chaos import bench_chaos

        bench_chaos(settings, report, repetitions=chaos_repetitions)
    (out_dir / "bench-report.md").write_text(report.markdown())
    (out_dir / "bench-report.json").write_text(json.dumps(report.sections, indent=2, default=str))
    return report
