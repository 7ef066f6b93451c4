"""``python -m bench``: run every benchmark, write ``latest.md`` and ``latest.json``.

    python -m bench [--quick] [--out DIR] [--only SECTION ...] [--threads N]
    python -m bench --gpu [--quick]   # only the rows that need CUDA (a lent GPU machine)
    python -m bench --render bench/results/latest.json   # the table again, without notes

Sections (in the order they run; ``--only`` takes these keys):

- ``cli``: CLI latency, netspec commands vs ``python -c "import torch"`` (bench/cli.py)
- ``summary``: summary vs torchinfo, time and peak RSS, small and large inputs (bench/summary_speed.py)
- ``depth``: build cost vs depth, 100 / 1,000 / 10,000 layers, flat and blocks (bench/depth.py)
- ``modules``: built vs hand-written module, eager and compiled (bench/modules.py)
- ``memory``: the summary's training-memory estimate vs the measured peak (bench/memory.py)
- ``train``: ``netspec train`` throughput vs a plain PyTorch loop (bench/train_speed.py)

Every comparison runs both sides interleaved in this one run, after a warm-up, and reports the
median ratio netspec / baseline with its spread. GPU rows run only where CUDA is available
(elsewhere a row says "needs CUDA"). ``--quick`` runs everything small (CI runs it so the suite
never rots; its figures are not meant to be quoted) and writes ``quick.md`` / ``quick.json``.
torch runs on ``--threads`` threads (default 1: on a shared machine more threads mostly measure
the neighbours). ``--gpu`` runs only the sections with GPU rows (``GPU_SECTIONS``) and in them
only the GPU rows, and writes ``gpu.md`` / ``gpu.json``: the part to run when a GPU machine is
lent for a few minutes (``scripts/gpu_check.sh``), without redoing the CPU rows there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

from .common import describe, machine, markdown

SECTIONS = {
    "cli": ("bench.cli", "CLI latency"),
    "summary": ("bench.summary_speed", "summary vs torchinfo"),
    "depth": ("bench.depth", "build cost vs depth"),
    "modules": ("bench.modules", "built vs hand-written"),
    "memory": ("bench.memory", "memory estimate vs peak"),
    "train": ("bench.train_speed", "training vs plain loop"),
}
GPU_SECTIONS = ("train", "memory", "modules")  # the ones with GPU rows, most wanted first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="everything small (CI); writes quick.md/json")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help=f"only the GPU rows ({', '.join(GPU_SECTIONS)}); writes gpu.md and gpu.json",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: rewrite the .md next to a results JSON and print its table without notes (README)",
    )
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(
            markdown(result["rows"], result["machine"], result["command"])
        )
        print(markdown(result["rows"], result["machine"], result["command"], notes=False), end="")
        return 0

    import torch

    if args.gpu and args.only and set(args.only) - set(GPU_SECTIONS):
        print(f"python -m bench: --gpu runs only {', '.join(GPU_SECTIONS)}", file=sys.stderr)
        return 2
    if args.gpu and not torch.cuda.is_available():
        print("python -m bench: --gpu: no CUDA device here (torch sees none)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    info = machine()
    command = " ".join(
        ["python -m bench", *(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))]
    )
    print(f"{command}\n{describe(info)}", flush=True)
    rows: list[dict] = []
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()
    keys = args.only or list(GPU_SECTIONS if args.gpu else SECTIONS)
    for key in keys:
        module, title = SECTIONS[key]
        t0 = time.perf_counter()
        print(f"== {title} ...", flush=True)
        try:
            section = importlib.import_module(module)
            got = section.run(args.quick, gpu_only=True) if args.gpu else section.run(args.quick)
        except Exception:  # one broken section must not hide the others' results
            errors[key] = traceback.format_exc()
            print(errors[key], file=sys.stderr, flush=True)
            got = [{"section": title, "case": "ERROR", "netspec": None, "baseline": None, "unit": "",
                    "ratio": None, "ratio_min": None, "ratio_max": None, "n": 0,
                    "note": errors[key].strip().splitlines()[-1], "skipped": "error"}]  # fmt: skip
        seconds[key] = time.perf_counter() - t0
        for r in got:
            r["key"] = key
        rows += got
        print(f"   {len(got)} rows in {seconds[key]:.1f} s", flush=True)
    result = {
        "command": command,
        "quick": args.quick,
        "machine": info,
        "gpu_only": args.gpu,
        "sections": {key: SECTIONS[key][1] for key in keys},
        "seconds": seconds | {"total": time.perf_counter() - t_all},
        "errors": errors,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ("gpu-quick" if args.quick else "gpu") if args.gpu else ("quick" if args.quick else "latest")
    text = markdown(rows, info, command)
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(text)
    print(f"wrote {args.out / (stem + '.md')} and {stem}.json in {result['seconds']['total']:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
