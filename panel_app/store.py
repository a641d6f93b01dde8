"""The dashboard's data store: every figure the pages show, as parameterized DuckDB queries.

It reads only the published serving snapshot (``dbt_project/SERVING_CONTRACT.md``) and has no UI,
so tests check its numbers without rendering anything. Filter values always travel as query
parameters; the only identifiers ever put into SQL text come from fixed whitelists.
Results are cached per (snapshot file, query, parameters): the file path names the version, so a
newly published snapshot is a cache miss by construction and old entries simply age out.

A store reads one version until it is told to switch (:meth:`DataStore.switch_to`): every figure
a page shows then comes from the same complete version, even while ``current`` moves on between
two of its queries. A live session asks :meth:`DataStore.newer_snapshot` every few seconds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import panel as pn
import param

from scpro_assets.alerts import gap_status_dir, outbox_path, read_outbox

ALL = "All"
#: Period choices: label -> number of days (None = everything in the snapshot).
PERIODS: dict[str, int | None] = {
    "Last 7 days": 7,
    "Last 30 days": 30,
    "Last 90 days": 90,
    "Last 365 days": 365,
    "All time": None,
}
DEFAULT_PERIOD = "Last 90 days"
#: Filter dimensions: FilterState field -> fct_deliveries column. The only columns a filter or a
#: breakdown may name in SQL text.
DIMENSIONS: dict[str, str] = {
    "region": "region",
    "carrier_mode": "carrier_mode",
    "category": "main_category",
    "segment": "customer_segment",
}


#: Columns of :meth:`DataStore.gaps`.
GAP_COLUMNS = [
    "topic",
    "partition",
    "first_offset",
    "last_offset",
    "unlanded_offsets",
    "attempts",
    "requested_at",
    "overdue",
]


class NoSnapshotError(RuntimeError):
    """Nothing has been published to ``serving/current`` yet."""


@dataclass(frozen=True)
class FilterState:
    """What the user selected; hashable so it can key caches."""

    period: str = DEFAULT_PERIOD
    region: str = ALL
    carrier_mode: str = ALL
    category: str = ALL
    segment: str = ALL

    def dimension_values(self) -> dict[str, str]:
        """Selected dimension values by column, leaving out the ones set to All."""
        return {
            column: getattr(self, name)
            for name, column in DIMENSIONS.items()
            if getattr(self, name) != ALL
        }


@dataclass(frozen=True)
class Window:
    """A half-open date range ``[start, end)`` and the one just before it, for comparisons."""

    start: date | None
    end: date
    previous_start: date | None

    @property
    def days(self) -> int | None:
        """Length in days, None for all time."""
        return None if self.start is None else (self.end - self.start).days


@dataclass(frozen=True)
class Snapshot:
    """One published version of the warehouse."""

    version: str
    path: Path
    published_at: str | None


def resolve_snapshot(serving_current: Path) -> Snapshot:
    """Follow ``current`` once, as the contract asks, and describe the version it names."""
    if not serving_current.exists():
        raise NoSnapshotError(f"no snapshot published at {serving_current}")
    version_dir = serving_current.resolve()
    db_path = version_dir / "warehouse.duckdb"
    if not db_path.is_file():
        raise NoSnapshotError(f"{version_dir} has no warehouse.duckdb")
    meta_path = version_dir / "published.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
    return Snapshot(
        version=str(meta.get("version") or version_dir.name),
        path=db_path,
        published_at=meta.get("published_at"),
    )


_CONNECTION_KEY = "scpro-duckdb:"


def _connection(db_path: str) -> duckdb.DuckDBPyConnection:
    """One read-only connection per snapshot file, shared through Panel's process cache."""
    key = f"{_CONNECTION_KEY}{db_path}"
    if (key,) not in pn.state.cache:
        close_pruned_connections()
    return pn.state.as_cached(key, lambda: duckdb.connect(db_path, read_only=True))


