"""The dashboard in a real headless Chromium: every page opens, filters change the numbers.

The app is served with ``panel serve`` on a free loopback port, over a warehouse built in the
test; expected figures come from pandas on the same rows. The last test publishes a new version
of that warehouse to an open page (and puts the first one back). Screenshots go to a temporary
folder (the README's pictures come from a real demo run: `make pictures`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import panel_warehouse
import pytest
from panel_warehouse import PanelWarehouse, in_range, window
from playwright.sync_api import Browser, Page, expect, sync_playwright

from panel_app import ui
from panel_app.views.at_risk import eta_text
from scpro_assets.settings import REPO_ROOT
from scpro_assets.testing.browser import CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("SCPRO_CHROMIUM", "/usr/bin/chromium"))
WAIT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> PanelWarehouse:
    return panel_warehouse.build(tmp_path_factory.mktemp("panel-browser"))


@pytest.fixture(scope="module")
def app_url(warehouse: PanelWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("panel-log") / "serve.log"
    env = {
        **os.environ,
        "SCPRO_PANEL_SERVING_CURRENT": str(warehouse.serving_current),
        "SCPRO_PANEL_REFRESH_SECONDS": "1",
    }
    command = [
        sys.executable, "-m", "panel", "serve", str(REPO_ROOT / "panel_app" / "app.py"),
        "--port", str(port), "--address", "127.0.0.1",
        f"--allow-websocket-origin=127.0.0.1:{port}",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"panel serve did not come up:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
    served = log.read_text()
    # Tornado logs closed websockets when browser contexts close; only the app's errors count.
    assert "Error running application handler" not in served, served
    assert "panel_app/" not in served, served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make setup` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [tmp_path_factory.mktemp("panel-screenshots")]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, folders: list[Path], name: str) -> None:
    page.wait_for_timeout(800)  # let Bokeh finish drawing its canvases
    for folder in folders:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        assert (folder / f"{name}.png").stat().st_size > 10_000


def open_page(page: Page, url: str, name: str, marker: str) -> None:
    page.goto(f"{url}?page={name}")
    page.locator(marker).first.wait_for(timeout=WAIT_MS)


def choose(page: Page, filter_name: str, value: str) -> None:
    page.locator(f".{filter_name} select").select_option(value)


def test_overview_kpis_follow_the_region_filter(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    _, start, end = window(warehouse.deliveries, 90)
    recent = in_range(warehouse.deliveries, "order_date", start, end)
    open_page(page, app_url, "overview", '[data-kpi="orders"]')
    orders = page.locator('[data-kpi="orders"] .value')
    late = page.locator('[data-kpi="late_rate"] .value')
    expect(orders).to_have_text(ui.count(len(recent)))
    delivered = recent[recent["delivered_at"].notna()]
    expect(late).to_have_text(ui.pct(delivered["is_late"].astype(float).mean()))
    screenshot(page, shots, "overview")

    choose(page, "region", "South Asia")
    asia = recent[recent["region"] == "South Asia"]
    assert len(asia) != len(recent)
    expect(orders).to_have_text(ui.count(len(asia)), timeout=WAIT_MS)
    asia_delivered = asia[asia["delivered_at"].notna()]
    expect(late).to_have_text(ui.pct(asia_delivered["is_late"].astype(float).mean()))
    expect(page).to_have_url(re.compile(r"region=South\+Asia"), timeout=WAIT_MS)
    screenshot(page, shots, "overview-south-asia")


def test_deliveries_page_follows_the_carrier_filter(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    _, start, end = window(warehouse.deliveries, 90)
    recent = in_range(warehouse.deliveries, "order_date", start, end)
    delivered = recent[recent["delivered_at"].notna()]
    open_page(page, app_url, "deliveries", '[data-figure="delivered"]')
    figure = page.locator('[data-figure="delivered"]')
    expect(figure).to_have_text(ui.count(len(delivered)))
    expect(page.locator(".bk-Canvas, canvas").first).to_be_visible()
    screenshot(page, shots, "deliveries")

    choose(page, "carrier_mode", "First Class")
    first = delivered[delivered["carrier_mode"] == "First Class"]
    expect(figure).to_have_text(ui.count(len(first)), timeout=WAIT_MS)
    expect(page.locator('[data-figure="late"]')).to_have_text(ui.count(first["is_late"].sum()))


def test_at_risk_page_ranks_filters_and_exports(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    at_risk = warehouse.at_risk.sort_values("risk_rank")
    open_page(page, app_url, "at_risk", '[data-kpi="high"]')
    high = page.locator('[data-kpi="high"] .value')
    expect(high).to_have_text(ui.count((at_risk["risk_band"] == "high").sum()))
    first_row = page.locator(".at-risk-table .tabulator-row").first
    expect(first_row).to_contain_text(at_risk["order_id"].iloc[0], timeout=WAIT_MS)
    top = at_risk.iloc[0]  # its ETA and 80% range, "ETA 12 Mar (10-15 Mar)"
    eta = eta_text(top["predicted_delivery_date"], top["eta_low"], top["eta_high"])
    assert eta.startswith("ETA ")
    expect(first_row).to_contain_text(eta)
    screenshot(page, shots, "at-risk")

    choose(page, "region", "Western Europe")
    europe = at_risk[at_risk["region"] == "Western Europe"]
    expect(high).to_have_text(ui.count((europe["risk_band"] == "high").sum()), timeout=WAIT_MS)
    expect(first_row).to_contain_text(europe["order_id"].iloc[0], timeout=WAIT_MS)

    with page.expect_download(timeout=WAIT_MS) as download_info:
        page.get_by_text("Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [row["order_id"] for row in rows] == list(europe["order_id"])
    assert {"late_risk", "predicted_delivery_time", "top_reasons", "customer_segment"} <= set(
        rows[0]
    )


def test_customers_page_follows_the_period_filter(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    open_page(page, app_url, "customers", ".segment-performance .tabulator-row")
    loyal = page.locator(".segment-performance .tabulator-row", has_text="Loyal")
    orders_cell = loyal.locator('[tabulator-field="Orders"]')
    for period, days in (("Last 90 days", 90), ("Last 30 days", 30)):
        if period != "Last 90 days":
            choose(page, "period", period)
        _, start, end = window(warehouse.deliveries, days)
        recent = in_range(warehouse.deliveries, "order_date", start, end)
        expected = (recent["customer_segment"] == "Loyal").sum()
        expect(orders_cell).to_have_text(ui.count(expected), timeout=WAIT_MS)
        if period == "Last 90 days":
            screenshot(page, shots, "customers")


def test_demand_page_follows_the_category_filter(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    open_page(page, app_url, "demand", ".demand-table .tabulator-row")
    rows = page.locator(".demand-table .tabulator-row")
    expect(rows).to_have_count(warehouse.demand["category"].nunique())
    screenshot(page, shots, "demand")
    choose(page, "category", "Outdoors")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    future = warehouse.demand.query("category == 'Outdoors' and is_future")
    next_week = future.sort_values("period_start")["forecast_orders"].iloc[0]
    expect(rows.first.locator('[tabulator-field="Next week forecast"]')).to_have_text(
        f"{round(next_week):,}"
    )


def test_health_page_shows_layers_models_and_alerts(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    from scpro_assets.alerts import Alert, send_alert

    hostile = Alert(
        "browser-1",
        "range_unlanded",
        "error",
        "<b>orders</b> 0-9 not landed",
        '<img src=x onerror="document.title=1"> after 3 attempts',
    )
    send_alert(hostile, warehouse.home, urls=())
    open_page(page, app_url, "health", ".models-table .tabulator-row")
    expect(page.locator(".alerts .alert-item .title")).to_have_text(hostile.title)  # as text
    expect(page.locator(".alerts .alert-item .body")).to_have_text(hostile.body)
    expect(page.locator(".alerts .alert-item img")).to_have_count(0)
    expect(page.locator(".alerts .alert-item b")).to_have_count(0)
    payments = page.locator(".completeness-table .tabulator-row", has_text="payments")
    expect(payments).to_contain_text("landing (events in flight)")
    expect(page.locator(".completeness-table .tabulator-row")).to_have_count(4)
    expect(page.locator(".health-table .tabulator-row")).to_have_count(5)
    expect(
        page.get_by_role("row", name=re.compile(r"late_risk risk-v2 in service"))
    ).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"late_risk risk-v1 retired"))).to_be_visible()
    screenshot(page, shots, "data-health")


def _high_risk(warehouse: PanelWarehouse, region: str | None = None) -> set[str]:
    rows = warehouse.at_risk[warehouse.at_risk["risk_band"] == "high"]
    if region is not None:
        rows = rows[rows["region"] == region]
    return set(rows["order_id"])


def test_an_open_page_follows_a_newly_published_snapshot_without_reload(
    page: Page, app_url: str, warehouse: PanelWarehouse, shots: list[Path]
) -> None:
    """Issue #15 item 3: new numbers and the newly high-risk count arrive in place."""
    region = "South Asia"
    page.goto(f"{app_url}?page=at_risk&region={region.replace(' ', '+')}")
    at_risk_high = page.locator('[data-kpi="high"] .value')
    expect(at_risk_high).to_have_text(ui.count(len(_high_risk(warehouse, region))), timeout=WAIT_MS)
    page.get_by_role("button", name="Overview", exact=True).click()  # At-risk built, now hidden
    _, start, end = window(warehouse.deliveries, 90)
    asia = warehouse.deliveries[warehouse.deliveries["region"] == region]
    orders = page.locator('[data-kpi="orders"] .value')
    expect(orders).to_have_text(
        ui.count(len(in_range(asia, "order_date", start, end))), timeout=WAIT_MS
    )
    live = page.locator(".scpro-live .live")
    expect(live).to_have_attribute("data-version", "v1", timeout=WAIT_MS)
    expect(live.locator(".newly-high-risk")).to_have_count(0)
    page.evaluate("window.scproOpenedOnce = true")  # a reload or navigation would drop it

    v1 = os.readlink(warehouse.serving_current)
    try:
        second = panel_warehouse.build(warehouse.home, panel_warehouse.NEXT_SPEC)
        _, start, end = window(second.deliveries, 90)
        asia = second.deliveries[second.deliveries["region"] == region]
        expect(orders).to_have_text(
            ui.count(len(in_range(asia, "order_date", start, end))), timeout=WAIT_MS
        )
        expect(live).to_have_attribute("data-version", "v2", timeout=WAIT_MS)
        newly = _high_risk(second) - _high_risk(warehouse)
        badge = live.locator(".newly-high-risk")
        expect(badge).to_have_attribute("data-count", str(len(newly)), timeout=WAIT_MS)
        expect(badge).to_have_text(f"{len(newly)} orders newly high-risk", timeout=WAIT_MS)
        expect(live.locator(".updated")).to_have_text(re.compile(r"^Updated \d\d:\d\d:\d\d UTC$"))
        assert page.evaluate("window.scproOpenedOnce") is True
        expect(page).to_have_url(re.compile(r"page=overview.*region=South\+Asia"))
        screenshot(page, shots, "overview-live-update")

        page.get_by_role("button", name="At-risk orders", exact=True).click()
        expect(at_risk_high).to_have_text(
            ui.count(len(_high_risk(second, region))), timeout=WAIT_MS
        )
        assert page.evaluate("window.scproOpenedOnce") is True
    finally:
        link = warehouse.serving_current.with_name(".current-v1")
        link.symlink_to(v1)
        link.replace(warehouse.serving_current)


