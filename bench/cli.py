"""CLI latency: wall time of netspec commands in fresh processes vs ``python -c "import torch"``.

``netspec build``, ``--summary``, ``schema``, ``plugins`` and ``--help`` do not import torch;
each is run as a subprocess, interleaved with ``python -c "import torch"`` (the order rotates
every repetition); ratio = command / import torch within a repetition (target ≤ 0.4 for build,
--summary, schema and plugins; --help < 0.2 s).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .common import ROOT, interleave, median, ratios, row, timed

SECTION = "CLI latency"
QUICK = ("netspec build specs/lenet.yaml --summary",)


def _wall(argv: list[str]) -> float:
    return timed(
        lambda: subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT
        )
    )


def run(quick: bool) -> list[dict]:
    exe = str(Path(sys.executable).parent / "netspec")
    commands = {
        "netspec build specs/lenet.yaml": [exe, "build", "specs/lenet.yaml"],
        "netspec build specs/lenet.yaml --summary": [exe, "build", "specs/lenet.yaml", "--summary"],
        "netspec build specs/resnet50.yaml --summary": [exe, "build", "specs/resnet50.yaml", "--summary"],
        "netspec schema": [exe, "schema"],
        "netspec plugins": [exe, "plugins"],
        "netspec --help": [exe, "--help"],
    }
    if quick:  # the same code path, fewer processes
        commands = {k: v for k, v in commands.items() if k in QUICK}
    torch_argv = [sys.executable, "-c", "import torch"]
    sides = {"torch": lambda: _wall(torch_argv)} | {k: (lambda a=v: _wall(a)) for k, v in commands.items()}
    times = interleave(sides, 1 if quick else 7, warmup=0 if quick else 1)
    rows = []
    for name in commands:
        rows.append(
            row(
                SECTION,
                f"`{name}`",
                median(times[name]),
                median(times["torch"]),
                "s",
                ratios(times[name], times["torch"]),
                'wall time of the command ÷ `python -c "import torch"` (target ≤ 0.4; --help < 0.2 s)',
            )
        )
    return rows
