"""The warehouse: dbt models in DuckDB as Dagster assets, and the read-only serving snapshot."""
