"""Incremental scoring: which orders a cycle must score, and their scores committed with why.

A served score depends on three things only: the order's ``order_features`` row, whether the order
is still open (its ``cleaned_deliveries`` status: delivered or canceled closes it), and the serving
model. So a cycle scores an order only when one of them changed since the served scores were made:

- the serving model (its name, version or artifact hashes) differs from the one recorded, or the
  scoring code changed (:data:`SCORING_CODE_VERSION`): every order is scored again, and every row
  names the model that made it;
- otherwise, the orders in the change data feed of ``order_features`` since the recorded version
  (new orders, and orders whose features the clean layer recomputed), and the orders that opened
  or closed in the feed of ``cleaned_deliveries`` since its recorded version. An order whose
  features row is gone (quarantined since) loses its score, as a full scoring would leave it out.

What the served scores were computed from (both inputs' versions and the model) is the table's
*state*, committed in the custom metadata of the same Delta commit as the scores
(:data:`STATE_KEY`). Nothing is written beside the table, so scores and state cannot disagree: a
run killed before its commit leaves the previous version and the previous state, and the next
cycle scores the same orders again (and any newer ones); it never skips one. A table without a
state (never scored, written empty while no model served, or by hand) is scored in full, and so
are inputs rewritten since the recorded version (a full refresh of the clean layer) or whose
history is gone: their feed would not be a batch's changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from spark.tables import current_version, rewritten_since

#: The commit metadata key holding a score table's :class:`ScoringState` (JSON).
STATE_KEY = "scpro.scoring"
#: Bumped when the scoring code changes what a row holds (a reason's wording, a column): a table
#: scored by another code version is scored again in full.
SCORING_CODE_VERSION = 1
#: The clean tables a score is computed from.
FEATURES = "order_features"
DELIVERIES = "cleaned_deliveries"
#: Delivery statuses after which an order is no longer open.
CLOSED_STATUSES = ("delivered", "canceled")
#: The serving entry's fields that name the model a row was scored with.
_MODEL_FIELDS = ("model_name", "model_version", "artifact_sha256", "interval_artifact_sha256")
#: Change types that show a row as it was before a commit.
_BEFORE = ("delete", "update_preimage")


@dataclass(frozen=True)
class InputVersion:
    """One input table as scored: its Delta version and that commit's timestamp.

    The timestamp tells a table deleted and rebuilt up to the same version number apart.
    """

    version: int
    committed_ms: int | None


@dataclass(frozen=True)
class ScoringState:
    """What a score table's rows were computed from, committed with them."""

    inputs: dict[str, InputVersion]
    model: dict[str, str]
    code_version: int = SCORING_CODE_VERSION

    def to_metadata(self) -> dict[str, str]:
        """The commit's custom metadata that records this state."""
        return {STATE_KEY: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_json(cls, text: str) -> ScoringState:
        """The state as :meth:`to_metadata` wrote it."""
        raw = json.loads(text)
        inputs = {name: InputVersion(**value) for name, value in raw["inputs"].items()}
        return cls(inputs=inputs, model=raw["model"], code_version=raw["code_version"])


@dataclass(frozen=True)
class ScoringPlan:
    """What one cycle scores: every order (``full``) or ``order_ids``, and why."""

    full: bool
    reason: str
    inputs: dict[str, InputVersion]
    model: dict[str, str]
    order_ids: tuple[str, ...] = ()
    previous: ScoringState | None = field(default=None, compare=False)

    @property
    def state(self) -> ScoringState:
        """The state the scores of this plan are committed with."""
        return ScoringState(inputs=self.inputs, model=self.model)

    @property
    def changes_nothing(self) -> bool:
        """Nothing to score and nothing new to record: the cycle commits nothing."""
        return not self.full and not self.order_ids and self.previous == self.state


def model_identity(entry: Mapping[str, Any]) -> dict[str, str]:
    """The serving entry's name, version and artifact hashes (a new artifact is a new model)."""
    return {name: str(entry.get(name) or "") for name in _MODEL_FIELDS}


def _commit_info(path: Path, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` of commit ``version`` from its log entry (None when it is gone)."""
    entry = path / "_delta_log" / f"{version:020d}.json"
    if not entry.is_file():
        return None
    for line in entry.read_text().splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            return action["commitInfo"]
    return None


def pin_inputs(clean_dir: Path) -> dict[str, InputVersion]:
    """The current version of each input table: what this cycle reads, whatever Spark commits next.

    Raises ``FileNotFoundError`` naming the Spark asset to materialize when a table is missing.
    """
    pinned = {}
    for name in (FEATURES, DELIVERIES):
        path = clean_dir / name
        version = current_version(path)
        if version is None:
            raise FileNotFoundError(
                f"{path} does not exist: materialize the Spark asset {name!r} first"
            )
        info = _commit_info(path, version) or {}
        pinned[name] = InputVersion(version, info.get("timestamp"))
    return pinned


def served_state(table: Path) -> ScoringState | None:
    """The state committed with the score table's latest version (None: score in full)."""
    version = current_version(table)
    if version is None:
        return None
    text = (_commit_info(table, version) or {}).get(STATE_KEY)
    if not text:
        return None
    try:
        return ScoringState.from_json(text)
    except (KeyError, TypeError, ValueError):  # written by another code version: start afresh
        return None


def _full_reason(
    clean_dir: Path, state: ScoringState | None, inputs: dict[str, InputVersion], model: dict
) -> str | None:
    """Why every order must be scored this cycle; None when its changes are enough."""
    if state is None:
        return "no scoring state on the served table (first scoring, or written without one)"
    if state.code_version != SCORING_CODE_VERSION:
        return f"scoring code version {SCORING_CODE_VERSION} (served: {state.code_version})"
    if state.model != model:
        return (
            f"new serving model {model['model_name']} {model['model_version']} "
            f"(served: {state.model.get('model_name')} {state.model.get('model_version')})"
        )
    for name, now in inputs.items():
        then = state.inputs.get(name)
        if then is None or now.version < then.version:
            return f"{name} is not the table scored before (version {now.version})"
        info = _commit_info(clean_dir / name, then.version)
        if info is None or info.get("timestamp") != then.committed_ms:
            return f"{name} version {then.version} is gone or was rebuilt"
        if rewritten_since(clean_dir / name, then.version):
            return f"{name} was rewritten since version {then.version} (a full refresh)"
    return None


def _changes(path: Path, after: int, through: int, columns: list[str]) -> pa.Table:
    """The change data feed of commits ``after + 1 .. through`` (empty when there are none)."""
    wanted = [*columns, "_change_type", "_commit_version"]
    if through <= after:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    reader = DeltaTable(str(path)).load_cdf(
        starting_version=after + 1, ending_version=through, columns=wanted
    )
    table = pa.table(reader)
    # delta-rs hands strings back as views; plain strings sort and convert everywhere.
    return table.cast(
        pa.schema(
            [
                f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                for f in table.schema
            ]
        )
    )


def features_changed(path: Path, after: int, through: int) -> set[str]:
    """Orders whose ``order_features`` row was inserted, replaced or deleted in the commits."""
    return set(_changes(path, after, through, ["order_id"]).column("order_id").to_pylist())


def openness_changed(path: Path, after: int, through: int) -> set[str]:
    """Orders that opened or closed (delivered, canceled) in the commits of ``cleaned_deliveries``.

    Per order, the feed's first row says how it was before the commits (a before-image; an insert
    first means it had no row, so it was open) and its last row how it is (an after-image; a
    delete last means it has no row, so it is open). Other status changes (in transit, out for
    delivery) leave the served row as a full scoring would make it, so they are not scored.
    """
    changes = _changes(path, after, through, ["order_id", "status"])
    if not changes.num_rows:
        return set()
    frame = changes.to_pandas()
    frame["before"] = frame["_change_type"].isin(_BEFORE)
    # Within one commit the row as it was comes before the row as it is.
    frame = frame.sort_values(
        ["order_id", "_commit_version", "before"], ascending=[True, True, False], kind="stable"
    )
    closed = frame["status"].isin(CLOSED_STATUSES)
    frame["closed_before"] = frame["before"] & closed
    frame["closed_after"] = ~frame["before"] & closed
    per_order = frame.groupby("order_id", sort=False)
    was_closed = per_order["closed_before"].first()
    is_closed = per_order["closed_after"].last()
    return set(was_closed.index[was_closed != is_closed])


def plan_scoring(clean_dir: Path, table: Path, entry: Mapping[str, Any]) -> ScoringPlan:
    """What this cycle must score for the serving ``entry`` into the score ``table``."""
    inputs = pin_inputs(clean_dir)
    model = model_identity(entry)
    state = served_state(table)
    reason = _full_reason(clean_dir, state, inputs, model)
    if reason is not None:
        return ScoringPlan(True, reason, inputs, model, previous=state)
    assert state is not None  # no reason to score in full means a state was found
    try:
        orders = features_changed(
            clean_dir / FEATURES, state.inputs[FEATURES].version, inputs[FEATURES].version
        ) | openness_changed(
            clean_dir / DELIVERIES, state.inputs[DELIVERIES].version, inputs[DELIVERIES].version
        )
    except DeltaError as error:  # the feed's files are gone (vacuumed): start afresh
        return ScoringPlan(True, f"change data feed unreadable: {error}", inputs, model, (), state)
    reason = f"{len(orders)} new or changed orders"
    return ScoringPlan(False, reason, inputs, model, tuple(sorted(orders)), state)


def commit_scores(
    table: Path, scored: pa.Table, removed: list[str], state: ScoringState
) -> int | None:
    """Merge ``scored`` into the score table by ``order_id``, drop ``removed``, record ``state``.

    One delta-rs ``MERGE`` commit from the driver: a scored order replaces its row or is
    inserted, a removed order's row is deleted, other rows are not rewritten, and ``state`` is
    the commit's custom metadata. When there is no row to change, an empty append commits the
    state alone (the inputs moved on with nothing to score), so the next cycle does not read the
    same changes again. Returns the table's version after.
    """
    commit = CommitProperties(custom_metadata=state.to_metadata())
    columns = scored.schema.names
    marks = pa.table(
        {
            **{
                c: pa.nulls(len(removed), scored.schema.field(c).type)
                for c in columns
                if c != "order_id"
            },
            "order_id": pa.array(removed, pa.string()),
        }
    ).select(columns)
    source = pa.concat_tables(
        [
            scored.append_column("_scpro_op", pa.array(["upsert"] * scored.num_rows, pa.string())),
            marks.cast(scored.schema).append_column(
                "_scpro_op", pa.array(["delete"] * len(removed), pa.string())
            ),
        ]
    )
    before = current_version(table)
    if source.num_rows:
        values = {c: f"s.{c}" for c in columns}
        upsert = "s._scpro_op = 'upsert'"
        (
            DeltaTable(str(table))
            .merge(
                source,
                predicate="t.order_id = s.order_id",
                source_alias="s",
                target_alias="t",
                commit_properties=commit,
            )
            .when_matched_update(updates=values, predicate=upsert)
            .when_matched_delete(predicate="s._scpro_op = 'delete'")
            .when_not_matched_insert(updates=values, predicate=upsert)
            .execute()
        )
    if current_version(table) == before:  # nothing changed: record the state alone
        empty = scored.schema.empty_table()
        write_deltalake(str(table), empty, mode="append", commit_properties=commit)
    return current_version(table)


def removed_orders(wanted: tuple[str, ...], found: pa.Array | list[str]) -> list[str]:
    """The orders asked for whose features row no longer exists (their scores are dropped)."""
    present = set(pc.unique(pa.array(found, pa.string())).to_pylist()) if len(found) else set()
    return sorted(set(wanted) - present)
