"""What changed in the lake since the warehouse's last complete build, for the incremental models.

The large models (the clean staging tables, the facts, the KPI marts) are dbt incremental models:
a build deletes the rows of the keys that changed and inserts their current rows, so its work
follows the batch, not the history. This module tells them which keys changed, before dbt starts:

- a clean table (``lake/clean/<name>``, Delta): the keys in Delta's change data feed between the
  version the last complete build read and the version this build pins (every table SCPro
  creates has the feed on). The clean layer replaces rows per key (``spark.tables.replace_keys``:
  a delete and an insert per key), so rows change and vanish, not only arrive; the feed shows
  both images, and each carries the key, its business time (which day and week a KPI must
  recompute, the deleted image's included) and its partition (``order_month``...), so the
  staging models read only the partitions that changed;
- an ML score table (``delivery_time_predictions``, ``late_risk_scores``: Delta tables a scoring
  cycle merges its scores into by ``order_id``): the keys in its change data feed, like a clean
  table's (without a business time: the facts join scores by order);
- another ML output (a file the ML layer replaces, such as ``customer_segments``): a fingerprint
  ``(key, hash of the columns the facts carry)`` is kept per build; the changed keys are those
  whose fingerprint differs (or is new or gone).

Each change set is a small Parquet file ``(key, business_time)`` named in the ``scpro_changes``
dbt var with its partitions. A dataset whose changes cannot be known (no complete build yet, a
full rewrite of the table by the clean layer, a change feed no longer readable) is left out of
the var: the models then re-read all of it through the same incremental path (slower, never
wrong), so the result is always the one a full refresh gives.

The state (the versions and fingerprints a build read) is committed only after a build of the
whole project succeeded (:func:`commit_changes`). A failed or partial build leaves it: the next
build's change sets are then a superset of what is left to apply, and replacing a key's rows
with their current rows is idempotent.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from scpro_assets.settings import Settings
from spark.tables import rewritten_since

#: Each clean table's key (what the clean layer replaces its rows by) and business time column.
CLEAN_KEYS: dict[str, tuple[str, str]] = {
    "cleaned_orders": ("order_id", "order_time"),
    "cleaned_order_items": ("order_id", "order_time"),
    "cleaned_deliveries": ("order_id", "order_time"),
    "cleaned_payments": ("event_id", "paid_at"),
    "cleaned_shipments": ("event_id", "event_time"),
    "cleaned_web_logs": ("event_id", "event_time"),
    "cleaned_incidents": ("incident_id", "opened_at"),
    "order_features": ("order_id", "order_time"),
}

#: Each ML score table (Delta, merged by scoring cycles) the facts join, and its key.
SCORE_KEYS: dict[str, str] = {
    "delivery_time_predictions": "order_id",
    "late_risk_scores": "order_id",
}

#: Each other ML output the facts join (a file replaced whole), its key, and the columns of it
#: that the incremental models carry: a key changed when one of those did. ``customer_segments``
#: reaches the facts only as the customer's segment name (``int_orders_segmented``); its RFM
#: columns move for every customer at every cycle (recency is measured to the latest order), and
#: counting them re-ran every fact of every customer each cycle (134k of 134k customers at 1M
#: events of history). ``dim_customers``, which shows them, is rebuilt whole.
ML_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer_segments": ("customer_id", ("segment_name",)),
}

#: Change-set folders older than this, and not the committed state's, are removed.
_STALE_SECONDS = 3600


@dataclass
class ChangeSet:
    """A build's change sets, and the state to commit once it has succeeded."""

    folder: Path
    changes: dict[str, dict[str, object]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    state: dict[str, dict[str, object]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the run's log: which datasets are incremental and which are re-read."""
        rows = {name: change.get("rows") for name, change in self.changes.items()}
        return f"changed keys {rows}; re-read whole: {self.unknown or 'none'}"


def state_path(settings: Settings) -> Path:
    """The committed state: the versions and fingerprints the last complete build read."""
    return settings.home / "warehouse_inputs" / "built_state.json"


def load_state(settings: Settings) -> dict[str, dict[str, object]]:
    """The committed state, or an empty one (no complete build yet)."""
    path = state_path(settings)
    if not path.exists():
        return {"clean": {}, "scores": {}, "ml": {}}
    state = json.loads(path.read_text())
    return {key: state.get(key, {}) for key in ("clean", "scores", "ml")}


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    return con


def _write_keys(
    con: duckdb.DuckDBPyConnection, relation: str, out: Path, key: str, at: str | None
) -> int:
    """Write the distinct ``(key, business_time)`` of ``relation`` to ``out``; return the keys."""
    at_sql = f"cast({at} as timestamp)" if at else "cast(null as timestamp)"
    select = f"select distinct cast({key} as varchar) as key, {at_sql} as business_time"
    con.execute(f"copy ({select} from {relation}) to '{out}' (format parquet)")
    (count,) = con.execute(f"select count(distinct key) from read_parquet('{out}')").fetchone()
    return int(count)


def _clean_changes(
    con: duckdb.DuckDBPyConnection, table: Path, name: str, since: int, through: int, out: Path
) -> dict[str, object] | str:
    """The keys of ``name`` changed by commits ``since + 1 .. through``, or why unknown."""
    key, at = CLEAN_KEYS[name]
    return _feed_changes(con, table, key, at, since, through, out)


def _feed_changes(
    con: duckdb.DuckDBPyConnection,
    table: Path,
    key: str,
    at: str | None,
    since: int,
    through: int,
    out: Path,
) -> dict[str, object] | str:
    """The ``key``s in the Delta ``table``'s change feed ``since + 1 .. through``, or why unknown.

    With each key its business time ``at`` (None: the table has none) and its partition.
    """
    if since > through or rewritten_since(table, since):
        return f"rewritten since version {since}"
    partition = next(iter(DeltaTable(table).metadata().partition_columns), None)
    if since == through:
        empty = {key: pa.array([], pa.string())}
        if at:
            empty[at] = pa.array([], pa.timestamp("us"))
        feed = pa.table(empty)
    else:
        try:
            columns = [key, *([at] if at else []), *([partition] if partition else [])]
            reader = DeltaTable(table).load_cdf(
                starting_version=since + 1, ending_version=through, columns=columns
            )
            feed = pa.table(reader)
        except Exception as error:  # a feed cleaned up after its retention, a missing commit
            return f"change feed unreadable ({type(error).__name__}: {error})"
    con.register("feed", feed)
    try:
        rows = _write_keys(con, "feed", out, key, at)
        partitions = None
        if partition and feed.num_rows:
            values = con.execute(f"select distinct cast({partition} as varchar) from feed")
            found = sorted(v for (v,) in values.fetchall())
            partitions = None if None in found else found
        elif partition:
            partitions = []
    finally:
        con.unregister("feed")
    return {"path": str(out), "rows": rows, "partition": partition, "partitions": partitions}


def _fingerprint(
    con: duckdb.DuckDBPyConnection, source: str, key: str, columns: tuple[str, ...], out: Path
) -> None:
    """``(key, row_hash)`` of every row of the ML output ``source``, hashing ``columns``."""
    relation = f"read_parquet('{source}', union_by_name = true)"
    hashed = ", ".join(f'"{c}"' for c in columns)
    con.execute(
        f"copy (select cast({key} as varchar) as key, hash({hashed}) as row_hash "
        f"from {relation}) to '{out}' (format parquet)"
    )


def _ml_changes(
    con: duckdb.DuckDBPyConnection, fingerprint: Path, previous: str | None, out: Path
) -> dict[str, object] | str:
    """The keys whose fingerprint differs from the last complete build's, or why unknown."""
    if not previous or not Path(previous).exists():
        return "no fingerprint of a complete build"
    new, old = f"read_parquet('{fingerprint}')", f"read_parquet('{previous}')"
    diff = f"((select * from {new} except select * from {old}) union all (select * from {old} except select * from {new}))"  # noqa: E501
    return {"path": str(out), "rows": _write_keys(con, diff, out, "key", None)}


def _remove_stale(root: Path, keep: set[Path]) -> None:
    """Remove change-set folders of old builds (never the committed state's, never a fresh one)."""
    for folder in root.glob("build-*"):
        if folder not in keep and time.time() - folder.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)


def prepare_changes(
    settings: Settings,
    versions: dict[str, int],
    ml_paths: dict[str, str],
    score_versions: dict[str, int] | None = None,
) -> ChangeSet:
    """The change sets between the committed state and this build's pinned inputs.

    ``score_versions`` holds the pinned version of each published score table (one missing is
    not published yet: read whole).
    """
    score_versions = score_versions or {}
    root = settings.home / "warehouse_inputs" / "changes"
    folder = root / f"build-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    (folder / "fingerprints").mkdir(parents=True)
    state = load_state(settings)
    committed_ml = {Path(str(p)).parent.parent for p in state["ml"].values() if p}
    _remove_stale(root, committed_ml)
    changes = ChangeSet(
        folder=folder, state={"clean": dict(versions), "scores": dict(score_versions), "ml": {}}
    )
    with _connect() as con:
        for name, version in versions.items():
            if name not in CLEAN_KEYS:
                continue
            since = state["clean"].get(name)
            found: dict[str, object] | str = "no complete build yet"
            if since is not None:
                table, out = settings.clean_dir / name, folder / f"{name}.parquet"
                found = _clean_changes(con, table, name, int(since), version, out)
            _record(changes, name, found)
        for name, key in SCORE_KEYS.items():
            since, through = state["scores"].get(name), score_versions.get(name)
            if through is None:
                found = "not scored yet"
            elif since is None:
                found = "no complete build yet"
            else:
                table, out = Path(ml_paths[name]), folder / f"{name}.parquet"
                found = _feed_changes(con, table, key, None, int(since), through, out)
            _record(changes, name, found)
        for name, (key, columns) in ML_KEYS.items():
            fingerprint = folder / "fingerprints" / f"{name}.parquet"
            _fingerprint(con, ml_paths[name], key, columns, fingerprint)
            changes.state["ml"][name] = str(fingerprint)
            previous = state["ml"].get(name)
            found = _ml_changes(con, fingerprint, previous, folder / f"{name}.parquet")  # type: ignore[arg-type]
            _record(changes, name, found)
    return changes


def _record(changes: ChangeSet, name: str, found: dict[str, object] | str) -> None:
    if isinstance(found, str):
        changes.unknown[name] = found
    else:
        changes.changes[name] = found


#: Build records kept in the state: a publication chains the ones since the build it published.
KEEP_BUILDS = 48


def load_builds(settings: Settings) -> list[dict[str, object]]:
    """The records of the last whole-project builds, oldest first (see :func:`commit_changes`)."""
    path = state_path(settings)
    if not path.exists():
        return []
    return list(json.loads(path.read_text()).get("builds", []))


def commit_changes(
    settings: Settings, changes: ChangeSet, parts: dict[str, list[str] | None] | None = None
) -> None:
    """Record that a build of the whole project read these inputs (atomically).

    With them, the build's record: its id, the build before it, the served parts it changed
    (``parts``, from :func:`scpro_assets.warehouse.serving.changed_parts`; none: unknown) and the
    warehouse file as the build left it. A publication that finds the chain of records from the
    build it published last to this one, and the warehouse untouched since, rewrites only those
    parts.
    """
    path = state_path(settings)
    builds = load_builds(settings)
    stat = settings.warehouse_path.stat()
    record = {
        "id": changes.folder.name,
        "after": builds[-1]["id"] if builds else None,
        "parts": parts,
        "warehouse": [stat.st_mtime_ns, stat.st_size],
    }
    state = {**changes.state, "builds": [*builds, record][-KEEP_BUILDS:]}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)
