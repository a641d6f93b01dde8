"""Dashboard benchmark: time to first render of the overview and time for a filter change.

Server-side figures time what a session does in Python (build the page objects, run the
overview's queries, re-run them after a filter change) on a fresh cache, so they measure the
queries and not Panel's memo.
Without a real snapshot, :func:`synthetic_snapshot` publishes a big generated one.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import panel as pn

from panel_app.store import DataStore, FilterState
from panel_app.views import overview
from scpro_assets.bench.report import Report
from scpro_assets.testing.browser import CHROMIUM_ARGS
from scpro_assets.testing.sample_snapshot import SampleSpec, publish


def synthetic_snapshot(home: Path, orders: int = 200_000, seed: int = 11) -> Path:
    """Publish a generated snapshot with ``orders`` orders under ``home``; return ``current``."""
    publish(home, SampleSpec(orders=orders, days=730, seed=seed, version=f"synthetic-{orders}"))
    return home / "serving" / "current"


def _render_overview(store: DataStore) -> tuple[pn.viewable.Viewable, overview.Trends]:
    """What the first render of the overview costs on the server: every part's queries.

    Building the page computes the KPI cards; the deferred parts are computed here as a
    browser's first render would.
    """
    page = overview.build(store)
    overview.action_line(store, store.state)
    return page, overview.Trends(store)


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _filter_change(store: DataStore, filters: Any, region: str) -> float:
    """Set one filter and recompute the overview's parts, as a session does.

    The cards and the trends follow the filters themselves (they watch the store's state).
    """
    started = time.perf_counter()
    filters.param.update(region=region)
    overview.action_line(store, store.state)
    return time.perf_counter() - started


def bench_dashboard(snapshot_home: Path, report: Report, label: str, repeats: int = 5) -> None:
    """Time first render and filter changes on the snapshot under ``snapshot_home``."""
    from panel_app.filters import Filters

    current = snapshot_home / "serving" / "current"
    section = f"dashboard: {label}"
    first_renders, filter_changes = [], []
    regions: list[str] = []
    for _ in range(repeats):
        pn.state.clear_caches()
        started = time.perf_counter()
        store = DataStore(serving_current=current)
        filters = Filters(store)
        page, trends = _render_overview(store)
        first_renders.append(time.perf_counter() - started)
        regions = store.options()["region"]
        filter_changes.extend(_filter_change(store, filters, r) for r in regions[:3])
        del page, trends
    orders = int(
        DataStore(serving_current=current, state=FilterState(period="All time"))
        .kpis()
        .at["orders", "current"]
    )
    report.add(
        section,
        orders=orders,
        first_render_overview_s_median=statistics.median(first_renders),
        first_render_overview_s_max=max(first_renders),
        filter_change_s_median=statistics.median(filter_changes),
        filter_change_s_max=max(filter_changes),
        goal_first_render_under_2s=max(first_renders) < 2.0,
        goal_filter_change_under_300ms=statistics.median(filter_changes) < 0.3,
    )
    bench_dashboard_in_browser(current, report, label)


#: Bokeh charts on the overview (the trends), each drawn on a canvas.
CHARTS_ON_OVERVIEW = 2


def bench_dashboard_in_browser(
    current: Path, report: Report, label: str, sessions: int = 4
) -> None:
    """What a person waits for in Chromium: page open -> KPI numbers shown, and a filter change.

    The first session after the server starts is reported apart (it warms Panel and the query
    cache); the others are what a user opening the cockpit sees.
    """
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    from playwright.sync_api import expect, sync_playwright

    from scpro_assets.settings import REPO_ROOT

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SCPRO_PANEL_SERVING_CURRENT": str(current)}
    command = [sys.executable, "-m", "panel", "serve", str(REPO_ROOT / "panel_app" / "app.py")]
    command += ["--port", str(port), "--address", "127.0.0.1"]
    command += [f"--allow-websocket-origin=127.0.0.1:{port}"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/app"
    opens: list[float] = []
    whole: list[float] = []
    changes: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("panel serve did not come up") from None
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("SCPRO_CHROMIUM", "/usr/bin/chromium"),
                args=CHROMIUM_ARGS,
            )
            for _ in range(sessions):
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(url)
                orders = page.locator('[data-kpi="orders"] .value').first
                orders.wait_for(timeout=60_000)
                opens.append(time.perf_counter() - started)
                # The charts load right after the numbers: a filter is timed on the whole page.
                page.locator("canvas").nth(CHARTS_ON_OVERVIEW - 1).wait_for(timeout=60_000)
                expect(page.locator(".pn-loading")).to_have_count(0, timeout=60_000)
                whole.append(time.perf_counter() - started)
                before = orders.inner_text()
                options = page.locator(".region select option").all_inner_texts()
                choice = next((o for o in options if o != "All"), None)
                if choice is not None:
                    started = time.perf_counter()
                    page.locator(".region select").select_option(choice)
                    # Panel renders into shadow roots: Playwright's locators see through them.
                    expect(orders).not_to_have_text(before, timeout=60_000)
                    changes.append(time.perf_counter() - started)
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    section = f"dashboard: {label}"
    figures: dict[str, Any] = {"browser: first session open -> KPIs shown s": opens[0]}
    if len(opens) > 1:
        figures["browser: later sessions open -> KPIs shown s (median)"] = statistics.median(
            opens[1:]
        )
    figures["browser: open -> whole overview with charts s (median)"] = statistics.median(whole)
    if changes:
        figures["browser: region filter -> KPIs updated s (median)"] = statistics.median(changes)
    report.add(section, **figures)


if __name__ == "__main__":
    import sys
    import tempfile

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        synthetic_snapshot(Path(folder), orders=size)
        print(f"built {size:,} orders in {time.perf_counter() - started:.1f} s")
        bench_dashboard(Path(folder), Report(), f"synthetic, {size:,} orders")
