"""The dashboard's data store on a small warehouse built in the test: exact numbers, no rendering."""

from __future__ import annotations

import math
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import panel as pn
import panel_warehouse
import pytest
from panel_warehouse import PanelWarehouse, expected_kpis, in_range, window

from panel_app.store import ALL, DataStore, FilterState, NoSnapshotError
from scpro_assets.testing.sample_snapshot import SampleSpec, publish


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> PanelWarehouse:
    return panel_warehouse.build(tmp_path_factory.mktemp("panel-store"))


@pytest.fixture
def store(warehouse: PanelWarehouse) -> DataStore:
    return DataStore(serving_current=warehouse.serving_current)


def assert_close(actual: float, expected: float) -> None:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None or math.isnan(actual)
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


FILTERS = [
    FilterState(),
    FilterState(region="South Asia"),
    FilterState(carrier_mode="First Class", period="Last 30 days"),
    FilterState(category="Electronics", segment="Loyal", period="Last 365 days"),
    FilterState(region="North America", category="Apparel", period="Last 7 days"),
]


def _filtered(frame: pd.DataFrame, state: FilterState) -> pd.DataFrame:
    for column, value in state.dimension_values().items():
        frame = frame[frame[column] == value]
    return frame


@pytest.mark.parametrize("state", FILTERS, ids=lambda s: f"{s.period}|{s.dimension_values()}")
def test_kpis_and_previous_period_match_pandas(
    store: DataStore, warehouse: PanelWarehouse, state: FilterState
) -> None:
    days = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Last 365 days": 365}
    previous_start, start, end = window(warehouse.deliveries, days[state.period])
    orders = _filtered(warehouse.deliveries, state)
    current = expected_kpis(
        in_range(orders, "order_date", start, end),
        in_range(warehouse.incidents, "opened_date", start, end),
    )
    previous = expected_kpis(
        in_range(orders, "order_date", previous_start, start),
        in_range(warehouse.incidents, "opened_date", previous_start, start),
    )
    figures = store.kpis(state)
    assert current["orders"] > 0
    for name, value in current.items():
        assert_close(figures.at[name, "current"], value)
        assert_close(figures.at[name, "previous"], previous[name])


def test_all_time_has_no_previous_period(store: DataStore, warehouse: PanelWarehouse) -> None:
    figures = store.kpis(FilterState(period="All time", segment="Champions"))
    orders = warehouse.deliveries[warehouse.deliveries["customer_segment"] == "Champions"]
    assert figures.at["orders", "current"] == len(orders)
    assert figures["previous"].isna().all()


def test_filter_values_are_parameters_not_sql(store: DataStore) -> None:
    figures = store.kpis(FilterState(region="x' or '1'='1", period="All time"))
    assert figures.at["orders", "current"] == 0


def test_breakdowns_only_accept_known_dimensions(store: DataStore) -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        store.late_rate_by("region; drop table fct_deliveries")


def test_late_rate_by_carrier_mode(store: DataStore, warehouse: PanelWarehouse) -> None:
    state = FilterState(region="North America")
    _, start, end = window(warehouse.deliveries, 90)
    orders = in_range(_filtered(warehouse.deliveries, state), "order_date", start, end)
    delivered = orders[orders["delivered_at"].notna()]
    expected = delivered.groupby("carrier_mode")["is_late"].apply(lambda s: s.astype(float).mean())
    frame = store.late_rate_by("carrier_mode", state).set_index("value")
    assert set(frame.index) == set(expected.index)
    for mode, rate in expected.items():
        assert frame.at[mode, "late_rate"] == pytest.approx(rate)
    assert list(frame["late_rate"]) == sorted(frame["late_rate"], reverse=True)


def test_trend_sums_to_the_orders_kpi(store: DataStore) -> None:
    state = FilterState(category="Fitness")
    assert store.trend(state)["orders"].sum() == store.kpis(state).at["orders", "current"]


def test_delay_distribution_counts_delivered_orders(
    store: DataStore, warehouse: PanelWarehouse
) -> None:
    _, start, end = window(warehouse.deliveries, 90)
    delivered = in_range(warehouse.deliveries, "order_date", start, end).dropna(
        subset=["delay_days"]
    )
    frame = store.delay_distribution(FilterState())
    assert frame["orders"].sum() == len(delivered)
    on_time = frame.loc[frame["days_late"] == 0, "orders"].sum()
    assert on_time == (delivered["delay_days"] == 0).sum()


