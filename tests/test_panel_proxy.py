"""The dashboard behind a reverse proxy: a URL prefix and allowed origins, by configuration.

The real ``scpro dashboard`` command is started with ``SCPRO_PANEL_PREFIX`` and
``SCPRO_PANEL_ALLOWED_ORIGINS``; Chromium reaches it by a host name that its resolver maps to
127.0.0.1 (no traffic leaves the machine), the way a browser reaches a proxied dashboard, and a
filter change proves the websocket works from that origin. An origin not configured is refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import panel_warehouse
import pytest
from playwright.sync_api import expect, sync_playwright

from panel_app.server import proxy_options
from scpro_assets.settings import REPO_ROOT
from scpro_assets.testing.browser import CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("SCPRO_CHROMIUM", "/usr/bin/chromium"))
PROXY_HOST = "dashboard.scpro.test"


def test_proxy_options_default_to_the_local_origins_only():
    options = proxy_options("127.0.0.1", 5006, environ={})
    assert options == {"websocket_origin": ["127.0.0.1:5006", "localhost:5006"]}


def test_proxy_options_add_origins_and_prefix_and_trust_forwarded_headers():
    env = {
        "SCPRO_PANEL_ALLOWED_ORIGINS": " a.example:443, b.example ",
        "SCPRO_PANEL_PREFIX": "/ops/",
    }
    options = proxy_options("0.0.0.0", 80, environ=env)
    assert options["websocket_origin"] == [
        "0.0.0.0:80",
        "localhost:80",
        "a.example:443",
        "b.example",
    ]
    assert options["prefix"] == "ops"
    assert options["use_xheaders"] is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCPRO_PANEL_ALLOWED_ORIGINS", "https://a.example"),
        ("SCPRO_PANEL_ALLOWED_ORIGINS", "a.example/path"),
        ("SCPRO_PANEL_PREFIX", "ops?x=1"),
    ],
)
def test_bad_proxy_settings_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        proxy_options("127.0.0.1", 5006, environ={name: value})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _websocket_status(port: int, path: str, origin: str) -> int:
    """HTTP status of a websocket upgrade to ``path`` sent with ``origin`` (on loopback)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Origin: {origin}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


@pytest.fixture(scope="module")
def proxied_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("proxy-home")
    panel_warehouse.build(home)
    port = _free_port()
    log = home / "dashboard.log"
    env = {
        **os.environ,
        "SCPRO_HOME": str(home),
        "SCPRO_PANEL_PREFIX": "/scpro/",
        "SCPRO_PANEL_ALLOWED_ORIGINS": f"{PROXY_HOST}:{port}",
    }
    scpro = Path(os.sys.executable).parent / "scpro"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(scpro), "dashboard", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/scpro/app", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"scpro dashboard did not come up:\n{log.read_text()}")
                time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert "/scpro/app" in log.read_text()  # the command prints the address with its prefix


def test_the_dashboard_lives_under_its_prefix_and_refuses_unknown_origins(proxied_dashboard):
    port = proxied_dashboard
    with pytest.raises(urllib.error.HTTPError) as unprefixed:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=10)
    assert unprefixed.value.code == 404
    assert _websocket_status(port, "/scpro/app/ws", "http://evil.example") == 403
    assert _websocket_status(port, "/scpro/app/ws", f"http://{PROXY_HOST}:{port}") != 403


def test_a_browser_on_the_proxy_host_name_gets_a_live_session(proxied_dashboard):
    port = proxied_dashboard
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make setup` installs Debian's chromium"
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PROXY_HOST} 127.0.0.1"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://{PROXY_HOST}:{port}/scpro/app?page=overview")
            orders = page.locator('[data-kpi="orders"] .value')
            orders.wait_for(timeout=30_000)
            before = orders.inner_text()
            # Only a working websocket carries the filter change to the server and back.
            page.locator(".region select").select_option("South Asia")
            expect(orders).not_to_have_text(before, timeout=30_000)
            assert not [e for e in errors if "websocket" in e.lower()], errors
        finally:
            browser.close()
