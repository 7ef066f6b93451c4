"""What does ``netspec train`` cost? Training throughput of ``fit`` vs a hand-written PyTorch loop.

Both sides train the same network (``spec.build()`` of specs/lenet.yaml or ``--spec``, same
seed, so the same initial weights) on the same tensors (the ``synthetic`` dataset at the spec's input shape,
loaded once through netspec's dataset registry; ``fit`` loads it again with the same
parameters and seed, and the bench checks that the tensors are equal), with the same optimizer
(Adam, lr 1e-3, no schedule, made by netspec's ``make_optimizer``: fused kernels where the
device has them), batch size, precision and determinism flags, on the same device.

- plain: the loop a careful user writes by hand. Tensors on the device, ``randperm`` each epoch,
  slice the batches, forward, ``cross_entropy``, backward, ``step``, ``zero_grad``, and one
  ``loss.item()`` per epoch. Its "validation" variant adds a no-grad pass over the validation
  split (summed loss and accuracy, one ``.item()`` each).
- netspec: ``netspec.training.fit(spec, overrides=[...])``, unchanged. A Lightning callback,
  added by wrapping ``netspec.training.run._callbacks`` in this script, reads the clock at
  the start of each training epoch, after its last training batch, around validation and at
  the end of training (after a CUDA synchronize where it matters, as the plain loop does).

The two sides run interleaved, epoch by epoch: at the start of each netspec epoch the callback
first runs one plain epoch (its own model and optimizer; not counted in netspec's times), so
every netspec epoch has a plain epoch run just before it, under the same load on the machine.
Three figures, each the median over the measured epochs (the first epoch of every run is
warm-up, not counted: one-time allocation, oneDNN primitive creation, torch.compile):

1. training epochs only: epoch start → last optimizer step done. Excludes validation,
   checkpointing, epoch-end logging, start-up and the final test. Target: netspec throughput
   ≥ 0.95 × plain (the median of the per-epoch ratios).
2. epochs with validation: netspec from one epoch start to the next (training, validation,
   checkpoint saving, epoch-end logging) vs plain training + validation pass.
3. the whole run: ``fit()`` wall time (start-up, every epoch, test, curves.png) vs plain
   data loading + build + the same epochs + a test pass.

With ``--compile``, both sides count what ``torch.compile`` built during their run (dynamo's
``unique_graphs`` and compiled frames, ``netspec.training.fast.compile_counts``): netspec should
need 2 graphs (training step, evaluation: validation and test share it), each compiled once.

Each round is a fresh ``fit`` and a fresh plain model; one plain epoch before the rounds warms
the process up (imports, oneDNN, torch.compile caches) and is not counted either.
Nothing here is a test: it prints figures, it asserts nothing about time. Usage:

    python bench/train_speed.py [--quick] [--device cpu|cuda] [--precision 32|bf16-mixed]
        [--compile] [--epochs 5] [--samples 30000] [--batch-size 64] [--rounds 2] [--spec SPEC]
        [--threads N] [--no-mallopt] [--set train.deterministic=false ...] [--profile [TOP]]

The default CPU run takes about 2 minutes on 2 cores; ``--quick`` (one round, 2 measured
epochs, 10000 samples) about 20 s. On a machine with a GPU, run:

    python bench/train_speed.py --device cuda
    python bench/train_speed.py --device cuda --precision bf16-mixed --compile
    python bench/train_speed.py --device cuda --samples 200000 --batch-size 1024
    python bench/train_speed.py --device cuda --quick --profile

(LeNet's steps take well under a millisecond of GPU time at batch 64, so there the ratio mostly
measures how many milliseconds of Python and host-device synchronisation each step costs;
``--profile`` shows where they go, ``.item()`` and ``torch.unique`` waits included.)

Both sides run in one process with glibc's malloc thresholds raised (``--no-mallopt`` keeps the
defaults): otherwise, at random from one process to the next, the few MiB of activations a step
allocates go back to the kernel after every step and are faulted in again, which costs 1–3 ms per
step on either side and swamps the difference measured here; the report gives the page faults.

netspec's default ``train.deterministic=warn`` makes Lightning turn on
``torch.use_deterministic_algorithms`` (warn_only) (deterministic kernels, NaN-filled ``torch.empty``) and
turn off cudnn.benchmark, and netspec makes the optimizer with PyTorch's fused kernels where the
device has them. The plain loop gets the same flags and the same optimizer, so its ratio is the
framework's cost alone; a second plain loop, interleaved the same way, runs with torch's defaults
(flags, and the optimizer's default implementation: a for-loop over the tensors on a CPU) as a
user's own loop would, and its line shows what netspec's choices buy or cost on top.
``--set train.deterministic=false`` runs everything without the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import netspec
import netspec.training.run as netspec_run
from netspec import inputcheck
from netspec.data import DataContext
from netspec.plugins import default_registry
from netspec.training.fast import compile_counts
from netspec.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "lenet.yaml"
TARGET = 0.95
LABEL = 44  # width of the label column of the report
ROOTS = ("netspec", "pytorch_lightning", "lightning_fabric", "torchmetrics", "lightning_utilities", "torch")


# ---------------------------------------------------------------- set-up shared by both sides


@dataclass
class Setup:
    path: Path
    spec: object
    cfg: object
    device: torch.device
    precision: str
    compile: bool
    train: tuple[torch.Tensor, torch.Tensor]  # on the CPU, as loaded
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    load_s: float  # time to load the dataset (part of the plain whole-run figure)
    overrides: list[str]

    @property
    def n_train(self) -> int:
        return len(self.train[0])

    @property
    def steps(self) -> int:
        return -(-self.n_train // self.cfg.data.batch_size)


def overrides(args, run_dir: str | None = None) -> list[str]:
    """The ``--set`` list that makes ``fit`` train what the plain loop trains."""
    out = [
        "train.data.name=synthetic",
        f"train.data.batch_size={args.batch_size}",
        "train.optimizer.name=adam",
        "train.optimizer.lr=0.001",
        "train.scheduler.name=none",
        "train.scheduler.warmup_steps=0",
        f"train.max_epochs={args.epochs + 1}",
        f"train.precision={args.precision}",
        f"train.compile={'true' if args.compile else 'false'}",
        f"train.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "train.devices=1",
        "train.progress=none",
        *args.set,
    ]
    if getattr(args, "data", "synthetic") == "synthetic":
        out.insert(1, f"train.data.num_samples={args.samples}")
    else:
        out[0] = f"train.data.name={args.data}"
    if run_dir is not None:
        out.append(f"train.run_dir={run_dir}")
    return out


def set_flags(deterministic: bool | str) -> None:
    """The global flags Lightning sets for ``deterministic`` (they stay set after ``fit``)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")


