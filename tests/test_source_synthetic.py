"""The synthetic generator: deterministic, streaming, contract-valid and learnable."""

from __future__ import annotations

import itertools
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from scpro_assets.contracts.events import topic_for_event_type, validate_event
from scpro_assets.sources.common import SourceEvent
from scpro_assets.sources.synthetic import (
    MODES,
    SOURCE,
    SyntheticConfig,
    _Simulation,
    generate,
    load,
)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class _Order:
    placed: datetime
    payload: dict
    payments: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    times: dict[str, datetime] = field(default_factory=dict)

    @property
    def promise(self) -> datetime:
        return _ts(self.payload["promised_delivery_date"])

    @property
    def real_days(self) -> float:
        return (self.times["delivered"] - self.placed).total_seconds() / 86400

    @property
    def late(self) -> bool:
        return self.times["delivered"] > self.promise


def _orders(events: list[SourceEvent]) -> dict[str, _Order]:
    orders: dict[str, _Order] = {}
    for event in events:
        p = event.payload
        kind = p["event_type"]
        if kind == "order_placed":
            orders[p["order_id"]] = _Order(event.event_time, p)
        elif kind in ("payment_captured", "payment_refused"):
            orders[p["order_id"]].payments.append(kind)
        elif kind == "shipment_status":
            order = orders[p["order_id"]]
            order.statuses[p["status"]] += 1
            order.times.setdefault(p["status"], event.event_time)
    return orders


def _delivered(orders: dict[str, _Order]) -> list[_Order]:
    return [o for o in orders.values() if "delivered" in o.times]


@pytest.fixture(scope="module")
def events() -> list[SourceEvent]:
    return list(generate(SyntheticConfig(orders=5_000)))


@pytest.fixture(scope="module")
def orders(events: list[SourceEvent]) -> dict[str, _Order]:
    return _orders(events)


# --- determinism and streaming ------------------------------------------------------------------


def test_same_config_gives_identical_events_and_another_seed_does_not() -> None:
    def run(seed: int) -> list[tuple[str, dict]]:
        return [(e.event_id, e.payload) for e in generate(SyntheticConfig(orders=400, seed=seed))]

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert first != other
    assert not {i for i, _ in first} & {i for i, _ in other}


def test_event_time_never_decreases(events: list[SourceEvent]) -> None:
    assert all(a.event_time <= b.event_time for a, b in itertools.pairwise(events))
    assert events[0].event_time >= SyntheticConfig().start


def test_first_event_of_a_huge_run_comes_at_once() -> None:
    started = time.perf_counter()
    first = next(generate(SyntheticConfig(orders=10_000_000)))
    assert time.perf_counter() - started < 2.0
    assert first.payload["source"] == SOURCE


def test_memory_is_bounded_by_open_orders() -> None:
    config = SyntheticConfig(orders=1_000_000)
    simulation = _Simulation(config)
    largest = 0
    for n, _ in enumerate(simulation.run()):
        largest = max(largest, len(simulation.heap))
        if n == 60_000:
            break
    # About a week of an order's pending events at 400 orders a day, not a million orders.
    assert largest < 20_000
    assert len(simulation.incidents) < 50


def test_load_reports_counts_by_type() -> None:
    events, report = load(SyntheticConfig(orders=300))
    assert report.rows_read == 300
    assert report.events == Counter(e.payload["event_type"] for e in events)
    assert report.events["order_placed"] == 300
    assert report.rejected_total == 0


# --- contracts and bookkeeping ------------------------------------------------------------------


def test_every_event_satisfies_its_contract(events: list[SourceEvent]) -> None:
    for event in events:
        assert event.topic == topic_for_event_type(event.payload["event_type"])
        result = validate_event(event.topic, event.to_json())
        assert result.ok, (event.payload, result.reason)
    assert len({e.event_id for e in events}) == len(events)


def test_every_order_is_paid_and_ends_delivered_or_canceled(orders: dict[str, _Order]) -> None:
    assert len(orders) == 5_000
    for order in orders.values():
        assert len(order.payments) == 1
        assert order.promise >= order.placed
        terminal = order.statuses["delivered"] + order.statuses["canceled"]
        assert terminal == 1, order.payload["order_id"]
        if order.payments == ["payment_refused"]:
            assert order.statuses["canceled"] == 1
        if "delivered" in order.times:
            assert order.statuses["shipped"] == order.statuses["in_transit"] == 1
            assert order.placed < order.times["shipped"] <= order.times["in_transit"]
            assert order.times["in_transit"] <= order.times["delivered"]


def test_shipment_events_carry_order_time_carrier_and_mode(events: list[SourceEvent]) -> None:
    for event in events:
        p = event.payload
        if p["event_type"] == "shipment_status":
            assert p["carrier"] and p["shipping_mode"] and p["order_time"]
            assert _ts(p["order_time"]) <= event.event_time
            if p["status"] in ("shipped", "in_transit", "delivered", "exception"):
                assert p["location"]["lat"] is not None


def test_incidents_open_then_resolve(events: list[SourceEvent]) -> None:
    opened = {
        e.payload["incident_id"]: e for e in events if e.payload["event_type"] == "incident_opened"
    }
    resolved = {
        e.payload["incident_id"]: e
        for e in events
        if e.payload["event_type"] == "incident_resolved"
    }
    assert opened.keys() == resolved.keys()
    assert 3 <= len(opened) <= 30  # a few a week over about 12 days
    for incident_id, event in opened.items():
        assert resolved[incident_id].event_time > event.event_time
        assert resolved[incident_id].payload["kind"] == event.payload["kind"]


