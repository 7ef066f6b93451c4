"""What a lent GPU machine must prove besides the benchmark's figures (``scripts/gpu_check.sh`` runs it).

It runs anywhere, on CUDA when there is one, so it can be tried on a laptop first:

1. determinism: each layer configuration of netspec's table of kernels without a deterministic
   version (``netspec.training.determinism``), and near misses that have one, run forward and
   backward under ``torch.use_deterministic_algorithms(True, warn_only=True)``: PyTorch must warn
   exactly where the table says it will, on this device. So must a dense cross-entropy loss.
2. the two training loops (``train.loop: fast`` and ``lightning``) end on the same weights, bit for
   bit, with ``deterministic: true``: float32, bf16-mixed and, on CUDA, 16-mixed (a real GradScaler).
3. the gallery's trainable specs train a few steps with the default settings (deterministic:
   warn) without a crash.

    python scripts/gpu_smoke.py [--out DIR]

Prints one line per check and writes ``gpu_smoke.json`` to ``--out``; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

import netspec
from netspec.training import fit
from netspec.training.determinism import nondeterministic_layers

ROOT = Path(__file__).resolve().parent.parent
NOT_DETERMINISTIC = "does not have a deterministic implementation"
FLAT = [3, 12, 12]
CUBE = [2, 6, 6, 6]
# (case, input, layers): whether PyTorch warns must agree with netspec's table
POOL = {"type": "maxpool", "name": "p", "kernel_size": 2}
CONV = {"out_channels": 4, "kernel_size": 3, "padding": 1}
LAYER_CASES = [
    ("unpool", FLAT, [POOL, {"type": "unpool", "indices": "p"}]),
    ("adaptive_avgpool to 3", FLAT, [{"type": "adaptive_avgpool", "output_size": 3}]),
    ("adaptive_avgpool to 1", FLAT, [{"type": "adaptive_avgpool", "output_size": 1}]),
    ("adaptive_maxpool to 3", FLAT, [{"type": "adaptive_maxpool", "output_size": 3}]),
    ("adaptive_maxpool to 1", FLAT, [{"type": "adaptive_maxpool", "output_size": 1}]),
    ("avgpool 3-D", CUBE, [{"type": "avgpool", "kernel_size": 2}]),
    ("avgpool 2-D", FLAT, [{"type": "avgpool", "kernel_size": 2}]),
    ("maxpool 3-D", CUBE, [{"type": "maxpool", "kernel_size": 2}]),
    ("conv reflect", FLAT, [{"type": "conv", **CONV, "padding_mode": "reflect"}]),
    ("conv replicate", FLAT, [{"type": "conv", **CONV, "padding_mode": "replicate"}]),
    ("conv zeros", FLAT, [{"type": "conv", **CONV}]),
    ("separable reflect", FLAT, [{"type": "separable", **CONV, "padding_mode": "reflect"}]),
    ("upsample bilinear", FLAT, [{"type": "upsample", "scale_factor": 2, "mode": "bilinear"}]),
    ("upsample nearest", FLAT, [{"type": "upsample", "scale_factor": 2}]),
    ("tconv", FLAT, [{"type": "tconv", "out_channels": 4, "kernel_size": 2, "stride": 2}]),
    ("linear", [32], [{"type": "linear", "out_features": 8}]),
]
TRAINABLE = ["lenet.yaml", "segnet.yaml", "unet.yaml", "autoencoder.yaml"]


def warns(run) -> bool:
    """Does ``run()`` make PyTorch warn of a nondeterministic kernel?"""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    return any(NOT_DETERMINISTIC in str(w.message) for w in seen)


def layer_check(name: str, shape: list[int], layers: list[dict], device: str) -> dict:
    spec = netspec.load({"netspec": 1, "name": "probe", "input": shape, "layers": layers})
    said = nondeterministic_layers(spec, device)
    model = spec.build().to(device)
    x = torch.randn(4, *shape, device=device, requires_grad=True)

    def run():
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).float().square().sum().backward()

    warned = warns(run)
    return {
        "check": f"determinism: {name}",
        "ok": bool(said) == warned,
        "netspec says": said,
        "torch warned": warned,
    }


def loss_check(device: str) -> dict:
    """A dense cross-entropy (segmentation head): netspec names nll_loss2d on CUDA."""
    spec = netspec.load(
        {
            "netspec": 1,
            "name": "seg",
            "input": FLAT,
            "layers": [{"type": "conv", "out_channels": 5, "kernel_size": 1}],
        }
    )

    class Head:
        loss, index, output = "cross_entropy", 0, "conv_0"

    said = nondeterministic_layers(spec, device, [Head()])
    logits = torch.randn(4, 5, 12, 12, device=device, requires_grad=True)
    target = torch.randint(0, 5, (4, 12, 12), device=device)
    warned = warns(lambda: torch.nn.functional.cross_entropy(logits, target).backward())
    return {
        "check": "determinism: dense cross_entropy",
        "ok": bool(said) == warned,
        "netspec says": said,
        "torch warned": warned,
    }


def loops_check(precision: str, device: str) -> dict:
    """The same weights from both training loops (several chunks, step checkpoints)."""
    states = {}
    for loop in ("fast", "lightning"):
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
            result = fit(
                ROOT / "specs" / "lenet.yaml",
                overrides=[
                    "train.data={name: synthetic, num_samples: 3000, batch_size: 64}",
                    f"train.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
                    f"train.precision={precision}",
                    "train.deterministic=true",
                    "train.max_steps=40",
                    "train.checkpoint_every_n_steps=7",
                    "train.gradient_clip_val=1.0",
                    "train.progress=none",
                    f"train.loop={loop}",
                    f"train.run_dir={tmp}",
                ],
            )
            states[loop] = torch.load(result.last_checkpoint, weights_only=True, map_location="cpu")[
                "state_dict"
            ]
    different = [k for k in states["fast"] if not torch.equal(states["fast"][k], states["lightning"][k])]
    return {"check": f"both loops, precision {precision}", "ok": not different, "different": different}


def gallery_check(spec_file: str, device: str) -> dict:
    """A few steps with the spec's own settings (deterministic: warn by default)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()) as err:
        result = fit(
            ROOT / "specs" / spec_file,
            overrides=["train.max_steps=3", "train.progress=none", f"train.run_dir={tmp}"],
        )
    notes = [
        line.strip()
        for line in err.getvalue().splitlines()
        if "deterministic" in line or line.startswith("  ")
    ]
    return {
        "check": f"trains: {spec_file}",
        "ok": result.steps == 3,
        "seconds": round(time.perf_counter() - t0, 1),
        "notes": notes[:8],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"gpu_smoke on {name}: torch {torch.__version__}, netspec {netspec.__version__}", flush=True)
    checks = [lambda c=c: layer_check(*c, device) for c in LAYER_CASES]
    checks.append(lambda: loss_check(device))
    precisions = ["32", "bf16-mixed"] + (["16-mixed"] if device == "cuda" else [])
    checks += [lambda p=p: loops_check(p, device) for p in precisions]
    checks += [lambda s=s: gallery_check(s, device) for s in TRAINABLE]
    results = []
    for check in checks:
        try:
            result = check()
        except Exception:
            result = {"check": "(crashed)", "ok": False, "error": traceback.format_exc()}
        results.append(result)
        extra = {k: v for k, v in result.items() if k not in ("check", "ok")}
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {result['check']}  {json.dumps(extra)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": name, "torch": torch.__version__, "results": results}
    (args.out / "gpu_smoke.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
