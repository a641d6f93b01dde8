"""Kafka: the embedded Apache Kafka broker and client factories configured from the environment."""
