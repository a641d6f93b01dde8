"""Orders that newly crossed into high late risk, told to operations once per order and band.

After each serving snapshot, the open orders of its ``at_risk_orders`` mart in an alerting band
(:data:`ALERT_BANDS`: ``high``, the band the late-risk model gives its riskiest scores, see
``ml_assets.scoring.risk_bands``) that were never alerted in that band go out as **one** alert
for the snapshot: the riskiest :data:`MAX_LISTED` with their risk, promised date and the model's
top reason, the others counted. The alert's audience is operations (``SCPRO_ALERT_URLS_OPS``);
it always lands in the outbox too, which the At-risk page shows.

**Once per order and band, for good.** A ledger, ``SCPRO_HOME/outbox/risk_alerts.sqlite``
(table ``alerted``, key ``order_id, band``), remembers every order alerted in a band, with the
snapshot, the risk and the alert. It outlives restarts and is never pruned: an order that drops
out of the high band (a new score, a model retrained) and comes back is not alerted again for
the same band, since the people who act already have it; a model retrain is no reason to re-alert
either, so the model version is recorded, not part of the key. Only open orders reach
``at_risk_orders`` (delivered and canceled ones are left out by dbt), so a closed order is never
alerted.

**Exactly one message per batch.** The ledger's rows are written in the same SQLite transaction
that sends the alert, and the alert's id is a digest of the orders and band it lists: if the
process dies between the outbox write and the commit, the next evaluation rebuilds the same
batch, the outbox recognises its id and sends nothing twice, and the rows are committed then.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from scpro_assets.alerts import Alert, safe_text, send_alert

#: Risk bands whose newcomers are alerted (dbt's ``risk_band``: high, medium, low, unscored).
ALERT_BANDS: tuple[str, ...] = ("high",)

#: Orders listed by name in one alert; the others are counted.
MAX_LISTED = 10

#: Longest order id and reason quoted in a message (they come from data).
ID_CHARS = 64
REASON_CHARS = 120

_LEDGER_SCHEMA = """
create table if not exists alerted (
    order_id text not null,
    band text not null,
    late_risk real,
    model_version text,
    snapshot text not null,
    alert_id text not null,
    alerted_at text not null,
    primary key (order_id, band)
)
"""


@dataclass(frozen=True)
class RiskyOrder:
    """One row of ``at_risk_orders`` as an alert quotes it."""

    order_id: str
    band: str
    late_risk: float | None
    promised: datetime | None
    top_reason: str
    model_version: str | None = None


@dataclass(frozen=True)
class RiskAlertOutcome:
    """What one snapshot's evaluation did: the orders it alerted and the alert (None: no news)."""

    snapshot: str
    band: str
    in_band: int
    newly: list[RiskyOrder]
    alert: dict | None


def ledger_path(home: Path) -> Path:
    """``SCPRO_HOME/outbox/risk_alerts.sqlite``: every (order, band) ever alerted."""
    return home / "outbox" / "risk_alerts.sqlite"


@contextlib.contextmanager
def _ledger(home: Path) -> Iterator[sqlite3.Connection]:
    """The ledger, in one write transaction (``begin immediate``: two evaluations queue up)."""
    path = ledger_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute(_LEDGER_SCHEMA)
        con.execute("begin immediate")
        try:
            yield con
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
    finally:
        con.close()


def alerted_orders(home: Path, band: str = "high") -> set[str]:
    """The orders the ledger holds as alerted in ``band``."""
    if not ledger_path(home).is_file():
        return set()
    with contextlib.closing(sqlite3.connect(ledger_path(home), timeout=30)) as con:
        con.execute(_LEDGER_SCHEMA)
        rows = con.execute("select order_id from alerted where band = ?", [band]).fetchall()
    return {order_id for (order_id,) in rows}


def _first_reason(reasons: object) -> str:
    """The model's top reason (``top_reasons`` is ``"first; second; ..."``)."""
    if reasons is None or (isinstance(reasons, float) and math.isnan(reasons)):
        return ""
    return str(reasons).split(";")[0].strip()


