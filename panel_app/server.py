"""Serve the dashboard: ``panel_app.server.serve(settings, port, show)`` for the ``scpro`` CLI.

Optional login by configuration, never by code: ``SCPRO_PANEL_AUTH=basic`` turns on Panel's
basic auth with the users in ``SCPRO_PANEL_USERS`` (``name:password,name2:password2``) and a
cookie secret from ``SCPRO_PANEL_COOKIE_SECRET``; ``SCPRO_PANEL_AUTH=oauth`` uses Panel's OAuth
with ``SCPRO_PANEL_OAUTH_PROVIDER``, ``_KEY``, ``_SECRET`` and ``_REDIRECT_URI``. Credentials
only ever come from the environment (or ``.env``), through
:class:`~scpro_assets.settings.DashboardSettings`, as secrets.

Behind a reverse proxy or on another host name, ``SCPRO_PANEL_ALLOWED_ORIGINS`` lists the
``host[:port]`` names browsers reach the dashboard by (comma-separated; Bokeh refuses websocket
connections from any other origin) and ``SCPRO_PANEL_PREFIX`` the URL path the proxy serves it
under (``/scpro`` makes the page ``https://host/scpro/app``); the proxy's ``X-Forwarded-*``
headers are then trusted for the client's address and scheme.

Every open page looks for a newly published snapshot every ``SCPRO_PANEL_REFRESH_SECONDS``
(3 s; see :class:`panel_app.app.LiveUpdates`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import panel as pn
from pydantic import SecretStr

from panel_app.app import TITLE, create_app, dashboard_settings, refresh_seconds_from_env
from scpro_assets.settings import DashboardSettings, Settings


def auth_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``pn.serve`` from the settings (empty: no login)."""
    dashboard = dashboard_settings(environ)
    mode = dashboard.auth.strip().lower()
    cookie_secret = _secret(dashboard.cookie_secret) or secrets.token_urlsafe(32)
    if mode in ("", "none"):
        return {}
    if mode == "basic":
        users = dict(
            pair.split(":", 1)
            for pair in dashboard.users.get_secret_value().split(",")
            if ":" in pair
        )
        if not users:
            raise ValueError("SCPRO_PANEL_AUTH=basic needs SCPRO_PANEL_USERS=name:password,...")
        return {"basic_auth": users, "cookie_secret": cookie_secret}
    if mode == "oauth":
        missing = [
            DashboardSettings.variable(name)
            for name in ("oauth_provider", "oauth_key", "oauth_secret")
            if not getattr(dashboard, name)
        ]
        if missing:
            raise ValueError(f"SCPRO_PANEL_AUTH=oauth needs {', '.join(missing)}")
        return {
            "oauth_provider": dashboard.oauth_provider,
            "oauth_key": dashboard.oauth_key,
            "oauth_secret": _secret(dashboard.oauth_secret),
            "oauth_redirect_uri": dashboard.oauth_redirect_uri,
            "cookie_secret": cookie_secret,
            "oauth_encryption_key": _secret(dashboard.oauth_encryption_key),
        }
    raise ValueError(f"SCPRO_PANEL_AUTH={mode!r}: use basic, oauth or leave it unset")


def _secret(value: SecretStr | None) -> str | None:
    """A secret unwrapped for Panel, the one place it is needed."""
    return value.get_secret_value() if value else None


def proxy_options(
    address: str, port: int, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Origins, URL prefix and forwarded headers for ``pn.serve`` (see the module docstring).

    The dashboard's own address and ``localhost`` are always allowed; a proxy's host names are
    added by configuration, never guessed (an open origin list would let any site's page script a
    logged-in user's session).
    """
    dashboard = dashboard_settings(environ)
    origins = [f"{address}:{port}", f"localhost:{port}", *dashboard.origins]
    options: dict[str, Any] = {"websocket_origin": list(dict.fromkeys(origins))}
    if dashboard.prefix:
        options["prefix"] = dashboard.prefix
    if len(options["websocket_origin"]) > 2 or dashboard.prefix:
        options["use_xheaders"] = True
    return options


def app_path(environ: Mapping[str, str] | None = None) -> str:
    """The dashboard's URL path, under the configured prefix: ``/app`` or ``/<prefix>/app``."""
    prefix = dashboard_settings(environ).prefix
    return f"/{prefix}/app" if prefix else "/app"


def serve(
    settings: Settings, port: int = 5006, show: bool = True, address: str = "127.0.0.1"
) -> None:
    """Serve the cockpit at ``http://<address>:<port>/app`` until interrupted."""
    pn.extension("tabulator", notifications=False, loading_indicator=True)
    current = settings.serving_current
    refresh_seconds = refresh_seconds_from_env()  # a bad value fails here, not in each session
    pn.serve(
        {"app": lambda: create_app(current, refresh_seconds)},
        port=port,
        address=address,
        show=show,
        title=TITLE,
        **proxy_options(address, port),
        **auth_options(),
    )
