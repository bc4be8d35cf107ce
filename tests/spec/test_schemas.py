"""The JSON Schemas: valid 2020-12, an $id, help text on every property, no unknown keys anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
FILES = ["integration.v1.schema.json", "connection.v1.schema.json"]


def _objects(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            out.append((path, node))
        for k, v in node.items():
            out += _objects(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _objects(v, f"{path}/{i}")
    return out


@pytest.mark.parametrize("name", FILES)
def test_schema_is_valid_and_strict(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"https://syncform.dev/schemas/{name}"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    objects = _objects(schema)
    assert objects
    for path, obj in objects:
        assert "additionalProperties" in obj, f"{name} {path}: unknown keys must be refused"
        if "properties" in obj:
            assert obj["additionalProperties"] is False, path
            for prop, sub in obj["properties"].items():
                assert isinstance(sub.get("description"), str) and len(sub["description"]) > 10, \
                    f"{name} {path}/properties/{prop} has no description"


def test_integration_schema_accepts_the_contract_examples() -> None:
    import yaml

    repo = SCHEMAS.parent
    validators = {k: Draft202012Validator(json.loads((SCHEMAS / f"{k.lower()}.v1.schema.json").read_text()))
                  for k in ("Integration", "Connection")}
    docs = [d for f in sorted((repo / "integrations").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    assert len(docs) == 8
    for d in docs:
        assert list(validators[d["kind"]].iter_errors(d)) == []
