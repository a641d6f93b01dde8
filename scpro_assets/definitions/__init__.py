"""SCPro's two Dagster code-location roots, side by side (``workspace.yaml`` loads both).

- :mod:`scpro_assets.definitions.landing` (location ``scpro_ingest``): the Kafka topics, the raw
  event assets, their landing jobs and the Kafka sensors. Light on purpose: a stream asks for many
  short landing runs and each run imports its location first.
- :mod:`scpro_assets.definitions.platform` (location ``scpro``): everything that follows the raw
  data (Spark clean layer, models, dbt warehouse, serving snapshot, automation, lineage), and
  :func:`~scpro_assets.definitions.platform.build_definitions`, both locations as one
  ``Definitions`` for in-process use (``scpro ingest``, :mod:`scpro_assets.runner`, tests).

This package imports nothing itself, so importing the landing root costs only what it needs.
"""
