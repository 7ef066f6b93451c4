"""Which input sizes a spec builds for: ``netspec build SPEC --sizes LO:HI``.

Every size in the range is tried through the full load (expansion included, so size
references such as ``=spatial(skip)`` are honoured) — shapes only, nothing is built. When the
sizes that build follow a simple rule (``n ≡ 0 (mod 8)``, ``n ≥ 5``), the rule is stated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from netspec.errors import SpecError
from netspec.shapes import SPATIAL_NAMES, describe

MAX_SIZES = 4096
MAX_LAYER_LOADS = 200_000  # sizes × layers: each size loads the whole spec again (~0.1 ms a layer)
RANGE_RE = re.compile(r"^(?:(?P<dim>[A-Za-z])=)?(?P<lo>\d+):(?P<hi>\d+)\Z")


@dataclass(frozen=True)
class SizeScan:
    name: str
    shape_text: str  # "[1, n, n]"
    sizes: list[int]
    valid: list[int]
    same_size: list[int]  # valid sizes whose output keeps the input's spatial size
    first_error: tuple[int, str] | None


def parse_range(text: str) -> tuple[str | None, int, int]:
    """``32:128`` (every spatial dim) or ``W=32:128`` (only that dim); raises ValueError."""
    match = RANGE_RE.match(text.strip())
    if not match:
        raise ValueError(f"expected LO:HI or DIM=LO:HI (e.g. 32:128 or W=32:128), got {text!r}")
    lo, hi = int(match["lo"]), int(match["hi"])
    if not 1 <= lo <= hi or hi - lo + 1 > MAX_SIZES:
        raise ValueError(f"expected 1 ≤ LO ≤ HI and at most {MAX_SIZES} sizes, got {text!r}")
    return (match["dim"].upper() if match["dim"] else None), lo, hi


def scan(path: str, dim: str | None, lo: int, hi: int, overrides: Sequence[str] = ()) -> SizeScan:
    """Load ``path`` at every size in [lo, hi]; which build, and which keep their size."""
    from netspec.spec import load

    base = _base_document(path, overrides)
    shape = list(base.data["input"])
    rank = len(shape) - 1
    if rank < 1:
        raise SpecError([base.problem("--sizes needs an input with spatial dims", ("input",))])
    names = SPATIAL_NAMES.get(rank, ())
    if dim is not None and dim not in names:
        raise SpecError(
            [
                base.problem(
                    f"--sizes {dim}=…: the input {describe(shape)} has spatial dims {', '.join(names)}",
                    ("input",),
                )
            ]
        )
    layers = len(base.data.get("layers") or ())
    if (hi - lo + 1) * layers > MAX_LAYER_LOADS:
        most = max(1, MAX_LAYER_LOADS // max(layers, 1))
        raise SpecError(
            [
                base.problem(
                    f"--sizes {lo}:{hi} loads the spec's {layers:,} layers {hi - lo + 1:,} times, "
                    f"over the {MAX_LAYER_LOADS:,} layer loads --sizes allows",
                    ("input",),
                    hint=f"try at most {most:,} sizes at a time (e.g. --sizes {lo}:{lo + most - 1})",
                )
            ]
        )
    varied = [i + 1 for i, d in enumerate(names) if dim is None or d == dim]
    valid, same, first_error = [], [], None
    for n in range(lo, hi + 1):
        trial = [n if i in varied else s for i, s in enumerate(shape)]
        try:
            spec = load(path, input_shape=trial, overrides=overrides)
        except SpecError as exc:
            if first_error is None:
                first_error = (n, exc.problems[0].render().splitlines()[0])
            continue
        valid.append(n)
        if all(len(o) == len(trial) and list(o[1:]) == trial[1:] for o in spec.output_shapes()):
            same.append(n)
    text = describe(["n" if i in varied else s for i, s in enumerate(shape)]).replace("'", "")
    return SizeScan(str(base.data.get("name", path)), text, list(range(lo, hi + 1)), valid, same, first_error)


def _base_document(path: str, overrides: Sequence[str]):
    """The expanded spec (its ``input:`` is the shape to vary), whether or not it builds."""
    from netspec.expand import expand
    from netspec.plugins import default_registry
    from netspec.yamlio import read_spec_file

    doc = read_spec_file(path)
    for assignment in overrides:
        doc.override(assignment)
    doc = expand(doc, default_registry())
    shape = doc.data.get("input") if isinstance(doc.data, dict) else None
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise SpecError([doc.problem("--sizes needs the spec's input: a list of sizes", ("input",))])
    return doc


def rule(sizes: list[int], valid: list[int]) -> str | None:
    """The simplest ``n ≥ m and n ≡ r (mod k)`` that gives exactly ``valid`` over ``sizes``."""
    if not valid:
        return None
    start = valid[0]
    wanted = set(valid)
    for k in range(1, 65):
        r = start % k
        if {n for n in sizes if n >= start and n % k == r} == wanted:
            parts = [] if start == sizes[0] else [f"n ≥ {start}"]
            if k > 1:
                parts.append(f"n ≡ {r} (mod {k})")
            return " and ".join(parts) or "every n in the range"
    return None


def runs(values: list[int]) -> str:
    """``8, 16, 24`` or ``5–9, 12–20``: consecutive values as ranges."""
    out: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}–{values[j]}")
        i = j + 1
    return ", ".join(out)


def render(result: SizeScan) -> str:
    lo, hi = result.sizes[0], result.sizes[-1]
    lines = [f"{result.name}: input {result.shape_text}, n from {lo} to {hi}"]
    if not result.valid:
        lines.append("builds for no n in this range")
    else:
        found = rule(result.sizes, result.valid)
        lines.append(
            f"builds for {len(result.valid)} of {len(result.sizes)}: "
            + (f"{found}" if found else runs(result.valid))
            + (f" ({runs(result.valid)})" if found and len(result.valid) <= 24 else "")
        )
        if result.same_size:
            same = rule(result.valid, result.same_size)
            kept = runs(result.same_size)
            lines.append(
                f"output keeps the input size (round-trips) for {len(result.same_size)}: "
                + (
                    f"{same}"
                    if same and result.same_size != result.valid
                    else kept
                    if not same
                    else "all of them"
                )
            )
    if result.first_error is not None:
        n, message = result.first_error
        lines.append(f"e.g. n = {n} fails: {message}")
    return "\n".join(lines) + "\n"
