"""Kafka sensors land raw ranges exactly once, against the real broker.

After every fault, every produced offset is accounted for exactly once: landed or quarantined.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from scpro_assets.definitions.platform import build_definitions
from scpro_assets.ingest import landing
from scpro_assets.ingest.landing import OffsetRange, pieces_to_land
from scpro_assets.kafka.clients import ensure_topics, producer
from scpro_assets.runner import CursorStore, ingest_once, ingest_until_caught_up
from scpro_assets.settings import BackpressureSettings, Settings
from scpro_assets.sources.common import make_event
from sensors.kafka_sensors import fair_shares, plan_runs, sensor_name, stored_cursor

pytestmark = pytest.mark.kafka
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _payment(i: int, amount: float = 10.0, event_id_of: int | None = None) -> bytes:
    event = make_event(
        "test",
        "payment_captured",
        T0 + timedelta(minutes=i),
        (i if event_id_of is None else event_id_of,),
        f"order-{i}",
        order_id=f"order-{i}",
        payment_type="card",
        amount=amount,
    )
    return event.to_json()


def _publish(settings: Settings, topic: str, values: list[bytes], partition: int = 0) -> None:
    sender = producer(settings.kafka)
    for value in values:
        sender.send(settings.kafka.topic_name(topic), value=value, partition=partition)
    sender.flush()
    sender.close()


def _rows(settings: Settings, kind: str, topic: str) -> list[dict]:
    base = settings.raw_dir if kind == "raw" else settings.quarantine_dir
    files = sorted((base / topic).glob("partition-*/*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _accounted(settings: Settings, topic: str) -> dict[int, list[int]]:
    """Offsets per partition, landed or quarantined (duplicates would show twice)."""
    seen: dict[int, list[int]] = {}
    for row in _rows(settings, "raw", topic) + _rows(settings, "quarantine", topic):
        seen.setdefault(row["partition"], []).append(row["offset"])
    return {p: sorted(offsets) for p, offsets in seen.items()}


def _materializations(instance, topic: str) -> list[dict]:
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetKey(f"raw_{topic}"), limit=1000).records
    return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records]


# --- pure planning ---------------------------------------------------------------------------


def test_plan_asks_for_one_run_per_tick_whatever_the_partitions():
    offsets = {p: (0, 3 + p) for p in range(12)}
    plan = plan_runs("orders", {}, offsets, 1_000, 20)
    assert len(plan.runs) == 1
    assert [(r.partition, r.start, r.stop) for r in plan.runs[0]] == [
        (p, 0, 3 + p) for p in range(12)
    ]
    assert plan.cursor == {p: 3 + p for p in range(12)} and plan.pending_after == 0


def test_plan_cuts_backlog_into_bounded_runs_shared_fairly_by_partitions():
    plan = plan_runs("orders", {0: 5}, {0: (0, 30), 1: (10, 12), 2: (0, 0)}, 10, 3)
    assert [[(r.partition, r.start, r.stop) for r in run] for run in plan.runs] == [
        [(0, 5, 13), (1, 10, 12)],  # partition 1 needs 2 of its share of 5: partition 0 gets 8
        [(0, 13, 23)],
        [(0, 23, 30)],
    ]
    assert all(sum(r.size for r in run) <= 10 for run in plan.runs)
    assert plan.cursor == {0: 30, 1: 12, 2: 0} and plan.pending_after == 0
    capped = plan_runs("orders", {0: 5}, {0: (0, 30), 1: (10, 12)}, 10, 1)
    assert capped.cursor == {0: 13, 1: 12} and capped.pending_after == 17
    assert fair_shares({0: 100, 1: 1, 2: 100}, 10) == {0: 5, 1: 1, 2: 4}
    assert fair_shares({0: 0, 1: 0}, 10) == {}


def test_plan_with_nothing_new_requests_nothing():
    plan = plan_runs("orders", {0: 30}, {0: (0, 30)}, 10, 3)
    assert plan.runs == [] and plan.cursor == {0: 30}


def test_pieces_fill_only_gaps_and_a_landed_range_is_left_alone():
    rng = OffsetRange("t", 0, 0, 20)
    assert pieces_to_land(rng, [(0, 19)]) == []
    assert pieces_to_land(rng, []) == [rng]
    assert pieces_to_land(rng, [(0, 9)]) == [OffsetRange("t", 0, 10, 20)]
    assert pieces_to_land(rng, [(5, 9), (15, 29)]) == [
        OffsetRange("t", 0, 0, 5),
        OffsetRange("t", 0, 10, 15),
    ]
    assert pieces_to_land(rng, [(0, 29)]) == []


# --- against the broker ----------------------------------------------------------------------


def test_sensor_lands_every_event_once_with_metadata(scpro_settings, dagster_instance):
    values = [_payment(i) for i in range(25)] + [b"{not json", b"\xff\xfe"]
    _publish(scpro_settings, "payments", values)
    defs = build_definitions(scpro_settings)
    ticks = ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert ticks[0].succeeded == ["payments-0-0-26"]
    raw = _rows(scpro_settings, "raw", "payments")
    bad = _rows(scpro_settings, "quarantine", "payments")
    assert len(raw) == 25 and len(bad) == 2
    assert _accounted(scpro_settings, "payments") == {0: list(range(27))}
    assert {r["reason"].split(":")[0] for r in bad} == {"invalid json", "invalid utf-8"}
    assert json.loads(raw[0]["payload"])["amount"] == 10.0
    (meta,) = _materializations(dagster_instance, "payments")
    assert (meta["landed"], meta["quarantined"], meta["events_in_ranges"]) == (25, 2, 27)
    (row,) = meta["offset_ranges"].records
    assert (row.data["partition"], row.data["first_offset"], row.data["last_offset"]) == (0, 0, 26)
    assert meta["parquet_bytes"] > 0 and meta["bytes_read"] > 0
    file = (
        scpro_settings.raw_dir
        / "payments"
        / "partition-0"
        / "payments-p0-000000000000-000000000026.parquet"
    )
    assert file.exists()


def _backpressure(settings: Settings, **limits: int) -> Settings:
    """``settings`` with the sensors' backpressure (``SCPRO_MAX_*``) set to ``limits``."""
    return settings.model_copy(update={"backpressure": BackpressureSettings(**limits)})


