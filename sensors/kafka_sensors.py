"""One sensor per Kafka topic: ask for runs that land new offset ranges, exactly once.

The cursor is ``{partition: next_offset}``: the first offset not yet *requested*. Each tick reads
the topic's end offsets, cuts the new offsets into ranges of at most ``max_events_per_run``
(backpressure) and asks for one run per range with ``run_key = topic-partition-start-last``.
Dagster never starts two runs with one run key, so a tick evaluated twice on the same cursor asks
for nothing new; a failed run is retried by Dagster's run retries (or ``scpro ingest --once``) with
the same range, and landing rewrites the same files. Offsets are never committed to Kafka: unlike
the public demos, a failed run cannot lose messages.

Each tick also records an observation of the topic's lag on the ``kafka/<topic>`` asset.
"""

import json
import time
from dataclasses import dataclass

import dagster as dg

from scpro_assets.ingest.landing import OffsetRange, landed_watermarks
from scpro_assets.instance import runs_in_flight
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import TOPICS

#: Where ``scpro ingest`` keeps a sensor's cursor when the daemon has not created its state yet.
CURSOR_KV_PREFIX = "scpro/sensor_cursor/"


def sensor_name(topic: str) -> str:
    """Name of the sensor for ``topic``."""
    return f"kafka_{topic}_sensor"


def job_name(topic: str) -> str:
    """Name of the job that lands ranges of ``topic``."""
    return f"land_{topic}"


def parse_cursor(cursor: str | None) -> dict[int, int]:
    """``{partition: next_offset}`` from the JSON cursor (empty when there is none)."""
    if not cursor:
        return {}
    return {int(p): int(o) for p, o in json.loads(cursor).items()}


def dump_cursor(cursor: dict[int, int]) -> str:
    """JSON cursor with partitions in order."""
    return json.dumps({str(p): o for p, o in sorted(cursor.items())})


@dataclass(frozen=True)
class RangePlan:
    """What one tick asks for, and the cursor after it."""

    ranges: list[OffsetRange]
    cursor: dict[int, int]
    pending_after: int


def plan_ranges(
    topic: str,
    cursor: dict[int, int],
    offsets: dict[int, tuple[int, int]],
    max_events_per_run: int,
    max_runs_per_tick: int,
) -> RangePlan:
    """Cut the offsets past ``cursor`` into ranges; move the cursor only over requested ranges.

    A partition seen for the first time starts at its beginning offset. Work is spread across
    partitions round-robin so one busy partition cannot starve the others.
    """
    if max_events_per_run < 1 or max_runs_per_tick < 1:
        raise ValueError("max_events_per_run and max_runs_per_tick must be positive")
    new_cursor = dict(cursor)
    for partition, (beginning, _end) in offsets.items():
        new_cursor.setdefault(partition, beginning)
    ranges: list[OffsetRange] = []
    progressed = True
    while len(ranges) < max_runs_per_tick and progressed:
        progressed = False
        for partition in sorted(offsets):
            if len(ranges) >= max_runs_per_tick:
                break
            start, end = new_cursor[partition], offsets[partition][1]
            if start >= end:
                continue
            stop = min(end, start + max_events_per_run)
            ranges.append(OffsetRange(topic, partition, start, stop))
            new_cursor[partition] = stop
            progressed = True
    pending = sum(max(0, end - new_cursor[p]) for p, (_b, end) in offsets.items())
    return RangePlan(ranges, new_cursor, pending)


def range_run_request(rng: OffsetRange) -> dg.RunRequest:
    """The run request that lands ``rng``."""
    return dg.RunRequest(
        run_key=rng.run_key,
        job_name=job_name(rng.topic),
        run_config={
            "ops": {
                f"raw_{rng.topic}": {
                    "config": {"partition": rng.partition, "start": rng.start, "stop": rng.stop}
                }
            }
        },
        tags={
            "scpro/topic": rng.topic,
            "scpro/partition": str(rng.partition),
            "scpro/range": f"{rng.start}-{rng.last}",
            "dagster/max_retries": "3",
            "dagster/retry_strategy": "ALL_STEPS",
        },
    )


