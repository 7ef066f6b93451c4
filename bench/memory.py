"""Memory estimate vs measured peak: the summary's training-memory estimate (``summarize(spec,
batch_size=B, precision=…, optimizer=…).totals.training_bytes``) ÷ the memory a training step
really takes (build, batch, optimizer, two iterations of forward+backward+step, gradients set
to None between them).

The measured side counts what ``torch.cuda.max_memory_allocated`` counts, on any device: the
bytes of live tensor storages, tracked by a ``TorchDispatchMode`` that sees every storage an
aten op returns and notices each one's death through a weak reference (checked after every op),
so its peak is the largest sum of live storages between two ops. It does not count the CUDA
allocator's rounding to 512 bytes, nor scratch memory a kernel allocates and frees inside one
op (cuDNN/oneDNN workspaces). On a GPU, ``max_memory_allocated`` growth is measured too. On a
CPU, dropout keeps a mask in the input's type where CUDA's fused dropout keeps one byte (what
the estimate assumes), so dropout-heavy networks measure a little higher. Precisions: float32
and bf16-mixed (``torch.autocast`` on the device, float32 weights); optimizers: SGD, SGD with
momentum 0.9 and Adam, made as ``netspec train`` makes them (fused kernels where the device has
them: the update in place, no weight-sized temporaries). Ratios are
estimate ÷ measured (the issue's target: within ±20 %).

    python -m bench.memory [--quick] [MODEL ...]   # the table (--quick: LeNet only; MODEL: a name of MODELS)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import RESNET18_CIFAR

ROOT = Path(__file__).resolve().parent.parent
SECTION = "memory estimate vs peak"

# name, spec file, overrides, input (None: the spec's), batch (full, quick)
MODELS: tuple[tuple[str, str, list[str], tuple[int, ...] | None, tuple[int, int]], ...] = (
    ("LeNet-5", "lenet.yaml", [], None, (256, 32)),
    ("ResNet-18 3×32×32", "resnet.yaml", RESNET18_CIFAR, None, (32, 4)),
    ("ResNet-18 width 16, 3×32×32", "resnet.yaml", [*RESNET18_CIFAR, "params.width=16"], None, (64, 8)),
    ("ResNet-50 width 16, 3×64×64", "resnet50.yaml", ["params.width=16"], (3, 64, 64), (8, 2)),
    ("U-Net", "unet.yaml", [], None, (8, 2)),
    ("U-Net 1×124×124", "unet.yaml", [], (1, 124, 124), (8, 2)),
    ("MobileNetV2 3×32×32", "mobilenet_v2.yaml", ["params.classes=10"], (3, 32, 32), (16, 4)),
    (
        "VGG-11 BN 3×32×32",
        "vgg.yaml",
        ["variant=vgg11_bn", "variants.vgg11_bn.expect=null"],
        (3, 32, 32),
        (4, 2),
    ),
    ("DenseNet 3×32×32", "densenet.yaml", [], (3, 32, 32), (8, 2)),
    ("SegNet", "segnet.yaml", [], None, (4, 1)),
    ("autoencoder", "autoencoder.yaml", [], None, (64, 8)),
    ("cifar_speedrun", "cifar_speedrun.yaml", [], None, (32, 4)),
    ("YOLO 3×128×128", "yolo.yaml", [], (3, 128, 128), (2, 1)),
    ("conv1d", "conv1d.yaml", [], None, (8, 2)),
    ("conv3d", "conv3d.yaml", [], None, (2, 1)),
)
SETTINGS = (("32", "sgd"), ("32", "sgd:0.9"), ("32", "adam"), ("bf16-mixed", "sgd"), ("bf16-mixed", "adam"))
QUICK = ("LeNet-5",)  # CI: the same code paths; the figures of a quick run mean nothing


def storage_tracker():
    """A ``TorchDispatchMode`` whose ``peak`` is the largest sum of live storage bytes it saw."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class StorageTracker(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, tuple[Any, int]] = {}  # data pointer → (weak ref, bytes)
            self.current = 0
            self.peak = 0

        def sweep(self) -> None:
            for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
                self.current -= self.live.pop(key)[1]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.sweep()  # before counting the outputs: a freed address may be reused by them
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.live:
                    self.live[key] = (StorageWeakRef(storage), size)
                    self.current += size
            self.peak = max(self.peak, self.current)
            return out

    return StorageTracker()