def test_a_vanished_snapshot_keeps_the_last_good_data_and_a_new_one_opens_the_dashboard(
    page: Page, app_url: str, warehouse: PanelWarehouse
) -> None:
    open_page(page, app_url, "overview", '[data-kpi="orders"]')
    orders = page.locator('[data-kpi="orders"] .value')
    shown = orders.inner_text()
    v1 = os.readlink(warehouse.serving_current)
    warehouse.serving_current.unlink()
    try:
        problem = page.locator(".scpro-live .problem")
        expect(problem).to_contain_text("cannot be read now", timeout=WAIT_MS)
        expect(problem).to_contain_text("showing the last good data", timeout=WAIT_MS)
        expect(orders).to_have_text(shown)

        page.goto(app_url)  # a page opened now: nothing to show yet
        expect(page.locator(".no-data")).to_be_visible(timeout=WAIT_MS)
        page.evaluate("window.scproWaiting = true")
    finally:
        link = warehouse.serving_current.with_name(".current-v1")
        link.symlink_to(v1)
        link.replace(warehouse.serving_current)
    # It opens the dashboard by itself: a reload and a new session (a minute on a busy box).
    expect(orders).to_have_text(shown, timeout=2 * WAIT_MS)
    assert page.evaluate("window.scproWaiting") is None
