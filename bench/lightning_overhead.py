"""What Lightning's training loop costs per step, apart from netspec: the data for issue #12's
"steps ≥ 0.95 × plain" on small networks.

The same LeNet (``specs/lenet.yaml``), data, batch size and fused Adam on one CPU thread, trained
by four loops, each interleaved epoch by epoch with a plain PyTorch loop:

- ``automatic``: a bare ``LightningModule`` (``training_step`` returns the loss), as netspec uses;
- ``manual K``: manual optimization, the loader yielding chunks of K batches and ``training_step``
  making K optimizer steps (``manual_backward``, ``opt.step``, ``opt.zero_grad``): Lightning's
  per-batch machinery is paid once per K steps.

and, for the Python calls only, ``netspec train`` itself in both of its loops (``train.loop:
lightning``, automatic optimization; ``fast``, the manual K-step loop netspec builds on the last
rows' finding: :mod:`netspec.training.chunks`).

Two figures per loop: Python function calls per optimizer step (cProfile over one epoch; does not
depend on the machine's load) and the time per step of the fastest 3 epochs of each side (this
VM's epochs come in two speed bands; the fastest ones of both sides are comparable). glibc's
malloc thresholds are raised as in ``bench/train_speed.py``. Nothing here is a test.

    python -m bench.lightning_overhead [--rounds 2] [--epochs 7] [--quick]

About 2 minutes on 2 cores; ``--quick`` (tiny, for the test suite: its figures mean nothing) ~10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import pstats
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import netspec
from bench.train_speed import SPEC, mallopt

SAMPLES, BATCH = 64 * 100, 64
FASTEST = 3  # epochs per side that make the time figure


class Chunks:
    """Shuffled batches of in-memory tensors, K at a time (one batch, not a list of one, for K=1).
    Only whole batches: each epoch has ``len(x) // BATCH`` steps on every side."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, k: int):
        self.x, self.y, self.k = x, y, k

    def __iter__(self):
        perm, chunk = torch.randperm(len(self.x)), []
        for i in range(0, len(self.x), BATCH):
            idx = perm[i : i + BATCH]
            chunk.append((self.x[idx], self.y[idx]))
            if len(chunk) == self.k:
                yield chunk if self.k > 1 else chunk[0]
                chunk = []
        if chunk:  # the epoch's last, shorter chunk: every side makes the same number of steps
            yield chunk

    def __len__(self) -> int:
        return -(-(len(self.x) // BATCH) // self.k)


class Automatic(pl.LightningModule):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), 1e-3, fused=True)


class Manual(Automatic):
    def __init__(self, model: torch.nn.Module):
        super().__init__(model)
        self.automatic_optimization = False

    def training_step(self, chunk, batch_idx):
        opt = self.optimizers()
        for x, y in chunk if isinstance(chunk, list) else [chunk]:
            self.manual_backward(F.cross_entropy(self.model(x), y))
            opt.step()
            opt.zero_grad()


