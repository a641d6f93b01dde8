"""DuckDB connections that read the lake's Delta tables through the PyPI ``delta`` extension.

DuckDB would otherwise download its ``delta`` extension from its own server the first time a
query needs it. SCPro reaches only package registries, so the extension comes from the
``duckdb-extension-delta`` wheel instead (pinned to the exact DuckDB version it was built for),
is loaded from the file that wheel installs, and automatic install and load are switched off: a
missing or mismatched extension is a clear error here, never a download.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extension_delta

#: Settings that keep DuckDB from fetching or auto-loading any extension.
NO_DOWNLOAD_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def delta_extension_path() -> Path:
    """The ``delta`` extension file of the ``duckdb-extension-delta`` wheel for this DuckDB."""
    package_dir = Path(duckdb_extension_delta.__file__).parent
    path = package_dir / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    if not path.is_file():
        built_for = sorted(p.name for p in (package_dir / "extensions").glob("v*"))
        raise FileNotFoundError(
            f"duckdb-extension-delta has no extension for DuckDB {duckdb.__version__} "
            f"(it has {built_for}): pin duckdb to the extension's version in pyproject.toml"
        )
    return path


def connect_lake(
    database: str | Path = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with the ``delta`` extension loaded from its wheel and downloads switched off."""
    con = duckdb.connect(str(database), read_only=read_only, config=dict(NO_DOWNLOAD_CONFIG))
    con.execute(f"load '{_sql_string(delta_extension_path())}'")
    return con


def delta_scan_sql(table: str | Path, version: int | None = None) -> str:
    """SQL that reads a lake table (``from <this>``), as of ``version`` when given."""
    at_version = "" if version is None else f", version => {int(version)}"
    return f"delta_scan('{_sql_string(table)}'{at_version})"


def _sql_string(value: str | Path) -> str:
    """Quote a path inside a SQL string literal."""
    return str(value).replace("'", "''")


def naive_utc_select(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """``select`` of every column of ``relation``, zoned timestamps as naive UTC ones.

    DuckDB reads a Delta (Spark) timestamp as ``TIMESTAMP WITH TIME ZONE``; the clean lake's
    Parquet used to give naive UTC timestamps, which the warehouse models and their readers
    expect, so the pinned copy keeps that type (exact: the session's zone is UTC).
    """
    con.execute("set TimeZone = 'UTC'")
    columns = []
    for name, kind, *_ in con.execute(f"describe select * from {relation}").fetchall():
        quoted = '"' + name.replace('"', '""') + '"'
        if kind == "TIMESTAMP WITH TIME ZONE":
            columns.append(f"{quoted}::timestamp as {quoted}")
        else:
            columns.append(quoted)
    return f"select {', '.join(columns)} from {relation}"


def copy_table(
    con: duckdb.DuckDBPyConnection, table: str | Path, target: Path, version: int
) -> int:
    """Write version ``version`` of a lake table to one Parquet file ``target``; return its rows.

    ``con`` comes from :func:`connect_lake` (loading the extension costs about a second, so one
    connection serves many copies). Written beside ``target`` first, then renamed over it: a
    reader sees the whole file or none.
    """
    select = naive_utc_select(con, delta_scan_sql(table, version))
    tmp = target.with_name(f".{target.name}.tmp")
    con.execute(f"copy ({select}) to '{_sql_string(tmp)}' (format parquet)")
    rows = con.execute(f"select count(*) from read_parquet('{_sql_string(tmp)}')").fetchone()
    tmp.replace(target)
    return int(rows[0]) if rows else 0
