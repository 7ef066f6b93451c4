"""Shape formulas written out with the numbers filled in, for ``netspec build --explain``.

Each function mirrors one formula of :mod:`netspec.shapes` and ends with the same result,
so a learner can redo the arithmetic by hand.
"""

from __future__ import annotations

import math

from netspec.shapes import interpolate_size, pool_output_size, tconv_output_size


def per_dim(dims: tuple[str, ...], formulas: list[list[str]]) -> list[str]:
    """``H_out = …`` per dim, or one ``H_out = W_out = …`` when every dim reads the same."""
    if len(formulas) > 1 and all(f == formulas[0] for f in formulas):
        head = " = ".join(f"{d}_out" for d in dims)
        return [f"{head} = {formulas[0][0]}", *formulas[0][1:]]
    return [
        line if i else f"{d}_out = {line}"
        for d, f in zip(dims, formulas, strict=True)
        for i, line in enumerate(f)
    ]


def _pad_term(left: int, right: int) -> str:
    return f"2·{left}" if left == right else f"{left} + {right}"


def conv_formula(size: int, k: int, s: int, left: int, right: int, d: int) -> list[str]:
    """``floor((28 + 2·2 − 1·(5−1) − 1) / 1) + 1 = 28``."""
    out = (size + left + right - d * (k - 1) - 1) // s + 1
    return [f"floor(({size} + {_pad_term(left, right)} − {d}·({k}−1) − 1) / {s}) + 1 = {out}"]


