"""Spark transforms of SCPro: raw landed events to clean entities and order-time features.

Every public transform is a pure ``DataFrame -> DataFrame`` function (reading and writing Parquet
is the Dagster assets' job), so the same code runs in unit tests on a local session and on a
cluster when ``SCPRO_SPARK_MASTER`` points at one.
"""
