"""Shape formulas written out with the numbers filled in, for ``netspec build --explain``.

Each function mirrors one formula of :mod:`netspec.shapes` and ends with the same result,
so a learner can redo the arithmetic by hand.
"""

from __future__ import annotations

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
