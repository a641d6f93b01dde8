"""The dashboard's data store on a small warehouse built in the test: exact numbers, no rendering."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import panel_warehouse
import pytest
from panel_warehouse import PanelWarehouse, expected_kpis, in_range, window

from panel_app.sample_snapshot import SampleSpec, publish
from panel_app.store import ALL, DataStore, FilterState, NoSnapshotError


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


def test_store_follows_a_newly_published_snapshot(tmp_path: Path) -> None:
    first = panel_warehouse.build(tmp_path)
    store = DataStore(serving_current=first.serving_current)
    state = FilterState(period="All time")
    assert store.kpis(state).at["orders", "current"] == len(first.deliveries)
    assert store.snapshot().version == "v1"
    publish(tmp_path, SampleSpec(orders=250, days=60, seed=3, version="v2"))
    assert store.snapshot().version == "v2"
    assert store.kpis(state).at["orders", "current"] == 250


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
