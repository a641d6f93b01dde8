"""SCPro: supply-chain intelligence on Kafka, Dagster, Spark, dbt and DuckDB."""
