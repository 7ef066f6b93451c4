"""JSON Schema of the spec language, generated from the registry (installed plugins included)."""

from __future__ import annotations

from typing import Any

from netspec.plugins import Registry, default_registry


def spec_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The schema a YAML language server uses to complete ``type:`` values and their parameters."""
    spec_model, _ = (registry or default_registry()).language
    schema = spec_model.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "netspec spec",
        "description": "A netspec network spec: netspec: 1, name, input, layers, outputs, expect.",
        **{k: v for k, v in schema.items() if k != "title"},
    }
