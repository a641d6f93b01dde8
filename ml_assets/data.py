"""Reading the Spark clean lake into pandas, and naming the exact data a model was trained on.

The ML assets only read ``lake/clean/<name>``: each is a Delta table, and every commit is a
version that can be read again (time travel), so the table version a model read *is* its data
version. Recording it with the row count in the model registry links every model to the rows it
saw (``read_table(spark, path, version)`` or DuckDB's ``delta_scan(path, version => n)`` give them
back). These tables are single-machine sized (one row per order or per line), so DuckDB reads
them directly; Spark is only needed to build them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from scpro_assets.lake_duckdb import connect_lake, delta_scan_sql
from spark.tables import current_version


@dataclass(frozen=True)
class LakeTable:
    """One clean dataset as read, with the version it came from."""

    name: str
    frame: pd.DataFrame
    version: str
    rows: int
    #: The Delta table read (``version`` is its table version: ``read_table(spark, path,
    #: version)`` or DuckDB's ``delta_scan(path, version => n)`` give these rows back).
    path: str = ""

    def lineage(self) -> dict[str, object]:
        """What the registry records about this input: the table, its Delta version, its rows."""
        return {"table": self.path, "version": self.version, "rows": self.rows}


def read_clean(
    clean_dir: Path,
    name: str,
    columns: list[str] | None = None,
    version: int | None = None,
    order_ids: Sequence[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> LakeTable:
    """Read the Delta table ``lake/clean/<name>`` into pandas, as of ``version`` or the latest.

    Read through DuckDB's ``delta`` extension (from its wheel: :mod:`scpro_assets.lake_duckdb`),
    pinned to the version found first, so the frame is exactly that version even while Spark
    commits the next one. ``order_ids`` keeps only those orders' rows (what an incremental
    scoring cycle looks up). ``con``, a connection of :func:`connect_lake`, saves loading the
    extension again for each table read together (left open). Raises ``FileNotFoundError`` with
    the asset to materialize when the table is missing, since an empty model would be worse than
    a clear failure.
    """
    table = clean_dir / name
    if version is None:
        version = current_version(table)
    if version is None:
        raise FileNotFoundError(
            f"{table} does not exist: materialize the Spark asset {name!r} first"
        )
    own = con is None
    con = connect_lake() if con is None else con
    try:
        con.execute("set TimeZone = 'UTC'")
        selected = "*" if not columns else ", ".join(f'"{c}"' for c in columns)
        query = f"select {selected} from {delta_scan_sql(table, version)}"
        if order_ids is not None:
            wanted = pa.table({"order_id": pa.array(list(order_ids), pa.string())})
            con.register("scpro_wanted_orders", wanted)
            query += " where order_id in (select order_id from scpro_wanted_orders)"
        frame = con.execute(query).df()
    finally:
        if own:
            con.close()
    for column in frame.columns:
        # Zoned timestamps come back in the session's zone (UTC); naive ones are UTC instants.
        if pd.api.types.is_datetime64_dtype(frame[column]):
            frame[column] = frame[column].dt.tz_localize("UTC")
        elif isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC")
    return LakeTable(name=name, frame=frame, version=str(version), rows=len(frame), path=str(table))
