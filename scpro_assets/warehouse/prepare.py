"""Set-up step: ``python -m scpro_assets.warehouse.prepare`` writes dbt's manifest ahead of time."""

from __future__ import annotations

from scpro_assets.warehouse.project import prepare_manifest

if __name__ == "__main__":
    print(f"dbt manifest: {prepare_manifest()}")