def pool_formula(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> list[str]:
    """The pool formula, and with ceil_mode the last-window rule that may drop one window."""
    rounding = "ceil" if ceil_mode else "floor"
    span = size + 2 * p - d * (k - 1) - 1
    raw = (-(-span // s) if ceil_mode else span // s) + 1
    head = f"{rounding}(({size} + 2·{p} − {d}·({k}−1) − 1) / {s}) + 1 = {raw}"
    if not ceil_mode:
        return [head]
    out = pool_output_size(size, k, s, p, d, ceil_mode)
    start = (raw - 1) * s
    if out == raw:
        rule = (
            f"  ceil_mode: the last window starts at ({raw}−1)·{s} = {start} < {size} + {p} "
            "(inside the input or left padding), so it is kept"
        )
    else:
        rule = (
            f"  ceil_mode: the last window would start at ({raw}−1)·{s} = {start} ≥ {size} + {p}, "
            f"in the right padding, so it is dropped → {out}"
        )
    return [head, rule]


def tconv_formula(size: int, k: int, s: int, p: int, op: int, d: int) -> list[str]:
    """``(7−1)·2 − 2·0 + 1·(2−1) + 1 + 1 = 15`` (the second-last term is output_padding)."""
    out = tconv_output_size(size, k, s, p, op, d)
    return [f"({size}−1)·{s} − 2·{p} + {d}·({k}−1) + {op} + 1 = {out}"]


def interpolate_formula(size: int, scale: float) -> list[str]:
    """``floor(88 · 1.3636363636363635) = 119`` (computed in double precision)."""
    return [f"floor({size} · {scale!r}) = {interpolate_size(size, scale)}"]


def unpool_formula(size: int, k: int, s: int, p: int, restored: int) -> list[str]:
    """What netspec restores, next to PyTorch's default when that differs."""
    default = (size - 1) * s + k - 2 * p
    if default == restored:
        return [f"the pool's input size = {restored}"]
    return [
        f"the pool's input size = {restored} (PyTorch's default ({size}−1)·{s} + {k} − 2·{p} = {default} "
        "would misplace values)"
    ]


# Teaching explanations (``--explain``): the formula in symbols named by the spec's parameter
# names, then with the numbers, then the result; why it rounds down; where channels come from;
# weight shapes and the parameter count as a formula.

KERNEL_SYMBOLS = {1: ("kL",), 2: ("kH", "kW"), 3: ("kD", "kH", "kW")}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spatial_lines(dims: tuple[str, ...], symbolic: str, per_dim_lines: list[list[str]]) -> list[str]:
    """The symbolic formula once (``{d}`` stands for the dim), then the numbers per dim.

    Dims whose lines read the same are written once (``H_out = W_out = …``).
    """
    head = symbolic.format(d=dims[0])
    lines = [head + (f"   (likewise for {', '.join(dims[1:])})" if len(dims) > 1 else "")]
    if len(dims) > 1 and all(f == per_dim_lines[0] for f in per_dim_lines):
        first, *rest = per_dim_lines[0]
        return [*lines, " = ".join(f"{d}_out" for d in dims) + f" = {first}", *(f"  {r}" for r in rest)]
    for d, (first, *rest) in zip(dims, per_dim_lines, strict=True):
        lines += [f"{d}_out = {first}", *(f"  {r}" for r in rest)]
    return lines


CONV_SYMBOLIC = "{d}_out = ⌊({d}_in + 2·padding − dilation·(kernel_size − 1) − 1) / stride⌋ + 1"
CONV_SYMBOLIC_LR = (
    "{d}_out = ⌊({d}_in + padding_left + padding_right − dilation·(kernel_size − 1) − 1) / stride⌋ + 1"
)


def conv_teach(size: int, k: int, s: int, left: int, right: int, d: int) -> list[str]:
    """``⌊(32 + 2·0 − 1·(3 − 1) − 1) / 1⌋ + 1 = ⌊29 / 1⌋ + 1 = 30``, and why it rounds down."""
    span = size + left + right - d * (k - 1) - 1
    out = span // s + 1
    pad = f"2·{left}" if left == right else f"{left} + {right}"
    lines = [f"⌊({size} + {pad} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = ⌊{span} / {s}⌋ + 1 = {out}"]
    if span >= 0 and span % s:
        lines.append(_floor_note(span, s, size + left + right))
    return lines


def _floor_note(span: int, s: int, padded: int) -> str:
    left_over = span % s
    return (
        f"why ⌊⌋: windows start every stride = {s} positions and must fit inside the padded input "
        f"({padded}); {span} = {span // s}·{s} + {left_over}, so the last {left_over} position"
        f"{'s are' if left_over > 1 else ' is'} covered by no window and dropped"
    )


POOL_SYMBOLIC = "{d}_out = {r}({d}_in + 2·padding − dilation·(kernel_size − 1) − 1) / stride{R} + 1"


def pool_teach(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> list[str]:
    """The pool formula with numbers; what ceil_mode changes, and its last-window rule."""
    from netspec.shapes import pool_output_size

    span = size + 2 * p - d * (k - 1) - 1
    floor_out, ceil_out = span // s + 1, -(-span // s) + 1
    lo, hi = ("⌈", "⌉") if ceil_mode else ("⌊", "⌋")
    raw = ceil_out if ceil_mode else floor_out
    lines = [f"{lo}({size} + 2·{p} − {d}·({k} − 1) − 1) / {s}{hi} + 1 = {lo}{span} / {s}{hi} + 1 = {raw}"]
    if span % s == 0:
        return lines
    if not ceil_mode:
        lines.append(_floor_note(span, s, size + 2 * p))
        kept = pool_output_size(size, k, s, p, d, True)
        lines.append(
            f"with ceil_mode: true it would be ⌈{span} / {s}⌉ + 1 = {ceil_out}"
            + (
                f" (a last, partial window over the left-over positions) → {kept}"
                if kept > floor_out
                else f", but that {_ordinal(ceil_out)} window would start at ({ceil_out} − 1)·{s} = "
                f"{(ceil_out - 1) * s} ≥ {size} + {p} (in the right padding): dropped → {kept}"
            )
        )
        return lines
    out = pool_output_size(size, k, s, p, d, True)
    start = (raw - 1) * s
    if out == raw:
        lines.append(
            f"ceil_mode: ⌈⌉ adds a last, partial window; the {_ordinal(raw)} window starts at "
            f"({raw} − 1)·{s} = {start} < {size} + {p}: it overlaps the input, kept → {out}"
        )
    else:
        lines.append(
            f"ceil_mode: a {_ordinal(raw)} window would start at ({raw} − 1)·{s} = {start} ≥ {size} + {p} "
            f"(input + padding), in the right padding only: dropped → {out}"
        )
    return lines


TCONV_SYMBOLIC = "{d}_out = ({d}_in − 1)·stride − 2·padding + dilation·(kernel_size − 1) + output_padding + 1"


def tconv_teach(size: int, k: int, s: int, p: int, op: int, d: int, derived: bool) -> list[str]:
    """The transposed-conv formula with numbers, and the sizes output_padding can reach."""
    base = (size - 1) * s - 2 * p + d * (k - 1) + 1
    out = base + op
    lines = [f"({size} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1 = {out}"]
    top = max(s, d) - 1
    if top == 0:
        lines.append("output_padding must be 0 here (it must be < stride or < dilation, both 1)")
    else:
        lines.append(
            f"output_padding ∈ [0, {top}] (< stride or < dilation) reaches "
            f"output_size ∈ [{base}, {base + top}]"
            + (f": output_size {out} gives output_padding {op}" if derived else "")
        )
        lines.append(
            "  (a strided conv maps several sizes to one; output_padding picks which one to restore)"
        )
    return lines


def conv_weight_lines(
    in_c: int, out_c: int, groups: int, kernel: tuple[int, ...], bias: bool, *, transposed: bool = False
) -> list[str]:
    """Channels, the weight's shape in symbols and numbers, and the parameter count as a formula."""
    ks = KERNEL_SYMBOLS[len(kernel)]
    kernel_text = ", ".join(map(str, kernel))
    if transposed:
        shape_sym = f"[in_channels, out_channels/groups, {', '.join(ks)}]"
        shape_num = f"[{in_c}, {out_c}/{groups}, {kernel_text}] = [{in_c}, {out_c // groups}, {kernel_text}]"
        count_sym = f"in_channels·(out_channels/groups)·{'·'.join(ks)}"
        count_num = f"{in_c}·{out_c // groups}·{'·'.join(map(str, kernel))}"
    else:
        shape_sym = f"[out_channels, in_channels/groups, {', '.join(ks)}]"
        shape_num = f"[{out_c}, {in_c}/{groups}, {kernel_text}] = [{out_c}, {in_c // groups}, {kernel_text}]"
        count_sym = f"out_channels·(in_channels/groups)·{'·'.join(ks)}"
        count_num = f"{out_c}·{in_c // groups}·{'·'.join(map(str, kernel))}"
    weights = in_c * (out_c // groups) * math.prod(kernel)
    total = weights + (out_c if bias else 0)
    lines = [f"weight {shape_sym} = {shape_num}" + (f"; bias [out_channels] = [{out_c}]" if bias else "")]
    if groups > 1:
        lines.append(
            f"  groups = {groups}: each group maps in_channels/groups = {in_c // groups} input channels "
            f"to out_channels/groups = {out_c // groups} outputs"
            + (" (depthwise: one group per input channel)" if groups == in_c else "")
        )
    lines.append(
        f"parameters = {count_sym}{' + out_channels' if bias else ''} = "
        f"{count_num}{f' + {out_c}' if bias else ''} = {total:,}"
    )
    return lines
