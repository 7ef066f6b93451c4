"""Pydantic validation of a spec document, with errors turned into located problems."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from netspec.errors import Problem, SpecError
from netspec.language import COMMON_KEYS
from netspec.plugins import Registry
from netspec.yamlio import Document


def validate(doc: Document, registry: Registry):
    """Validate ``doc.data`` against the registry's spec model; all problems at once."""
    spec_model, _ = registry.language
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem("a spec is a mapping with at least 'input' and 'layers'")])
    try:
        return spec_model.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        seen = set()
        for error in exc.errors():
            problem = _problem(error, doc, registry)
            if problem.render() not in seen:
                seen.add(problem.render())
                problems.append(problem)
        raise SpecError(problems) from None


def data_path(data: Any, loc: tuple) -> tuple:
    """Map a pydantic error location to a path in the data, skipping union tags."""
    path: list = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif part == "from_" and isinstance(node, dict) and "from" in node:
            node = node["from"]
            path.append("from")
    return tuple(path)


def layer_label(index: int, layer: Any, name: str | None = None) -> str:
    """``layer 3 'conv1' (conv)``: how messages name a layer."""
    if isinstance(layer, dict):
        name = name or layer.get("name")
        kind = layer.get("type")
    else:
        kind = None
    label = f"layer {index}"
    if isinstance(name, str):
        label += f" {name!r}"
    if isinstance(kind, str):
        label += f" ({kind})"
    return label


def _problem(error: dict, doc: Document, registry: Registry) -> Problem:
    loc = tuple(error["loc"])
    path = data_path(doc.data, loc)
    kind = error["type"]
    layer = None
    layer_data: Any = None
    if len(path) >= 2 and path[0] == "layers":
        layer_data = doc.data["layers"][path[1]]
        layer = layer_label(path[1], layer_data)
    message = error["msg"]
    hint = None
    key = False
    if kind == "extra_forbidden":
        key = True
        unknown = loc[-1]
        allowed = _allowed_keys(layer_data, registry) if layer is not None else _top_keys(registry)
        message = f"unknown key {unknown!r}"
        close = difflib.get_close_matches(str(unknown), allowed, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + "allowed keys: " + ", ".join(allowed)
    elif kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        message = f"unknown layer type {tag!r}"
        close = difflib.get_close_matches(str(tag), list(registry.layers), n=3)
        hint = (f"did you mean {' or '.join(map(repr, close))}? " if close else "") + (
            "known types: " + ", ".join(sorted(registry.layers))
        )
        hint += "".join(_broken_plugin_hint(failure, tag) for failure in registry.failures)
        path = (*path, "type")
    elif kind == "union_tag_not_found":
        message = "no 'type' given"
        hint = "add `type:`, e.g. `type: conv`"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
        path = path[:2] if layer is not None else ()
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping of keys to values"
    else:
        message = message.removeprefix("Value error, ")
        where = path[2:] if layer is not None else path  # the field inside the layer, or top level
        if where:
            message = f"{'.'.join(map(str, where))}: {message}"
    return doc.problem(message, path, key=key, layer=layer, hint=hint)


def _broken_plugin_hint(failure, tag: str) -> str:
    """A broken plugin may be the one that would have provided the missing type."""
    if tag in failure.layer_types:
        return f"\n  plugin {failure.label} provides {tag!r} but is broken: {failure.error}"
    return f"\n  note: plugin {failure.label} is broken and may provide it: {failure.error}"


def _allowed_keys(layer_data: Any, registry: Registry) -> list[str]:
    _, models = registry.language
    kind = layer_data.get("type") if isinstance(layer_data, dict) else None
    model = models.get(kind)
    if model is None:
        return list(COMMON_KEYS)
    keys = [f.alias or name for name, f in model.model_fields.items()]
    return ["type", *(k for k in keys if k != "type")]


def _top_keys(registry: Registry) -> list[str]:
    spec_model, _ = registry.language
    return list(spec_model.model_fields)
