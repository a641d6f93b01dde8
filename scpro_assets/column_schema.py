"""``dagster/column_schema`` metadata from the schema a table was written with.

Dagster shows a materialization's ``dagster/column_schema`` in the asset's Columns tab, and
:mod:`scpro_assets.lineage` sends it as the OpenLineage ``schema`` facet. dbt models get it from
dagster-dbt; the Spark and ML assets build it here from the Arrow schema of what they wrote, which
is known without reading any data (a contract schema, or Parquet footers).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as pads


def arrow_column_schema(schema: pa.Schema) -> dg.TableSchema:
    """One column per Arrow field, typed by Arrow's name (``string``, ``timestamp[us, tz=UTC]``).

    A non-nullable field is marked ``nullable=False``, so the Columns tab shows the constraint.
    """
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type),
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in schema
        ]
    )


def parquet_column_schema(path: Path) -> dg.TableSchema | None:
    """The column schema of a Parquet dataset folder (hive partition columns included).

    Read from one file's footer; None when the folder holds no Parquet file yet (an empty
    partitioned table), rather than a schema without columns.
    """
    dataset = pads.dataset(str(Path(path).resolve()), format="parquet", partitioning="hive")
    if not dataset.files:
        return None
    return arrow_column_schema(dataset.schema)


def column_schema_metadata(schema: pa.Schema | dg.TableSchema | None) -> dict[str, dg.TableSchema]:
    """``{"dagster/column_schema": ...}`` to unpack into a materialization's metadata.

    ``{}`` when the schema is unknown: no key rather than a null the Columns tab would show.
    """
    if schema is None:
        return {}
    if isinstance(schema, pa.Schema):
        schema = arrow_column_schema(schema)
    return {"dagster/column_schema": schema}


def parquet_column_schema_metadata(path: Path) -> dict[str, dg.TableSchema]:
    """:func:`column_schema_metadata` of a Parquet dataset folder, from a file's footer."""
    return column_schema_metadata(parquet_column_schema(path))
