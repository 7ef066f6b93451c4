"""Build cost vs depth: ``netspec.load`` (YAML parsing, validation, shape inference) and
``spec.build()`` of specs of N layers, flat and written as a block repeated N/5 times.

Per round every size is loaded once (sizes interleaved, so they share the machine's load); the
per-layer cost at N is compared with the per-layer cost at the previous size (N/10) in the same
round: a ratio of 1.0 means the cost grows linearly (fixed costs push it below 1), 10 quadratic.
``spec.build()`` is compared with the same layers written by hand as an ``nn.Sequential``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import netspec

from .common import interleave, median, ratios, row, timed

SECTION = "build cost vs depth"
WIDTH = 16


def flat_yaml(n: int) -> str:
    lines = ["netspec: 1", f"name: flat{n}", f"input: [{WIDTH}]", "layers:"]
    for i in range(n):
        if i % 2 == 0:
            lines.append(f"  - {{type: linear, name: fc{i}, out_features: {WIDTH}}}")
        else:
            lines.append(f"  - {{type: relu, name: act{i}}}")
    return "\n".join(lines) + "\n"


def block_yaml(n: int) -> str:
    """A 5-layer residual block (linear, relu, linear, add, relu) repeated n / 5 times."""
    return f"""netspec: 1
name: blocks{n}
input: [{WIDTH}]
blocks:
  unit:
    params: {{width: int}}
    layers:
      - {{type: linear, name: fc1, out_features: =width}}
      - {{type: relu, name: act1}}
      - {{type: linear, name: fc2, out_features: =width}}
      - {{type: add, name: add, from: [fc2, input]}}
      - {{type: relu, name: act2}}
layers:
  - {{type: unit, name: body, repeat: {n // 5}, width: {WIDTH}}}
"""


def _hand(n: int):
    from torch import nn

    return nn.Sequential(*(nn.Linear(WIDTH, WIDTH) if i % 2 == 0 else nn.ReLU() for i in range(n)))


def run(quick: bool) -> list[dict]:
    sizes = (20, 100) if quick else (100, 1_000, 10_000)
    rounds = 2 if quick else 3  # 10,000 layers take seconds a round
    rows = []
    with tempfile.TemporaryDirectory(prefix="netspec-bench-depth-") as tmp:
        paths = {}
        for kind, text in (("flat", flat_yaml), ("block", block_yaml)):
            for n in sizes:
                path = Path(tmp) / f"{kind}{n}.yaml"
                path.write_text(text(n))
                paths[kind, n] = path
        for (kind, n), path in paths.items():  # the block spec expands to exactly n layers
            got = len(netspec.load(path).layers)
            if got != n:
                raise RuntimeError(f"{kind} spec of {n} layers loads as {got} layers")
        sides = {(kind, n): (lambda p=paths[kind, n]: timed(lambda: netspec.load(p))) for kind, n in paths}
        times = interleave(sides, rounds)
        for kind in ("flat", "block"):
            what = "flat list" if kind == "flat" else "block of 5 × N/5"
            for i, n in enumerate(sizes):
                per = [t / n for t in times[kind, n]]
                total = f"netspec.load(path): {median(times[kind, n]) * 1e3:,.0f} ms in all"
                if i == 0:
                    rows.append(row(SECTION, f"load {n:,} layers ({what})", median(per), None, "µs/layer",
                                    note=f"{total}; the smallest size: no ratio"))  # fmt: skip
                    continue
                prev = [t / sizes[i - 1] for t in times[kind, sizes[i - 1]]]
                rows.append(
                    row(
                        SECTION,
                        f"load {n:,} layers ({what})",
                        median(per),
                        median(prev),
                        "µs/layer",
                        ratios(per, prev),
                        f"{total}; baseline: per-layer cost at {sizes[i - 1]:,} layers (same rounds); "
                        f"linear ≈ 1 (fixed costs push it below), quadratic ≈ {n / sizes[i - 1]:g}",
                    )
                )
        # build: spec.build() vs nn.Sequential by hand, at every size
        for n in sizes:
            spec = netspec.load(paths["flat", n])
            t = interleave(
                {"built": lambda s=spec: timed(s.build), "hand": lambda n=n: timed(lambda: _hand(n))},
                rounds,
            )
            rows.append(
                row(
                    SECTION,
                    f"build() {n:,} layers (flat)",
                    median(t["built"]),
                    median(t["hand"]),
                    "s",
                    ratios(t["built"], t["hand"]),
                    f"spec.build() vs the same nn.Sequential by hand; "
                    f"{median(t['built']) / n * 1e6:,.0f} µs/layer built",
                )
            )
    return rows


if __name__ == "__main__":
    t0 = time.perf_counter()
    for r in run(True):
        print(r)
    print(time.perf_counter() - t0)