def load_setup(args) -> Setup:
    spec = netspec.load(args.spec, overrides=overrides(args))
    cfg = spec.model.train
    if (
        cfg.loss not in (None, "auto", "cross_entropy")
        or len(spec.outputs) != 1
        or len(spec.output_shapes()[0]) != 1
    ):
        raise SystemExit(
            f"{args.spec}: the bench needs a classifier (one output of class scores, cross_entropy)"
        )
    set_flags(cfg.deterministic)
    record = default_registry().datasets[cfg.data.name]
    own = {k: v for k, v in cfg.data.model_dump().items() if k in record.params.model_fields}
    t0 = time.perf_counter()
    splits = record.load(record.params(**own), DataContext(tuple(spec.input_shape), cfg.seed, ROOT / "data"))
    load_s = time.perf_counter() - t0
    test = splits.test if splits.test is not None else splits.val
    return Setup(
        Path(args.spec),
        spec,
        cfg,
        torch.device(args.device),
        str(args.precision),
        args.compile,
        tuple(splits.train.tensors),
        tuple(splits.val.tensors),
        tuple(test.tensors),
        load_s,
        overrides(args),
    )


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def mallopt() -> str:
    """Stop glibc from giving the per-step activation buffers back to the kernel after each step.

    With the default (dynamic) thresholds, depending on the heap's layout, glibc may trim or unmap
    the few MiB a step allocates and the next step faults them in again: ~1000 minor page faults
    and 1–3 ms per step on 2 CPU cores, on either side, at random from one process to the next.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-1, 1 << 30) and libc.mallopt(-3, 32 << 20)  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return "default (no glibc)"
    return "glibc trim threshold 1 GiB, mmap threshold 32 MiB" if ok else "default (mallopt failed)"


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _amp(setup: Setup):
    if setup.precision == "bf16-mixed":
        return torch.autocast(setup.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- plain PyTorch


@dataclass
class Times:
    """Seconds per epoch (all epochs of a run, warm-up first) and the other phases of a run."""

    train: list[float] = field(default_factory=list)  # epoch start → last step done
    val: list[float] = field(default_factory=list)  # the validation pass
    epoch: list[float] = field(default_factory=list)  # epoch start → next epoch start
    faults: list[int] = field(default_factory=list)  # minor page faults while training, per epoch
    startup: float = 0.0
    after: float = 0.0  # after the last epoch: test (and, for netspec, curves.png)
    total: float = 0.0
    val_acc: float = math.nan
    same_data: bool | None = None
    same_weights: bool | None = None
    graphs: int = 0  # torch.compile: graphs built for this side's network (2 = train + eval)
    compiles: int = 0  # frames compiled (a recompile counts again)


def _evaluate(model, x, y, setup: Setup) -> tuple[float, float]:
    bs = setup.cfg.data.batch_size
    model.eval()
    with torch.inference_mode(), _amp(setup):
        loss_sum = torch.zeros((), device=setup.device)
        correct = torch.zeros((), dtype=torch.long, device=setup.device)
        for start in range(0, len(x), bs):
            out = model(x[start : start + bs])
            target = y[start : start + bs]
            loss_sum += F.cross_entropy(out.float(), target, reduction="sum")
            correct += (out.argmax(1) == target).sum()
        loss, acc = loss_sum.item() / len(x), correct.item() / len(x)
    model.train()
    return loss, acc


@contextlib.contextmanager
def torch_defaults():
    """torch's default flags instead of the deterministic ones Lightning sets for netspec."""
    deterministic, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


