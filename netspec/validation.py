"""Pydantic validation of a spec document, with errors turned into located problems."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from netspec.errors import Problem, SpecError
from netspec.language import COMMON_KEYS
from netspec.plugins import Registry
from netspec.yamlio import YAML_KEY_HINT, Document


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
        types_listed = False  # five unknown layer types listed the ~50 known ones five times
        for error in _without_other_union_members(exc.errors(), doc.data):
            problem = _problem(error, doc, registry, types_listed)
            said = (problem.source, problem.location, problem.layer, problem.message)
            if said not in seen:
                seen.add(said)
                problems.append(problem)
                types_listed = types_listed or _unknown_layer_type(error, doc.data)
        raise SpecError(problems) from None


def _unknown_layer_type(error: dict, data: Any) -> bool:
    """A layer's ``type:`` that no plugin registered (the union's tag; a dataset's is under train)."""
    return error["type"] == "union_tag_invalid" and data_path(data, tuple(error["loc"]))[:1] != ("train",)


def _without_other_union_members(errors: list, data: Any) -> list:
    """A value a union refuses gets one error per member (`scale_factor: .inf`: "should be a finite
    number" and "should be a valid list"); where one member says more than "not my type", the
    type errors of the others at that value only repeat that it is not one of them. So does a type
    error at a value where another member looked inside it (`from: [4, input]`: "from.0 should be
    a valid string" says it; "from should be a valid string" is the wrong member's)."""
    paths = [data_path(data, tuple(e["loc"])) for e in errors]
    said = {path for e, path in zip(errors, paths, strict=True) if not e["type"].endswith("_type")}
    inside = {path[:n] for path in paths for n in range(len(path))}  # the values some error is within
    return [
        e
        for e, path in zip(errors, paths, strict=True)
        if not (e["type"].endswith("_type") and (path in said or path in inside))
    ]


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


def _problem(error: dict, doc: Document, registry: Registry, types_listed: bool = False) -> Problem:
    """One pydantic error as a located problem; ``types_listed``: an earlier problem listed the
    known layer types already."""
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
        allowed = _allowed_keys(registry, loc)
        where = (path[2:] if layer is not None else path)[:-1]  # the mapping the key is in
        message = (f"{'.'.join(map(str, where))}: " if where else "") + f"unknown key {unknown!r}"
        close = difflib.get_close_matches(str(unknown), allowed, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + "allowed keys: " + ", ".join(allowed)
    elif kind == "union_tag_invalid" and not _unknown_layer_type(error, doc.data):
        tag = error["ctx"]["tag"]
        message = f"unknown dataset {tag!r}"
        close = difflib.get_close_matches(str(tag), list(registry.datasets), n=2)
        hint = (f"did you mean {' or '.join(map(repr, close))}? " if close else "") + (
            "known datasets: " + ", ".join(sorted(registry.datasets))
        )
        path = (*path, "name")
    elif (
        kind == "union_tag_invalid"
        and isinstance(layer_data, dict)
        and not isinstance(layer_data.get("type"), str)
    ):
        value = layer_data.get("type")
        got = "null" if value is None else f"{type(value).__name__} {value!r}"
        message = f"type: expected a layer type name, got {got}"  # it read "unknown layer type 'None'"
        path = (*path, "type")
    elif kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        message = f"unknown layer type {tag!r}"
        close = difflib.get_close_matches(str(tag), list(registry.layers), n=3)
        known = "as listed above" if types_listed else ", ".join(sorted(registry.layers))
        hint = (f"did you mean {' or '.join(map(repr, close))}? " if close else "") + f"known types: {known}"
        hint += left_out_notes(registry, tag)
        path = (*path, "type")
    elif kind == "union_tag_not_found":
        tag = error["ctx"].get("discriminator", "'type'").strip("'")
        message = f"no {tag!r} given"
        hint = "add `type:`, e.g. `type: conv`" if tag == "type" else "add `name:`, e.g. `name: digits`"
    elif kind == "invalid_key":  # loc ends in the key as pydantic printed it: True is 1
        key = True
        where = (path[2:] if layer is not None else path)[:-1]
        message = (f"{'.'.join(map(str, where))}: " if where else "") + (
            f"a key must be text; {'got' if doc.source == '<dict>' else 'YAML read this one as'} "
            f"{type(error['input']).__name__} {error['input']!r}"
        )
        hint = YAML_KEY_HINT if doc.source != "<dict>" else "a spec's keys are strings"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
        path = data_path(doc.data, loc[:-1])
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping of keys to values" + _given(error)
        keys = _allowed_keys(registry, (*loc, None)) if kind != "dict_type" else []
        hint = f"keys: {', '.join(keys)}" if keys and keys != list(COMMON_KEYS) else None
    else:
        message = message.removeprefix("Value error, ")
        if kind.endswith(("_type", "_parsing")):  # "Input should be a valid integer": say what it got
            message += _given(error)
        if kind in ("int_type", "int_from_float") and isinstance(error.get("input"), float):
            hint = "from an expression? `/` always gives a float: use `//` (whole division) or round(...)"
        elif kind == "literal_error" and isinstance(error.get("input"), str):
            choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
            close = difflib.get_close_matches(error["input"], choices, n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
        where = path[2:] if layer is not None else path  # the field inside the layer, or top level
        if where:
            message = f"{'.'.join(map(str, where))}: {message}"
    return doc.problem(message, path, key=key, layer=layer, hint=hint)


def _given(error: dict) -> str:
    """The value a type error refused (", got str 'four'"), short: YAML reads `true` as a bool."""
    if "input" not in error:
        return ""
    value = error["input"]
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f", got {type(value).__name__} {text}"


def left_out_notes(registry: Registry, tag: str) -> str:
    """Notes naming the plugins that are not loaded (broken, or left out by the environment) and
    might provide the unknown layer type ``tag``."""
    notes = "".join(_broken_plugin_hint(failure, tag) for failure in registry.failures)
    return notes + "".join(
        f"\n  note: plugin {info.label} is not loaded ({info.error}) and may provide it"
        for info in registry.skipped
    )


def _broken_plugin_hint(failure, tag: str) -> str:
    """A broken plugin may be the one that would have provided the missing type."""
    if failure.origin == "environment":  # a name in NETSPEC_PLUGINS that no plugin has
        return ""
    if tag in failure.layer_types:
        return f"\n  plugin {failure.label} provides {tag!r} but is broken: {failure.error}"
    return f"\n  note: plugin {failure.label} is broken and may provide it: {failure.error}"


def _allowed_keys(registry: Registry, loc: tuple) -> list[str]:
    """The keys of the model an unknown key was found in, following the error's location."""
    spec_model, _ = registry.language
    candidates = [spec_model]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for model in candidates for n, f in model.model_fields.items()}
        if part in fields:
            candidates = _models_in(fields[part].annotation)
        else:  # a discriminated union's tag: keep the member it names
            candidates = [m for m in candidates if _tag_of(m) == part] or candidates
    keys = [f.alias or n for m in candidates[:1] for n, f in m.model_fields.items()]
    order = {k: i for i, k in enumerate(COMMON_KEYS)}
    return sorted(keys, key=lambda k: order.get(k, len(order) + keys.index(k))) if keys else list(COMMON_KEYS)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model inside an annotation (through Optional, list, Union, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tag_of(model: type[BaseModel]) -> Any:
    for field_name in ("type", "name"):
        field = model.model_fields.get(field_name)
        if field is not None and get_origin(field.annotation) is Literal:
            return get_args(field.annotation)[0]
    return None