def test_backpressure_splits_backlog_and_ticks_catch_up(
    scpro_settings, dagster_instance, monkeypatch
):
    _publish(scpro_settings, "payments", [_payment(i) for i in range(20)])
    defs = build_definitions(
        _backpressure(scpro_settings, max_events_per_run=7, max_runs_per_tick=2)
    )
    first = ingest_once(defs, dagster_instance, topics=("payments",))[0]
    assert first.succeeded == ["payments-0-0-6", "payments-0-7-13"]
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert _accounted(scpro_settings, "payments") == {0: list(range(20))}
    assert all(m["events_in_ranges"] <= 7 for m in _materializations(dagster_instance, "payments"))


def test_run_dying_mid_range_is_retried_and_lands_the_range_once(
    scpro_settings, dagster_instance, monkeypatch
):
    """The raw file dies after its first chunk (a row group) is written, the quarantine file
    half-written too: neither appears, and the retry lands the whole range once."""
    _publish(scpro_settings, "payments", [b"[]"] + [_payment(i) for i in range(30)])
    monkeypatch.setattr(landing, "CHUNK_EVENTS", 8)
    real_write = landing.pq.ParquetWriter.write_table
    raw_writes = {"n": 0}

    def dying_write(self, table, *args, **kwargs):
        if table.schema == landing.RAW_SCHEMA:
            raw_writes["n"] += 1
            if raw_writes["n"] == 2:
                raise OSError("disk vanished mid-write")
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(landing.pq.ParquetWriter, "write_table", dying_write)
    defs = build_definitions(scpro_settings)
    first = ingest_once(defs, dagster_instance, topics=("payments",))[0]
    assert first.failed == ["payments-0-0-30"]
    for base in (scpro_settings.raw_dir, scpro_settings.quarantine_dir):
        assert not list((base / "payments").rglob("*.parquet"))
        assert not list((base / "payments").rglob("*.tmp"))  # no half file left

    second = ingest_once(defs, dagster_instance, topics=("payments",))[0]
    assert second.retried == ["payments-0-0-30"]
    assert _accounted(scpro_settings, "payments") == {0: list(range(31))}
    assert len(_rows(scpro_settings, "raw", "payments")) == 30


