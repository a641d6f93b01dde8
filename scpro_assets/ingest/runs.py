"""What a landing run is called: the run key, tags and run config naming every range it lands.

A sensor tick asks for one run per topic that lands the new offsets of all its partitions, one
range per partition (issue #17: a run per partition range made the run rate grow with partitions,
225 landing runs in the demo's first 13 minutes). Each range keeps its own raw file, so the clean
layer's manifest and the gap tracker see ranges exactly as before; only the run is shared.

Everything that identifies a run names every range in it, because that is what makes a run
exactly once and findable:

- the run key, ``orders-0-100-199+1-40-79``: Dagster never starts two runs with one run key, so a
  tick evaluated twice on the same cursor asks for nothing new. A run of one range keeps the key
  of older versions (``orders-0-100-199``), and a gap's retry adds its attempt
  (``orders-0-100-199-retry2``);
- a tag per range, ``scpro/partition-<p> = <first>-<last>``, which the Dagster UI shows on the run
  and which tells the sensor which ranges a queued or running run holds (it asks for none of
  them again); a run of one range also carries the ``scpro/partition`` and ``scpro/range`` tags
  of older versions, which alerts repeat;
- the run config, ``{"ranges": [{"partition", "start", "stop"}, ...]}`` of ``raw_<topic>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from scpro_assets.ingest.landing import OffsetRange

TOPIC_TAG = "scpro/topic"
#: Tag of a run of exactly one range (older versions' runs always had it), with ``RANGE_TAG``.
PARTITION_TAG = "scpro/partition"
RANGE_TAG = "scpro/range"
#: ``scpro/partition-<p>``: the range ``first-last`` of partition ``p`` that the run lands.
PARTITION_RANGE_TAG_PREFIX = "scpro/partition-"
ATTEMPT_TAG = "scpro/attempt"
EVENTS_TAG = "scpro/events"


def _in_order(ranges: Iterable[OffsetRange]) -> list[OffsetRange]:
    """``ranges`` by partition; one topic and one range per partition, or a ``ValueError``.

    One range per partition keeps a run's ranges disjoint and its tags one per partition: the new
    offsets of a partition are contiguous, so a tick never needs two ranges of one partition.
    """
    ordered = sorted(ranges, key=lambda r: r.partition)
    if not ordered:
        raise ValueError("a landing run needs at least one offset range")
    topics = sorted({r.topic for r in ordered})
    if len(topics) > 1:
        raise ValueError(f"one landing run lands one topic, not {topics}")
    partitions = [r.partition for r in ordered]
    if len(set(partitions)) != len(partitions):
        raise ValueError(f"one range per partition in a landing run, got partitions {partitions}")
    return ordered


def run_key(ranges: Sequence[OffsetRange], attempt: int = 1) -> str:
    """``<topic>-<p>-<first>-<last>[+<p>-<first>-<last>...][-retry<attempt>]``."""
    ordered = _in_order(ranges)
    key = ordered[0].topic + "-" + "+".join(f"{r.partition}-{r.start}-{r.last}" for r in ordered)
    return key if attempt == 1 else f"{key}-retry{attempt}"


def run_tags(ranges: Sequence[OffsetRange], attempt: int = 1) -> dict[str, str]:
    """The run's tags: topic, attempt, events, and every range under its partition."""
    ordered = _in_order(ranges)
    tags = {
        TOPIC_TAG: ordered[0].topic,
        ATTEMPT_TAG: str(attempt),
        EVENTS_TAG: str(sum(r.size for r in ordered)),
    }
    tags |= {f"{PARTITION_RANGE_TAG_PREFIX}{r.partition}": f"{r.start}-{r.last}" for r in ordered}
    if len(ordered) == 1:
        (only,) = ordered
        tags |= {PARTITION_TAG: str(only.partition), RANGE_TAG: f"{only.start}-{only.last}"}
    return tags


def run_config(ranges: Sequence[OffsetRange]) -> dict:
    """The run config of ``raw_<topic>`` that lands ``ranges``."""
    ordered = _in_order(ranges)
    spans = [{"partition": r.partition, "start": r.start, "stop": r.stop} for r in ordered]
    return {"ops": {f"raw_{ordered[0].topic}": {"config": {"ranges": spans}}}}


def _parse_span(topic: str, partition: str, span: str) -> OffsetRange | None:
    first, _, last = span.partition("-")
    if not (partition.isdigit() and first.isdigit() and last.isdigit()):
        return None
    if int(last) < int(first):
        return None
    return OffsetRange(topic, int(partition), int(first), int(last) + 1)


def ranges_in_tags(tags: Mapping[str, str]) -> set[OffsetRange]:
    """The ranges a run lands, from its tags (runs of older versions too); empty if none."""
    topic = tags.get(TOPIC_TAG)
    if not topic:
        return set()
    found = {
        _parse_span(topic, key.removeprefix(PARTITION_RANGE_TAG_PREFIX), value)
        for key, value in tags.items()
        if key.startswith(PARTITION_RANGE_TAG_PREFIX)
    }
    if PARTITION_TAG in tags and RANGE_TAG in tags:
        found.add(_parse_span(topic, tags[PARTITION_TAG], tags[RANGE_TAG]))
    return {r for r in found if r is not None}
