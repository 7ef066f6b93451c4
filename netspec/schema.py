"""JSON Schema of the spec language, generated from the registry (installed plugins included)."""

from __future__ import annotations

from typing import Any

from netspec.plugins import Registry, default_registry

EXPRESSION = {"type": "string", "pattern": "^=", "description": "An expression, e.g. `=planes * 4`."}
ITEM_PROPERTIES = {
    "repeat": {
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": 10_000}, EXPRESSION],
        "description": "Chain this many copies (named name.0, name.1, … when named).",
    },
    "if": {"anyOf": [{"type": "boolean"}, EXPRESSION], "description": "Leave the layer out when false."},
    "first": {"type": "object", "description": "Parameters of the first repetition only."},
}


def spec_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The schema a YAML language server uses to complete ``type:`` values and their parameters."""
    registry = registry or default_registry()
    spec_model, _ = registry.language
    schema = spec_model.model_json_schema(by_alias=True)
    _add_language(schema, sorted(name for name in registry.layers if registry.is_builtin(name)))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "netspec spec",
        "description": "A netspec network spec: netspec: 1, name, input, layers, outputs, expect; "
        "blocks, params, variants, include and extends.",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _add_language(schema: dict, layer_types: list[str]) -> None:
    """Let every layer item be a layer, a block use or a group, with expressions for any value.

    Pydantic sees the flat language (what validation reads after expansion); an editor sees
    what people write: ``repeat:``/``if:``/``first:`` on any item, ``=expressions`` for any
    parameter, block uses (a ``type:`` that is no layer type) and groups (``layers:``).
    """
    defs = schema["$defs"]
    layers = schema["properties"]["layers"]
    for ref in layers["items"]["discriminator"]["mapping"].values():
        definition = defs[ref.rsplit("/", 1)[-1]]
        properties = definition["properties"]
        for key, sub in list(properties.items()):
            if key != "type":
                properties[key] = {"anyOf": [sub, EXPRESSION], "description": sub.get("description", key)}
        properties.update(ITEM_PROPERTIES)
    item_ref = {"$ref": "#/$defs/LayerItem"}
    defs["LayerItem"] = {
        "anyOf": [
            layers["items"],
            {
                "type": "object",
                "title": "Block use",
                "description": "A block of `blocks:` used like a layer type, with the block's parameters.",
                "properties": {"type": {"type": "string", "not": {"enum": layer_types}}, **ITEM_PROPERTIES},
                "required": ["type"],
            },
            {
                "type": "object",
                "title": "Group",
                "description": "Layers spliced in place, e.g. repeated: {layers: [...], repeat: 3}.",
                "properties": {"layers": {"type": "array", "items": item_ref}, "from": {}, **ITEM_PROPERTIES},
                "required": ["layers"],
                "additionalProperties": False,
            },
        ]
    }
    layers["items"] = item_ref
    defs["BlockDefinition"]["properties"]["layers"]["items"] = item_ref
    _allow_expressions(schema["properties"].get("train", {}), defs, set())
    # a spec that extends another may leave input and layers to its base
    schema["anyOf"] = [{"required": schema.pop("required")}, {"required": ["extends"]}]


def _allow_expressions(node: Any, defs: dict, seen: set[str]) -> None:
    """Every value under ``train:`` may be an ``=expression`` of the spec's params."""
    if isinstance(node, list):
        for item in node:
            _allow_expressions(item, defs, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _allow_expressions(defs[name], defs, seen)
    properties = node.get("properties")
    if isinstance(properties, dict):
        for key, sub in list(properties.items()):
            _allow_expressions(sub, defs, seen)
            if key != "name":  # a dataset's name picks its model: keep it literal
                properties[key] = {"anyOf": [sub, EXPRESSION], "description": sub.get("description", key)}
    for key in ("anyOf", "oneOf", "allOf", "items", "additionalProperties"):
        if key in node:
            _allow_expressions(node[key], defs, seen)