class Plain:
    """The hand-written loop: its own copy of the network and optimizer, trained an epoch at a time.

    With ``defaults``, it is a user's own loop: torch's default flags (not deterministic, whatever
    netspec's ``train.deterministic`` says) and the optimizer's default implementation, not the
    fused one netspec makes.
    """

    def __init__(self, setup: Setup, defaults: bool = False):
        self.setup, self.defaults = setup, defaults
        self.sync = _sync(setup.device)
        self.times = Times()
        self.sync()
        t0 = time.perf_counter()
        torch.manual_seed(setup.cfg.seed)
        model = setup.spec.build().to(setup.device)
        # the first-call input check of a built network stays installed under torch.compile (it
        # never sees an eager call) and makes dynamo recompile until its limit: take it off
        inputcheck.uninstall(model)
        self.model = torch.compile(model) if setup.compile else model
        if defaults:
            self.opt = torch.optim.Adam(model.parameters(), lr=setup.cfg.optimizer.lr)
        else:  # the optimizer netspec trains with (fused where the device has the kernels)
            self.opt = make_optimizer(setup.cfg.optimizer, list(model.parameters()))
        self.x, self.y = (t.to(setup.device) for t in setup.train)
        self.xv, self.yv = (t.to(setup.device) for t in setup.val)
        self.gen = torch.Generator(setup.device).manual_seed(setup.cfg.seed)  # its own shuffles
        self.sync()
        self.times.startup = time.perf_counter() - t0

    def epoch(self) -> None:
        before = compile_counts()
        with torch_defaults() if self.defaults else contextlib.nullcontext():
            self._epoch()
        self._count(before)

    def _count(self, before: dict[str, int]) -> None:
        after = compile_counts()
        self.times.graphs += after["graphs"] - before["graphs"]
        self.times.compiles += after["frames"] - before["frames"]

    def _epoch(self) -> None:
        model, opt, x, y = self.model, self.opt, self.x, self.y
        setup = self.setup
        n, bs, smoothing = len(x), setup.cfg.data.batch_size, setup.cfg.label_smoothing or 0.0
        self.sync()
        f0, t0 = _faults(), time.perf_counter()
        perm = torch.randperm(n, device=x.device, generator=self.gen)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            with _amp(setup):
                loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=smoothing)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        self.sync()
        t1 = time.perf_counter()
        self.times.faults.append(_faults() - f0)
        _, self.times.val_acc = _evaluate(model, self.xv, self.yv, setup)
        self.sync()
        t2 = time.perf_counter()
        self.times.train.append(t1 - t0)
        self.times.val.append(t2 - t1)
        self.times.epoch.append(t2 - t0)

    def test(self) -> Times:
        before = compile_counts()
        t0 = time.perf_counter()
        _evaluate(self.model, *(t.to(self.setup.device) for t in self.setup.test), self.setup)
        self.sync()
        self.times.after = time.perf_counter() - t0
        self._count(before)
        # a plain run loads its data too
        self.times.total = self.setup.load_s + self.times.startup + sum(self.times.epoch) + self.times.after
        return self.times


# ---------------------------------------------------------------- netspec fit()


