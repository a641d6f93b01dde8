"""The SparkSession SCPro runs its transforms in, tuned for the 2-core / 24 GB reference box.

The defaults live in :data:`SPARK_CONF` so the Dagster ``PySparkResource`` and this builder start
identical sessions:

- ``spark.driver.memory=4g``: in local mode the driver *is* the executor; 4 GB holds the joins
  and windows of a few million orders and leaves most of the box to Kafka, DuckDB and TensorFlow.
- ``spark.sql.shuffle.partitions=8``: the default 200 makes hundreds of tiny tasks on 2 cores;
  adaptive execution coalesces further and splits skewed partitions when the data grows.
- ``spark.sql.session.timeZone=UTC``: every event time is UTC on the wire; dates, hours and
  weekdays must not depend on the machine's zone.
- ``spark.ui.enabled=false`` and WARN logs: the UI port clashes between parallel runs and tests,
  and INFO logs drown Dagster's own.
- Delta Lake, the lake's open table format (``infra/spark/README.md``): its jars come from
  ``infra/spark/target/libs`` (fetched from Maven Central by ``make setup``, never at run time),
  its SQL extension gives ``MERGE INTO`` and time travel, and its catalog reads path tables
  (``delta.`/lake/clean/orders```). ``spark.databricks.delta.snapshotPartitions=8`` for the same
  reason as the shuffle partitions: the default 50 tasks to replay a table's log are 50 tiny
  tasks on 2 cores. ``...properties.defaults.enableChangeDataFeed=true``: every table the lake
  creates keeps its change data feed, which the incremental clean layer reads
  (:func:`spark.tables.read_changes`).
- ``spark.sql.codegen.cache.maxEntries=4000``: Spark compiles a Java class for each distinct
  piece of a plan (whole-stage code, projections, and the typed encoders with which Delta replays
  a table's log) and keeps the last 100 by default. One incremental cycle (event stores, entities,
  features) needs ~800 of them, so with 100 every cycle compiled all ~800 again; with 4,000 the
  first cycle compiles them and later ones 60-90 new classes, and the JVM spends ~25% less CPU
  per cycle (``infra/spark/README.md``, "Session 8"). A static setting: the server's (or the
  session's) at start, never a client's.

Pointing at a cluster is a different ``master`` (the memory setting is then the driver's only).
Over Spark Connect (``remote``, ``sc://host:port``) the driver is the server: it got
:data:`SPARK_CONF` when it started (``scpro spark start``), and a client session can only set
the runtime SQL settings, :func:`connect_conf`.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

#: Where ``make setup`` copies Delta Lake's jars (``infra/spark/pom.xml``).
SPARK_JARS_DIR = Path(__file__).resolve().parents[1] / "infra" / "spark" / "target" / "libs"


def lake_format_jars(jars_dir: Path = SPARK_JARS_DIR) -> str:
    """Return the table format's jars as ``spark.jars`` wants them (comma-separated paths).

    Missing jars are reported at session start by :func:`build_spark_session`, not here: this runs
    at import, and importing the code location must not depend on ``make setup``.
    """
    return ",".join(str(jar) for jar in sorted(jars_dir.glob("*.jar")))


#: Spark settings shared by :func:`build_spark_session` and the Dagster PySpark resource.
SPARK_CONF: dict[str, str] = {
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Keep the JVM's own clock in UTC too (Parquet writers and log lines use it).
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    # The lake's table format: Delta Lake (jars fetched by `make setup`).
    "spark.jars": lake_format_jars(),
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.snapshotPartitions": "8",
    # Every new table records its row changes (the change data feed): the incremental clean layer
    # reads what changed since the version it last built from, instead of the whole table.
    "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "true",
    # A long-lived driver runs the same plans every cycle: keep their compiled classes.
    "spark.sql.codegen.cache.maxEntries": "4000",
}

#: Settings of :data:`SPARK_CONF` fixed when the driver starts, though named ``spark.sql.*``.
STATIC_SQL_CONF = frozenset({"spark.sql.extensions", "spark.sql.codegen.cache.maxEntries"})


def connect_conf() -> dict[str, str]:
    """The part of :data:`SPARK_CONF` a Spark Connect session may set (the ``spark.sql.*`` ones).

    The others are the server's, fixed when it started; Spark would refuse them with a warning.
    """
    return {
        key: value
        for key, value in SPARK_CONF.items()
        if key.startswith("spark.sql.") and key not in STATIC_SQL_CONF
    }


def build_spark_session(
    master: str = "local[*]",
    app_name: str = "scpro",
    extra_conf: dict[str, str] | None = None,
    remote: str | None = None,
) -> SparkSession:
    """Start (or reuse) a SparkSession with :data:`SPARK_CONF`, overridden by ``extra_conf``.

    Settings read at JVM start (driver memory, Java options) only apply when this call starts the
    JVM; a session already running in the process is reused with its runtime settings updated.
    With ``remote`` (``sc://host:port``) the session is a Spark Connect client of that server and
    ``master`` is the server's business.
    """
    if remote:
        builder = SparkSession.builder.remote(remote)
        conf = {**connect_conf(), **(extra_conf or {})}
    else:
        conf = {**SPARK_CONF, **(extra_conf or {})}
        if not conf["spark.jars"]:
            raise FileNotFoundError(
                f"Delta Lake's jars are missing from {SPARK_JARS_DIR}: run `make setup` "
                "(mvn -f infra/spark/pom.xml dependency:copy-dependencies)"
            )
        builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not remote:  # a Connect client has no SparkContext; the server logs at WARN already
        spark.sparkContext.setLogLevel("WARN")
    return spark
