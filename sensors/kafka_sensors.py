"""One sensor per Kafka topic: ask for runs that land new offset ranges, exactly once.

The cursor is ``{partition: next_offset}``: the first offset not yet *requested*. Each tick reads
the topic's end offsets and asks for one run that lands the new offsets of every partition, one
range per partition, with a run key that names every range (``orders-0-100-199+1-40-79``;
:mod:`scpro_assets.ingest.runs`), so the run rate does not grow with partitions. A run holds at
most ``max_events_per_run`` events (backpressure), shared fairly by the partitions; only a backlog
bigger than that takes several runs in one tick. Dagster never starts two runs with one run key,
so a tick evaluated twice on the same cursor asks for nothing new; a failed run is retried by
Dagster's run retries (or ``scpro ingest --once``) with the same ranges, and landing skips the
ranges already landed. Offsets are never committed to Kafka: unlike the public demos, a failed run
cannot lose messages.

Each tick also records an observation of the topic's lag on the ``kafka/<topic>`` asset, and
looks for gaps (:mod:`scpro_assets.ingest.gaps`): the cursor also keeps every requested range open
until its raw file exists; a range unlanded past the deadline fails the raw asset's
``requested_ranges_landed`` check, is requested again with backoff, and raises an alert when it
keeps failing. An overdue range is requested again on its own (``orders-0-100-199-retry2``),
whatever run it was first requested in.

**Landing paced by the cycle.** Raw ranges are only read by the next automation run (the clean
layer onwards, :mod:`scpro_assets.automation`), which starts once the one in flight has ended.
Landing every few seconds while a cycle runs buys no freshness, only processes: measured under
the latency benchmark's stream, 771 landing runs an hour (one per topic every ~19 s), each a
process importing the code location, on the same two cores as the cycle, whose Spark steps then
took 3-4 times as long as on an idle box. So while an automation run is in flight, a topic asks
for a landing run of new offsets at most every ``landing_pace_seconds`` (120 s), or at once when a
whole run's worth (``max_events_per_run``) waits; once the automation is idle, every tick lands
what is new, and the next cycle takes it. Retries of overdue ranges are never held. ``scpro
ingest`` (:mod:`scpro_assets.runner`) is a person asking to land now: it is not paced
(:func:`unpaced`).
"""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from scpro_assets.alerts import send_alert
from scpro_assets.automation import AUTOMATION_RUN_TAGS
from scpro_assets.ingest.gaps import (
    CHECK_NAME,
    GapPolicy,
    GapReview,
    SensorState,
    check_evaluation,
    dump_state,
    parse_state,
    review_gaps,
    track_requested,
    write_gap_status,
)
from scpro_assets.ingest.landing import OffsetRange, landed_ranges, landed_watermarks
from scpro_assets.ingest.runs import TOPIC_TAG, ranges_in_tags, run_config, run_key, run_tags
from scpro_assets.instance import IN_FLIGHT, runs_in_flight
from scpro_assets.resources import KafkaResource, LakeResource
from scpro_assets.settings import TOPICS

#: Where ``scpro ingest`` keeps a sensor's cursor when the daemon has not created its state yet.
CURSOR_KV_PREFIX = "scpro/sensor_cursor/"

#: Whether the sensors pace landing while a cycle runs (see the module docstring).
_PACED: ContextVar[bool] = ContextVar("scpro_landing_paced", default=True)


@contextmanager
def unpaced() -> Iterator[None]:
    """Evaluate the Kafka sensors without pacing: every tick asks for what is new."""
    token = _PACED.set(False)
    try:
        yield
    finally:
        _PACED.reset(token)


def paced_until(
    requested_at: float | None,
    ticked_at: float,
    waiting: int,
    cycle_in_flight: bool,
    kafka: KafkaResource,
) -> float | None:
    """When the tick may next ask for new offsets, if it must wait (else ``None``).

    It waits only while an automation run is in flight, less than ``landing_pace_seconds`` after
    its last request, with fewer than ``max_events_per_run`` events waiting.
    """
    if not (_PACED.get() and cycle_in_flight and kafka.landing_pace_seconds > 0):
        return None
    if requested_at is None or waiting >= kafka.max_events_per_run:
        return None
    due = requested_at + kafka.landing_pace_seconds
    return due if ticked_at < due else None


def sensor_name(topic: str) -> str:
    """Name of the sensor for ``topic``."""
    return f"kafka_{topic}_sensor"


