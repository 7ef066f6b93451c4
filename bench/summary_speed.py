"""How fast and how lean is ``netspec build --summary``? netspec's analytic summary vs torchinfo.

netspec computes its summary from shape rules, counting parameters on a module built on the
meta device; torchinfo runs a real forward pass on a real module. Three measurements, with
ratios side by side:

1. Summary time on a U-Net (specs/unet.yaml's layers, 3 input channels) at 3×512×512:
   ``summarize(spec)`` on a loaded spec, and ``netspec.load(dict)`` + ``summarize``, vs
   ``torchinfo.summary(model, input_size=(1, 3, 512, 512))`` on the module from
   ``spec.build()`` (its build time is reported, not counted). Interleaved rounds, medians;
   the target is netspec ≥ 20× faster. Also checks that both agree on the total parameter
   count and on every layer's output shape and parameter count.
2. Peak RSS (``ru_maxrss``) of fresh child processes that each do one thing: ``import torch``
   (the baseline), the netspec summary, the torchinfo summary; and the growth over the baseline.
   They run first, before this process imports torch: on Linux a child's ru_maxrss starts from
   its parent's peak (it survives fork + exec), so a parent that had run torchinfo would mask them.
3. CLI wall time: ``netspec build specs/unet.yaml --summary`` vs ``python -c "import torch"``,
   and ``netspec --help``.

``--huge`` adds a 10-billion-parameter network (conv → global_avgpool → linear 100000 →
linear 100000 on 3×4096×4096) summarised by netspec alone in a fresh child: its time and peak
RSS (torchinfo would have to allocate 40 GB of float32 weights). Usage:

    python bench/summary_speed.py [--quick] [--rounds 7] [--huge]

The default run (7 rounds, 3 children each, 5 CLI runs) takes about a minute on 2 CPU cores;
``--quick`` (3 rounds, 1 child each, 2 CLI runs) about 25 s; ``--huge`` adds about 5 s.
Nothing here is a test: it prints figures, it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# torch, netspec and torchinfo are imported inside functions only: the child processes of
# part 2 run this same file and must import nothing beyond what they measure.

ROOT = Path(__file__).resolve().parent.parent
SIZE = 512
TARGET = 20.0
LABEL = 46  # width of the label column of the report


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f} ms"


def _mib(kib: float) -> str:
    return f"{kib / 1024:9.1f} MiB"


def _line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<{LABEL}}{value}{'   ' + note if note else ''}")


def _spread(values: list[float]) -> str:
    return f"[min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f}]"


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


def bench_time(rounds: int) -> None:
    import torch
    import torchinfo

    spec_dict = unet_spec()
    print(
        f"1. summary time: U-Net at 3×{SIZE}×{SIZE}, median of {rounds} interleaved rounds "
        f"(torch {torch.__version__}, torchinfo {torchinfo.__version__}, {os.cpu_count()} CPUs)"
    )
    # first calls in this process: plugin registry, pydantic models, oneDNN kernels, ... (not in the medians)
    spec, summary, cold_load, cold_sum = _netspec_once(spec_dict)
    model, stats, _, cold_info = _torchinfo_once(spec)
    loads, sums, builds, infos = [], [], [], []

    def netspec_side():
        nonlocal spec, summary
        spec, summary, t_load, t_sum = _netspec_once(spec_dict)
        loads.append(t_load)
        sums.append(t_sum)

    def torchinfo_side():
        nonlocal model, stats
        model, stats, t_build, t_info = _torchinfo_once(spec)
        builds.append(t_build)
        infos.append(t_info)

    for i in range(rounds):  # alternate which one goes first
        for side in (netspec_side, torchinfo_side) if i % 2 == 0 else (torchinfo_side, netspec_side):
            side()
    summ, build, info = (statistics.median(x) for x in (sums, builds, infos))
    both = statistics.median(a + b for a, b in zip(loads, sums, strict=True))
    ratio = info / summ
    verdict = "met" if ratio >= TARGET else "NOT MET"
    _line("netspec summarize(spec) (spec loaded)", _ms(summ), _spread(sums))
    _line(
        "netspec load(dict) + summarize",
        _ms(both),
        _spread([a + b for a, b in zip(loads, sums, strict=True)]),
    )
    _line("torchinfo.summary (model built)", _ms(info), _spread(infos))
    _line("spec.build() for torchinfo (not counted)", _ms(build), _spread(builds))
    _line("ratio torchinfo / netspec summarize", f"{ratio:9.1f} ×", f"target ≥ {TARGET:.0f}×: {verdict}")
    _line("ratio torchinfo / netspec load + summarize", f"{info / both:9.1f} ×")
    _line("ratio (build + torchinfo) / (load + summarize)", f"{(build + info) / both:9.1f} ×")
    _line(
        "first call in the process (not counted)",
        _ms(cold_load + cold_sum),
        f"netspec load + summarize; torchinfo {cold_info * 1e3:.1f} ms",
    )
    problems = _agreement(spec, summary, model, stats)
    totals = f"{summary.totals.params:,} vs {stats.total_params:,}"
    if problems:
        _line("agreement with torchinfo", "DISAGREE", f"parameters {totals}")
        for problem in problems:
            print(f"    {problem}")
    else:
        _line(
            "agreement with torchinfo",
            "      yes",
            f"total parameters {totals}; all {len(summary.rows)} layers: same output shape and parameters",
        )
    macs = summary.totals.macs if summary.totals.macs_complete else "incomplete"
    _line(
        "MACs (not compared: conventions differ)",
        "",
        f"netspec {macs:,}, torchinfo {stats.total_mult_adds:,}",
    )


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


def _child(mode: str) -> None:
    """One measurement in this fresh process; prints a JSON line with the peak RSS (KiB) and times."""
    import torch  # noqa: F401  (every child imports torch; importing it is the baseline)

    out: dict = {}
    if mode == "torch":
        pass
    elif mode in ("netspec", "huge"):
        spec_dict = unet_spec() if mode == "netspec" else huge_spec()
        _, summary, t_load, t_sum = _netspec_once(spec_dict)
        out |= {"cold": t_load + t_sum, "params": summary.totals.params}
        if mode == "huge":  # warm repeats after the peak RSS has been taken
            out |= _peak_kib()
            out["warm"] = statistics.median(sum(_netspec_once(spec_dict)[2:]) for _ in range(5))
    elif mode == "torchinfo":
        import netspec

        spec = netspec.load(unet_spec())
        _, stats, _, t_info = _torchinfo_once(spec)
        out |= {"cold": t_info, "params": stats.total_params}
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    out = _peak_kib() | out
    print(json.dumps(out))


def _run_child(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"child {mode!r} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_note(results: list[dict], base: float | None) -> str:
    rss = statistics.median(r["maxrss"] for r in results)
    notes = [] if base is None else [f"+{(rss - base) / 1024:.1f} MiB over the baseline"]
    hwm = [r["hwm"] for r in results if "hwm" in r]
    if hwm and abs(statistics.median(hwm) - rss) > 1024:
        notes.append(f"VmHWM says {statistics.median(hwm) / 1024:.1f} MiB: ru_maxrss inherited?")
    return "; ".join(notes)


def bench_memory(runs: int, huge: bool) -> None:
    modes = ("torch", "netspec", "torchinfo")
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(runs):
        for mode in modes:
            results[mode].append(_run_child(mode))
    print(
        f"2. peak RSS (ru_maxrss) of fresh child processes, median of {runs} "
        f"(parent's own peak when starting them: {parent / 1024:.1f} MiB)"
    )
    rss = {mode: statistics.median(r["maxrss"] for r in results[mode]) for mode in modes}
    base = rss["torch"]
    _line("import torch only (baseline)", _mib(base), _rss_note(results["torch"], None))
    for mode, label in (
        ("netspec", "netspec load + summarize"),
        ("torchinfo", "netspec load + build + torchinfo"),
    ):
        _line(label, _mib(rss[mode]), _rss_note(results[mode], base))
    growth_ns, growth_ti = rss["netspec"] - base, rss["torchinfo"] - base
    if growth_ns > 0:
        _line("ratio of growth torchinfo / netspec", f"{growth_ti / growth_ns:9.1f} ×")
    if huge:
        result = _run_child("huge")
        print("   huge: conv → global_avgpool → linear 100000 → linear 100000 at 3×4096×4096 (netspec only)")
        _line("parameters", f"{result['params']:>13,}", f"{result['params'] * 4 / 1e9:.1f} GB as float32")
        _line("load + summarize, first call in a fresh process", _ms(result["cold"]))
        _line("load + summarize, warm (median of 5)", _ms(result["warm"]))
        _line("peak RSS", _mib(result["maxrss"]), _rss_note([result], base))


# ---------------------------------------------------------------- 3. CLI wall time


def _wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def bench_cli(runs: int) -> None:
    exe = Path(sys.executable).parent / "netspec"
    commands = {
        "summary": [str(exe), "build", "specs/unet.yaml", "--summary"],
        "torch": [sys.executable, "-c", "import torch"],
        "help": [str(exe), "--help"],
    }
    print(f"3. CLI wall time, median of {runs} interleaved runs ({exe})")
    times: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(runs):
        for key, argv in commands.items():
            times[key].append(_wall(argv))
    med = {key: statistics.median(values) for key, values in times.items()}
    _line("netspec build specs/unet.yaml --summary", _ms(med["summary"]), _spread(times["summary"]))
    _line('python -c "import torch"', _ms(med["torch"]), _spread(times["torch"]))
    _line(
        "ratio netspec --summary / import torch",
        f"{med['summary'] / med['torch']:9.2f} ×",
        f"{(med['summary'] - med['torch']) * 1e3:+.0f} ms beyond importing torch",
    )
    _line("netspec --help", _ms(med["help"]), _spread(times["help"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions (3 rounds, 1 child, 2 CLI runs)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds for part 1 (default 7)")
    parser.add_argument("--huge", action="store_true", help="also summarise a 10-billion-parameter network")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    rounds = args.rounds or (3 if args.quick else 7)
    t0 = time.perf_counter()
    memory = io.StringIO()
    with contextlib.redirect_stdout(memory):  # first: before this process imports torch (see part 2)
        bench_memory(1 if args.quick else 3, args.huge)
    bench_time(rounds)
    print(memory.getvalue(), end="")
    bench_cli(2 if args.quick else 5)
    print(f"(benchmark took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