def test_at_risk_orders_are_filtered_and_ranked(
    store: DataStore, warehouse: PanelWarehouse
) -> None:
    state = FilterState(carrier_mode="Standard Class", period="Last 7 days")
    frame = store.at_risk(state)
    expected = warehouse.at_risk[warehouse.at_risk["carrier_mode"] == "Standard Class"]
    assert len(frame) == len(expected) > 0  # the period does not hide open orders
    assert list(frame["order_id"]) == list(expected.sort_values("risk_rank")["order_id"])
    assert list(frame["late_risk"]) == sorted(frame["late_risk"], reverse=True)
    summary = store.at_risk_summary(state)
    high = expected[expected["risk_band"] == "high"]
    assert summary["high"] == len(high)
    assert summary["high_value"] == pytest.approx(high["net_value"].sum())
    assert len(store.at_risk(state, limit=3)) == min(3, len(expected))


def test_at_risk_orders_carry_their_eta_range(store: DataStore, warehouse: PanelWarehouse) -> None:
    """The ETA and its 80% range reach the work list, and the page writes them as agents read."""
    from panel_app.views.at_risk import eta_text

    frame = store.at_risk(FilterState())
    expected = warehouse.at_risk.set_index("order_id")
    for column in ("predicted_delivery_date", "eta_low", "eta_high"):
        shown = pd.to_datetime(frame.set_index("order_id")[column])
        assert shown.equals(pd.to_datetime(expected.loc[shown.index, column])), column
    scored = frame.dropna(subset=["eta_low"])
    assert len(scored) > 0
    assert (scored["eta_low"] <= scored["predicted_delivery_date"]).all()
    assert (scored["predicted_delivery_date"] <= scored["eta_high"]).all()
    first = scored.iloc[0]
    text = eta_text(first["predicted_delivery_date"], first["eta_low"], first["eta_high"])
    eta = pd.Timestamp(first["predicted_delivery_date"])
    assert text.startswith(f"ETA {eta.day} {eta:%b}") and "\u2013" in text


def test_segment_performance(store: DataStore, warehouse: PanelWarehouse) -> None:
    state = FilterState(region="Western Europe", period="Last 365 days")
    _, start, end = window(warehouse.deliveries, 365)
    orders = in_range(_filtered(warehouse.deliveries, state), "order_date", start, end)
    frame = store.segment_performance(state).set_index("customer_segment")
    for segment, rows in orders.groupby("customer_segment"):
        delivered = rows[rows["delivered_at"].notna()]
        assert frame.at[segment, "orders"] == len(rows)
        assert frame.at[segment, "customers"] == rows["customer_id"].nunique()
        assert frame.at[segment, "on_time_rate"] == pytest.approx(
            1 - delivered["is_late"].astype(float).mean()
        )
        high = rows[rows["is_open"] & rows["is_high_risk"]]
        assert frame.at[segment, "high_risk_open_orders"] == len(high)


def test_demand_for_a_category(store: DataStore, warehouse: PanelWarehouse) -> None:
    state = FilterState(category="Outdoors", period="All time")
    frame = store.demand(state)
    expected = warehouse.demand[warehouse.demand["category"] == "Outdoors"]
    assert frame["forecast"].sum() == pytest.approx(expected["forecast_orders"].sum())
    assert frame["actual"].sum() == pytest.approx(expected["actual_orders"].sum())
    assert frame["is_future"].sum() == expected["is_future"].sum() > 0
    table = store.demand_by_category(state)
    assert list(table["category"]) == ["Outdoors"]


def test_options_and_health(store: DataStore, warehouse: PanelWarehouse) -> None:
    options = store.options()
    assert options["region"] == sorted(warehouse.deliveries["region"].unique())
    assert options["segment"] == sorted(warehouse.deliveries["customer_segment"].unique())
    assert set(store.health()["layer"]) == {"ingest", "quarantine", "clean", "warehouse", "ml"}
    serving = store.models().query("is_serving")
    assert "risk-v2" in set(serving["model_version"])


def _high_risk(warehouse: PanelWarehouse) -> set[str]:
    return set(warehouse.at_risk.loc[warehouse.at_risk["risk_band"] == "high", "order_id"])


def test_store_reads_one_version_until_it_switches_to_a_newly_published_one(
    tmp_path: Path,
) -> None:
    first = panel_warehouse.build(tmp_path)
    store = DataStore(serving_current=first.serving_current)
    state = FilterState(period="All time")
    assert store.kpis(state).at["orders", "current"] == len(first.deliveries)
    assert (store.snapshot().version, store.version, store.newer_snapshot()) == ("v1", "v1", None)
    v1 = store.snapshot()

    second = panel_warehouse.build(tmp_path, panel_warehouse.NEXT_SPEC)
    # Published, not switched yet: every figure still comes from one complete version.
    assert store.snapshot() == v1
    assert store.kpis(state).at["orders", "current"] == len(first.deliveries)
    notified: list[str] = []
    store.param.watch(lambda *events: notified.extend(e.name for e in events), ["state", "version"])
    v2 = store.follow()
    assert v2 is not None and v2.version == store.version == store.snapshot().version == "v2"
    assert sorted(notified) == ["state", "version"]  # parts bound to either re-run
    assert store.kpis(state).at["orders", "current"] == len(second.deliveries) == 430
    assert store.follow() is None and len(notified) == 2

    newly = store.newly_high_risk(v1, v2)
    assert newly == sorted(_high_risk(second) - _high_risk(first))
    assert 0 < len(newly) < len(_high_risk(second))  # some were high already, some are new
    assert store.high_risk_order_ids() == _high_risk(second)

    # The publisher prunes v1: its connection is closed when the next version is first opened.
    shutil.rmtree(v1.path.parent)
    publish(tmp_path, SampleSpec(orders=50, days=30, seed=5, version="v3"))
    assert store.follow() is not None and store.kpis(state).at["orders", "current"] == 50
    cached = {key[0] for key in pn.state.cache if isinstance(key, tuple)}
    assert f"scpro-duckdb:{v1.path}" not in cached and f"scpro-duckdb:{v2.path}" in cached