class Clock(pl.Callback):
    """Reads the clock at epoch boundaries, after the last training batch and around validation;
    runs a plain epoch at the start of each netspec epoch, before netspec's epoch clock starts."""

    def __init__(self, setup: Setup, initial: list[torch.Tensor], plains: list[Plain]):
        self.setup, self.initial, self.plains = setup, initial, plains
        self.sync = _sync(setup.device)
        self.times = Times()
        self.marks: dict[str, list[float]] = {
            key: [] for key in ("entry", "epoch", "trained", "val_start", "val_end")
        }
        self.faults: dict[str, list[int]] = {}
        self.train_start = self.train_end = math.nan
        self.plain_compiles = {"graphs": 0, "frames": 0}  # compiled by the plain epochs run in between

    def _mark(self, key: str) -> None:
        self.sync()
        self.marks[key].append(time.perf_counter())
        self.faults.setdefault(key, []).append(_faults())

    def on_train_start(self, trainer, pl_module):
        self.sync()
        self.train_start = time.perf_counter()
        dm = trainer.datamodule
        loaded = (*dm.splits.train.tensors, *dm.splits.val.tensors)
        self.times.same_data = all(
            torch.equal(a, b) for a, b in zip(loaded, (*self.setup.train, *self.setup.val), strict=True)
        )
        params = [p.detach().cpu() for p in pl_module.model.parameters()]
        self.times.same_weights = len(params) == len(self.initial) and all(
            torch.equal(a, b) for a, b in zip(params, self.initial, strict=False)
        )

    def on_train_epoch_start(self, trainer, pl_module):
        self._mark("entry")  # the previous netspec epoch ends here
        before = compile_counts()
        for plain in self.plains:
            plain.epoch()
        after = compile_counts()
        self.plain_compiles["graphs"] += after["graphs"] - before["graphs"]
        self.plain_compiles["frames"] += after["frames"] - before["frames"]
        self._mark("epoch")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == trainer.num_training_batches - 1:
            self._mark("trained")

    def on_validation_start(self, trainer, pl_module):
        self._mark("val_start")

    def on_validation_end(self, trainer, pl_module):
        self._mark("val_end")

    def on_train_end(self, trainer, pl_module):
        self.sync()
        self.train_end = time.perf_counter()


def warm_up(setup: Setup, initial: list[torch.Tensor]) -> None:
    """Process warm-up, not counted: imports, oneDNN primitives, torch.compile's caches (whichever
    side ran first would otherwise pay them in its start-up and whole-run figures), and netspec's
    first ``fit()``, which pays Lightning's lazy imports and first-run set-up (~0.4 s)."""
    warm = Plain(setup)
    warm.epoch()
    warm.test()
    if setup.compile:  # netspec's graphs differ from the plain loop's: warm inductor's caches for both
        netspec_run_once(setup, initial)
        return
    with tempfile.TemporaryDirectory(prefix="netspec-train-speed-") as tmp:
        netspec_run.fit(setup.path, overrides=[*setup.overrides, "train.max_steps=2", f"train.run_dir={tmp}"])


def netspec_run_once(setup: Setup, initial: list[torch.Tensor], plains: tuple[Plain, ...] = ()) -> Times:
    """One ``fit``; an epoch of each of ``plains`` before each of its epochs (taken out of its times)."""
    clock = Clock(setup, initial, list(plains))
    original = netspec_run._callbacks

    def callbacks(*args, **kwargs):
        found, checkpoint = original(*args, **kwargs)
        return [*found, clock], checkpoint

    netspec_run._callbacks = callbacks
    try:
        with tempfile.TemporaryDirectory(prefix="netspec-train-speed-") as tmp:
            before = compile_counts()
            t0 = time.perf_counter()
            result = netspec_run.fit(setup.path, overrides=[*setup.overrides, f"train.run_dir={tmp}/run"])
            t_end = time.perf_counter()
            after = compile_counts()
    finally:
        netspec_run._callbacks = original
    m, times = clock.marks, clock.times
    if len(m["trained"]) != len(m["epoch"]) or len(m["val_end"]) != len(m["epoch"]):
        raise SystemExit(f"unexpected hook sequence: {m}")
    ends = [*m["entry"][1:], clock.train_end]
    times.train = [b - a for a, b in zip(m["epoch"], m["trained"], strict=True)]
    times.val = [b - a for a, b in zip(m["val_start"], m["val_end"], strict=True)]
    times.faults = [b - a for a, b in zip(clock.faults["epoch"], clock.faults["trained"], strict=True)]
    times.epoch = [b - a for a, b in zip(m["epoch"], ends, strict=True)]
    plain_s = sum(b - a for a, b in zip(m["entry"], m["epoch"], strict=True))
    times.startup = m["entry"][0] - t0
    times.after = t_end - clock.train_end
    times.total = t_end - t0 - plain_s
    times.val_acc = result.metrics.get("val_acc", math.nan)
    times.graphs = after["graphs"] - before["graphs"] - clock.plain_compiles["graphs"]
    times.compiles = after["frames"] - before["frames"] - clock.plain_compiles["frames"]
    return times


