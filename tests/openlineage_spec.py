"""Validate OpenLineage events against SCPro's own minimal schemas in tests/schemas/openlineage
(offline; see its README: these check the fields SCPro relies on, they are not the upstream spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "schemas" / "openlineage"
CORE = json.loads((SCHEMAS / "run_event.json").read_text())
FACETS = {
    path.stem: json.loads(path.read_text()) for path in sorted((SCHEMAS / "facets").glob("*.json"))
}
REGISTRY = Registry().with_resources(
    [(CORE["$id"], Resource.from_contents(CORE))]
    + [(s["$id"], Resource.from_contents(s)) for s in FACETS.values()]
)
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _facets(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    facets = {**event["run"].get("facets", {}), **event["job"].get("facets", {})}
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        facets.update(dataset.get("facets", {}))
        facets.update(dataset.get("inputFacets", {}))
        facets.update(dataset.get("outputFacets", {}))
    return facets


def validate(event: dict[str, Any]) -> None:
    """Validate a RunEvent (as JSON) against the core schema, and each facet against the schema
    keyed by the ``_schemaURL`` it names (a facet with no schema here fails)."""
    jsonschema.Draft202012Validator(CORE, registry=REGISTRY, format_checker=FORMATS).validate(event)
    assert event["schemaURL"].split("#")[0] == CORE["$id"]
    for name, facet in _facets(event).items():
        document = facet["_schemaURL"].split("#")[0]
        schemas = [s for s in FACETS.values() if s["$id"] == document]
        assert schemas, f"facet {name}: {document} has no schema in {SCHEMAS}"
        validator = jsonschema.Draft202012Validator(
            schemas[0], registry=REGISTRY, format_checker=FORMATS
        )
        validator.validate({name: facet})
