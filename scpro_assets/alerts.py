"""Alerts: every alert goes to a local outbox, and to any channel apprise can reach.

The outbox, ``SCPRO_HOME/outbox/alerts.ndjson``, is the default channel and is always written,
whatever else is configured: one JSON object per alert (``id``, ``time``, ``kind``,
``severity``, ``audience``, ``title``, ``body``, ``subject`` and the ``deliveries`` to other
channels). The Data health page and the At-risk page read it. Other channels are apprise URLs
(webhooks ``json://``, Slack, Teams, ``mailto://``...) per audience: ``SCPRO_ALERT_URLS`` for
data engineers (failed runs and checks, stale marts, landing gaps), ``SCPRO_ALERT_URLS_OPS`` for
operations (orders newly at high risk). They are read at the moment of sending because they carry
the channels' tokens; the outbox names a channel by its scheme only, never its URL.

Alerts are plain text. Whatever in them comes from data (order ids, model reasons, error
messages) goes through :func:`safe_text` first, and apprise is told the body is text, so a channel
that renders HTML escapes it.

An alert is sent once per id, across restarts and processes: the id is looked up in the outbox
under a file lock before anything is sent. A channel that fails (down, refused, a bad URL) is
logged and recorded in the outbox line; it never fails the sensor or the run that raised it.
apprise is imported only when a channel is configured, so the landing location stays light.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from scpro_assets.settings import alert_urls_from_env

logger = logging.getLogger(__name__)

#: Severities, in apprise's words for the channels that show them.
SEVERITIES = ("info", "warning", "error")

#: Who an alert is for; each audience has its own channels (``ALERT_URL_VARIABLES``).
AUDIENCES = ("data", "operations")

#: Characters that are markup in HTML, Markdown, Slack's mrkdwn or Teams (tags, emphasis, links,
#: code, mentions, headings), mapped to their full-width forms: read the same, rendered as text.
_MARKUP = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "<>&*_`~|[]\\#!@{}"})


@dataclass(frozen=True)
class Alert:
    """Something a person should look at; ``id`` says what makes two alerts the same one."""

    id: str
    kind: str
    severity: str
    title: str
    body: str
    subject: dict[str, str] = field(default_factory=dict)
    audience: str = "data"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {SEVERITIES}, not {self.severity!r}")
        if self.audience not in AUDIENCES:
            raise ValueError(f"alert audience must be one of {AUDIENCES}, not {self.audience!r}")


def safe_text(value: object, limit: int = 120) -> str:
    """``value`` as one short line of inert text, for a message that quotes data.

    Control and invisible characters (bidi overrides, zero-width joiners) are dropped, every run
    of whitespace (newlines too) becomes one space, so a value can neither start a line of its own
    nor pass for another entry, markup characters become their full-width look-alikes
    (:data:`_MARKUP`), and the result is cut at ``limit`` characters with an ellipsis.
    """
    text = "".join(
        " " if ch.isspace() else ch
        for ch in str(value)
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    text = " ".join(text.split()).translate(_MARKUP)
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def outbox_path(home: Path) -> Path:
    """``SCPRO_HOME/outbox/alerts.ndjson``: every alert, one JSON line each."""
    return home / "outbox" / "alerts.ndjson"


def gap_status_dir(home: Path) -> Path:
    """``SCPRO_HOME/outbox/gaps``: each topic's unlanded ranges now, one JSON file per topic."""
    return home / "outbox" / "gaps"


def read_outbox(path: Path) -> list[dict]:
    """The alerts in the outbox, oldest first; a line that is not JSON is skipped, not fatal."""
    if not path.is_file():
        return []
    alerts = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "id" in record:
                alerts.append(record)
    return alerts


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the outbox (a sidecar file): check-then-append is one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _line_start(out: IO[str]) -> str:
    """A newline when the outbox ends inside a line (a write cut by a crash), so ours is whole."""
    size = out.seek(0, os.SEEK_END)
    if not size:
        return ""
    out.seek(size - 1)
    last = out.read(1)
    out.seek(0, os.SEEK_END)
    return "" if last == "\n" else "\n"


def _channel_name(url: str, index: int) -> str:
    """How the outbox names a channel: its scheme and position, never the URL (a secret)."""
    scheme = url.split("://", 1)[0] if "://" in url else "unknown"
    return f"{scheme}#{index}"


def _deliver(alert: Alert, urls: tuple[str, ...]) -> list[dict[str, str]]:
    """Send to each apprise URL on its own, so one failing channel does not hide the others."""
    if not urls:
        return []
    import apprise

    kinds = {
        "info": apprise.NotifyType.INFO,
        "warning": apprise.NotifyType.WARNING,
        "error": apprise.NotifyType.FAILURE,
    }
    deliveries = []
    for index, url in enumerate(urls, start=1):
        channel = _channel_name(url, index)
        try:
            app = apprise.Apprise()
            if not app.add(url):
                status = "failed: apprise does not understand this URL"
            elif app.notify(
                title=alert.title,
                body=alert.body,
                notify_type=kinds[alert.severity],
                body_format=apprise.NotifyFormat.TEXT,  # channels that render HTML escape it
            ):
                status = "sent"
            else:
                status = "failed: the channel did not accept it"
        except Exception as error:  # a channel must never fail the caller
            status = f"failed: {type(error).__name__}"
        if status != "sent":
            logger.warning("alert %s to %s %s", alert.id, channel, status)
        deliveries.append({"channel": channel, "status": status})
    return deliveries


def send_alert(
    alert: Alert,
    home: Path,
    urls: tuple[str, ...] | None = None,
    now: datetime | None = None,
) -> dict | None:
    """Write ``alert`` to the outbox and the configured channels, once per id.

    Returns the outbox record, or None when an alert with this id was already sent. ``urls``
    defaults to the channels of the alert's audience (``SCPRO_ALERT_URLS`` for data engineers,
    ``SCPRO_ALERT_URLS_OPS`` for operations).
    """
    path = outbox_path(home)
    urls = alert_urls_from_env(alert.audience) if urls is None else urls
    with _locked(path):
        if any(record["id"] == alert.id for record in read_outbox(path)):
            return None
        record = {
            **asdict(alert),
            "time": (now or datetime.now(UTC)).isoformat(),
            "deliveries": _deliver(alert, urls),
        }
        with path.open("a+", encoding="utf-8") as out:
            out.write(_line_start(out) + json.dumps(record, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
    return record
