"""Serve the dashboard: ``panel_app.server.serve(settings, port, show)`` for the ``scpro`` CLI.

Optional login by configuration, never by code: ``SCPRO_PANEL_AUTH=basic`` turns on Panel's
basic auth with the users in ``SCPRO_PANEL_USERS`` (``name:password,name2:password2``) and a
cookie secret from ``SCPRO_PANEL_COOKIE_SECRET``; ``SCPRO_PANEL_AUTH=oauth`` uses Panel's OAuth
with ``SCPRO_PANEL_OAUTH_PROVIDER``, ``_KEY``, ``_SECRET`` and ``_REDIRECT_URI``. Credentials
only ever come from the environment.

Behind a reverse proxy or on another host name, ``SCPRO_PANEL_ALLOWED_ORIGINS`` lists the
``host[:port]`` names browsers reach the dashboard by (comma-separated; Bokeh refuses websocket
connections from any other origin) and ``SCPRO_PANEL_PREFIX`` the URL path the proxy serves it
under (``/scpro`` makes the page ``https://host/scpro/app``); the proxy's ``X-Forwarded-*``
headers are then trusted for the client's address and scheme.

Every open page looks for a newly published snapshot every ``SCPRO_PANEL_REFRESH_SECONDS``
(3 s; see :class:`panel_app.app.LiveUpdates`).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import panel as pn

from panel_app.app import TITLE, create_app, refresh_seconds_from_env
from scpro_assets.settings import Settings


def auth_options(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``pn.serve`` from the environment (empty: no login)."""
    env = os.environ if environ is None else environ
    mode = env.get("SCPRO_PANEL_AUTH", "").strip().lower()
    cookie_secret = env.get("SCPRO_PANEL_COOKIE_SECRET") or secrets.token_urlsafe(32)
    if mode in ("", "none"):
        return {}
    if mode == "basic":
        users = dict(
            pair.split(":", 1)
            for pair in env.get("SCPRO_PANEL_USERS", "").split(",")
            if ":" in pair
        )
        if not users:
            raise ValueError("SCPRO_PANEL_AUTH=basic needs SCPRO_PANEL_USERS=name:password,...")
        return {"basic_auth": users, "cookie_secret": cookie_secret}
    if mode == "oauth":
        return {
            "oauth_provider": env["SCPRO_PANEL_OAUTH_PROVIDER"],
            "oauth_key": env["SCPRO_PANEL_OAUTH_KEY"],
            "oauth_secret": env["SCPRO_PANEL_OAUTH_SECRET"],
            "oauth_redirect_uri": env.get("SCPRO_PANEL_OAUTH_REDIRECT_URI"),
            "cookie_secret": cookie_secret,
            "oauth_encryption_key": env.get("SCPRO_PANEL_OAUTH_ENCRYPTION_KEY"),
        }
    raise ValueError(f"SCPRO_PANEL_AUTH={mode!r}: use basic, oauth or leave it unset")


def proxy_options(address: str, port: int, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Origins, URL prefix and forwarded headers for ``pn.serve`` (see the module docstring).

    The dashboard's own address and ``localhost`` are always allowed; a proxy's host names are
    added by configuration, never guessed (an open origin list would let any site's page script a
    logged-in user's session).
    """
    env = os.environ if environ is None else environ
    origins = [f"{address}:{port}", f"localhost:{port}"]
    for origin in env.get("SCPRO_PANEL_ALLOWED_ORIGINS", "").split(","):
        origin = origin.strip()
        if not origin:
            continue
        if "://" in origin or "/" in origin:
            raise ValueError(
                f"SCPRO_PANEL_ALLOWED_ORIGINS: {origin!r} must be host or host:port "
                "(no scheme, no path)"
            )
        origins.append(origin)
    options: dict[str, Any] = {"websocket_origin": list(dict.fromkeys(origins))}
    prefix = env.get("SCPRO_PANEL_PREFIX", "").strip().strip("/")
    if prefix:
        if any(c in prefix for c in "?#: "):
            raise ValueError(f"SCPRO_PANEL_PREFIX: {prefix!r} must be a plain URL path")
        options["prefix"] = prefix
    if len(options["websocket_origin"]) > 2 or prefix:
        options["use_xheaders"] = True
    return options


def app_path(environ: dict[str, str] | None = None) -> str:
    """The dashboard's URL path, under the configured prefix: ``/app`` or ``/<prefix>/app``."""
    env = os.environ if environ is None else environ
    prefix = env.get("SCPRO_PANEL_PREFIX", "").strip().strip("/")
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