def plain_epoch(model, opt, x, y) -> float:
    """Seconds per step of one epoch of the hand-written loop."""
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = perm[i : i + BATCH]
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - t0) / (len(x) // BATCH)


class Side(pl.Callback):
    """A plain epoch before each Lightning epoch; both timed; epoch 1 of the first round profiled."""

    def __init__(self, spec, x, y, profile: bool):
        self.plain_model = spec.build()
        self.plain_opt = torch.optim.Adam(self.plain_model.parameters(), 1e-3, fused=True)
        self.x, self.y, self.profile = x, y, profile
        self.plain: list[float] = []
        self.ours: list[float] = []
        self.profiler = cProfile.Profile()

    def on_train_epoch_start(self, trainer, module):
        self.plain.append(plain_epoch(self.plain_model, self.plain_opt, self.x, self.y))
        if self.profile and trainer.current_epoch == 1:
            self.profiler.enable()
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.ours.append((time.perf_counter() - self.t0) / (len(self.x) // BATCH))
        if self.profile and trainer.current_epoch == 1:
            self.profiler.disable()


def plain_calls(spec, x, y) -> float:
    model = spec.build()
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
    plain_epoch(model, opt, x, y)
    profiler = cProfile.Profile()
    profiler.enable()
    plain_epoch(model, opt, x, y)
    profiler.disable()
    return _calls(profiler) / (len(x) // BATCH)


def netspec_calls(loop: str, samples: int) -> float:
    """Python calls a training step of ``netspec train`` (synthetic data, LeNet, fused Adam), over
    its second epoch: from the epoch's start to its validation."""
    import tempfile

    from netspec.training import fit, run

    profiler, state = cProfile.Profile(), {}

    class Profile(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 1:
                profiler.enable()

        def on_validation_start(self, trainer, module):
            if trainer.current_epoch == 1:
                profiler.disable()
                state["steps"] = trainer.num_training_batches

    made = run._callbacks
    run._callbacks = lambda *a, **k: ([*made(*a, **k)[0], Profile()], made(*a, **k)[1])
    try:
        with tempfile.TemporaryDirectory(prefix="netspec-overhead-") as tmp:
            sets = [
                "train.data.name=synthetic",
                f"train.data.num_samples={samples * 3 // 2}",  # train split ≈ samples (the rest: val, test)
                f"train.data.batch_size={BATCH}",
                "train.optimizer={name: adam, lr: 0.001}",
                "train.scheduler={name: none, warmup_steps: 0}",
                "train.max_epochs=2",
                "train.progress=none",
                f"train.loop={loop}",
                f"train.run_dir={tmp}",
            ]
            with contextlib.redirect_stderr(io.StringIO()):  # its notice of the task
                fit(SPEC, overrides=sets)
    finally:
        run._callbacks = made
    return _calls(profiler) / state["steps"]


def _calls(profiler: cProfile.Profile) -> int:
    return sum(stats[1] for stats in pstats.Stats(profiler).stats.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1 round, 2 epochs of 10 steps")
    args = parser.parse_args()
    samples = BATCH * 10 if args.quick else SAMPLES
    if args.quick:
        args.rounds, args.epochs = 1, 2
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    mallopt()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = netspec.load(SPEC)
    x, y = torch.randn(samples, *spec.input_shape), torch.randint(0, 10, (samples,))
    steps = samples // BATCH
    print(
        f"LeNet, {steps} steps an epoch of batch {BATCH}, fused Adam, 1 CPU thread; "
        f"torch {torch.__version__}, pytorch-lightning {pl.__version__}"
    )
    print(f"  plain loop: {plain_calls(spec, x, y):,.0f} Python calls a step")
    for loop in ("lightning", "fast"):
        print(f"  netspec train, train.loop: {loop}: {netspec_calls(loop, samples):,.0f} Python calls a step")
    loops = (
        ("automatic", Automatic, 1),
        ("manual K=1", Manual, 1),
        ("manual K=4", Manual, 4),
        ("manual K=8", Manual, 8),
    )
    for name, cls, k in loops:
        calls, lines = None, []
        for round_ in range(args.rounds):
            side = Side(spec, x, y, profile=round_ == 0)
            trainer = pl.Trainer(
                max_epochs=args.epochs + 1,
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                callbacks=[side],
            )
            trainer.fit(cls(spec.build()), train_dataloaders=Chunks(x, y, k))
            if round_ == 0:
                calls = _calls(side.profiler) / steps
            plain = statistics.mean(sorted(side.plain[1:])[:FASTEST])
            ours = statistics.mean(sorted(side.ours[1:])[:FASTEST])
            lines.append(f"{(ours - plain) * 1e3:+.2f} ms ({plain / ours:.3f})")
        print(
            f"  {name:<11} {calls:6,.0f} calls a step; per step vs plain (ratio), by round: "
            + ", ".join(lines)
        )


if __name__ == "__main__":
    main()