def training_step_peak(
    spec, batch: int, precision: str = "32", optimizer: str = "adam", device: str = "cpu"
) -> dict:
    """Peak bytes of build + batch + optimizer + two training iterations (see the module docstring).

    ``optimizer``: "sgd", "sgd:MOMENTUM", "adam" or "adamw". Returns {"storage": peak of live
    storages, "cuda": max_memory_allocated growth (None off CUDA)}.
    """
    import torch
    import torch.nn.functional as F

    from netspec.training.config import OptimizerSpec
    from netspec.training.optim import make_optimizer

    name, _, momentum = optimizer.partition(":")
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    with storage_tracker() as tracker:
        model = spec.build().to(device)
        # the optimizer netspec trains with (fused where the device has the kernels)
        opt = make_optimizer(
            OptimizerSpec(name=name, lr=1e-3, momentum=float(momentum or 0)), list(model.parameters())
        )
        x = torch.randn(batch, *spec.input_shape, device=device)
        targets = [torch.randn(batch, *shape, device=device) for shape in spec.output_shapes()]
        for _ in range(2):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                out = model(x)
                outs = out if isinstance(out, tuple | list) else (out,)
                loss = sum(F.mse_loss(o.float(), t) for o, t in zip(outs, targets, strict=True))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        del out, outs, loss
    peak = {"storage": tracker.peak, "cuda": None}
    if cuda:
        torch.cuda.synchronize()
        peak["cuda"] = torch.cuda.max_memory_allocated() - before
    return peak


def _load(spec_file: str, overrides: list[str], input_shape):
    import netspec

    return netspec.load(ROOT / "specs" / spec_file, overrides=overrides, input_shape=input_shape)


def _measurements(quick: bool, names: tuple[str, ...] | None = None, show=None) -> list[dict]:
    import torch

    from netspec.summary import summarize

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(min(4, torch.get_num_threads()))
    out = []
    for name, spec_file, overrides, input_shape, (full, small) in MODELS:
        if (names and name not in names) or (quick and name not in QUICK):
            continue
        spec = _load(spec_file, overrides, input_shape)
        batch = small if quick else full
        for precision, optimizer in SETTINGS:
            m = summarize(spec, batch_size=batch, precision=precision, optimizer=optimizer).totals.memory
            peak = training_step_peak(spec, batch, precision, optimizer, device)
            out.append(
                {
                    "name": name,
                    "batch": batch,
                    "device": device,
                    "precision": precision,
                    "optimizer": optimizer,
                    "estimate": m.total,
                    "old_estimate": _old_estimate(spec, batch),
                    "storage": peak["storage"],
                    "cuda": peak["cuda"],
                    "peak_at": m.peak_at,
                }
            )
            if show:
                show(out[-1])
    return out


def _old_estimate(spec, batch: int) -> int:
    """The estimate before issue #12: float32 weights + gradients + Adam + every layer output."""
    from netspec.summary import summarize

    t = summarize(spec, batch_size=batch).totals
    return t.param_bytes + 3 * t.trainable * 4 + t.activation_bytes


def run(quick: bool, gpu_only: bool = False) -> list[dict]:
    """Measured on the GPU where there is one (so ``gpu_only`` changes nothing)."""
    from bench.common import row

    rows = []
    for r in _measurements(quick):
        mib = 1 << 20
        measured = r["cuda"] if r["cuda"] is not None else r["storage"]
        what = "max_memory_allocated growth" if r["cuda"] is not None else "peak of live tensor storages"
        rows.append(
            row(
                SECTION,
                f"{r['name']}, batch {r['batch']}, {_precision(r['precision'])}, {r['optimizer']}, "
                f"{r['device']}",
                r["estimate"] / mib,
                measured / mib,
                "MiB",
                [r["estimate"] / measured],
                f"estimate ÷ measured {what} (target 0.8–1.2); the old estimate's ratio: "
                f"{r['old_estimate'] / measured:.2f}; peak at {r['peak_at']}",
            )
        )
    return rows


def _precision(precision: str) -> str:
    return "float32" if precision == "32" else precision


HEADER = (
    "| model | batch | precision | optimizer | measured | estimate | ratio | old ratio | peak at |\n"
    "|---|---:|---|---|---:|---:|---:|---:|---|"
)


def table_row(r: dict) -> str:
    """Markdown: the case, measured and estimated peaks, the new and the old ratio."""
    measured = r["cuda"] if r["cuda"] is not None else r["storage"]
    return (
        f"| {r['name']} | {r['batch']} | {_precision(r['precision'])} | {r['optimizer']} | "
        f"{measured / 2**20:.2f} MiB | {r['estimate'] / 2**20:.2f} MiB | "
        f"**{r['estimate'] / measured:.3f}** | "
        f"{r['old_estimate'] / measured:.2f} | {r['peak_at']} |"
    )


if __name__ == "__main__":
    only = tuple(a for a in sys.argv[1:] if not a.startswith("--"))
    print(HEADER, flush=True)
    _measurements("--quick" in sys.argv, only or None, show=lambda r: print(table_row(r), flush=True))
