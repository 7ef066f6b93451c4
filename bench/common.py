"""Shared by every section of ``python -m bench``: result rows, interleaved timing, machine facts.

A section returns a list of rows (plain dicts, so they go to JSON as they are). Each row compares
netspec with a baseline measured in the same run, interleaved with it:

    section, case      what was measured
    netspec, baseline  the two medians (``unit`` says what they are: s, ms, MiB, samples/s, …)
    ratio              median of the per-round ratios netspec / baseline (for throughput:
                       netspec / baseline samples per second, so 1.0 is parity either way)
    ratio_min/max, n   their spread and how many rounds
    note               what the ratio means, targets, agreement checks

A row with ``skipped`` set says why nothing was measured (e.g. "needs CUDA").
Nothing here asserts anything about time.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# ResNet-18 for CIFAR-size inputs: specs/resnet.yaml's resnet18 variant at 3×32×32 with 10 classes
# (its expect: block states the ImageNet head, so it goes)
RESNET18_CIFAR = ["variant=resnet18", "variants.resnet18.expect=null", "input=[3,32,32]", "params.classes=10"]


def row(
    section: str,
    case: str,
    netspec: float | None,
    baseline: float | None,
    unit: str,
    ratios: Sequence[float] = (),
    note: str = "",
    **extra,
) -> dict:
    """One result. ``ratios``: one per interleaved round (netspec / baseline)."""
    out = {"section": section, "case": case, "netspec": netspec, "baseline": baseline, "unit": unit}
    if ratios:
        out |= {
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "n": len(ratios),
        }
    else:
        out |= {"ratio": None, "ratio_min": None, "ratio_max": None, "n": 0}
    out["note"] = note
    return out | extra


def skipped(section: str, case: str, why: str) -> dict:
    return row(section, case, None, None, "", note=why, skipped=why)


def interleave(sides: dict[str, Callable[[], float]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every side once per round (the order rotates each round); each call returns its seconds.

    ``warmup`` rounds first, not kept. Returns {side: [seconds per round]}.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            out[name].append(sides[name]())
    return out


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """The machine and the software the results were measured with."""
    import torch

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "netspec": _version("netspec"),
        "pytorch_lightning": _version("pytorch-lightning"),
        "torchinfo": _version("torchinfo"),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "executable": sys.executable,
    }
    return info


def describe(info: dict) -> str:
    gpu = info["gpu"] or "no GPU"
    load = info.get("load_average")
    shared = f", load average {load[0]:.1f} at the start" if load else ""
    return (
        f"{info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads{shared}), {gpu}; "
        f"Python {info['python']}, torch {info['torch']}, netspec {info['netspec']}, "
        f"pytorch-lightning {info['pytorch_lightning']}, torchinfo {info['torchinfo']}; {info['date']}"
    )


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("s",):
        return f"{value * 1e3:,.1f} ms" if value < 1 else f"{value:,.2f} s"
    if unit == "µs/layer":
        return f"{value * 1e6:,.1f} µs/layer"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.3g} {unit}"


def markdown(rows: list[dict], info: dict, command: str, notes: bool = True) -> str:
    """The results as a Markdown table (``notes=False``: without the note column, for the README)."""
    head = ["section", "case", "netspec", "baseline", "ratio (median)", "spread [min–max], rounds"]
    table = [head + (["note"] if notes else [])]
    for r in rows:
        note = str(r.get("note", "")).replace("|", "\\|")
        if r.get("skipped"):
            cells = [r["section"], r["case"], "—", "—", "—", f"skipped: {r['skipped']}"]
            note = "" if r["skipped"] == note else note
        else:
            if r["ratio"] is None:
                ratio, spread = "—", "—"
            else:
                ratio = f"**{r['ratio']:.2f}**"
                spread = f"{r['ratio_min']:.2f}–{r['ratio_max']:.2f}, n={r['n']}"
            cells = [
                r["section"],
                r["case"],
                _num(r["netspec"], r["unit"]),
                _num(r["baseline"], r["unit"]),
                ratio,
                spread,
            ]
        table.append(cells + ([note] if notes else []))
    lines = ["| " + " | ".join(cells) + " |" for cells in table]
    lines.insert(1, "|" + "---|" * len(table[0]))
    intro = f"Command: `{command}`\n\nMachine: {describe(info)}\n\n"
    return intro + "\n".join(lines) + "\n"
