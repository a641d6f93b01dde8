"""Replay: publish source events to Kafka in event-time order, keyed by order id.

Speed is either as fast as possible (``speed=None``) or N business hours per wall-clock second,
so a month of history can be watched flowing through the platform in minutes. Replaying the same
source twice publishes the same event ids; downstream deduplication keys on them.

Records are produced without a timestamp of their own, so Kafka stamps them with the time they
are produced: a replayed event is older than its record, as history is. Landing quarantines an
event dated more than a tolerance after its record (``event_time in the future``), so a paced
replay never publishes an event before its business time: a stream that catches up with the
present (the synthetic source, after a while at a demo's pace) goes on in real time, as a live
producer would. Stamping records with the business time instead would make the broker delete
old history at once (retention counts from the record's timestamp) and refuse future ones.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scpro_assets.settings import REPO_ROOT, KafkaSettings
from scpro_assets.sources.common import MappingReport, SourceEvent

SOURCES = ("dataco", "olist", "synthetic")
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass
class ReplayStats:
    """What a replay published."""

    published: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Events published."""
        return sum(self.published.values())

    @property
    def events_per_second(self) -> float:
        """Throughput of the whole replay, including source mapping and serialisation."""
        return self.total / self.seconds if self.seconds else 0.0


def load_source(
    name: str,
    data_dir: Path | None = None,
    orders: int = 10_000,
    seed: int = 7,
) -> tuple[Iterable[SourceEvent], MappingReport | None, int | None]:
    """Events of a named source, its mapping report (if loaded eagerly) and the event count."""
    if name == "dataco":
        from scpro_assets.sources import dataco

        events, report = dataco.load(data_dir or DEFAULT_DATA_DIR / "dataco")
        return events, report, len(events)
    if name == "olist":
        from scpro_assets.sources import olist

        events, report = olist.load(data_dir or DEFAULT_DATA_DIR / "olist")
        return events, report, len(events)
    if name == "synthetic":
        from scpro_assets.sources import synthetic

        return synthetic.generate(synthetic.SyntheticConfig(orders=orders, seed=seed)), None, None
    raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")


def replay(
    events: Iterable[SourceEvent],
    kafka: KafkaSettings,
    speed: float | None = None,
    progress: bool = False,
    total: int | None = None,
    on_event: Callable[[SourceEvent], None] | None = None,
    stop: threading.Event | None = None,
) -> ReplayStats:
    """Publish ``events`` (already in event-time order) and wait until the broker has them all.

    ``speed`` is business hours per second, and never ahead of the wall clock (an event is not
    published before its business time); ``None`` publishes as fast as possible. Setting
    ``stop`` ends the replay at once, even in the middle of a wait for an event's time (the
    demo's Ctrl-C): what was sent is flushed, the rest is not published.
    """
    from scpro_assets.kafka.clients import producer

    stats = ReplayStats()
    sender = producer(kafka)
    names = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="ev", unit_scale=True, desc="replay", mininterval=0.5)
    started = time.perf_counter()
    first_time = None
    try:
        for event in events:
            if speed is not None:
                if first_time is None:
                    first_time = event.event_time
                due = (event.event_time - first_time).total_seconds() / (speed * 3600.0)
                wait = max(
                    due - (time.perf_counter() - started),
                    (event.event_time - datetime.now(UTC)).total_seconds(),
                )
                if wait > 0 and stop is not None:
                    if stop.wait(wait):
                        break
                elif wait > 0:
                    time.sleep(wait)
            if stop is not None and stop.is_set():
                break
            topic = names.get(event.topic)
            if topic is None:
                topic = names[event.topic] = kafka.topic_name(event.topic)
            sender.send(topic, key=event.key.encode(), value=event.to_json())
            stats.published[event.topic] += 1
            if on_event is not None:
                on_event(event)
            if bar is not None:
                bar.update(1)
        sender.flush()
    finally:
        sender.close()
        if bar is not None:
            bar.close()
    stats.seconds = time.perf_counter() - started
    return stats