def job_name(topic: str) -> str:
    """Name of the job that lands ranges of ``topic``."""
    return f"land_{topic}"


def parse_cursor(cursor: str | None) -> dict[int, int]:
    """``{partition: next_offset}`` from the JSON cursor (empty when there is none).

    Reads both the plain cursor of older versions and the one with open ranges.
    """
    return parse_state(cursor).next_offsets


def dump_cursor(cursor: dict[int, int]) -> str:
    """JSON cursor with partitions in order."""
    return json.dumps({str(p): o for p, o in sorted(cursor.items())})


@dataclass(frozen=True)
class RunPlan:
    """What one tick asks for: the ranges of each landing run, and the cursor after them."""

    runs: list[list[OffsetRange]]
    cursor: dict[int, int]
    pending_after: int

    @property
    def ranges(self) -> list[OffsetRange]:
        """Every range of every run."""
        return [rng for run in self.runs for rng in run]


def fair_shares(pending: dict[int, int], budget: int) -> dict[int, int]:
    """Events each partition gets of ``budget``: as even as their ``pending`` counts allow.

    Water-filling: a partition with less pending than an even share takes all of it, and what it
    leaves goes to the others, so one busy partition cannot starve the rest of a run.
    """
    shares = dict.fromkeys(pending, 0)
    left = {p: n for p, n in sorted(pending.items()) if n > 0}
    while left and budget > 0:
        share = max(1, budget // len(left))
        for partition in list(left):
            take = min(left[partition], share, budget)
            shares[partition] += take
            left[partition] -= take
            budget -= take
            if not left[partition]:
                del left[partition]
            if not budget:
                break
    return {p: n for p, n in shares.items() if n}


def plan_runs(
    topic: str,
    cursor: dict[int, int],
    offsets: dict[int, tuple[int, int]],
    max_events_per_run: int,
    max_runs_per_tick: int,
) -> RunPlan:
    """Plan the tick's landing runs; move the cursor only over the ranges requested.

    One run covers the new offsets of every partition, a range each, up to
    ``max_events_per_run`` events shared by :func:`fair_shares`. Under a stream that is one run per
    tick; a backlog takes more runs (at most ``max_runs_per_tick``), the rest waits for the next
    ticks. A partition seen for the first time starts at its beginning offset.
    """
    if max_events_per_run < 1 or max_runs_per_tick < 1:
        raise ValueError("max_events_per_run and max_runs_per_tick must be positive")
    new_cursor = dict(cursor)
    for partition, (beginning, _end) in offsets.items():
        new_cursor.setdefault(partition, beginning)
    runs: list[list[OffsetRange]] = []
    while len(runs) < max_runs_per_tick:
        pending = {p: end - new_cursor[p] for p, (_b, end) in offsets.items()}
        shares = fair_shares(pending, max_events_per_run)
        if not shares:
            break
        run = []
        for partition, events in sorted(shares.items()):
            start = new_cursor[partition]
            run.append(OffsetRange(topic, partition, start, start + events))
            new_cursor[partition] = start + events
        runs.append(run)
    pending_after = sum(max(0, end - new_cursor[p]) for p, (_b, end) in offsets.items())
    return RunPlan(runs, new_cursor, pending_after)


def now() -> float:
    """The sensors' clock (epoch seconds); tests move it instead of sleeping."""
    return time.time()


def landing_run_request(ranges: list[OffsetRange], attempt: int = 1) -> dg.RunRequest:
    """The run request that lands ``ranges`` (one topic, one range per partition).

    Its run key, tags and config name every range (:mod:`scpro_assets.ingest.runs`); a later
    attempt's run key still names its ranges.
    """
    return dg.RunRequest(
        run_key=run_key(ranges, attempt),
        job_name=job_name(ranges[0].topic),
        run_config=run_config(ranges),
        tags={
            **run_tags(ranges, attempt),
            "dagster/max_retries": "3",
            "dagster/retry_strategy": "ALL_STEPS",
        },
    )


def stored_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    """The cursor ``scpro ingest`` left in the instance's key-value store, if any."""
    key = CURSOR_KV_PREFIX + name
    return instance.run_storage.get_cursor_values({key}).get(key)


def daemon_sensor_state(instance: dg.DagsterInstance, name: str) -> Any | None:
    """The daemon's stored state of sensor ``name`` (its instigator state), if it has one.

    Dagster offers no public call for a sensor's cursor outside its CLI and GraphQL API, so the
    state is found through the instance's own methods and read by its fields (``name``,
    ``instigator_type``, ``instigator_data.cursor``), never by importing Dagster's private
    modules: a Dagster that renames them fails ``tests/test_ingest.py``'s daemon-cursor test,
    not an import of every code location.
    """
    for state in instance.all_instigator_state():
        if state.name == name and state.instigator_type.value == "SENSOR":
            return state
    return None


def current_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    """The sensor's cursor as the daemon keeps it, else as ``scpro ingest`` stored it."""
    state = daemon_sensor_state(instance, name)
    cursor = getattr(state.instigator_data, "cursor", None) if state is not None else None
    return cursor or stored_cursor(instance, name)


def build_gap_check(topic: str) -> dg.AssetChecksDefinition:
    """``raw_<topic>``'s ``requested_ranges_landed`` check, to run by hand.

    The topic's sensor evaluates the same check on every tick; run by hand, it reads the sensor's
    cursor and decides nothing (no retry, no alert).
    """

    @dg.asset_check(
        asset=dg.AssetKey(f"raw_{topic}"),
        name=CHECK_NAME,
        description=(
            "Fails while offsets the sensor requested stay without a raw file past the gap "
            "deadline (SCPRO_GAP_DEADLINE_SECONDS); lists the unlanded ranges with their age "
            "and attempts. Evaluated by the topic's sensor on every tick."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        kafka: KafkaResource,
        lake: LakeResource,
        gaps: GapPolicy,
    ) -> dg.AssetCheckResult:
        policy = gaps.settings()
        review = review_gaps(
            topic,
            parse_state(current_cursor(context.instance, sensor_name(topic))),
            kafka.end_offsets(topic),
            landed_ranges(lake.raw_dir, topic),
            now(),
            policy,
            lambda _rng: True,  # as if every range were in flight: decide no retry, no alert
            kafka.max_events_per_run,
        )
        evaluation = check_evaluation(review, policy)
        return dg.AssetCheckResult(
            passed=evaluation.passed,
            severity=evaluation.severity,
            description=evaluation.description,
            metadata=evaluation.metadata,
        )

    return _check


def landing_runs_in_flight(instance: dg.DagsterInstance, topic: str) -> list[dg.DagsterRun]:
    """The landing runs of ``topic`` that are queued or running (any attempt, any retry)."""
    return list(
        instance.get_runs(filters=dg.RunsFilter(tags={TOPIC_TAG: topic}, statuses=IN_FLIGHT))
    )


def _ranges_held(runs: list[dg.DagsterRun]) -> Callable[[OffsetRange], bool]:
    """Whether one of ``runs`` lands a range (its tags name every range it lands)."""
    held = {rng for run in runs for rng in ranges_in_tags(run.tags)}
    return lambda rng: rng in held


def _report_gaps(context: dg.SensorEvaluationContext, review: GapReview, home: Path) -> None:
    """Send the review's alerts and record the gaps for the dashboard; never fail the tick.

    A full disk or an unwritable outbox is logged: the check and the retries still go out.
    """
    try:
        for alert in review.alerts:
            if send_alert(alert, home) is not None:
                context.log.error(f"alert {alert.id}: {alert.title}")
        write_gap_status(home, review)
    except OSError as error:
        context.log.error(f"could not write the alert outbox under {home}: {error}")


def build_kafka_sensor(topic: str, minimum_interval_seconds: int = 5) -> dg.SensorDefinition:
    """The sensor that turns new offsets of ``topic`` into range runs, and heals gaps."""

    @dg.sensor(
        name=sensor_name(topic),
        job_name=job_name(topic),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Polls the end offsets of Kafka topic '{topic}' and requests one run per tick that "
            "lands the new offsets of every partition, a range each (at most max_events_per_run "
            "events a run; run key and tags name every range); requests ranges that stay unlanded "
            f"again, with backoff, evaluates raw_{topic}'s requested_ranges_landed check and "
            "alerts on ranges that keep failing. Cursor: {next: {partition: next_offset}, "
            "open: {range: request times and attempts}}."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        lake: LakeResource,
        gaps: GapPolicy,
    ) -> dg.SensorResult | dg.SkipReason:
        started = time.monotonic()
        raw_cursor = context.cursor or stored_cursor(context.instance, sensor_name(topic))
        state = parse_state(raw_cursor)
        cursor = state.next_offsets
        try:
            offsets = kafka.end_offsets(topic)
        except Exception as error:  # the broker may be restarting: skip, keep the cursor
            return dg.SkipReason(
                f"Kafka at {kafka.bootstrap_servers} did not answer ({type(error).__name__}: "
                f"{error}); cursor kept at {dump_cursor(cursor)}"
            )
        if not offsets:
            return dg.SkipReason(f"topic '{kafka.topic_name(topic)}' does not exist yet")
        flying = landing_runs_in_flight(context.instance, topic)
        in_flight = len(flying)
        held_back = in_flight >= kafka.max_runs_in_flight
        unrequested = sum(max(0, end - cursor.get(p, b)) for p, (b, end) in offsets.items())
        ticked_at = now()
        paced = None
        if not held_back and unrequested:
            cycle = runs_in_flight(context.instance, AUTOMATION_RUN_TAGS) > 0
            paced = paced_until(state.requested_at, ticked_at, unrequested, cycle, kafka)
        plan = (
            RunPlan([], cursor, 0)
            if held_back or paced is not None
            else plan_runs(
                topic, cursor, offsets, kafka.max_events_per_run, kafka.max_runs_per_tick
            )
        )
        landed = landed_ranges(lake.raw_dir, topic)
        marks = landed_watermarks(lake.raw_dir, topic, {p: b for p, (b, _e) in offsets.items()})
        end_total = sum(end for _b, end in offsets.values())
        unlanded = sum(max(0, end - marks.get(p, b)) for p, (b, end) in offsets.items())
        policy = gaps.settings()
        review = review_gaps(
            topic,
            state,
            offsets,
            landed,
            ticked_at,
            policy,
            _ranges_held(flying),
            kafka.max_events_per_run,
        )
        _report_gaps(context, review, Path(lake.home))
        new_cursor = dump_state(
            SensorState(
                plan.cursor,
                track_requested(review.open_ranges, plan.ranges, ticked_at),
                ticked_at if plan.runs else state.requested_at,
            )
        )
        observation = dg.AssetObservation(
            asset_key=dg.AssetKey(["kafka", topic]),
            metadata={
                "end_offsets": dg.MetadataValue.json({str(p): e for p, (_b, e) in offsets.items()}),
                "events_in_topic": end_total,
                "lag_not_landed": unlanded,
                "lag_not_requested": unrequested,
                "partitions": len(offsets),
                "runs_in_flight": in_flight,
                "overdue_ranges": len(review.overdue),
            },
        )
        asset_events = [observation, check_evaluation(review, policy)]
        run_requests = [landing_run_request(run) for run in plan.runs] + [
            landing_run_request([r], attempt) for r, attempt in review.retries
        ]
        if review.retries:
            context.log.warning(
                f"{topic}: requesting again {len(review.retries)} ranges unlanded past their "
                f"deadline: {', '.join(f'{r.run_key} (attempt {a})' for r, a in review.retries)}"
            )
        if held_back and not run_requests:
            # Backpressure: let the queue drain; the next tick asks for bigger ranges instead of
            # piling up small runs that each pay a process start.
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"{in_flight} landing runs of '{topic}' are queued or running "
                    f"(limit {kafka.max_runs_in_flight}); cursor kept at {dump_cursor(cursor)}"
                ),
                cursor=new_cursor,
                asset_events=asset_events,
            )
        if paced is not None and not run_requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"an automation run is in flight: {unrequested} new events of '{topic}' wait "
                    f"for it, or until {paced - ticked_at:.0f}s from now (landing paced every "
                    f"{kafka.landing_pace_seconds:.0f}s while a cycle runs)"
                ),
                cursor=new_cursor,
                asset_events=asset_events,
            )
        if not run_requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no new events on '{topic}' (end offsets "
                    f"{ {p: e for p, (_b, e) in offsets.items()} }, lag not landed {unlanded})"
                ),
                cursor=new_cursor,
                asset_events=asset_events,
            )
        context.log.info(
            f"{topic}: requesting {len(plan.runs)} landing runs of {len(plan.ranges)} ranges "
            f"({sum(r.size for r in plan.ranges)} events), {plan.pending_after} left for later "
            f"ticks; tick took {time.monotonic() - started:.2f}s"
        )
        return dg.SensorResult(
            run_requests=run_requests, cursor=new_cursor, asset_events=asset_events
        )

    return _sensor


kafka_sensors = [build_kafka_sensor(topic) for topic in TOPICS]
gap_checks = [build_gap_check(topic) for topic in TOPICS]
