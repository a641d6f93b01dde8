"""Raw landed events: parsing their payload.

Landing (:mod:`scpro_assets.ingest.landing`) stores each valid event with its Kafka coordinates and
the contract model's JSON in ``payload``; tests build the same rows without a broker with
:mod:`scpro_assets.testing.raw_rows` (``spark/`` holds pure transforms and imports no platform
module).

:func:`parse_raw` turns one topic's payload JSON into columns with the explicit schema of
:mod:`spark.schemas`, keeping the raw metadata (topic, partition, offset, ...) that deduplication
orders by and the ``payload`` string that quarantine rows carry.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark.schemas import PAYLOAD_SCHEMAS, RAW_COLUMNS


def parse_raw(raw_df: DataFrame, topic: str) -> DataFrame:
    """One topic's raw rows with the payload's fields as columns next to the raw metadata.

    Rows of other topics are left out, so a frame holding several topics can be passed. Envelope
    fields present in both (event id, type, time, source, order id) are taken from the raw
    columns: landing copied them from the same validated event.
    """
    if topic not in PAYLOAD_SCHEMAS:
        raise KeyError(f"unknown topic {topic!r}; expected one of {sorted(PAYLOAD_SCHEMAS)}")
    schema = PAYLOAD_SCHEMAS[topic]
    payload_only = [name for name in schema.fieldNames() if name not in RAW_COLUMNS]
    return (
        raw_df.where(F.col("topic") == topic)
        .withColumn("_event", F.from_json("payload", schema, {"mode": "PERMISSIVE"}))
        .select(*RAW_COLUMNS, *(F.col(f"_event.{name}").alias(name) for name in payload_only))
    )