def test_event_mix_is_realistic(events: list[SourceEvent], orders: dict[str, _Order]) -> None:
    kinds = Counter(e.payload["event_type"] for e in events)
    n = len(orders)
    assert 0.005 < kinds["payment_refused"] / n < 0.03
    canceled = sum(o.statuses["canceled"] for o in orders.values())
    assert 0.01 < canceled / n < 0.05
    assert 0.4 < kinds["web_access"] / n < 0.6
    web = [e.payload for e in events if e.payload["event_type"] == "web_access"]
    assert all(w["url"].startswith("/department/") and "/product/" in w["url"] for w in web)
    assert any(w["order_id"] for w in web) and any(not w["order_id"] for w in web)
    buyers = Counter(o.payload["customer"]["customer_id"] for o in orders.values())
    assert buyers.most_common(1)[0][1] >= 10  # Zipf-like: some customers buy often
    assert len(buyers) > n / 5
    lines = Counter(len(o.payload["items"]) for o in orders.values())
    assert set(lines) == {1, 2, 3, 4, 5}


# --- learnable structure ------------------------------------------------------------------------


def test_faster_modes_deliver_sooner(orders: dict[str, _Order]) -> None:
    days = {
        mode.name: statistics.mean(
            o.real_days for o in _delivered(orders) if o.payload["shipping_mode"] == mode.name
        )
        for mode in MODES
    }
    names = [mode.name for mode in sorted(MODES, key=lambda m: m.scheduled_days)]
    assert [days[name] for name in names] == sorted(days.values()), days


def test_late_rate_is_realistic_and_varies(orders: dict[str, _Order]) -> None:
    delivered = _delivered(orders)
    assert 0.15 < sum(o.late for o in delivered) / len(delivered) < 0.6

    def spread(key: str) -> float:
        groups: dict[str, list[bool]] = {}
        for o in delivered:
            groups.setdefault(o.payload[key], []).append(o.late)
        rates = [sum(v) / len(v) for v in groups.values()]
        return max(rates) - min(rates)

    assert spread("shipping_mode") > 0.1
    assert spread("region") > 0.2


def test_weekend_orders_are_slower(orders: dict[str, _Order]) -> None:
    def mean_days(weekdays: set[int]) -> float:
        return statistics.mean(
            o.real_days for o in _delivered(orders) if o.placed.weekday() in weekdays
        )

    assert mean_days({4, 5}) > mean_days({0, 1, 2}) + 0.2


def test_carrier_incidents_delay_deliveries() -> None:
    # More incidents than the default few a week, so every seed has enough parcels caught in one.
    events = list(generate(SyntheticConfig(orders=4_000, incidents_per_week=20)))
    orders = _orders(events)
    region_of = {o.payload["destination"]["city"]: o.payload["region"] for o in orders.values()}
    resolved = {
        e.payload["incident_id"]: e.event_time
        for e in events
        if e.payload["event_type"] == "incident_resolved"
    }
    windows = [
        (
            e.payload["carrier"],
            region_of[e.payload["location"]["city"]],
            e.event_time,
            resolved[e.payload["incident_id"]],
        )
        for e in events
        if e.payload["event_type"] == "incident_opened" and e.payload["kind"] == "carrier"
    ]
    hit: list[_Order] = []
    clear: dict[tuple[str, str, str], list[float]] = {}
    for o in _delivered(orders):
        shipped, carrier, region = o.times["shipped"], o.payload["carrier"], o.payload["region"]
        if any(c == carrier and r == region and a <= shipped < b for c, r, a, b in windows):
            hit.append(o)
        else:
            clear.setdefault((carrier, region, o.payload["shipping_mode"]), []).append(o.real_days)
    # Compare with parcels of the same carrier, region and mode shipped while nothing was open.
    extra = [
        o.real_days - statistics.mean(clear[key])
        for o in hit
        if (key := (o.payload["carrier"], o.payload["region"], o.payload["shipping_mode"])) in clear
    ]
    assert len(extra) >= 20
    assert statistics.mean(extra) > 1.0


def test_peak_season_is_busier_and_slower() -> None:
    config = SyntheticConfig(
        orders=4_000, orders_per_day=150, start=datetime(2024, 11, 1, tzinfo=UTC)
    )
    orders = _orders(list(generate(config)))
    peak_start = datetime(2024, 11, 15, tzinfo=UTC)
    last = max(o.placed for o in orders.values())
    off = [o for o in orders.values() if o.placed < peak_start]
    peak = [o for o in orders.values() if o.placed >= peak_start]
    off_rate = len(off) / 14
    peak_rate = len(peak) / ((last - peak_start).total_seconds() / 86400)
    assert 1.4 < peak_rate / off_rate < 2.3

    def mean_days(group: list[_Order], mode: str) -> float:
        return statistics.mean(
            o.real_days
            for o in group
            if "delivered" in o.times and o.payload["shipping_mode"] == mode
        )

    for mode in ("Second Class", "Standard Class"):
        assert mean_days(peak, mode) > mean_days(off, mode) + 0.2
