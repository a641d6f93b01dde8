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

An event counts as published only once the broker has acknowledged it (``acks=all``: every
in-sync replica has it), through its send's delivery future; one the client or the broker refuses
(a topic that does not exist, a record larger than the topic accepts) is counted as failed with
the reason, so ``published + failed`` is every event the replay read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scpro_assets.settings import KafkaSettings, Settings
from scpro_assets.sources.common import MappingReport, SourceEvent

if TYPE_CHECKING:
    from kafka.producer.future import FutureRecordMetadata

SOURCES = ("dataco", "olist", "synthetic")
#: Longest wait for the last acknowledgements: past the producer's own delivery timeout (120 s),
#: by which it has reported every send as acknowledged or failed.
DELIVERY_WAIT_S = 130.0
#: How long closing waits for a producer whose sends were not all resolved in that time.
STRAGGLER_CLOSE_S = 5.0


@dataclass
class ReplayStats:
    """What a replay published: events the broker acknowledged, and those it never will."""

    published: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    #: Why events failed: ``"<topic>: <error>"`` with the number of events each reason cost.
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Events published (acknowledged by the broker)."""
        return sum(self.published.values())

    @property
    def failed_total(self) -> int:
        """Events refused by the client or the broker: not published."""
        return sum(self.failed.values())

    @property
    def events_per_second(self) -> float:
        """Throughput of the whole replay, including source mapping and serialisation."""
        return self.total / self.seconds if self.seconds else 0.0


class _Acknowledgements:
    """Counts each send's outcome as its delivery future resolves.

    Futures resolve on the producer's I/O thread (or at once, when the client refuses a record
    itself), hence the lock; ``on_acknowledged`` runs there too and must be quick.
    """

    def __init__(
        self,
        stats: ReplayStats,
        on_acknowledged: Callable[[SourceEvent], None] | None,
    ) -> None:
        self.stats = stats
        self.on_acknowledged = on_acknowledged
        self.lock = threading.Lock()
        self.resolved = threading.Condition(self.lock)
        self.pending = 0

    def sent(self, future: FutureRecordMetadata, event: SourceEvent) -> None:
        """Watch one send's future."""
        with self.lock:
            self.pending += 1
        future.add_callback(self._acknowledged, event)
        future.add_errback(self._refused, event)

    def _acknowledged(self, event: SourceEvent, _metadata: object) -> None:
        with self.lock:
            self.stats.published[event.topic] += 1
            self._resolve()
        if self.on_acknowledged is not None:
            self.on_acknowledged(event)

    def _refused(self, event: SourceEvent, error: BaseException) -> None:
        self.failed(event.topic, error)
        with self.lock:
            self._resolve()

    def _resolve(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.resolved.notify_all()

    def wait(self, timeout_s: float) -> None:
        """Wait until every send has been acknowledged or refused, at most ``timeout_s``."""
        with self.lock:
            self.resolved.wait_for(lambda: not self.pending, timeout=timeout_s)

    def failed(self, topic: str, error: BaseException | str, events: int = 1) -> None:
        """Count ``events`` of ``topic`` that will never be published, with the reason."""
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        with self.lock:
            self.stats.failed[topic] += events
            self.stats.errors[f"{topic}: {reason}"] += events


def load_source(
    name: str,
    data_dir: Path | None = None,
    orders: int = 10_000,
    seed: int = 7,
) -> tuple[Iterable[SourceEvent], MappingReport | None, int | None]:
    """Events of a named source, its mapping report (if loaded eagerly) and the event count.

    The DataCo and Olist files are read from ``data_dir``, by default the folder of the
    ``SCPRO_SHARED_DATA`` setting (``../shared/data``).
    """
    shared = Settings.from_env().shared_data
    if name == "dataco":
        from scpro_assets.sources import dataco

        events, report = dataco.load(data_dir or shared / "dataco")
        return events, report, len(events)
    if name == "olist":
        from scpro_assets.sources import olist

        events, report = olist.load(data_dir or shared / "olist")
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
    on_acknowledged: Callable[[SourceEvent], None] | None = None,
) -> ReplayStats:
    """Publish ``events`` (already in event-time order) and wait until the broker has them all.

    ``speed`` is business hours per second, and never ahead of the wall clock (an event is not
    published before its business time); ``None`` publishes as fast as possible. Setting
    ``stop`` ends the replay at once, even in the middle of a wait for an event's time (the
    demo's Ctrl-C): what was sent is flushed, the rest is not published. ``on_event`` is called
    as each event is handed to the producer (its send time), ``on_acknowledged`` once the broker
    has it (on the producer's thread). The stats count acknowledged events as published and
    refused ones as failed, with the reasons; events of a topic missing on the broker fail at
    once instead of each waiting a minute for metadata that never comes.
    """
    from kafka.errors import KafkaError

    from scpro_assets.kafka.clients import existing_topics, producer

    stats = ReplayStats()
    acks = _Acknowledgements(stats, on_acknowledged)
    present = existing_topics(kafka)
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
            if topic not in present:
                acks.failed(event.topic, f"topic {topic!r} does not exist on the broker")
            else:
                try:
                    future = sender.send(topic, key=event.key.encode(), value=event.to_json())
                except KafkaError as error:  # refused by the client itself (size, buffer)
                    acks.failed(event.topic, error)
                else:
                    acks.sent(future, event)
            if on_event is not None:
                on_event(event)
            if bar is not None:
                bar.update(1)
        try:
            sender.flush()
        except KafkaError:
            # kafka-python 3.0's flush gives up on a batch it split after the broker refused it
            # as too large while the halves are still being delivered: their futures decide.
            pass
        acks.wait(DELIVERY_WAIT_S)
    finally:
        sender.close(timeout=STRAGGLER_CLOSE_S if acks.pending else None)
        if bar is not None:
            bar.close()
    if acks.pending:  # not resolved when the producer closed: never acknowledged, not published
        acks.failed("unacknowledged", "no delivery report before the producer closed", acks.pending)
    stats.seconds = time.perf_counter() - started
    return stats