def test_same_cursor_twice_and_overlapping_ticks_land_nothing_twice(
    scpro_settings, dagster_instance
):
    _publish(scpro_settings, "payments", [_payment(i) for i in range(10)])
    defs = build_definitions(scpro_settings)
    store = CursorStore(dagster_instance, sensor_name("payments"))
    ingest_once(defs, dagster_instance, topics=("payments",))
    landed_file = next((scpro_settings.raw_dir / "payments").rglob("*.parquet"))
    mtime = landed_file.stat().st_mtime_ns

    # The same cursor evaluated again: the same run key is requested and not run again.
    store.set('{"0": 0, "1": 0}')
    again = ingest_once(defs, dagster_instance, topics=("payments",))[0]
    assert again.requested == ["payments-0-0-9"] and again.skipped_existing == ["payments-0-0-9"]
    assert landed_file.stat().st_mtime_ns == mtime

    # An overlapping tick (stale cursor, more data since): only the gap lands.
    _publish(scpro_settings, "payments", [_payment(i) for i in range(10, 16)])
    store.set('{"0": 0, "1": 0}')
    overlap = ingest_once(defs, dagster_instance, topics=("payments",))[0]
    assert overlap.succeeded == ["payments-0-0-15"]
    assert _accounted(scpro_settings, "payments") == {0: list(range(16))}
    meta = _materializations(dagster_instance, "payments")[0]
    assert meta["already_landed"] == 10 and meta["landed"] == 6


def _mtimes(settings: Settings, topic: str) -> dict[str, int]:
    files = (settings.raw_dir / topic).rglob("*.parquet")
    return {f.name: f.stat().st_mtime_ns for f in files}


def test_one_tick_over_several_partitions_asks_for_one_run_per_topic_naming_every_range(
    scpro_settings, dagster_instance
):
    """Issue #17 item 7: the run rate does not grow with partitions, and nothing lands twice."""
    import dagster as dg

    ensure_topics(scpro_settings.kafka, partitions=3)
    sizes = {0: 5, 1: 3, 2: 4}
    for partition, size in sizes.items():
        _publish(
            scpro_settings,
            "payments",
            [_payment(10 * partition + i) for i in range(size)],
            partition,
        )
    _publish(scpro_settings, "orders", [b"{not json"] * 2, partition=0)
    _publish(scpro_settings, "orders", [b"\xff"], partition=2)
    defs = build_definitions(scpro_settings)
    payments, orders = ingest_once(defs, dagster_instance, topics=("payments", "orders"))
    assert payments.requested == payments.succeeded == ["payments-0-0-4+1-0-2+2-0-3"]
    assert orders.requested == orders.succeeded == ["orders-0-0-1+2-0-0"]
    (run,) = dagster_instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/run_key": "payments-0-0-4+1-0-2+2-0-3"})
    )
    assert {k: v for k, v in run.tags.items() if k.startswith("scpro/partition")} == {
        "scpro/partition-0": "0-4",
        "scpro/partition-1": "0-2",
        "scpro/partition-2": "0-3",
    }
    (meta,) = _materializations(dagster_instance, "payments")
    assert (meta["ranges"], meta["events_in_ranges"], meta["landed"]) == (3, 12, 12)
    table = [
        (r.data["partition"], r.data["first_offset"], r.data["last_offset"], r.data["landed"])
        for r in meta["offset_ranges"].records
    ]
    assert table == [(0, 0, 4, 5), (1, 0, 2, 3), (2, 0, 3, 4)]
    # One raw file per range, as before: the clean layer's manifest and the gap tracker see ranges.
    files = _mtimes(scpro_settings, "payments")
    assert sorted(files) == [
        f"payments-p{p}-{0:012d}-{n - 1:012d}.parquet" for p, n in sizes.items()
    ]
    (orders_meta,) = _materializations(dagster_instance, "orders")
    assert (orders_meta["quarantined"], orders_meta["events_in_ranges"]) == (3, 3)

    # The tick evaluated again on the same cursor asks for the same run key: nothing runs.
    store = CursorStore(dagster_instance, sensor_name("payments"))
    store.set('{"next": {}, "open": {}}')
    (again,) = ingest_once(defs, dagster_instance, topics=("payments",))
    assert again.requested == again.skipped_existing == ["payments-0-0-4+1-0-2+2-0-3"]
    # The run itself executed again (as a run retry would): every range is already landed.
    rerun = defs.resolve_job_def("land_payments").execute_in_process(
        run_config=run.run_config, instance=dagster_instance
    )
    assert rerun.success
    meta = _materializations(dagster_instance, "payments")[0]
    assert (meta["already_landed"], meta["landed"], meta["quarantined"]) == (12, 0, 0)
    assert _mtimes(scpro_settings, "payments") == files
    assert _accounted(scpro_settings, "payments") == {p: list(range(n)) for p, n in sizes.items()}
    assert _accounted(scpro_settings, "orders") == {0: [0, 1], 2: [0]}


