"""Summary vs torchinfo: ``netspec.load`` + ``summarize`` vs ``torchinfo.summary``.

netspec computes its summary from shape and parameter rules without importing torch; torchinfo
runs a real forward pass on a real module (built by ``spec.build()``, not counted). On the U-Net
(specs/unet.yaml's layers, 3 input channels) at a small and a large input:

- time: interleaved rounds in this process, after a warm-up; ratio = netspec / torchinfo.
  Both summaries' numbers are compared: total parameters, and every layer's output shape and
  parameter count (the note says "agree" or lists the differences; MACs are not compared,
  their conventions differ: docs/summary.md).
- peak RSS: fresh child processes that each do one thing (VmHWM of the child's own memory):
  netspec load + summarize (no torch import), torch + build + torchinfo; and, for scale,
  ``import torch`` alone. ratio = netspec / torchinfo.
- a 10-billion-parameter network (conv → global_avgpool → linear 100000 → linear 100000 on
  3×4096×4096) summarised by netspec alone in a child: time and peak RSS (torchinfo would have
  to allocate 40 GB of float32 weights).

The children run ``python bench/summary_speed.py --child MODE SIZE``.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# torch, netspec and torchinfo are imported inside functions only: the child processes
# run this same file and must import nothing beyond what they measure.

ROOT = Path(__file__).resolve().parent.parent
SIZE = 512


def _conv(name: str, channels: int) -> dict:
    return {"type": "conv", "name": name, "out_channels": channels, "kernel_size": 3, "padding": "same"}


def unet_spec(size: int = SIZE) -> dict:
    """specs/unet.yaml (same layers, same names) for 3×size×size inputs, without output_size."""
    relu = {"type": "relu"}
    layers = []
    for i, ch in ((1, 16), (2, 32), (3, 64)):  # encoder
        layers += [_conv(f"enc{i}a", ch), relu, _conv(f"enc{i}", ch)]
        layers += [
            {"type": "relu", "name": f"skip{i}"},
            {"type": "maxpool", "name": f"down{i}", "kernel_size": 2},
        ]
    layers += [_conv("mid_a", 128), relu, _conv("mid", 128), relu]  # bottleneck
    for i, ch in ((3, 64), (2, 32), (1, 16)):  # decoder
        layers += [
            {"type": "tconv", "name": f"up{i}", "out_channels": ch, "kernel_size": 2, "stride": 2},
            {"type": "concat", "name": f"cat{i}", "from": [f"up{i}", f"skip{i}"]},
            _conv(f"dec{i}a", ch),
            relu,
            _conv(f"dec{i}", ch),
            relu,
        ]
    layers.append({"type": "conv", "name": "logits", "out_channels": 2, "kernel_size": 1})
    return {"netspec": 1, "name": "unet", "input": [3, size, size], "layers": [dict(x) for x in layers]}


def huge_spec() -> dict:
    """About 10 billion parameters (fc2 alone is 100000 × 100000); 40 GB as float32."""
    return {
        "netspec": 1,
        "name": "huge",
        "input": [3, 4096, 4096],
        "layers": [
            {"type": "conv", "name": "stem", "out_channels": 64, "kernel_size": 3, "padding": 1},
            {"type": "global_avgpool", "name": "pool"},
            {"type": "linear", "name": "fc1", "out_features": 100_000},
            {"type": "linear", "name": "fc2", "out_features": 100_000},
        ],
    }


# ---------------------------------------------------------------- 1. summary time, in process


def _netspec_once(spec_dict: dict):
    import netspec
    from netspec.summary import summarize

    t0 = time.perf_counter()
    spec = netspec.load(spec_dict)
    t1 = time.perf_counter()
    summary = summarize(spec)
    t2 = time.perf_counter()
    return spec, summary, t1 - t0, t2 - t1


def _torchinfo_once(spec):
    import torchinfo

    t0 = time.perf_counter()
    model = spec.build()
    t1 = time.perf_counter()
    stats = torchinfo.summary(model, input_size=(1, *spec.input_shape), verbose=0)
    t2 = time.perf_counter()
    return model, stats, t1 - t0, t2 - t1


def _agreement(spec, summary, model, stats) -> list[str]:
    """Differences between netspec's summary and torchinfo's, one line each (empty: they agree)."""
    names = {id(module): name for name, module in model.named_children()}
    seen: dict[str, list] = {}
    for info in stats.summary_list:
        name = names.get(id(info.module))
        if name is not None:
            seen.setdefault(name, []).append(info)
    problems = []
    if summary.totals.params != stats.total_params:
        problems.append(
            f"total parameters: netspec {summary.totals.params:,}, torchinfo {stats.total_params:,}"
        )
    for row in summary.rows:
        infos = seen.get(row.name)
        if not infos:
            problems.append(f"{row.name}: not in torchinfo's summary_list")
            continue
        want = [1, *row.output]
        for info in infos:
            if list(info.output_size) != want:
                problems.append(
                    f"{row.name} ({row.type}): netspec {want}, torchinfo {list(info.output_size)}"
                )
            if info.num_params != row.params:
                problems.append(
                    f"{row.name} ({row.type}): netspec {row.params:,} params, torchinfo {info.num_params:,}"
                )
    return problems


# ---------------------------------------------------------------- 2. peak RSS, in fresh children
#
# Linux carries a parent's peak RSS into a child's ru_maxrss across fork/vfork + exec (the old
# mm's high-water mark is folded into the process's maxrss at exec), so the children are
# started before this process imports torch; each child also reports its own mm's VmHWM from
# /proc as a cross-check.


def _peak_kib() -> dict:
    out = {"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["hwm"] = int(line.split()[1])
    except OSError:
        pass
    return out


def _child(mode: str, size: int) -> None:
    """One measurement in this fresh process; prints a JSON line: peak RSS (KiB), times, parameters."""
    out: dict = {}
    if mode == "torch":
        import torch
    elif mode in ("netspec", "huge"):
        spec_dict = unet_spec(size) if mode == "netspec" else huge_spec()
        _, summary, t_load, t_sum = _netspec_once(spec_dict)
        out |= {"cold": t_load + t_sum, "params": summary.totals.params, "torch": "torch" in sys.modules}
        if mode == "huge":  # warm repeats after the peak RSS has been taken
            out |= _peak_kib()
            out["warm"] = statistics.median(sum(_netspec_once(spec_dict)[2:]) for _ in range(5))
    elif mode == "torchinfo":
        import torch  # noqa: F401

        import netspec

        spec = netspec.load(unet_spec(size))
        _, stats, _, t_info = _torchinfo_once(spec)
        out |= {"cold": t_info, "params": stats.total_params}
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    out = _peak_kib() | out
    print(json.dumps(out))


def _run_children(modes: list[str], size: int) -> dict[str, dict]:
    """One fresh child per mode, all at once (only their peak RSS counts, not their time)."""
    procs = {
        mode: subprocess.Popen(
            [sys.executable, __file__, "--child", mode, str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for mode in modes
    }
    out = {}
    for mode, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"child {mode!r} failed ({proc.returncode}):\n{stderr}")
        out[mode] = json.loads(stdout.strip().splitlines()[-1])
    return out


def _peak(result: dict) -> float:
    """MiB: the child's own high-water mark (ru_maxrss may carry the parent's peak over exec)."""
    return result.get("hwm", result["maxrss"]) / 1024


def run(quick: bool) -> list[dict]:
    from bench.common import interleave, median, ratios, row, timed

    section = "summary vs torchinfo"
    sizes = (("small", 32), ("large", 128)) if quick else (("small", 64), ("large", SIZE))
    rounds, children = (2, 1) if quick else (7, 3)
    rows = []
    for label, size in sizes:
        spec_dict = unet_spec(size)
        spec, summary, *_ = _netspec_once(spec_dict)
        model, stats, *_ = _torchinfo_once(spec)
        problems = _agreement(spec, summary, model, stats)
        agree = (
            f"agree: {summary.totals.params:,} parameters, "
            f"all {len(summary.rows)} layers' shapes and parameters"
            if not problems
            else "DISAGREE: "
            + "; ".join(problems[:3])
            + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        )
        t = interleave(
            {
                "netspec": lambda d=spec_dict: timed(lambda: _netspec_once(d)),
                "torchinfo": lambda s=spec: _torchinfo_once(s)[3],
            },
            rounds,
        )
        shape = f"U-Net 3×{size}×{size}"
        rows.append(
            row(
                section,
                f"time, {label} input ({shape})",
                median(t["netspec"]),
                median(t["torchinfo"]),
                "s",
                ratios(t["netspec"], t["torchinfo"]),
                f"load(dict) + summarize vs torchinfo.summary (build not counted); {agree}",
            )
        )
        if quick and label == "small":
            continue
        peaks: dict[str, list[float]] = {"netspec": [], "torchinfo": []} | ({} if quick else {"torch": []})
        torch_free = True
        for _ in range(children):
            for mode, result in _run_children(list(peaks), size).items():
                peaks[mode].append(_peak(result))
                if mode == "netspec":
                    torch_free = torch_free and not result.get("torch")
        rows.append(
            row(
                section,
                f"peak RSS, {label} input ({shape})",
                median(peaks["netspec"]),
                median(peaks["torchinfo"]),
                "MiB",
                ratios(peaks["netspec"], peaks["torchinfo"]),
                "fresh processes (VmHWM); "
                + (f"`import torch` alone: {median(peaks['torch']):.0f} MiB; " if peaks.get("torch") else "")
                + f"netspec side imports torch: {'no' if torch_free else 'YES'}",
            )
        )
    if quick:
        return rows
    huge = _run_children(["huge"], 0)["huge"]
    rows.append(
        row(
            section,
            f"10-billion-parameter net ({huge['params']:,} params, 3×4096×4096)",
            huge["warm"],
            None,
            "s",
            note=f"netspec alone (torchinfo would allocate {huge['params'] * 4 / 1e9:.0f} GB): "
            "first call in a fresh "
            f"process {huge['cold'] * 1e3:.0f} ms, peak RSS {_peak(huge):.0f} MiB",
        )
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("run the suite instead: python -m bench [--only summary]")
