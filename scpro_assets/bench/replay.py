"""Replay benchmark: our synthetic replay next to a bare kafka-python producer."""

from __future__ import annotations

from scpro_assets.bench.common import bench_settings, timed
from scpro_assets.bench.report import Report
from scpro_assets.settings import Settings


def bench_replay(settings: Settings, report: Report, orders: int) -> None:
    """Issue 2: synthetic replay throughput next to a bare kafka-python producer."""
    from scpro_assets.kafka.clients import ensure_topics, producer
    from scpro_assets.replay import replay
    from scpro_assets.sources.synthetic import SyntheticConfig, generate

    section = f"replay: synthetic source, {orders:,} orders"
    print(f"\n{section}", flush=True)
    run = bench_settings(settings)
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

    _, bare_s = timed(send_all)
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
