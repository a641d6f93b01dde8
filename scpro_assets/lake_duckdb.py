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
    load_delta(con)
    return con


def load_delta(con: duckdb.DuckDBPyConnection) -> None:
    """Load the wheel's ``delta`` extension into ``con`` (also dbt's connections: its plugin)."""
    con.execute(f"load '{_sql_string(delta_extension_path())}'")


def delta_scan_sql(table: str | Path, version: int | None = None) -> str:
    """SQL that reads a lake table (``from <this>``), as of ``version`` when given."""
    at_version = "" if version is None else f", version => {int(version)}"
    return f"delta_scan('{_sql_string(table)}'{at_version})"


def _sql_string(value: str | Path) -> str:
    """Quote a path inside a SQL string literal."""
    return str(value).replace("'", "''")


def naive_utc_select(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """``select`` of every column of ``relation``, zoned timestamps as naive UTC ones.

    DuckDB reads a Delta (Spark) timestamp as ``TIMESTAMP WITH TIME ZONE``; the warehouse's
    models and their readers work with naive UTC timestamps (dbt's staging models cast them the
    same way, the profile's zone being UTC), so a reader comparing with them converts here
    (exact: the session's zone is UTC).
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
