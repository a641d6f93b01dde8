"""Ingest: landing Kafka offset ranges as Parquet, exactly once, with quarantine."""
