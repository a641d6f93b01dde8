"""The ``pyspark`` resource: where a run's Spark session goes is decided when it is first used.

Kept out of :mod:`scpro_assets.spark_server` (which ``scpro spark start|stop`` imports without
Dagster) and out of :mod:`scpro_assets.resources` (which the light landing location imports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr

from scpro_assets.settings import DEFAULT_SPARK_CONNECT_PORT, Settings, SparkConnectSettings
from scpro_assets.spark_server import session_remote
from spark.session import SPARK_CONF, connect_conf


class SparkSessionResource(LazyPySparkResource):
    """dagster-pyspark's lazy session, pointed where :func:`session_remote` says when first built.

    Where a run's Spark goes (a Connect server, else in-process Spark on ``spark_master``) is
    decided when an asset first asks for the session, not when the code location is imported:
    deciding at import read the embedded server's status file and probed its port in every
    process that imported the platform (each run, each sensor evaluation), and a server started
    after the import went unused. Built from :class:`Settings` by :meth:`from_settings`.
    ``spark_config`` is added on top of the chosen configuration.
    """

    home: str
    spark_master: str = "local[*]"
    spark_remote: str | None = None
    connect_port: int = DEFAULT_SPARK_CONNECT_PORT
    spark_config: dict[str, Any] = Field(default_factory=dict)
    _session: Any = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkSessionResource:
        """The resource for ``settings`` (``SCPRO_HOME``, ``SCPRO_SPARK_*``)."""
        return cls(
            home=str(settings.home),
            spark_master=settings.spark_master,
            spark_remote=settings.spark_connect.remote,
            connect_port=settings.spark_connect.port,
        )

    def session_config(self) -> dict[str, Any]:
        """The session's configuration, as of now: over Spark Connect when a server answers."""
        settings = Settings(
            home=Path(self.home),
            spark_master=self.spark_master,
            spark_connect=SparkConnectSettings(remote=self.spark_remote, port=self.connect_port),
        )
        remote = session_remote(settings)
        if remote:
            return {"spark.remote": remote, **connect_conf(), **self.spark_config}
        return {
            "spark.master": self.spark_master,
            "spark.app.name": "scpro",
            **SPARK_CONF,
            **self.spark_config,
        }

    @property
    def spark_session(self) -> Any:
        """The session, built on first use (as dagster-pyspark's builder does)."""
        if self._session is None:
            from pyspark.sql import SparkSession

            builder = SparkSession.builder
            for key, value in self.session_config().items():
                builder = builder.config(key, value)
            self._session = builder.getOrCreate()
        return self._session

    @property
    def spark_context(self) -> Any:
        """The in-process session's SparkContext (a Connect session has none)."""
        return self.spark_session.sparkContext
