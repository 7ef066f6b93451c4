"""CLI latency: wall time of netspec commands in fresh processes vs ``python -c "import torch"``.

``netspec build``, ``--summary``, ``schema``, ``plugins`` and ``--help`` do not import torch;
each is run as a subprocess, interleaved with ``python -c "import torch"`` (the order rotates
every repetition); ratio = command / import torch within a repetition (target ≤ 0.4 for build,
--summary, schema and plugins; --help < 0.2 s).

A whole ``netspec train`` of one LeNet epoch on the digits is measured the same way against
``python -c "import os, pytorch_lightning; os._exit(0)"``: importing the engine it cannot start
without, and no more (a plain exit adds the interpreter's teardown of it, 1-2 s here). What the
command costs beyond that import: start-up, training, test, curves.png and its own exit.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .common import ROOT, interleave, median, ratios, row, timed

SECTION = "CLI latency"
QUICK = ("netspec build specs/lenet.yaml --summary",)
TRAIN = "netspec train specs/lenet.yaml --set train.max_epochs=1"
# the import alone: a plain exit would add the interpreter's teardown of it (1-2 s on this machine)
LIGHTNING = "import os, pytorch_lightning; os._exit(0)"
TORCH_NOTE = 'wall time of the command ÷ `python -c "import torch"` (target ≤ 0.4; --help < 0.2 s)'


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
    if not quick:  # ~5 s a process: the full run only
        with tempfile.TemporaryDirectory(prefix="netspec-cli-") as runs:
            train = [
                exe,
                "train",
                "specs/lenet.yaml",
                "--set",
                "train.max_epochs=1",
                "--set",
                "train.progress=none",
            ]
            count = iter(range(1_000_000))
            sides |= {
                TRAIN: lambda: _wall([*train, "--set", f"train.run_dir={runs}/{next(count)}"]),
                "lightning": lambda: _wall([sys.executable, "-c", LIGHTNING]),
            }
            times = interleave(sides, 5, warmup=1)
    else:
        times = interleave(sides, 1, warmup=0)
    against = {name: ("torch", TORCH_NOTE) for name in commands}
    if TRAIN in times:
        against[TRAIN] = (
            "lightning",
            f'the whole command ÷ `python -c "{LIGHTNING}"` (importing its engine)',
        )
    rows = []
    for name, (baseline, note) in against.items():
        rows.append(
            row(
                SECTION,
                f"`{name}`",
                median(times[name]),
                median(times[baseline]),
                "s",
                ratios(times[name], times[baseline]),
                note,
            )
        )
    return rows
