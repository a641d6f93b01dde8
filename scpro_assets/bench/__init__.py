"""``scpro bench``: every benchmark, one module each; never imported by the product.

The ``scpro bench`` command imports :mod:`scpro_assets.bench.run` inside the command, so the
rest of the CLI (and everything it starts) never loads a benchmark. ``make lint``
(import-linter, ``[tool.importlinter]`` in ``pyproject.toml``) keeps it that way.
"""