# ---------------------------------------------------------------- --profile


def _where(key: tuple) -> str:
    path, line, name = key
    if path == "~":
        return name
    parts = Path(path).parts
    for root in ROOTS:
        if root in parts:
            i = len(parts) - 1 - parts[::-1].index(root)
            return f"{'/'.join(parts[i:])}:{line}({name})"
    return f"{Path(path).name}:{line}({name})"


def profile(setup: Setup, initial: list[torch.Tensor], top: int) -> None:
    """One more ``fit`` under cProfile: where the time goes, per training step (all epochs, warm-up too)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    times = netspec_run_once(setup, initial)  # no plain epochs in between
    prof.disable()
    steps = setup.steps * len(times.train)
    # {(file, line, name): (calls, primitive calls, self seconds, cumulative seconds, callers)}
    stats = pstats.Stats(prof).stats
    print(
        f"--profile: one fit() under cProfile ({steps} training steps, validation and test included; "
        "cProfile inflates Python-heavy code), ms per training step"
    )
    print(f"  top {top} by self time:")
    for key, (_, calls, self_s, _cum, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]:
        print(f"    {self_s / steps * 1e3:8.3f}  {calls / steps:6.1f} calls/step  {_where(key)}")
    # functions of netspec, Lightning and torchmetrics called every step, less the loop frames that
    # contain the forward and backward passes (cumulative time over 40% of the longest per-step one)
    ours = ("netspec/", "pytorch_lightning/", "torchmetrics/", "lightning_utilities/")
    per_step = [kv for kv in stats.items() if kv[1][1] >= 0.9 * steps and _where(kv[0]).startswith(ours)]
    longest = max((kv[1][3] for kv in per_step if kv[1][1] <= 1.1 * steps), default=math.inf)
    wanted = [kv for kv in per_step if kv[1][3] < 0.4 * longest]
    print(
        f"  top {top} netspec / Lightning / torchmetrics functions called every step, by cumulative time "
        f"(loop frames over {0.4 * longest / steps * 1e3:.1f} ms/step left out):"
    )
    for key, (_, calls, _self, cum_s, _) in sorted(wanted, key=lambda kv: -kv[1][3])[:top]:
        print(f"    {cum_s / steps * 1e3:8.3f}  {calls / steps:6.1f} calls/step  {_where(key)}")


# ---------------------------------------------------------------- report


def _line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<{LABEL}}{value}{'   ' + note if note else ''}")


def _measured(runs: list[Times], attr: str) -> list[float]:
    """Every epoch but the first (warm-up) of every run."""
    return [t for run in runs for t in getattr(run, attr)[1:]]


def _rate(setup: Setup, seconds: float) -> str:
    return f"{setup.n_train / seconds:10,.0f} samples/s"


def _side(setup: Setup, label: str, epochs: list[float]) -> float:
    med = statistics.median(epochs)
    _line(
        label,
        _rate(setup, med),
        f"{med:6.3f} s/epoch  {med / setup.steps * 1e3:6.2f} ms/step  "
        f"[min {min(epochs):.3f}, max {max(epochs):.3f} s; {len(epochs)} epochs]",
    )
    return med


def _ratio(label: str, plain: float, ours: float) -> None:
    _line(label, f"{plain / ours:10.3f} ×", f"netspec costs {(ours - plain) * 1e3:+.0f} ms per epoch")


def _paired(label: str, pairs: list[float], target: float | None = None) -> None:
    ratio = statistics.median(pairs)
    spread = f"[min {min(pairs):.3f}, max {max(pairs):.3f}]"
    note = f"median of per-epoch ratios (each vs the plain epoch just before it) {spread}"
    if target is not None:
        note = f"target ≥ {target:.2f}: {'met' if ratio >= target else 'NOT MET'}; {note}"
    _line(label, f"{ratio:10.3f} ×", note)


def report(setup: Setup, args, plain: list[Times], ours: list[Times], user: list[Times], wall: float) -> None:
    cfg, spec = setup.cfg, setup.spec
    threads = f", {torch.get_num_threads()} threads" if setup.device.type == "cpu" else ""
    device = torch.cuda.get_device_name() if setup.device.type == "cuda" else f"cpu{threads}"
    measured = args.epochs * len(plain)
    data = f"synthetic, {args.samples:,} samples → " if args.data == "synthetic" else f"{args.data}: "
    print(
        f"netspec training overhead: {_shown(setup.path)} ({spec.name}) on {device}\n"
        f"  data: {data}{setup.n_train:,} train / "
        f"{len(setup.val[0]):,} val / {len(setup.test[0]):,} test, shape {list(spec.input_shape)}; "
        f"batch {cfg.data.batch_size} ({setup.steps} steps/epoch)\n"
        f"  Adam lr {cfg.optimizer.lr:g}, precision {setup.precision}, "
        f"compile {'on' if setup.compile else 'off'}, deterministic {'on' if cfg.deterministic else 'off'}; "
        f"torch {torch.__version__}, "
        f"pytorch-lightning {pl.__version__}\n"
        f"  {len(plain)} round(s) × ({args.epochs} measured + 1 warm-up epoch) per side, interleaved "
        f"epoch by epoch; medians over {measured} measured epochs per side"
    )
    print(
        "1. training epochs only (epoch start → last optimizer step; excludes the warm-up epoch,\n"
        "   validation, checkpointing, epoch-end logging, start-up and test)"
    )
    p = _side(setup, "plain PyTorch loop", _measured(plain, "train"))
    o = _side(setup, "netspec fit()", _measured(ours, "train"))
    _paired("ratio netspec / plain throughput", _pairs(plain, ours, "train"), TARGET)
    _ratio("ratio of the medians above", p, o)
    if user:
        _side(setup, "plain loop, torch's defaults", _measured(user, "train"))
        _paired("ratio netspec / that loop", _pairs(user, ours, "train"))
    pf, of = (statistics.median(_measured(runs, "faults")) / setup.steps for runs in (plain, ours))
    _line("minor page faults per step: plain / netspec", f"{pf:8.1f} / {of:.1f}", f"malloc: {args.malloc}")
    _line("netspec cost per training step", f"{(o - p) / setup.steps * 1e3:+10.3f} ms")
    print(
        "2. epochs with validation (plain: training + no-grad pass over val; netspec: epoch start\n"
        "   → next epoch start: training, validation, checkpoint saving, epoch-end logging)"
    )
    p = _side(setup, "plain PyTorch loop + validation", _measured(plain, "epoch"))
    o = _side(setup, "netspec fit() epoch", _measured(ours, "epoch"))
    _paired("ratio netspec / plain throughput", _pairs(plain, ours, "epoch"))
    _ratio("ratio of the medians above", p, o)
    pv, ov = statistics.median(_measured(plain, "val")), statistics.median(_measured(ours, "val"))
    rest = statistics.median(
        e - t - v for run in ours for e, t, v in zip(run.epoch[1:], run.train[1:], run.val[1:], strict=False)
    )
    _line("validation pass: plain / netspec", f"{pv * 1e3:8.0f} ms / {ov * 1e3:.0f} ms")
    _line("netspec rest of the epoch (checkpoints, logs)", f"{rest * 1e3:8.0f} ms")
    print("3. whole run, wall time (median over rounds; plain epochs taken out of fit()'s time)")
    med = {k: statistics.median(getattr(r, k) for r in ours) for k in ("startup", "after", "total")}
    pmed = {k: statistics.median(getattr(r, k) for r in plain) for k in ("startup", "after", "total")}
    _line(
        f"netspec fit(), {args.epochs + 1} epochs",
        f"{med['total']:8.2f} s",
        f"start-up {med['startup']:.2f} s (spec, data, Trainer; fit() → first epoch), "
        f"after training {med['after']:.2f} s (test, curves.png)",
    )
    _line(
        f"plain: load + build + {args.epochs + 1} epochs + test",
        f"{pmed['total']:8.2f} s",
        f"load {setup.load_s:.2f} s, build {pmed['startup']:.2f} s, test {pmed['after']:.2f} s",
    )
    _line("ratio netspec / plain time", f"{med['total'] / pmed['total']:10.3f} ×")
    _line(
        "same data / same initial weights",
        f"{_yes(ours, 'same_data')} / {_yes(ours, 'same_weights')}",
        f"final val accuracy: netspec {_accs(ours)}, plain {_accs(plain)}",
    )
    if setup.compile:
        _line(
            "torch.compile: graphs / compiles per run",
            f"{_compiled(ours)} / {_compiled(plain)}",
            "netspec / plain; netspec needs 2 graphs (training step, evaluation), each compiled once; "
            "the plain loop recompiles for its last partial batch and eval",
        )
    command = " ".join(shlex.quote(a) for a in ["python", "bench/train_speed.py", *sys.argv[1:]])
    print(f"command: {command}   (benchmark took {wall:.0f} s)")


def _pairs(plain: list[Times], ours: list[Times], attr: str) -> list[float]:
    """plain / netspec for each measured epoch and the plain epoch run just before it."""
    return [
        a / b
        for p, o in zip(plain, ours, strict=True)
        for a, b in zip(_measured([p], attr), _measured([o], attr), strict=True)
    ]


def _yes(runs: list[Times], attr: str) -> str:
    values = {getattr(r, attr) for r in runs}
    return "yes" if values == {True} else "NO" if False in values else "?"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _compiled(runs: list[Times]) -> str:
    return ", ".join(f"{r.graphs} / {r.compiles}" for r in runs)


def _accs(runs: list[Times]) -> str:
    return ", ".join(f"{r.val_acc:.3f}" for r in runs)


# ---------------------------------------------------------------- python -m bench


def _bench_case(label: str, quick: bool, **kw) -> list[dict]:
    """One training comparison for the suite: rows for training steps, epochs and the whole run."""
    from bench.common import median, ratios, row

    section = "training vs plain loop"
    args = argparse.Namespace(
        device="cpu",
        spec=str(SPEC),
        data="synthetic",
        precision="32",
        compile=False,
        epochs=2,
        samples=1000,
        batch_size=64,
        rounds=1,
        set=[],
    )
    for key, value in kw.items():
        setattr(args, key, value)
    mallopt()  # as main() does: no page-fault noise from glibc trimming (see mallopt())
    setup = load_setup(args)
    torch.manual_seed(setup.cfg.seed)
    initial = [p.detach().clone() for p in setup.spec.build().parameters()]
    warm_up(setup, initial)
    plain: list[Times] = []
    ours: list[Times] = []
    user: list[Times] = []  # a user's own loop: torch's default flags and optimizer implementation
    for _ in range(args.rounds):
        sides = (Plain(setup), Plain(setup, defaults=True))
        ours.append(netspec_run_once(setup, initial, sides))
        plain.append(sides[0].test())
        user.append(sides[1].times)
    what = (
        f"{args.data} {setup.n_train:,} train samples, batch {args.batch_size}, "
        f"{args.epochs} measured epochs × {args.rounds} run(s)"
    )
    rows = []
    for attr, name, meaning in (
        ("train", "training steps", "samples/s netspec ÷ plain, per epoch (target ≥ 0.95)"),
        ("epoch", "epochs incl. validation", "netspec: + checkpoints and logs; samples/s ÷ plain"),
    ):
        p, o = median(_measured(plain, attr)), median(_measured(ours, attr))
        rows.append(
            row(
                section,
                f"{label}: {name}",
                setup.n_train / o,
                setup.n_train / p,
                "samples/s",
                _pairs(plain, ours, attr),
                f"{meaning}; {what}",
            )
        )
    p, o = median(_measured(user, "train")), median(_measured(ours, "train"))
    rows.append(
        row(
            section,
            f"{label}: training steps vs a user's own loop",
            setup.n_train / o,
            setup.n_train / p,
            "samples/s",
            _pairs(user, ours, "train"),
            "the plain loop with torch's defaults: no deterministic flags, the optimizer's default "
            "(for-loop on a CPU) implementation where netspec uses the fused one",
        )
    )
    total = [o.total for o in ours], [p.total for p in plain]
    same = f"same data / weights: {_yes(ours, 'same_data')} / {_yes(ours, 'same_weights')}"
    rows.append(
        row(
            section,
            f"{label}: whole run wall time",
            median(total[0]),
            median(total[1]),
            "s",
            ratios(*total),
            f"fit() ÷ plain load + build + epochs + test (target ≤ 1.10); {same}",
        )
    )
    if args.compile:
        graphs = [o.graphs for o in ours], [p.graphs for p in plain]
        compiles = [o.compiles for o in ours], [p.compiles for p in plain]
        rows.append(
            row(
                section,
                f"{label}: torch.compile graphs / compiles per run",
                median(compiles[0]),
                median(compiles[1]),
                "compiles",
                ratios(*compiles),
                f"netspec {median(graphs[0]):.0f} graphs (target 2: training step and evaluation, "
                f"no recompiles); the plain loop {median(graphs[1]):.0f} (recompiles for its last "
                "partial batch)",
            )
        )
    return rows


def run(quick: bool, gpu_only: bool = False) -> list[dict]:
    from bench.common import RESNET18_CIFAR, skipped

    resnet = {"spec": str(ROOT / "specs" / "resnet.yaml"), "set": RESNET18_CIFAR}
    rows = [] if gpu_only else _cpu_rows(quick, resnet)
    if torch.cuda.is_available():
        rows += _gpu_rows(quick, resnet)
    else:
        rows.append(
            skipped(
                "training vs plain loop", "GPU: LeNet fp32, ResNet-18 bf16 eager and compiled", "needs CUDA"
            )
        )
    return rows


def _cpu_rows(quick: bool, resnet: dict) -> list[dict]:
    from bench.common import skipped

    lenet = {"data": "digits", "batch_size": 64}
    rows = _bench_case(
        "LeNet digits, CPU", quick, **lenet, epochs=1 if quick else 8, rounds=1 if quick else 2
    )
    if quick:  # CI: the same code path as LeNet's; check only that its spec still loads
        netspec.load(resnet["spec"], overrides=resnet["set"])
        rows.append(
            skipped("training vs plain loop", "ResNet-18 synthetic 3×32×32, CPU", "--quick: spec loads")
        )
    else:
        # torch.compile: the graph count (LeNet compiles in ~10 s per graph on 2 CPU cores)
        rows += _bench_case("LeNet digits, CPU, torch.compile", quick, **lenet, compile=True, epochs=8)
        rows += _bench_case("ResNet-18 synthetic 3×32×32, CPU", quick, **resnet, samples=800, epochs=3)
    return rows


def _gpu_rows(quick: bool, resnet: dict) -> list[dict]:
    rows = _bench_case(
        "LeNet synthetic, GPU",
        quick,
        device="cuda",
        samples=5000 if quick else 30000,
        epochs=1 if quick else 5,
    )
    for compiled in (False, True):
        rows += _bench_case(
            f"ResNet-18 synthetic 3×32×32, GPU bf16{' compiled' if compiled else ''}",
            quick,
            **resnet,
            device="cuda",
            precision="bf16-mixed",
            compile=compiled,
            samples=2000 if quick else 50000,
            batch_size=256,
            epochs=1 if quick else 3,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--spec",
        default=str(SPEC),
        help="a classifier spec (default specs/lenet.yaml; synthetic has 10 classes)",
    )
    parser.add_argument("--data", choices=("synthetic", "digits"), default="synthetic")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network on both sides")
    parser.add_argument("--epochs", type=int, default=None, help="measured epochs per run (default 5)")
    parser.add_argument("--samples", type=int, default=None, help="synthetic samples in all (default 30000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="fit() runs (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument(
        "--no-mallopt", action="store_true", help="keep glibc's default malloc thresholds (see mallopt())"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra netspec override (both sides)"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 2 measured epochs, 10000 samples")
    parser.add_argument(
        "--profile", type=int, nargs="?", const=25, default=0, metavar="TOP", help="a fit() under cProfile"
    )
    args = parser.parse_args()
    args.epochs = args.epochs or (2 if args.quick else 5)
    args.samples = args.samples or (10_000 if args.quick else 30_000)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.malloc = "glibc defaults (--no-mallopt)" if args.no_mallopt else mallopt()
    t0 = time.perf_counter()
    setup = load_setup(args)
    torch.manual_seed(setup.cfg.seed)
    initial = [p.detach().clone() for p in setup.spec.build().parameters()]
    warm_up(setup, initial)
    plain: list[Times] = []
    ours: list[Times] = []
    user: list[Times] = []  # plain with torch's defaults: flags and optimizer implementation
    for _ in range(args.rounds):
        sides = [Plain(setup), Plain(setup, defaults=True)]
        ours.append(netspec_run_once(setup, initial, tuple(sides)))
        plain.append(sides[0].test())
        user += [side.times for side in sides[1:]]
    report(setup, args, plain, ours, user, time.perf_counter() - t0)
    if args.profile:
        profile(setup, initial, args.profile)


if __name__ == "__main__":
    main()