def test_a_live_session_follows_new_versions_and_keeps_the_last_good_data(
    tmp_path: Path,
) -> None:
    """What an open page's periodic check does, without a browser (the browser test has one)."""
    from panel_app.app import Dashboard, LiveUpdates
    from panel_app.filters import Filters

    first = panel_warehouse.build(tmp_path)
    store = DataStore(serving_current=first.serving_current)
    filters = Filters(store)
    filters.region = "South Asia"
    dashboard = Dashboard(store, page="at_risk")
    at_risk_cards = dashboard.main.objects[0].objects[1]
    at_risk_shown = at_risk_cards.object
    dashboard.page = "overview"  # At-risk stays built, hidden
    cards = dashboard.main.objects[0].objects[1]  # the overview's KPI cards
    ticks = iter(datetime(2026, 1, 5, 8, 0, s, tzinfo=UTC) for s in range(60))
    live = LiveUpdates(store, filters, clock=lambda: next(ticks))
    assert "Updated <b>08:00:00</b> UTC" in live.status.object
    assert "newly-high-risk" not in live.status.object  # nothing to compare with yet
    assert live.check() is False

    link = first.serving_current
    good_target = os.readlink(link)
    shown = cards.object

    # The link vanishes: the page keeps its numbers and says so.
    link.unlink()
    assert live.check() is False
    assert "cannot be read now" in live.problem and "last good data" in live.status.object
    assert cards.object == shown and store.version == "v1"

    # A version that breaks half-way through the switch (its fct_deliveries is missing, under a
    # hostile name): the session goes back to v1, shows the error escaped, and does not retry it.
    hostile = "<img src=x onerror=alert(1)>"
    broken = link.parent / "versions" / hostile
    broken.mkdir()
    with duckdb.connect(str(broken / "warehouse.duckdb")) as con:
        con.execute("create table at_risk_orders as select 'O1' as order_id, 'high' as risk_band")
    link.symlink_to(Path("versions") / hostile)
    assert live.check() is False
    assert store.version == "v1" and cards.object == shown
    assert hostile in live.problem and "could not be shown" in live.problem
    assert "<img" not in live.status.object and "&lt;img src=x" in live.status.object
    status = live.status.object
    assert live.check() is False and live.status.object == status

    # Back to v1: the notice goes away.
    link.unlink()
    link.symlink_to(good_target)
    assert live.check() is False and live.problem is None
    assert "problem" not in live.status.object

    # The next publication: the session switches, in place, and counts the newly high-risk.
    second = panel_warehouse.build(tmp_path, panel_warehouse.NEXT_SPEC)
    assert live.check() is True
    assert dashboard.main.objects[0].objects[1] is cards and cards.object != shown
    newly = sorted(_high_risk(second) - _high_risk(first))
    assert live.newly_high_risk == newly
    assert f'data-count="{len(newly)}"' in live.status.object
    assert f"{len(newly)} orders newly high-risk" in live.status.object
    assert (
        live.updated_at.second > 0 and f"08:00:{live.updated_at.second:02d}" in live.status.object
    )
    asia = second.deliveries[second.deliveries["region"] == "South Asia"]
    _, start, end = window(second.deliveries, 90)
    assert f">{len(in_range(asia, 'order_date', start, end)):,}<" in cards.object
    assert store.state.region == "South Asia"  # the filters stay

    # The hidden page computed nothing; it is brought up to date when shown again.
    assert at_risk_cards.object == at_risk_shown
    dashboard.page = "at_risk"
    assert dashboard.main.objects[0].objects[1] is at_risk_cards
    high_in_asia = second.at_risk.query("risk_band == 'high' and region == 'South Asia'")
    assert at_risk_cards.object != at_risk_shown
    shown_high = re.search(r'data-kpi="high">.*?class="value">([^<]*)<', at_risk_cards.object)
    assert shown_high is not None and shown_high.group(1) == str(len(high_in_asia))