def close_pruned_connections() -> list[str]:
    """Close the connections to versions the publisher has pruned; return their paths.

    Open sessions follow every publication, so a long-running server opens every version; an
    open file keeps its disk space after the publisher deletes it, and the connection its
    memory. Done whenever a new version is first opened.
    """
    closed = []
    for cache_key in [k for k in list(pn.state.cache) if _is_connection_key(k)]:
        path = cache_key[0].removeprefix(_CONNECTION_KEY)
        if not Path(path).exists():
            connection, _expiry = pn.state.cache.pop(cache_key)
            connection.close()
            closed.append(path)
    return closed


def _is_connection_key(key: object) -> bool:
    return (
        isinstance(key, tuple)
        and len(key) == 1
        and isinstance(key[0], str)
        and key[0].startswith(_CONNECTION_KEY)
    )


@functools.lru_cache(maxsize=512)
def _query(db_path: str, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
    """Run one query on the snapshot; cached on the snapshot path, the SQL and its parameters.

    Keyed on the values themselves, with the standard library's thread-safe LRU cache. Panel's
    ``pn.cache`` hashes arguments through a module-global table that each call swaps, so
    sessions served on several threads got each other's results (measured: 2,628 wrong frames
    in 8,000 threaded calls, ``tests/test_panel_store.py``).
    """
    cursor = _connection(db_path).cursor()
    try:
        return cursor.execute(sql, list(params)).df()
    finally:
        cursor.close()


def _where(
    state: FilterState, start: date | None, end: date | None, date_column: str = "order_date"
) -> tuple[str, list[Any]]:
    """A WHERE clause for the filters: placeholders for values, whitelisted columns only."""
    clauses: list[str] = ["true"]
    params: list[Any] = []
    for column, value in state.dimension_values().items():
        clauses.append(f"{column} = ?")
        params.append(value)
    if start is not None:
        clauses.append(f"{date_column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{date_column} < ?")
        params.append(end)
    return " and ".join(clauses), params


class DataStore(param.Parameterized):
    """Figures for every page, derived from the snapshot it reads and the filter state."""

    serving_current = param.ClassSelector(class_=Path, doc="SCPRO_HOME/serving/current")
    state = param.ClassSelector(class_=FilterState, default=FilterState())
    version = param.String(
        default="", doc="The version read now; set by switch_to (parts not bound to state watch it)"
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """The version this store reads: ``current`` when first asked, then until a switch."""
        if self._snapshot is None:
            self._snapshot = resolve_snapshot(self.serving_current)
            with param.parameterized.discard_events(self):  # a first read, not a switch
                self.version = self._snapshot.version
        return self._snapshot

    def newer_snapshot(self) -> Snapshot | None:
        """The version ``current`` names now if it is not the one read, else None.

        Cheap enough to ask every few seconds per session: one ``realpath`` while nothing was
        published (``published.json`` is read only when the link moved). Raises
        :class:`NoSnapshotError` when ``current`` or its warehouse is gone.
        """
        read = self.snapshot()
        if self.serving_current.resolve() == read.path.parent and read.path.is_file():
            return None
        latest = resolve_snapshot(self.serving_current)
        return None if latest.path == read.path else latest

    def switch_to(self, snapshot: Snapshot) -> None:
        """Read ``snapshot`` from now on, and derive every figure of the session again.

        A new version is, for each part of a page, like a new filter state: the parts bound to
        ``state`` (cards, charts, tables) are re-run in place; the parts that do not depend on
        the filters watch ``version``.
        """
        self._snapshot = snapshot
        self.version = snapshot.version
        self.param.trigger("state")

    def for_page(self) -> DataStore:
        """A store for one page of a session: the same version and filters, its own watchers.

        The app keeps it in line with the session's store only while its page is shown
        (:meth:`align_with`), so a hidden page recomputes nothing.
        """
        page = DataStore(serving_current=self.serving_current, state=self.state)
        page._snapshot = self.snapshot()
        page.version = page._snapshot.version
        return page

    def align_with(self, other: DataStore) -> None:
        """Read ``other``'s version with ``other``'s filters; re-run the parts only if needed."""
        snapshot = other.snapshot()
        if snapshot == self.snapshot() and other.state == self.state:
            return
        if snapshot != self.snapshot():
            self._snapshot = snapshot
            self.version = snapshot.version
        if other.state != self.state:
            self.state = other.state
        else:
            self.param.trigger("state")

    def follow(self) -> Snapshot | None:
        """Switch to the version ``current`` names now, if it is newer; return it (or None)."""
        latest = self.newer_snapshot()
        if latest is not None:
            self.switch_to(latest)
        return latest

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> pd.DataFrame:
        """A cached query on the snapshot this store reads."""
        return self.query_on(self.snapshot(), sql, params)

    @staticmethod
    def query_on(
        snapshot: Snapshot, sql: str, params: list[Any] | tuple[Any, ...] = ()
    ) -> pd.DataFrame:
        """A cached query on a given version (to compare two of them)."""
        return _query(str(snapshot.path), sql, tuple(params))

    def has_table(self, name: str) -> bool:
        """Whether the snapshot has a table (older or partial publications may lack one)."""
        found = self.query(
            "select count(*) as n from information_schema.tables where table_name = ?", [name]
        )
        return bool(found["n"].iloc[0])

    # ---- filters -------------------------------------------------------------------------
    def options(self) -> dict[str, list[str]]:
        """The values each filter offers, from the deliveries mart."""
        result: dict[str, list[str]] = {}
        for name, column in DIMENSIONS.items():
            frame = self.query(
                f"select distinct {column} as v from fct_deliveries where {column} is not null "
                "order by 1"
            )
            result[name] = [str(v) for v in frame["v"]]
        return result

    def watermark(self) -> pd.Timestamp | None:
        """The business time the snapshot is cut at (UTC), or None for older snapshots.

        Every topic had landed up to it, and nothing later is in the snapshot (issue #15).
        """
        if not self.has_table("snapshot_watermark"):
            return None
        frame = self.query("select max(watermark) as w from snapshot_watermark")
        value = frame["w"].iloc[0]
        return None if pd.isna(value) else pd.Timestamp(value)

    def as_of(self) -> date:
        """The watermark's date (else the latest order date): periods end there, not today."""
        watermark = self.watermark()
        if watermark is not None:
            return watermark.date()
        frame = self.query("select max(order_date) as d from fct_deliveries")
        value = frame["d"].iloc[0]
        return date.today() if pd.isna(value) else pd.Timestamp(value).date()

    def as_of_text(self) -> str:
        """The "Data as of" text: the watermark to the minute, else the latest order date."""
        watermark = self.watermark()
        if watermark is None:
            return f"{self.as_of():%d %b %Y}"
        return f"{watermark:%d %b %Y %H:%M} UTC"

    def window(self, state: FilterState | None = None) -> Window:
        """The selected period, ending the day after the latest order, and the one before it."""
        state = state or self.state
        end = self.as_of() + timedelta(days=1)
        days = PERIODS.get(state.period, PERIODS[DEFAULT_PERIOD])
        if days is None:
            return Window(start=None, end=end, previous_start=None)
        start = end - timedelta(days=days)
        return Window(start=start, end=end, previous_start=start - timedelta(days=days))

    # ---- overview ------------------------------------------------------------------------
    def kpis(self, state: FilterState | None = None) -> pd.DataFrame:
        """Headline KPIs for the period and the previous one (columns ``current``, ``previous``).

        One scan of ``fct_deliveries`` computes both periods with FILTER clauses; incidents
        have no region or carrier/mode, so only the period applies to their resolution time.
        """
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.previous_start, window.end)
        measures = {
            "late_rate": "avg(case when is_late then 1.0 else 0.0 end) filter "
            "(where delivered_at is not null and {p})",
            "mean_delay_days": "avg(delay_days) filter (where {p})",
            "p90_delay_days": "quantile_cont(delay_days, 0.9) filter (where {p})",
            "mean_prediction_gap_days": "avg(abs(prediction_gap_days)) filter (where {p})",
            "high_risk_open_share": "avg(case when is_high_risk then 1.0 else 0.0 end) "
            "filter (where is_open and {p})",
            "orders": "count(*) filter (where {p})",
            "revenue": "coalesce(sum(net_value) filter (where status <> 'canceled' and {p}), 0)",
            "average_basket": "avg(net_value) filter (where status <> 'canceled' and {p})",
        }
        current = "order_date >= ?" if window.start is not None else "true"
        previous = "order_date < ?" if window.start is not None else "false"
        selects, select_params = [], []
        for name, template in measures.items():
            for label, predicate in (("current", current), ("previous", previous)):
                selects.append(f"{template.format(p=predicate)} as {name}__{label}")
                if window.start is not None:
                    select_params.append(window.start)
        sql = f"select {', '.join(selects)} from fct_deliveries where {where}"
        row = self.query(sql, select_params + params).iloc[0]
        frame = pd.DataFrame(
            {
                "current": [row[f"{name}__current"] for name in measures],
                "previous": [row[f"{name}__previous"] for name in measures],
            },
            index=list(measures),
        )
        frame.loc["mean_resolution_hours"] = self._resolution_hours(window)
        if window.start is None:
            frame["previous"] = None
        return frame.astype("float64")

    def _resolution_hours(self, window: Window) -> list[float | None]:
        """Mean resolution time of incidents opened in the period and in the previous one."""
        if not self.has_table("fct_incidents"):
            return [None, None]
        if window.start is None:
            frame = self.query(
                "select avg(resolution_hours) as h from fct_incidents where opened_date < ?",
                [window.end],
            )
            return [frame["h"].iloc[0], None]
        frame = self.query(
            "select avg(resolution_hours) filter (where opened_date >= ?) as cur, "
            "avg(resolution_hours) filter (where opened_date < ?) as prev "
            "from fct_incidents where opened_date >= ? and opened_date < ?",
            [window.start, window.start, window.previous_start, window.end],
        )
        return [frame["cur"].iloc[0], frame["prev"].iloc[0]]

    def trend(self, state: FilterState | None = None) -> pd.DataFrame:
        """Orders, revenue, late rate and high-risk share per day (short periods) or week."""
        state = state or self.state
        window = self.window(state)
        bucket = "order_date" if (window.days or 999) <= 31 else "order_week"
        where, params = _where(state, window.start, window.end)
        return self.query(
            f"select {bucket} as period_start, count(*) as orders, "
            "coalesce(sum(net_value) filter (where status <> 'canceled'), 0) as revenue, "
            "avg(case when is_late then 1.0 else 0.0 end) filter "
            "(where delivered_at is not null) as late_rate, "
            "avg(delay_days) as mean_delay_days "
            f"from fct_deliveries where {where} group by 1 order by 1",
            params,
        )

    # ---- deliveries ----------------------------------------------------------------------
    def predicted_vs_actual(self, state: FilterState | None = None) -> pd.DataFrame:
        """Delivered, scored orders binned by predicted days (rounded), with the actual mean."""
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.start, window.end)
        return self.query(
            "select round(predicted_delivery_days) as predicted_days, count(*) as orders, "
            "avg(delivery_days) as actual_days, "
            "quantile_cont(delivery_days, 0.1) as actual_p10, "
            "quantile_cont(delivery_days, 0.9) as actual_p90 "
            f"from fct_deliveries where {where} and delivery_days is not null "
            "and predicted_delivery_days is not null group by 1 order by 1",
            params,
        )

    def delay_distribution(self, state: FilterState | None = None) -> pd.DataFrame:
        """Delivered orders by whole days late (0 = on time or early)."""
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.start, window.end)
        return self.query(
            "select cast(ceil(delay_days) as integer) as days_late, count(*) as orders "
            f"from fct_deliveries where {where} and delay_days is not null group by 1 order by 1",
            params,
        )

    def late_rate_by(self, dimension: str, state: FilterState | None = None) -> pd.DataFrame:
        """Late rate and volume per value of one whitelisted dimension, worst first."""
        if dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension!r}; one of {sorted(DIMENSIONS)}")
        column = DIMENSIONS[dimension]
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.start, window.end)
        return self.query(
            f"select {column} as value, count(*) filter (where delivered_at is not null) "
            "as delivered, avg(case when is_late then 1.0 else 0.0 end) filter "
            "(where delivered_at is not null) as late_rate, avg(delay_days) as mean_delay_days "
            f"from fct_deliveries where {where} group by 1 "
            "having count(*) filter (where delivered_at is not null) > 0 "
            "order by late_rate desc, value",
            params,
        )

    def map_points(self, state: FilterState | None = None) -> pd.DataFrame:
        """Delivered orders grouped on a 0.5-degree grid: where lateness happens."""
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.start, window.end)
        return self.query(
            "select round(customer_lat * 2) / 2 as lat, round(customer_lon * 2) / 2 as lon, "
            "count(*) as delivered, avg(case when is_late then 1.0 else 0.0 end) as late_rate "
            f"from fct_deliveries where {where} and delivered_at is not null "
            "and customer_lat is not null and customer_lon is not null group by 1, 2",
            params,
        )

    # ---- at-risk orders ------------------------------------------------------------------
    def at_risk(self, state: FilterState | None = None, limit: int | None = None) -> pd.DataFrame:
        """Open orders by late risk, highest first; the period does not hide an open order."""
        state = state or self.state
        where, params = _where(state, None, None)
        limit_sql = ""
        if limit is not None:
            limit_sql = " limit ?"
            params = [*params, int(limit)]
        return self.query(
            "select risk_rank, order_id, late_risk, risk_band, order_time, "
            "promised_delivery_time, predicted_delivery_time, predicted_delivery_date, eta_low, "
            "eta_high, date_diff('hour', promised_delivery_time, predicted_delivery_time) / 24.0 "
            "as days_past_promise, customer_segment, region, carrier_mode, main_category, "
            "net_value, status, top_reasons, customer_id "
            f"from at_risk_orders where {where} order by risk_rank{limit_sql}",
            params,
        )

    def high_risk_order_ids(self, snapshot: Snapshot | None = None) -> frozenset[str]:
        """Ids of the open orders in band ``high`` (of a given version, or the one read)."""
        frame = self.query_on(
            snapshot or self.snapshot(),
            "select order_id from at_risk_orders where risk_band = 'high'",
        )
        return frozenset(str(order_id) for order_id in frame["order_id"])

    def newly_high_risk(self, previous: Snapshot, latest: Snapshot) -> list[str]:
        """Orders at high risk in ``latest`` that were not in ``previous``, sorted.

        Unfiltered on purpose: the count says what changed between two snapshots, and must not
        change when the user changes a filter.
        """
        before = self.high_risk_order_ids(previous)
        return sorted(self.high_risk_order_ids(latest) - before)

    def at_risk_summary(self, state: FilterState | None = None) -> dict[str, float]:
        """How many open orders are at high risk, and how much revenue they carry."""
        state = state or self.state
        where, params = _where(state, None, None)
        row = self.query(
            "select count(*) as open_scored, count(*) filter (where risk_band = 'high') as high, "
            "coalesce(sum(net_value) filter (where risk_band = 'high'), 0) as high_value "
            f"from at_risk_orders where {where}",
            params,
        ).iloc[0]
        return {k: float(row[k]) for k in ("open_scored", "high", "high_value")}

    # ---- customers -----------------------------------------------------------------------
    def segment_profiles(self) -> pd.DataFrame:
        """The ML segments as profiled by dbt (all time, not filtered)."""
        return self.query("select * from customer_segment_profiles order by revenue desc")

    def segment_performance(self, state: FilterState | None = None) -> pd.DataFrame:
        """Per segment within the filters: value, on-time rate, and open orders at high risk."""
        state = state or self.state
        window = self.window(state)
        where, params = _where(state, window.start, window.end)
        return self.query(
            "select customer_segment, count(distinct customer_id) as customers, "
            "count(*) as orders, "
            "coalesce(sum(net_value) filter (where status <> 'canceled'), 0) as revenue, "
            "avg(case when is_late then 0.0 else 1.0 end) filter "
            "(where delivered_at is not null) as on_time_rate, "
            "count(*) filter (where is_open and is_high_risk) as high_risk_open_orders, "
            "coalesce(sum(net_value) filter (where is_open and is_high_risk), 0) "
            "as high_risk_open_value "
            f"from fct_deliveries where {where} group by 1 order by revenue desc",
            params,
        )

    # ---- demand --------------------------------------------------------------------------
    def demand(self, state: FilterState | None = None) -> pd.DataFrame:
        """Forecast vs actual per period for the selected category (or all summed), incl. future.

        Demand is forecast per category only, so region, carrier/mode and segment do not apply.
        """
        state = state or self.state
        window = self.window(state)
        grain = self.query(
            "select period_grain, count(*) as n from fct_demand group by 1 "
            "order by (period_grain = 'week') desc, n desc limit 1"
        )
        if grain.empty:
            return pd.DataFrame(
                columns=["period_start", "forecast", "baseline", "actual", "is_future"]
            )
        clauses, params = ["period_grain = ?"], [grain["period_grain"].iloc[0]]
        if state.category != ALL:
            clauses.append("category = ?")
            params.append(state.category)
        if window.start is not None:
            clauses.append("(period_start >= ? or is_future)")
            params.append(window.start)
        return self.query(
            "select period_start, sum(forecast_orders) as forecast, "
            "sum(baseline_orders) as baseline, sum(actual_orders) as actual, "
            "bool_or(is_future) as is_future "
            f"from fct_demand where {' and '.join(clauses)} group by 1 order by 1",
            params,
        )

    def demand_by_category(self, state: FilterState | None = None) -> pd.DataFrame:
        """Per category: forecast error over the period's past weeks and the next forecast."""
        state = state or self.state
        window = self.window(state)
        clauses, params = ["true"], []
        if state.category != ALL:
            clauses.append("category = ?")
            params.append(state.category)
        start = window.start or date(1900, 1, 1)
        return self.query(
            "select category, "
            "sum(actual_orders) filter (where not is_future and period_start >= ?) as actual, "
            "sum(forecast_orders) filter (where not is_future and period_start >= ?) as forecast, "
            "avg(abs(forecast_orders - actual_orders) / nullif(actual_orders, 0)) filter "
            "(where not is_future and period_start >= ?) as mape, "
            "arg_min(forecast_orders, period_start) filter (where is_future) as next_forecast "
            f"from fct_demand where {' and '.join(clauses)} group by 1 order by 1",
            [start, start, start, *params],
        )

    # ---- data health ---------------------------------------------------------------------
    def health(self) -> pd.DataFrame:
        """Freshness and accounting of each layer."""
        return self.query("select * from data_health order by layer, dataset")

    def completeness(self) -> pd.DataFrame:
        """Events landed against events in Kafka at the snapshot's cut, per topic.

        Empty for snapshots published before completeness was recorded.
        """
        if not self.has_table("snapshot_completeness"):
            return pd.DataFrame()
        return self.query("select * from snapshot_completeness order by topic")

    def home(self) -> Path:
        """SCPRO_HOME, where the alert outbox lives (``serving/current`` is two levels below)."""
        return self.serving_current.parent.parent

    def alerts(self, limit: int = 20) -> pd.DataFrame:
        """The newest alerts of the outbox, newest first (live: not part of the snapshot)."""
        records = read_outbox(outbox_path(self.home()))[-limit:][::-1]
        return pd.DataFrame(
            [
                {
                    "time": pd.Timestamp(r.get("time")).tz_convert(None) if r.get("time") else None,
                    "severity": str(r.get("severity", "")),
                    "kind": str(r.get("kind", "")),
                    "title": str(r.get("title", "")),
                    "body": str(r.get("body", "")),
                }
                for r in records
            ],
            columns=["time", "severity", "kind", "title", "body"],
        )

    def gaps(self) -> pd.DataFrame:
        """Ranges requested but not landed now, per topic, as the Kafka sensors last saw them."""
        rows = []
        for path in sorted(gap_status_dir(self.home()).glob("*.json")):
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            rows += [{"topic": str(status.get("topic", path.stem)), **r} for r in status["ranges"]]
        frame = pd.DataFrame(rows, columns=GAP_COLUMNS)
        frame["requested_at"] = pd.to_datetime(frame["requested_at"], unit="s")
        return frame

    def models(self) -> pd.DataFrame:
        """The model registry as served, serving models first."""
        return self.query(
            "select model_name, model_version, is_serving, task, framework, algorithm, "
            "trained_at, primary_metric, primary_metric_value, train_rows, test_rows, "
            "serving_reason from dim_models order by is_serving desc, model_name, trained_at desc"
        )


def with_period(state: FilterState, period: str) -> FilterState:
    """A copy of the state with another period (used by tests and the benchmark)."""
    return replace(state, period=period)
