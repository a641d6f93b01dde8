"""Take the README's pictures from a running `make demo`: real data, never a hand-made sample.

Run it beside a demo that has published its first snapshot (`make pictures` does this)::

    .venv/bin/python infra/readme_pictures.py [--dashboard URL] [--dagster URL]

It opens every dashboard page and the Dagster UI in headless Chromium (Debian's ``chromium``,
through Playwright, since a Panel page draws only over its websocket session), acknowledges the
riskiest open order on the At-risk page as a user would (its trail shows the action pending
until the next snapshot brings it back through Kafka, landing and dbt; at the demo's pace of
6 business hours a second that order is usually delivered by then), and writes the pictures to
``panel_app/screenshots/``. It stops with a clear message when the demo
has no scored open order yet, rather than picture an empty page.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "panel_app" / "screenshots"
CHROMIUM = Path(os.environ.get("SCPRO_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
WAIT_MS = 60_000
SKIP_WAIT_MS = 10_000
#: dashboard page -> a selector present once the page has drawn its data
PAGES = {
    "overview": '[data-kpi="orders"]',
    "deliveries": '[data-figure="delivered"]',
    "customers": ".segment-performance .tabulator-row",
    "demand": ".demand-table .tabulator-row",
    "health": ".tabulator-row",
}


def shoot(page: Page, name: str) -> None:
    """Let Bokeh finish its canvases, then save a full-page picture."""
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"  {OUT.relative_to(ROOT) / name}.png", flush=True)


def dashboard(page: Page, url: str) -> None:
    """Every page, then the at-risk list with an order acknowledged through the queue."""
    for name, marker in PAGES.items():
        page.goto(f"{url}?page={name}")
        page.locator(marker).first.wait_for(timeout=WAIT_MS)
        shoot(page, {"overview": "overview-dataco", "health": "data-health"}.get(name, name))

    page.set_viewport_size({"width": 1700, "height": 2300})  # the list, its alerts, the queue
    page.goto(f"{url}?page=at_risk")
    rows = page.locator(".at-risk-table .tabulator-row")
    try:
        rows.first.wait_for(timeout=WAIT_MS)
    except Exception:
        sys.exit("No scored open order on the At-risk page yet: wait for the next snapshot.")
    top = rows.first.locator('[tabulator-field="Order"]').inner_text().strip()
    rows.first.click()
    page.locator(".q-note textarea").fill("Carrier called: the parcel left the hub late.")
    page.locator(".q-do-acknowledge button").click()
    page.locator(".q-message").filter(has_text="Acknowledged").wait_for(timeout=WAIT_MS)
    print(f"  acknowledged order {top}", flush=True)
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "at-risk")  # the list, its ETA ranges, the latest alert and the pending action
    page.locator(".exception-queue").screenshot(path=str(OUT / "at-risk-queue.png"))
    print(f"  {OUT.relative_to(ROOT)}/at-risk-queue.png", flush=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def live_update(page: Page, url: str, wait_minutes: float) -> None:
    """An open overview page after the next snapshot arrives: new numbers, without a reload."""
    page.goto(f"{url}?page=overview")
    header = page.locator(".scpro-live .live")
    header.first.wait_for(timeout=WAIT_MS)
    before = header.first.inner_text()
    deadline = time.monotonic() + wait_minutes * 60
    while header.first.inner_text() == before:
        if time.monotonic() > deadline:
            print(f"  no new snapshot in {wait_minutes} min: no live-update picture")
            return
        page.wait_for_timeout(3000)
    shoot(page, "overview-live-update")


def dagster(page: Page, url: str) -> None:
    """The asset graph, the ml group while the stream flows, and the runs."""
    views = {
        "dagster-asset-groups": "/asset-groups",
        "dagster-ml-live": "/locations/scpro/asset-groups/ml",
        "dagster-runs-live": "/runs",
    }
    for name, path in views.items():
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        # Dagster's "join the community" pop-up on a fresh instance comes a moment after the
        # page settles (a plain count() missed it once and pictured the pop-up).
        skip = page.get_by_role("button", name="Skip")
        try:
            skip.first.wait_for(timeout=SKIP_WAIT_MS)
            skip.first.click()
        except PlaywrightTimeoutError:
            pass  # no pop-up on this page
        page.wait_for_timeout(4000)
        shoot(page, name)


def main() -> None:
    """Picture the dashboard, then the Dagster UI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", default="http://127.0.0.1:5006/app")
    parser.add_argument("--dagster", default="http://127.0.0.1:3000")
    parser.add_argument("--wait-minutes", type=float, default=15, help="for the next snapshot")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        dashboard(page, args.dashboard)
        dagster(page, args.dagster)
        live_update(page, args.dashboard, args.wait_minutes)
        browser.close()


if __name__ == "__main__":
    main()