def test_missing_snapshot_gives_a_friendly_page(tmp_path: Path) -> None:
    store = DataStore(serving_current=tmp_path / "serving" / "current")
    with pytest.raises(NoSnapshotError):
        store.snapshot()
    from panel_app.app import create_app

    page = create_app(tmp_path / "serving" / "current")
    text = " ".join(str(getattr(obj, "object", "")) for obj in page.main)
    assert "No data published yet" in text
    assert "SCPro is landing the stream" in text
    assert "materialize the assets" not in text  # the platform does that by itself


def test_app_builds_every_page_without_a_browser(warehouse: PanelWarehouse) -> None:
    from panel_app.app import PAGES, Dashboard
    from panel_app.filters import Filters

    store = DataStore(serving_current=warehouse.serving_current)
    filters = Filters(store)
    dashboard = Dashboard(store)
    for page in PAGES:
        dashboard.page = page
        assert dashboard.main.objects
    filters.region = "South Asia"
    assert store.state.region == "South Asia"
    filters.reset()
    assert store.state == FilterState(region=ALL)


def test_cards_and_trends_follow_the_filters_in_place(warehouse: PanelWarehouse) -> None:
    """The overview's cards and charts keep their panes and figures; only their data changes."""
    from panel_app.filters import Filters
    from panel_app.views import overview

    store = DataStore(serving_current=warehouse.serving_current)
    filters = Filters(store)
    page = overview.build(store)
    cards = page.objects[1]
    trends = overview.Trends(store)
    orders_chart = trends._orders.object

    def shown_orders() -> list[float]:
        return list(orders_chart.renderers[0].data_source.data["y"])

    everywhere = shown_orders()
    assert everywhere == list(store.trend().orders.astype(float))
    before = cards.object
    filters.region = "South Asia"
    assert page.objects[1] is cards and trends._orders.object is orders_chart
    assert shown_orders() == list(store.trend().orders.astype(float))
    assert sum(shown_orders()) < sum(everywhere)
    assert cards.object != before
    assert f">{store.kpis().at['orders', 'current']:,.0f}<" in cards.object


def test_filters_keep_a_choice_a_new_snapshot_no_longer_offers(
    store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from panel_app.filters import Filters

    filters = Filters(store)
    filters.region = "South Asia"
    offered = store.options()
    offered["region"] = ["Oceania", "Western Europe"]
    monkeypatch.setattr(store, "options", lambda: offered)
    filters.refresh_options()
    assert filters.param["region"].objects == [ALL, "Oceania", "Western Europe", "South Asia"]
    assert filters.region == "South Asia" and store.state.region == "South Asia"


def test_refresh_period_comes_from_the_environment() -> None:
    from panel_app.app import refresh_seconds_from_env
    from scpro_assets.settings import DEFAULT_REFRESH_SECONDS

    assert refresh_seconds_from_env({}) == DEFAULT_REFRESH_SECONDS == 3.0
    assert refresh_seconds_from_env({"SCPRO_PANEL_REFRESH_SECONDS": " 1.5 "}) == 1.5
    for bad in ("soon", "0", "-2", "86400"):
        with pytest.raises(ValueError, match="SCPRO_PANEL_REFRESH_SECONDS"):
            refresh_seconds_from_env({"SCPRO_PANEL_REFRESH_SECONDS": bad})


def test_sessions_on_many_threads_get_their_own_query_results(tmp_path: Path) -> None:
    """Panel serves sessions on threads when asked to (``--num-threads``); the query cache must
    not hand one session another's frame. With ``pn.cache`` 2,628 of these 8,000 calls did."""
    import sys
    import threading
    from datetime import date, timedelta

    from panel_app.store import _query

    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    wrong: list[tuple[int, int]] = []
    errors: list[str] = []

    def session(n: int) -> None:
        for k in range(400):
            day = date(2020, 1, 1) + timedelta(days=n * 400 + k)
            try:
                frame = _query(str(db), f"select ? as v{n}", (day,))
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            if list(frame.columns) != [f"v{n}"] or frame.iloc[0, 0].date() != day:
                wrong.append((n, k))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as a loaded server does, and more
    try:
        threads = [threading.Thread(target=session, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and wrong == []


@pytest.mark.parametrize(("high", "said"), [(1, "1 open order is"), (2, "2 open orders are")])
def test_the_overview_banner_counts_high_risk_orders_in_words(high: int, said: str) -> None:
    """Seen in the demo: "1 open orders are at high risk" (the banner only reads the summary)."""
    from panel_app.views.overview import action_line

    class Summary:
        def at_risk_summary(self, _state: FilterState) -> dict:
            return {"open_scored": 5, "high": high, "high_value": 117.57}

    banner = action_line(Summary(), FilterState()).object
    assert banner.startswith(f"**{said} at high risk of being late**"), banner