def read_risky_orders(warehouse: Path, bands: Sequence[str] = ALERT_BANDS) -> list[RiskyOrder]:
    """The orders of ``at_risk_orders`` in ``bands``, riskiest first, from a published snapshot.

    The model version comes from ``fct_deliveries`` when the snapshot has it.
    """
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute(
            "select column_name from duckdb_columns() where table_name = 'fct_deliveries'"
        ).fetchall()
        version, join = "null", ""
        if ("risk_model_version",) in columns:
            version = "cast(d.risk_model_version as varchar)"
            join = "left join fct_deliveries d on d.order_id = a.order_id"
        marks = ", ".join("?" for _ in bands)
        rows = con.execute(
            f"select cast(a.order_id as varchar), a.risk_band, a.late_risk, "
            f"a.promised_delivery_time, a.top_reasons, {version} "
            f"from at_risk_orders a {join} where a.risk_band in ({marks}) "
            "order by a.late_risk desc nulls last, a.order_id",
            list(bands),
        ).fetchall()
    return [
        RiskyOrder(
            order_id=str(order_id),
            band=str(band),
            late_risk=None if risk is None else float(risk),
            promised=promised,
            top_reason=_first_reason(reasons),
            model_version=model_version,
        )
        for order_id, band, risk, promised, reasons, model_version in rows
    ]


def _line(order: RiskyOrder) -> str:
    """``- order 123: 87% late risk, promised 2026-12-01; tight promise (2 days)``."""
    risk = "risk unknown" if order.late_risk is None else f"{order.late_risk:.0%} late risk"
    promised = f", promised {order.promised:%Y-%m-%d}" if order.promised else ""
    reason = f"; {safe_text(order.top_reason, REASON_CHARS)}" if order.top_reason else ""
    return f"- order {safe_text(order.order_id, ID_CHARS)}: {risk}{promised}{reason}"


def risk_alert(
    snapshot: str, band: str, newly: Sequence[RiskyOrder], max_listed: int = MAX_LISTED
) -> Alert:
    """One alert for a snapshot's orders newly in ``band``: the riskiest listed, the rest counted.

    The id is a digest of the band and the orders, so rebuilding the same batch (a retry) makes
    the same alert, which the outbox sends once.
    """
    ids = sorted(order.order_id for order in newly)
    digest = hashlib.sha256("\n".join([band, *ids]).encode()).hexdigest()[:16]
    count = len(newly)
    noun = "order" if count == 1 else "orders"
    lines = [_line(order) for order in newly[:max_listed]]
    if count > max_listed:
        lines.append(f"... and {count - max_listed} more (the At-risk page lists them all).")
    return Alert(
        id=f"high_risk_orders:{band}:{digest}",
        kind="high_risk_orders",
        severity="warning",
        audience="operations",
        title=f"SCPro: {count} open {noun} newly at {band} late risk",
        body="\n".join(
            [f"{count} open {noun} crossed into {band} late risk (snapshot {snapshot}):", *lines]
        ),
        subject={"band": band, "orders": str(count), "snapshot": snapshot},
    )


def alert_new_risky_orders(
    home: Path,
    warehouse: Path,
    snapshot: str,
    bands: Sequence[str] = ALERT_BANDS,
    max_listed: int = MAX_LISTED,
    urls: tuple[str, ...] | None = None,
    now: datetime | None = None,
) -> list[RiskAlertOutcome]:
    """Alert the orders of the snapshot at ``warehouse`` that are newly in one of ``bands``.

    One alert per band with newcomers; nothing when every order in the band was alerted before.
    """
    orders = read_risky_orders(warehouse, bands)
    stamp = (now or datetime.now(UTC)).isoformat()
    outcomes = []
    with _ledger(home) as ledger:
        for band in bands:
            in_band = [order for order in orders if order.band == band]
            known = {
                order_id
                for (order_id,) in ledger.execute(
                    "select order_id from alerted where band = ?", [band]
                ).fetchall()
            }
            # One row per order (a duplicated mart row must not make two ledger rows).
            newly = list({o.order_id: o for o in in_band if o.order_id not in known}.values())
            sent = None
            if newly:
                alert = risk_alert(snapshot, band, newly, max_listed)
                sent = send_alert(alert, home, urls=urls, now=now)
                ledger.executemany(
                    "insert or ignore into alerted values (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (o.order_id, band, o.late_risk, o.model_version, snapshot, alert.id, stamp)
                        for o in newly
                    ],
                )
            outcomes.append(RiskAlertOutcome(snapshot, band, len(in_band), newly, sent))
    return outcomes