def test_a_range_failing_inside_a_run_fails_the_run_and_its_retry_lands_only_that_range(
    scpro_settings, dagster_instance, monkeypatch
):
    ensure_topics(scpro_settings.kafka, partitions=3)
    for partition in range(3):
        _publish(
            scpro_settings, "payments", [_payment(10 * partition + i) for i in range(4)], partition
        )
    real_land_range = landing.land_range

    def partition_1_unreachable(kafka, rng, *args, **kwargs):
        if rng.partition == 1:
            raise landing.RangeUnavailableError(f"{rng.run_key}: leader not available")
        return real_land_range(kafka, rng, *args, **kwargs)

    monkeypatch.setattr(landing, "land_range", partition_1_unreachable)
    defs = build_definitions(scpro_settings)
    (first,) = ingest_once(defs, dagster_instance, topics=("payments",))
    assert first.failed == ["payments-0-0-3+1-0-3+2-0-3"]
    # The other partitions' ranges landed and are committed.
    assert sorted(_accounted(scpro_settings, "payments")) == [0, 2]
    assert _materializations(dagster_instance, "payments") == []

    monkeypatch.setattr(landing, "land_range", real_land_range)
    (second,) = ingest_once(defs, dagster_instance, topics=("payments",))
    assert second.retried == ["payments-0-0-3+1-0-3+2-0-3"] and second.requested == []
    (meta,) = _materializations(dagster_instance, "payments")
    assert (meta["landed"], meta["already_landed"], meta["events_in_ranges"]) == (4, 8, 12)
    assert _accounted(scpro_settings, "payments") == {p: [0, 1, 2, 3] for p in range(3)}


def test_empty_topic_says_why_it_skips(scpro_settings, dagster_instance):
    defs = build_definitions(scpro_settings)
    (tick,) = ingest_once(defs, dagster_instance, topics=("shipments",))
    assert tick.requested == []
    assert "no new events on 'shipments'" in tick.skip_reason


def test_partition_added_to_a_topic_is_picked_up(scpro_settings, dagster_instance):
    defs = build_definitions(scpro_settings)
    _publish(scpro_settings, "payments", [_payment(i) for i in range(3)], partition=1)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    ensure_topics(scpro_settings.kafka, partitions=3)
    _publish(scpro_settings, "payments", [_payment(i) for i in range(3, 8)], partition=2)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert _accounted(scpro_settings, "payments") == {1: [0, 1, 2], 2: [0, 1, 2, 3, 4]}


