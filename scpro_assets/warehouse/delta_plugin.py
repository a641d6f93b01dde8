"""dbt-duckdb plugin: every dbt connection reads the lake's Delta tables, with no download.

The ``clean`` source reads ``delta_scan('<lake>/clean/<table>')`` (``dbt_project/macros/source.sql``
pins each build to one version). dbt-duckdb would install and load the ``delta`` extension from
DuckDB's server; SCPro reaches only package registries, so the profile switches automatic install
and load off and this plugin loads the extension from the ``duckdb-extension-delta`` wheel's own
file on every connection dbt opens (:func:`scpro_assets.lake_duckdb.delta_extension_path`): no
environment variable to set, the same for the Dagster asset, ``scpro dbt`` and a plain ``dbt
build`` in ``dbt_project/``. Named in ``profiles.yml`` (``plugins``), dbt-duckdb's documented way
to configure its connections.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from scpro_assets.lake_duckdb import NO_DOWNLOAD_CONFIG, load_delta


class Plugin(BasePlugin):
    """Loads the ``delta`` extension from its wheel; never lets DuckDB fetch an extension."""

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        """Switch automatic extension install and load off, whatever the profile's settings say."""
        config.update(NO_DOWNLOAD_CONFIG)

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        """Load the wheel's ``delta`` extension into the connection dbt just opened."""
        load_delta(conn)