def stored_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    """The cursor ``scpro ingest`` left in the instance's key-value store, if any."""
    key = CURSOR_KV_PREFIX + name
    return instance.run_storage.get_cursor_values({key}).get(key)


def build_kafka_sensor(topic: str, minimum_interval_seconds: int = 5) -> dg.SensorDefinition:
    """The sensor that turns new offsets of ``topic`` into range runs."""

    @dg.sensor(
        name=sensor_name(topic),
        job_name=job_name(topic),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Polls the end offsets of Kafka topic '{topic}' and requests one run per new offset "
            "range (at most max_events_per_run events each). Cursor: {partition: next_offset}."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        started = time.monotonic()
        raw_cursor = context.cursor or stored_cursor(context.instance, sensor_name(topic))
        cursor = parse_cursor(raw_cursor)
        try:
            offsets = kafka.end_offsets(topic)
        except Exception as error:  # the broker may be restarting: skip, keep the cursor
            return dg.SkipReason(
                f"Kafka at {kafka.bootstrap_servers} did not answer ({type(error).__name__}: "
                f"{error}); cursor kept at {dump_cursor(cursor)}"
            )
        if not offsets:
            return dg.SkipReason(f"topic '{kafka.topic_name(topic)}' does not exist yet")
        in_flight = runs_in_flight(context.instance, {"scpro/topic": topic})
        held_back = in_flight >= kafka.max_runs_in_flight
        plan = (
            RangePlan([], cursor, 0)
            if held_back
            else plan_ranges(
                topic, cursor, offsets, kafka.max_events_per_run, kafka.max_runs_per_tick
            )
        )
        marks = landed_watermarks(lake.raw_dir, topic, {p: b for p, (b, _e) in offsets.items()})
        end_total = sum(end for _b, end in offsets.values())
        unlanded = sum(max(0, end - marks.get(p, b)) for p, (b, end) in offsets.items())
        unrequested = sum(max(0, end - cursor.get(p, b)) for p, (b, end) in offsets.items())
        observation = dg.AssetObservation(
            asset_key=dg.AssetKey(["kafka", topic]),
            metadata={
                "end_offsets": dg.MetadataValue.json({str(p): e for p, (_b, e) in offsets.items()}),
                "events_in_topic": end_total,
                "lag_not_landed": unlanded,
                "lag_not_requested": unrequested,
                "partitions": len(offsets),
                "runs_in_flight": in_flight,
            },
        )
        if held_back:
            # Backpressure: let the queue drain; the next tick asks for bigger ranges instead of
            # piling up small runs that each pay a process start.
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"{in_flight} landing runs of '{topic}' are queued or running "
                    f"(limit {kafka.max_runs_in_flight}); cursor kept at {dump_cursor(cursor)}"
                ),
                cursor=dump_cursor(cursor) if cursor else None,
                asset_events=[observation],
            )
        if not plan.ranges:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no new events on '{topic}' (end offsets "
                    f"{ {p: e for p, (_b, e) in offsets.items()} }, lag not landed {unlanded})"
                ),
                cursor=dump_cursor(plan.cursor),
                asset_events=[observation],
            )
        context.log.info(
            f"{topic}: requesting {len(plan.ranges)} ranges "
            f"({sum(r.size for r in plan.ranges)} events), {plan.pending_after} left for later "
            f"ticks; tick took {time.monotonic() - started:.2f}s"
        )
        return dg.SensorResult(
            run_requests=[range_run_request(r) for r in plan.ranges],
            cursor=dump_cursor(plan.cursor),
            asset_events=[observation],
        )

    return _sensor


kafka_sensors = [build_kafka_sensor(topic) for topic in TOPICS]