def test_poison_messages_are_quarantined_with_reasons(scpro_settings, dagster_instance):
    good_order = make_event(
        "test",
        "order_placed",
        T0,
        ("o1",),
        "o1",
        order_id="o1",
        customer={"customer_id": "c1"},
        promised_delivery_date="2024-01-05T00:00:00Z",
        items=[{"item_id": "i1", "product_id": "p1", "quantity": 1, "unit_price": 5.0}],
    ).payload
    negative_quantity = {
        **good_order,
        "event_id": "neg-quantity-1",
        "items": [{**good_order["items"][0], "quantity": -2}],
    }
    missing_field = {k: v for k, v in good_order.items() if k != "customer"}
    wrong_type = {**good_order, "event_id": "wrong-type-1", "items": "three"}
    huge = {**good_order, "event_id": "huge-00001", "channel": "x" * 1_000_000}
    orders = [
        json.dumps(good_order).encode(),
        b"\xc3\x28 not utf-8",
        b'{"event_id": ',
        json.dumps(missing_field).encode(),
        json.dumps(wrong_type).encode(),
        json.dumps(negative_quantity).encode(),
        json.dumps(huge).encode(),
    ]
    delivered_before_order = make_event(
        "test",
        "shipment_status",
        T0,
        ("o1", "delivered"),
        "o1",
        order_id="o1",
        status="delivered",
        order_time="2024-01-02T00:00:00Z",
    ).payload
    _publish(scpro_settings, "orders", orders)
    _publish(scpro_settings, "shipments", [json.dumps(delivered_before_order).encode()])
    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=("orders", "shipments"))

    assert _accounted(scpro_settings, "orders") == {0: list(range(7))}
    assert [r["event_id"] for r in _rows(scpro_settings, "raw", "orders")] == [
        good_order["event_id"]
    ]
    reasons = {r["offset"]: r["reason"] for r in _rows(scpro_settings, "quarantine", "orders")}
    assert reasons[1].startswith("invalid utf-8")
    assert reasons[2].startswith("invalid json")
    assert "customer: Field required" in reasons[3]
    assert "items: Input should be a valid list" in reasons[4]
    assert "items.0.quantity: Input should be greater than or equal to 1" in reasons[5]
    assert reasons[6].startswith("too large")
    quarantined = _rows(scpro_settings, "quarantine", "orders")
    assert next(r for r in quarantined if r["offset"] == 6)["payload_bytes"] > 1_000_000
    (shipment,) = _rows(scpro_settings, "quarantine", "shipments")
    assert "delivered event is before the order was placed" in shipment["reason"]


def test_same_event_published_twice_is_counted_as_duplicate(scpro_settings, dagster_instance):
    _publish(scpro_settings, "payments", [_payment(1), _payment(2), _payment(1)])
    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    (meta,) = _materializations(dagster_instance, "payments")
    assert meta["duplicates_by_event_id"] == 1 and meta["landed"] == 3
    assert _accounted(scpro_settings, "payments") == {0: [0, 1, 2]}


def test_broker_restart_while_ingesting(scpro_settings, dagster_instance, kafka_broker):
    defs = build_definitions(scpro_settings)
    _publish(scpro_settings, "payments", [_payment(i) for i in range(5)])
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    kafka_broker.stop()
    try:
        (down,) = ingest_once(defs, dagster_instance, topics=("payments",))
        assert down.requested == [] and "did not answer" in down.skip_reason
    finally:
        kafka_broker.start()
    _publish(scpro_settings, "payments", [_payment(i) for i in range(5, 12)])
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert _accounted(scpro_settings, "payments") == {0: list(range(12))}


def test_lag_is_observed_on_the_topic_asset(scpro_settings, dagster_instance, monkeypatch):
    import dagster as dg

    _publish(scpro_settings, "payments", [_payment(i) for i in range(10)])
    defs = build_definitions(
        _backpressure(scpro_settings, max_events_per_run=4, max_runs_per_tick=1)
    )
    ingest_once(defs, dagster_instance, topics=("payments",))
    ingest_once(defs, dagster_instance, topics=("payments",))
    records = dagster_instance.fetch_observations(dg.AssetKey(["kafka", "payments"]), limit=5)
    latest = records.records[0].asset_observation.metadata
    assert latest["events_in_topic"].value == 10
    assert latest["lag_not_landed"].value == 6  # one range of 4 landed before this tick


