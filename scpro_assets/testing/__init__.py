"""What tests and benchmarks build instead of running the platform; never imported by the product.

- :mod:`~scpro_assets.testing.raw_rows`: raw rows exactly as landing writes them, from source
  events, for the Spark transforms' tests.
- :mod:`~scpro_assets.testing.offline`: a landed raw lake and the clean lake built from source
  events without a broker.
- :mod:`~scpro_assets.testing.warehouse`: synthetic clean lakes cut live, warehouse runs as
  Dagster does them, and known ML outputs.
- :mod:`~scpro_assets.testing.sample_snapshot`: a generated serving snapshot with every table of
  the serving contract, for the dashboard.
- :mod:`~scpro_assets.testing.browser`: headless Chromium's flags for the browser tests.

``make lint`` (import-linter, ``[tool.importlinter]`` in ``pyproject.toml``) keeps the product
from importing this package.
"""
