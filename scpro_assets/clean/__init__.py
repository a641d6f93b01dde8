"""The clean layer: Spark turns landed raw ranges into cleaned entities and order features."""