def test_sensor_holds_back_while_runs_are_in_flight(scpro_settings, dagster_instance, monkeypatch):
    """Backpressure: with the topic's runs still queued, a tick asks for nothing new."""
    import dagster as dg

    defs = build_definitions(_backpressure(scpro_settings, max_runs_in_flight=1))
    queued = dagster_instance.create_run_for_job(
        defs.resolve_job_def("land_payments"),
        run_config={"ops": {"raw_payments": {"config": {"partition": 0, "start": 0, "stop": 1}}}},
        tags={"scpro/topic": "payments"},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    _publish(scpro_settings, "payments", [_payment(i) for i in range(4)])
    (tick,) = ingest_once(defs, dagster_instance, topics=("payments",))
    assert tick.requested == []
    assert "1 landing runs of 'payments' are queued or running (limit 1)" in tick.skip_reason
    dagster_instance.report_run_canceled(queued)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert _accounted(scpro_settings, "payments") == {0: [0, 1, 2, 3]}


def test_landing_is_paced_while_a_cycle_runs_and_a_person_s_ingest_is_not(
    scpro_settings, dagster_instance, monkeypatch
):
    """While an automation run is in flight, a topic asks for new offsets at most every pace."""
    import dagster as dg

    from scpro_assets.automation import AUTOMATION_RUN_TAGS
    from scpro_assets.runner import CursorStore, evaluate_sensor
    from sensors import kafka_sensors

    clock = [1_000_000.0]
    monkeypatch.setattr(kafka_sensors, "now", lambda: clock[0])
    settings = scpro_settings.model_copy(
        update={"backpressure": BackpressureSettings(max_events_per_run=5, landing_pace_seconds=60)}
    )
    defs = build_definitions(settings)
    store = CursorStore(dagster_instance, sensor_name("payments"))
    sent = iter(range(1000))

    def tick(new_events: int):
        """Publish ``new_events`` payments and evaluate the sensor as the daemon does."""
        _publish(settings, "payments", [_payment(next(sent)) for _ in range(new_events)])
        data = evaluate_sensor(defs, dagster_instance, sensor_name("payments"), store)
        store.set(data.cursor)
        return [r.run_key for r in data.run_requests or []], data.skip_message or ""

    assert tick(2) == (["payments-0-0-1"], "")  # nothing in flight: lands at once
    cycle = dagster_instance.create_run_for_job(
        defs.resolve_job_def("land_orders"),
        run_config={"ops": {"raw_orders": {"config": {"partition": 0, "start": 0, "stop": 1}}}},
        tags=AUTOMATION_RUN_TAGS,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    runs, reason = tick(2)
    assert runs == []
    assert "an automation run is in flight: 2 new events of 'payments' wait" in reason
    clock[0] += 30
    assert tick(3) == (["payments-0-2-6"], "")  # a whole run's worth waits: no pacing
    clock[0] += 59
    assert tick(1)[0] == []  # 59 s after the last request
    clock[0] += 1
    assert tick(0) == (["payments-0-7-7"], "")  # the pace has passed
    clock[0] += 1
    assert tick(1)[0] == []
    dagster_instance.report_run_canceled(cycle)
    assert tick(0) == (["payments-0-8-8"], "")  # the cycle is over: the next one takes it

    dagster_instance.create_run_for_job(
        defs.resolve_job_def("land_orders"),
        run_config={"ops": {"raw_orders": {"config": {"partition": 0, "start": 0, "stop": 1}}}},
        tags=AUTOMATION_RUN_TAGS,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    _publish(settings, "payments", [_payment(next(sent))])
    (person,) = ingest_once(defs, dagster_instance, topics=("payments",))
    assert person.requested == ["payments-0-9-9"]  # `scpro ingest`: not paced
    assert _accounted(settings, "payments") == {0: [9]}  # the ticks above only asked


def test_raw_payload_is_the_validated_event_and_personal_data_is_dropped(
    scpro_settings, dagster_instance
):
    """Landing's columnar fast path writes what `spark/raw.py` expects: model_dump_json()."""
    from scpro_assets.contracts import validate_event

    leaky = json.loads(_payment(1))
    leaky["customer_email"] = "someone@example.com"
    values = [json.dumps(leaky).encode(), _payment(2)]
    sender = producer(scpro_settings.kafka)
    sender.send(
        scpro_settings.kafka.topic_name("payments"), key=b"k-1", value=values[0], partition=0
    )
    sender.send(
        scpro_settings.kafka.topic_name("payments"), key=b"\xff\xfe", value=values[1], partition=0
    )
    sender.flush()
    sender.close()
    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    rows = _rows(scpro_settings, "raw", "payments")
    assert [r["payload"] for r in rows] == [
        validate_event("payments", v).event.model_dump_json() for v in values
    ]
    assert "someone@example.com" not in rows[0]["payload"]
    assert [r["key"] for r in rows] == ["k-1", "\ufffd\ufffd"]
    assert rows[1]["event_time"] == T0 + timedelta(minutes=2)
    (meta,) = _materializations(dagster_instance, "payments")
    assert meta["lag_at_landing"] == 0 and meta["landed"] == 2


def test_range_larger_than_a_chunk_lands_as_row_groups_with_exact_accounting(
    scpro_settings, dagster_instance, monkeypatch
):
    """A range streamed in chunks: one row group per chunk, counts over the whole range.

    Poison messages sit in different chunks and one event is published again three chunks
    later: the duplicate is still counted, because event ids are compared across chunks.
    """
    monkeypatch.setattr(landing, "CHUNK_EVENTS", 7)
    values = [_payment(i) for i in range(30)]
    values[3], values[17] = b"\xff not utf-8", b'{"event_id": '
    values[25] = _payment(1)  # the same event as offset 1, in another chunk
    _publish(scpro_settings, "payments", values)
    defs = build_definitions(scpro_settings)
    (tick,) = ingest_until_caught_up(defs, dagster_instance, topics=("payments",))[:1]
    assert tick.succeeded == ["payments-0-0-29"]

    raw_file = next((scpro_settings.raw_dir / "payments").rglob("*.parquet"))
    assert pq.ParquetFile(raw_file).metadata.num_row_groups == 5  # offsets 0-6, 7-13, ..., 28-29
    assert pq.ParquetFile(raw_file).metadata.row_group(0).num_rows == 6  # offset 3 quarantined
    raw_offsets = [r["offset"] for r in _rows(scpro_settings, "raw", "payments")]
    assert raw_offsets == [o for o in range(30) if o not in (3, 17)]
    assert [r["offset"] for r in _rows(scpro_settings, "quarantine", "payments")] == [3, 17]
    assert _accounted(scpro_settings, "payments") == {0: list(range(30))}
    (meta,) = _materializations(dagster_instance, "payments")
    assert (meta["landed"], meta["quarantined"], meta["expired_before_landing"]) == (28, 2, 0)
    assert meta["duplicates_by_event_id"] == 1
    assert meta["events_in_ranges"] == 30 and meta["lag_at_landing"] == 0
    # The raw file holds exactly what one write of the whole range would hold.
    assert pq.read_table(raw_file).schema == landing.RAW_SCHEMA
    assert sorted(pq.read_table(raw_file).column("event_id").to_pylist()) == sorted(
        json.loads(v)["event_id"] for o, v in enumerate(values) if o not in (3, 17)
    )


def test_transaction_markers_are_offsets_without_records(scpro_settings, dagster_instance):
    """Commit markers take offsets but hold no event: accounted as such, inside and at the end."""
    topic = scpro_settings.kafka.topic_name("payments")
    transactional = producer(scpro_settings.kafka, transactional_id=f"{topic}-tx")
    transactional.init_transactions()
    transactional.begin_transaction()
    for i in range(3):
        transactional.send(topic, value=_payment(i), partition=0)  # offsets 0-2, marker at 3
    transactional.commit_transaction()
    _publish(scpro_settings, "payments", [_payment(3)])  # offset 4
    transactional.begin_transaction()
    for i in range(4, 6):
        transactional.send(topic, value=_payment(i), partition=0)  # offsets 5-6, marker at 7
    transactional.commit_transaction()
    transactional.close()

    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=("payments",))
    assert _accounted(scpro_settings, "payments") == {0: [0, 1, 2, 4, 5, 6]}
    (meta,) = _materializations(dagster_instance, "payments")
    assert (meta["events_in_ranges"], meta["landed"], meta["expired_before_landing"]) == (8, 6, 2)


def test_scpro_ingest_reads_and_moves_the_daemon_s_sensor_cursor(tmp_path):
    """The daemon's cursor of a sensor (set here with Dagster's public `dagster sensor cursor`)
    is the one `scpro ingest` continues from, and the one it moves: no private Dagster import."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import dagster as dg

    from scpro_assets.settings import REPO_ROOT

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    name = sensor_name("payments")
    daemon_cursor, moved = '{"0": 7, "1": 3}', '{"0": 9, "1": 3}'
    result = subprocess.run(
        [
            *(str(Path(sys.executable).with_name("dagster")), "sensor", "cursor", name),
            *("--set", daemon_cursor, "-m", "scpro_assets.definitions.landing", "-a", "defs"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home), "SCPRO_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert CursorStore(instance, name).get() == daemon_cursor  # none stored by scpro ingest
        CursorStore(instance, name).set(moved)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        # The daemon's own state moved (it is read first), and the key-value copy with it.
        assert CursorStore(instance, name).get() == moved
        assert stored_cursor(instance, name) == moved
