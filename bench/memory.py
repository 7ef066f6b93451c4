"""Memory estimate vs measured peak: the summary's training-memory estimate
(``summarize(spec, batch_size=B).totals.training_bytes``) ÷ the memory a training step really
takes (build, input, Adam, two forward+backward+step iterations).

On a GPU the measured side is ``torch.cuda.max_memory_allocated`` growth (the issue's target:
within ±20 %). On a CPU there is no allocator statistic, so the measured side is the growth of
the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) in a fresh child process
with glibc's mmap threshold lowered so freed tensors go back to the kernel: it includes the
allocator's and oneDNN's overheads and is reported for what it is, not as the GPU figure.
Ratios are estimate ÷ measured, one per repetition; the repetitions run in the same child.
"""

from __future__ import annotations

import ctypes
import gc
import json
import subprocess
import sys
from pathlib import Path

from bench.common import RESNET18_CIFAR

ROOT = Path(__file__).resolve().parent.parent
SECTION = "memory estimate vs peak"

# name, spec file, overrides, batch (full, quick)
MODELS = (
    ("LeNet-5", "lenet.yaml", [], (256, 64)),
    (
        "ResNet-18 3×32×32",
        "resnet.yaml",
        RESNET18_CIFAR,
        (64, 8),
    ),
    ("U-Net", "unet.yaml", [], (16, 2)),
)


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _measure(spec, batch: int, device: str) -> int:
    import torch
    import torch.nn.functional as F

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status("VmRSS")
    model = spec.build().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, *spec.input_shape, device=device)
    out_shape = spec.output_shapes()[0]
    for _ in range(2):
        out = model(x)
        loss = F.mse_loss(out, torch.zeros(batch, *out_shape, device=device))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    del out, loss
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _status("VmHWM") - before
    del model, opt, x
    gc.collect()
    return peak


def _child(quick: bool) -> None:
    try:  # freed tensors go straight back to the kernel, so each measurement starts clean
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 10)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass
    import torch

    torch.set_num_threads(1)
    print(json.dumps(_measurements(quick)))


def _measurements(quick: bool) -> list[dict]:
    import torch

    import netspec
    from netspec.summary import summarize

    devices = ["cuda"] if torch.cuda.is_available() else []
    devices.append("cpu")
    out = []
    for name, spec_file, overrides, (full, small) in MODELS:
        if quick and name != "LeNet-5":  # the same code path; their allocations take seconds
            netspec.load(ROOT / "specs" / spec_file, overrides=overrides)  # still load
            continue
        batch = small if quick else full
        spec = netspec.load(ROOT / "specs" / spec_file, overrides=overrides)
        estimate = summarize(spec, batch_size=batch).totals.training_bytes
        for device in devices:
            if not quick:
                _measure(spec, batch, device)  # warm-up: oneDNN primitives, CUDA context
            peaks = [_measure(spec, batch, device) for _ in range(1 if quick else 3)]
            out.append({"name": name, "batch": batch, "device": device, "estimate": estimate, "peaks": peaks})
    return out


def run(quick: bool) -> list[dict]:
    from bench.common import median, row, skipped

    if quick:  # CI: in this process (saves a torch import; the figures of a quick run mean nothing)
        results = _measurements(quick)
    else:
        argv = [sys.executable, "-m", "bench.memory", "--child"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"memory child failed ({done.returncode}):\n{done.stderr}")
        results = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    cuda = False
    for r in results:
        mib = 1 << 20
        gpu = r["device"] == "cuda"
        cuda = cuda or gpu
        what = "max_memory_allocated growth" if gpu else "peak RSS growth (VmHWM), CPU: not the GPU figure"
        rows.append(
            row(
                SECTION,
                f"{r['name']}, batch {r['batch']}, {r['device']}",
                r["estimate"] / mib,
                median(r["peaks"]) / mib,
                "MiB",
                [r["estimate"] / p for p in r["peaks"]],
                f"estimate ÷ measured {what}; fp32, Adam (target on GPU: 0.8–1.2)"
                + ("; --quick: in this process, no warm-up, not a figure to quote" if quick else ""),
            )
        )
    if not cuda:
        rows.append(skipped(SECTION, "GPU max_memory_allocated (fp32/bf16, SGD/Adam)", "needs CUDA"))
    return rows


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child("--quick" in sys.argv)
    else:
        for r in run("--quick" in sys.argv):
            print(r)
