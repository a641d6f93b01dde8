"""Dagster sensors: Kafka topics to raw offset-range runs."""
