"""``netspec datasets``: every registered dataset type, its options and the files it reads.

Everything here comes from the ``DatasetType`` records (name, params model, ``summary``,
``files``) and the plugin registry; nothing imports torch or loads a dataset.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from netspec.data import DatasetType

UNBOUNDED = 2**31 - 1  # bounds this large only guard against overflow: not worth showing
JSON_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "null"}


@dataclass(frozen=True)
class Option:
    """One option of ``train.data``: as the listing and ``--format json`` show it."""

    name: str
    type: str
    required: bool
    default: Any  # JSON-ready; None when required (or when the default is null)
    description: str

    def as_json(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "required": self.required}
        if not self.required:
            out["default"] = self.default
        out["description"] = self.description
        return out

    @property
    def default_text(self) -> str:
        return "required" if self.required else json.dumps(self.default, ensure_ascii=False)


def options(model: type[BaseModel]) -> list[Option]:
    """The fields of a params model, with types read from its JSON Schema (constraints included)."""
    try:
        schema = model.model_json_schema(mode="validation")
    except Exception:  # a plugin's model pydantic cannot describe: show the Python annotations
        schema = {}
    props = schema.get("properties", {})
    defs = schema.get("$defs", {})
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        required = field.is_required()
        default = None
        if not required:
            value = field.get_default(call_default_factory=True)
            default = None if value is PydanticUndefined else to_jsonable_python(value, fallback=repr)
        out.append(
            Option(
                key,
                type_text(props[key], defs) if key in props else _annotation(field.annotation),
                required,
                default,
                " ".join((field.description or "").split()),
            )
        )
    return out


def _annotation(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def common_options() -> list[Option]:
    """The batching/augmentation options the trainer adds to every dataset's own."""
    from netspec.training.config import _DataCommon

    return options(_DataCommon)


def type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON Schema as a short type: ``float in [0, 1)``, ``list[int ≥ 1] | null``, ``"a" | "b"``."""
    if "$ref" in schema:
        return type_text(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " | ".join(dict.fromkeys(type_text(s, defs) for s in schema[union]))
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(JSON_TYPES.get(k, k) for k in kind)
    if kind == "array":
        items = schema.get("prefixItems")
        if items:
            return "[" + ", ".join(type_text(s, defs) for s in items) + "]"
        return f"list[{type_text(schema.get('items', {}), defs)}]"
    if kind == "object":
        return "mapping"
    base = JSON_TYPES.get(kind, kind or "any")
    return base + _range(schema)


def _range(schema: dict[str, Any]) -> str:
    """``in [0, 1)``, ``≥ 1``, …; integer bounds made inclusive, and bounds past 2³¹ − 1 left out."""
    integer = schema.get("type") == "integer"
    low, low_open = schema.get("minimum"), False
    if low is None and schema.get("exclusiveMinimum") is not None:
        low, low_open = schema["exclusiveMinimum"], True
        if integer:
            low, low_open = low + 1, False
    high, high_open = schema.get("maximum"), False
    if high is None and schema.get("exclusiveMaximum") is not None:
        high, high_open = schema["exclusiveMaximum"], True
        if integer:
            high, high_open = high - 1, False
    if high is not None and abs(high) >= UNBOUNDED:
        high = None
    if low is not None and abs(low) >= UNBOUNDED:
        low = None
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '≥'} {_number(low)}"
    if high is not None:
        return f" {'<' if high_open else '≤'} {_number(high)}"
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return str(value)


def describe(registry, record: DatasetType) -> dict[str, Any]:
    """One dataset type as a JSON-ready dict: where it comes from, summary, files, own options."""
    owner = registry.dataset_owners.get(record.name, "")
    info = registry.plugins.get(owner)
    return {
        "name": record.name,
        "summary": record.summary or _first_line(record.params.__doc__ or ""),
        "plugin": info.name if info else owner,
        "origin": info.origin if info else "registered in code",
        "distribution": info.distribution if info else None,
        "version": info.version if info else None,
        "files": record.files,
        "options": [o.as_json() for o in options(record.params)],
    }


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _source(row: dict[str, Any]) -> str:
    dist = f"{row['distribution']} {row['version'] or ''}".strip() if row["distribution"] else None
    return f"{row['origin']}: {row['plugin']}" + (f" ({dist})" if dist else "")


def _short(option: dict[str, Any]) -> str:
    if option["required"]:
        return f"{option['name']} (required)"
    return f"{option['name']}={json.dumps(option['default'], ensure_ascii=False)}"


def render_listing(rows: list[dict[str, Any]], common: list[Option]) -> str:
    lines = []
    for row in rows:
        files = _first_line(row["files"]) or "not described by its plugin"
        lines += [
            f"{row['name']}: {row['summary']}",
            f"  from:    {_source(row)}",
            "  options: " + (", ".join(_short(o) for o in row["options"]) or "none of its own"),
            f"  files:   {files}",
            "",
        ]
    lines.append("every dataset also takes: " + ", ".join(_short(o.as_json()) for o in common))
    lines.append(
        f"{len(rows)} dataset types; `netspec datasets NAME` shows one in detail (option types and "
        "meanings, the files and how to get them)"
    )
    return "\n".join(lines) + "\n"


def _option_table(opts: list[Option]) -> list[str]:
    header = ["option", "type", "default", "description"]
    cells = [[o.name, o.type, o.default_text, o.description] for o in opts]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(3)]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in [header, *cells]
    ]


def render_detail(row: dict[str, Any], record: DatasetType, common: list[Option]) -> str:
    own = options(record.params)
    lines = [f"{row['name']}: {row['summary']}", f"from: {_source(row)}", ""]
    lines += ["options (train.data):", *(_option_table(own) if own else ["  none of its own"]), ""]
    lines += ["every dataset also takes:", *_option_table(common), ""]
    lines.append("files:")
    lines += [f"  {line}" for line in (row["files"] or "not described by its plugin").splitlines()]
    required = "".join(f", {o.name}: ..." for o in own if o.required)
    lines += ["", "in a spec:", "  train:", f"    data: {{name: {row['name']}{required}}}"]
    return "\n".join(lines) + "\n"


def unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"netspec datasets: no dataset type {name!r}{hint} (known: {', '.join(sorted(known))})"


def datasets_command(name: str | None, fmt: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``netspec datasets [NAME] [--format json]``."""
    from netspec.plugins import default_registry

    registry = default_registry()
    records = dict(sorted(registry.datasets.items()))
    common = common_options()
    if name is not None and name not in records:
        return 2, "", unknown(name, list(records)) + "\n"
    if name is not None:
        row = describe(registry, records[name])
        if fmt == "json":
            row["common_options"] = [o.as_json() for o in common]
            return 0, json.dumps(row, indent=2, ensure_ascii=False) + "\n", ""
        return 0, render_detail(row, records[name], common), ""
    rows = [describe(registry, r) for r in records.values()]
    if fmt == "json":
        doc = {"datasets": rows, "common_options": [o.as_json() for o in common]}
        return 0, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", ""
    return 0, render_listing(rows, common), ""
