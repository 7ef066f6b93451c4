"""The benchmark suite runs: ``python -m bench --quick`` end to end, in a subprocess.

It checks that every section produced rows and that the JSON carries the machine and the
versions. It asserts nothing about time: the figures of a quick run on a shared CI machine
mean nothing; the point is that the suite never rots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SECTIONS = {
    "cli": "CLI latency",
    "summary": "summary vs torchinfo",
    "depth": "build cost vs depth",
    "modules": "built vs hand-written",
    "memory": "memory estimate vs peak",
    "train": "training vs plain loop",
}


def test_quick_suite_writes_every_section(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "quick.json").read_text())
    assert result["quick"] is True
    assert result["errors"] == {}
    for key in ("date", "cpu", "cores", "python", "torch", "netspec", "gpu"):
        assert key in result["machine"]
    assert result["sections"] == SECTIONS
    for key, title in SECTIONS.items():
        rows = [r for r in result["rows"] if r["key"] == key]
        measured = [r for r in rows if not r.get("skipped")]
        assert measured, f"section {key!r} measured nothing"
        for r in measured:
            assert r["section"] == title
            assert r["netspec"] is not None and r["netspec"] > 0, r
            if r["ratio"] is not None:
                assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"], r
    # the summaries agree with torchinfo, and the block spec expands to the layers measured
    summary_rows = [r for r in result["rows"] if r["key"] == "summary" and r["case"].startswith("time")]
    assert summary_rows and all("agree:" in r["note"] for r in summary_rows)
    markdown = (tmp_path / "quick.md").read_text()
    assert markdown.count("\n| ") == len(result["rows"]) + 1  # a line per row, plus the separator


def test_lightning_overhead_bench_runs():
    """``bench/lightning_overhead.py`` (the data behind netspec's choice of Lightning loop) never rots."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.lightning_overhead", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    for loop in ("plain loop", "automatic", "manual K=1", "manual K=4", "manual K=8"):
        assert any(line.strip().startswith(loop) and "calls a step" in line for line in lines), done.stdout


def test_the_gpu_part_runs_only_gpu_rows_and_says_so_without_cuda():
    """``python -m bench --gpu`` (the few minutes of a lent GPU machine) redoes no CPU row; without
    CUDA it refuses at once rather than writing an empty table."""
    import torch

    from bench import train_speed

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the GPU rows for real")
    (row,) = train_speed.run(quick=True, gpu_only=True)
    assert row["skipped"] == "needs CUDA"
    for argv, says in (
        (["--gpu"], "no CUDA device"),
        (["--gpu", "--only", "cli"], "--gpu runs only train, memory, modules"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bench", *argv], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert done.returncode == 2 and says in done.stderr, done.stderr
