"""``--explain`` rendering: per layer the formulas that teach its shape, parameters and receptive field.

The per-type formulas come from each layer type's ``explain`` rule; this module adds what can
be said for every type alike: the input and output shapes, what a shape-keeping layer does,
and the receptive-field and jump recurrences (derived from the summary's numbers, so they hold
for plugin layer types with a ``window`` rule too).
"""

from __future__ import annotations

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
    shapes = {"input": summary.input, **{r.name: r.output for r in summary.rows}}
    fields = {"input": _input_field(summary.input), **{r.name: r.field for r in summary.rows}}
    out = []
    for r in rows:
        ins = ", ".join(f"{n} {describe(shapes[n])}" for n in r.inputs)
        out.append(f"{r.index} {r.name} ({r.type}): {ins} → {describe(r.output)}")
        keeps = len(r.inputs) == 1 and shapes[r.inputs[0]] == r.output
        lines = list(r.explain)
        if not lines and keeps:
            lines = ["keeps the shape (works on each value or channel in place; channels kept)"]
        lines += field_lines([fields[n] for n in r.inputs], r.field)
        out += [f"    {line}" for line in lines if line]
    return "\n".join(out) + "\n"


def _input_field(shape: tuple[int, ...]) -> ReceptiveField | None:
    rank = len(shape) - 1
    return ReceptiveField((Fraction(1),) * rank, (Fraction(1),) * rank) if rank >= 1 else None
