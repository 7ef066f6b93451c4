"""``--explain`` rendering: per layer the formulas that teach its shape, parameters and receptive field.

The per-type formulas come from each layer type's ``explain`` rule; this module adds what can
be said for every type alike: the input and output shapes, what a shape-keeping layer does,
and the receptive-field and jump recurrences (derived from the summary's numbers, so they hold
for plugin layer types with a ``window`` rule too).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from netspec.shapes import SPATIAL_NAMES, describe
from netspec.summary import UNKNOWN, ReceptiveField, Summary


def _num(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def field_lines(before: list, after) -> list[str]:
    """``r = r_in + (span − 1)·j_in``, ``j = j_in·stride`` with numbers, when the layer changes them."""
    if after is UNKNOWN or any(f is UNKNOWN for f in before):
        return []
    if after is None:
        if before and all(isinstance(f, ReceptiveField) for f in before):
            return ["receptive field: the whole input from here on (every output sees every position)"]
        return []
    if not before or not all(isinstance(f, ReceptiveField) for f in before):
        return []
    rank = len(after.size)
    if any(len(f.size) != rank for f in before):
        return []
    r_in = [max(f.size[i] for f in before) for i in range(rank)]
    j_in = [max(f.jump[i] for f in before) for i in range(rank)]
    parts = []
    for i in range(rank):
        span = (after.size[i] - r_in[i]) / j_in[i] + 1
        stride = after.jump[i] / j_in[i]
        parts.append(
            (
                f"r = r_in + (span − 1)·j_in = {_num(r_in[i])} + ({_num(span)} − 1)·{_num(j_in[i])} = "
                f"{_num(after.size[i])}",
                f"j = j_in·stride = {_num(j_in[i])}·{_num(stride)} = {_num(after.jump[i])}",
                span == 1 and stride == 1,
            )
        )
    if all(unchanged for *_, unchanged in parts):
        return []
    dims = SPATIAL_NAMES.get(rank, tuple(f"d{i}" for i in range(rank)))
    head = (
        "receptive field r (input pixels one output sees), jump j (input pixels between neighbouring "
        "outputs); span = the window, dilation·(kernel_size − 1) + 1 for a conv or pool:"
    )
    if all(p[:2] == parts[0][:2] for p in parts):
        return [head, f"  {' = '.join(dims)}: {parts[0][0]};  {parts[0][1]}"]
    return [head, *(f"  {d}: {r};  {j}" for d, (r, j, _) in zip(dims, parts, strict=True))]


def render_explain(summary: Summary, layer: str | None = None) -> str:
    """Per layer: input → output shapes, the formulas behind them, and the receptive field."""
    rows = [r for r in summary.rows if layer is None or r.name == layer or str(r.index) == layer]
    return "".join(explanations(summary, rows).values())


def explanations(summary: Summary, rows=None) -> dict[str, str]:
    """Each row's explanation (all rows by default), by name; the shapes and receptive fields are
    looked up in one table for all of them (per row, the HTML report's was quadratic)."""
    shapes = {"input": summary.input, **{r.name: r.output for r in summary.rows}}
    fields = {"input": _input_field(summary.input), **{r.name: r.field for r in summary.rows}}
    texts = {}
    for r in summary.rows if rows is None else rows:
        ins = ", ".join(f"{n} {describe(shapes[n])}" for n in r.inputs)
        out = [f"{r.index} {r.name} ({r.type}): {ins} → {describe(r.output)}"]
        keeps = len(r.inputs) == 1 and shapes[r.inputs[0]] == r.output
        lines = list(r.explain)
        if not lines and keeps:
            lines = ["keeps the shape (works on each value or channel in place; channels kept)"]
        lines += field_lines([fields[n] for n in r.inputs], r.field)
        out += [f"    {line}" for line in lines if line]
        texts[r.name] = "\n".join(out) + "\n"
    return texts


def _input_field(shape: tuple[int, ...]) -> ReceptiveField | None:
    rank = len(shape) - 1
    return ReceptiveField((Fraction(1),) * rank, (Fraction(1),) * rank) if rank >= 1 else None


def explain_layer(type_name: str, inputs: list[list[int]], assignments: list[str]) -> str:
    """``netspec explain conv --input 3,32,32 out_channels=6 kernel_size=3``: one layer, no spec.

    Values are read as YAML, like ``--set`` values (``kernel_size=[2,3]``); a problem names the
    ``key=value`` argument it comes from. Layers with several inputs take one ``--input`` each.
    """
    from netspec.errors import Problem, SpecError
    from netspec.expand import ITEM_KEYS
    from netspec.plugins import default_registry
    from netspec.spec import load
    from netspec.summary import summarize
    from netspec.validation import left_out_notes
    from netspec.yamlio import Document, load_yaml

    where = f"netspec explain {type_name}"
    registry = default_registry()
    if type_name not in registry.layers:
        import difflib

        close = difflib.get_close_matches(type_name, list(registry.layers), n=1)
        raise SpecError(
            [
                Problem(
                    f"unknown layer type {type_name!r}",
                    where,
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + "`netspec plugins` lists every layer type"
                    + left_out_notes(registry, type_name),
                )
            ]
        )
    if not inputs:
        raise SpecError([Problem("give the input shape, e.g. --input 3,32,32", where)])
    record = registry[type_name]
    low, high = record.inputs
    if not low <= len(inputs) <= (high if high is not None else len(inputs)):
        want = f"{low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
        raise SpecError([Problem(f"{type_name} takes {want} input(s), got {len(inputs)} --input", where)])
    layer: dict = {"type": type_name, "name": "layer"}
    overrides = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if key in ITEM_KEYS or key == "layers":  # one layer is explained: a stack would mix its numbers
            raise SpecError(
                [
                    Problem(
                        f"{key}= is spec language for several layers; netspec explain takes one layer",
                        assignment,
                        hint="give the layer's own parameters; `netspec build SPEC --explain LAYER` explains "
                        "a layer of a spec",
                    )
                ]
            )
        if not sep or not key.isidentifier() or key in ("type", "name", "from"):
            raise SpecError(
                [
                    Problem(
                        "expected KEY=VALUE with a parameter name, e.g. kernel_size=3 or kernel_size=[2,3]",
                        assignment,
                    )
                ]
            )
        layer[key] = load_yaml(raw, assignment).data
        overrides[("layers", 0, key)] = assignment
    missing = [
        name
        for name, field in record.params.model_fields.items()
        if field.is_required() and (field.alias or name) not in layer
    ]
    if missing:  # said here: through the spec it read as the fault of whichever KEY=VALUE came first
        import difflib

        keys = ", ".join(repr(name) for name in missing)
        hint = f"give {'them' if len(missing) > 1 else 'it'} as KEY=VALUE: " + " ".join(
            f"{n}=…" for n in missing
        )
        for key in (k for k in layer if k not in ("type", "name") and k not in record.params.model_fields):
            close = difflib.get_close_matches(key, missing, n=1)
            hint += f"; {key} is not a {type_name} parameter" + (
                f" (did you mean {close[0]}?)" if close else ""
            )
        raise SpecError(
            [Problem(f"missing required key{'s' if len(missing) > 1 else ''} {keys}", where, hint=hint)]
        )
    layers: list[dict] = []
    if len(inputs) > 1:  # a merge: each input is made by a linear + reshape from a [1] input
        for i, shape in enumerate(inputs):
            layers += [
                {"type": "linear", "name": f"make{i}", "from": "input", "out_features": math.prod(shape)},
                {"type": "reshape", "name": f"input{i}", "shape": list(shape)},
            ]
        layer["from"] = [f"input{i}" for i in range(len(inputs))]
        overrides = {("layers", len(layers), k[2]): v for k, v in overrides.items()}
    data = {
        "name": type_name,
        "input": list(inputs[0]) if len(inputs) == 1 else [1],
        "layers": [*layers, layer],
    }
    doc = Document(data, where)
    doc.overrides.update(overrides)
    try:
        spec = load(doc, registry=registry)
    except SpecError as exc:  # "layer 4 'layer' (add)" names a spec the user never wrote
        raise SpecError([dataclasses.replace(p, layer=None) for p in exc.problems]) from None
    summary = summarize(spec)
    row = summary.rows[-1]
    ins = " and ".join(describe(s) for s in inputs)
    lines = [
        f"{type_name} on {ins} → {describe(row.output)}",
        f"output shape: {describe(row.output)}",
        f"parameters: {row.params:,}"
        + (f" (trainable {row.trainable:,})" if row.trainable != row.params else ""),
        f"MACs: {'?' if row.macs is UNKNOWN else f'{row.macs:,}'}",
    ]
    explained = render_explain(summary, row.name).splitlines()[1:]
    return "\n".join(lines + [line[2:] for line in explained]) + "\n"
