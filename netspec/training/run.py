"""``netspec train`` / ``eval`` / ``export``: a spec's ``train:`` section turned into a Lightning run.

A run directory holds ``checkpoints/`` (``best.ckpt``, ``last.ckpt``), ``metrics.csv``,
TensorBoard logs when tensorboard is installed, ``spec.yaml`` (the resolved spec as it was
trained) and ``curves.png``.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import netspec
from netspec.data import DataError, Splits
from netspec.errors import Problem, SpecError
from netspec.heap import frozen_heap
from netspec.shapes import describe
from netspec.spec import Spec


@dataclass
class RunResult:
    """What a training run left behind."""

    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    epochs: int = 0
    steps: int = 0
    rank: int = 0  # under DDP every rank returns; only rank 0 wrote the run directory
    test_split: bool = True  # False: the data has no test split, test_* were measured on validation


NO_TEST_SPLIT = (
    "netspec: note: the data has no test split: the test_* metrics are measured on the validation "
    "split (give the data one, e.g. arrays' test_fraction or test_path)"
)
RUNS_ROOT = Path("runs")  # default run directories: runs/<name>-<time>/
RUN_DIR_ENV = "_NETSPEC_RUN_DIR"  # rank 0's run directory, for the DDP ranks it starts


def prepare(source: Any, overrides: Sequence[str] = ()) -> tuple[Spec, Any]:
    """Load the spec with ``--set`` overrides; an absent ``train:`` gets every default."""
    from netspec.training.config import train_settings

    spec = netspec.load(source, overrides=overrides)
    cfg = train_settings(spec)
    if spec.model.train is None:
        spec.model = spec.model.model_copy(update={"train": cfg})
    return spec, cfg


def _splits(spec: Spec, cfg, data_dir) -> Splits:
    """Load the dataset; its errors point at the spec's ``train.data`` line."""
    from netspec.training.config import data_problem
    from netspec.training.data import load_splits

    try:
        return load_splits(spec.registry, cfg.data, spec.input_shape, cfg.seed, Path(data_dir or "data"))
    except DataError as exc:
        raise SpecError([data_problem(spec, exc)]) from None


def check_data(spec: Spec, splits: Splits) -> None:
    """The dataset's samples must fit the network's input, before anything trains."""
    problems = []
    if tuple(splits.sample_shape) != tuple(spec.input_shape):
        problems.append(
            spec.document.problem(
                f"the dataset gives samples of shape {describe(splits.sample_shape)} but the network's "
                f"input is {describe(spec.input_shape)}",
                ("input",),
                hint=f"set `input: {list(splits.sample_shape)}`, or choose/resize the data",
            )
        )
    if spec.model.train.memory_format == "channels_last" and len(spec.input_shape) != 3:
        problems.append(
            spec.document.problem(
                f"memory_format channels_last needs image inputs [C, H, W], but the network's input "
                f"is {describe(spec.input_shape)}",
                ("train", "memory_format"),
                hint="use memory_format: contiguous (the default) for this network",
            )
        )
    if problems:
        raise SpecError(problems)


def check_splits_for_training(spec: Spec, splits: Splits, validation: bool = True) -> None:
    """A run needs samples to train on, augmented as asked, and to validate with (best.ckpt follows
    the validation loss); the learning-rate finder (``validation=False``) trains only."""
    augment = _augment_problems(spec, splits)  # training alone augments: eval need not
    if augment:
        raise SpecError(augment)
    if not len(splits.train):
        why, hint = "nothing to train on", "give more samples, or smaller val_fraction / test_fraction"
    elif validation and not len(splits.val):
        why = "best.ckpt, early stopping and the curves are chosen by the validation loss"
        hint = "give more samples, or a val_fraction that leaves at least one"
    else:
        return
    empty = "training" if not len(splits.train) else "validation"
    raise SpecError(
        [
            spec.document.problem(
                f"the {empty} split is empty ({len(splits.train)} training, {len(splits.val)} validation "
                f"samples): {why}",
                ("train", "data"),
                hint=hint,
            )
        ]
    )


def _augment_problems(spec: Spec, splits: Splits) -> list:
    """random_crop pads: an integer mask needs a label for the padding that trains nothing."""
    import torch

    from netspec.training.data import dense

    data = spec.model.train.data
    shape, crop = tuple(spec.input_shape), getattr(data, "random_crop", 0)
    if crop and (len(shape) != 3 or crop > max(shape[1:])):
        what = f"pads by {crop} pixels, more than" if len(shape) == 3 else "crops images [C, H, W], not"
        return [
            spec.document.problem(
                f"random_crop {what} the network's input {describe(shape)}",
                ("train", "data", "random_crop"),
                hint="random_crop is a few pixels of an image's size (4 for CIFAR's 32×32), or 0",
            )
        ]
    augmenting = crop or getattr(data, "hflip", False)
    if augmenting and len(splits.train):
        from netspec.datasets._common import in_memory

        if in_memory(splits.train) is None:  # batches from a DataLoader: the augmentation would not run
            return [
                spec.document.problem(
                    f"random_crop and hflip augment data held in memory; dataset {data.name!r} streams its "
                    "samples, so they would do nothing",
                    ("train", "data", "random_crop" if crop else "hflip"),
                    hint="leave them out for this dataset",
                )
            ]
    if getattr(data, "hflip", False) and len(shape) < 2:
        return [
            spec.document.problem(
                f"hflip flips along the last spatial dim; the input {describe(shape)} has none",
                ("train", "data", "hflip"),
                hint="leave hflip out for vector inputs",
            )
        ]
    if not crop or splits.ignore_index is not None or not len(splits.train):
        return []
    x, y = splits.train[0]
    targets = y.values() if isinstance(y, dict) else [y]
    masks = [t for t in targets if isinstance(t, torch.Tensor) and not t.dtype.is_floating_point]
    if not any(dense(t[None], x[None]) for t in masks):
        return []
    return [
        spec.document.problem(
            "random_crop pads the inputs, and their masks would need a label for the padded pixels: "
            "the dataset has no ignore_index to give them",
            ("train", "data", "random_crop"),
            hint="set the dataset's ignore_index (the padding is then not trained on), or use hflip only",
        )
    ]


def heads(spec: Spec, cfg, splits: Splits) -> list:
    """Each trained output's task, loss, target and metrics, checked against the shapes and data."""
    from dataclasses import replace

    from netspec.training.tasks import resolve_heads

    found = resolve_heads(spec, cfg, splits)
    return [replace(h, value_range=_value_range(splits, h)) if "psnr" in h.metrics else h for h in found]


def _value_range(splits: Splits, head) -> tuple[float, float]:
    """(min, max) of a head's training targets: PSNR's data range."""
    from torch.utils.data import default_collate

    from netspec.datasets._common import in_memory
    from netspec.training.tasks import target_of

    held = in_memory(splits.train)
    if held is None:  # not in memory: the first few hundred samples stand for the rest
        held = default_collate([splits.train[i] for i in range(min(len(splits.train), 512))])
    values = target_of(head, *held).float()
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def check_monitor(spec: Spec, cfg, heads: list) -> None:
    """Early stopping must watch a metric that is logged (Lightning would fail after an epoch)."""
    from netspec.training.tasks import logged_metrics

    if cfg.early_stopping is None:
        return
    logged = logged_metrics(heads)
    if cfg.early_stopping.monitor not in logged:
        raise SpecError(
            [
                spec.document.problem(
                    f"early_stopping.monitor {cfg.early_stopping.monitor!r} is not a logged metric",
                    ("train", "early_stopping", "monitor"),
                    hint="monitor one of " + ", ".join(logged),
                )
            ]
        )


def check_machine(spec: Spec, cfg) -> None:
    """The accelerator must exist on this machine and the strategy must be one Lightning knows."""
    from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator
    from pytorch_lightning.strategies import StrategyRegistry

    available = {
        "cuda": CUDAAccelerator.is_available(),
        "mps": MPSAccelerator.is_available(),
        "tpu": XLAAccelerator.is_available(),
    }
    available["gpu"] = available["cuda"] or available["mps"]
    problems = []
    if not available.get(cfg.accelerator, True):
        problems.append(
            spec.document.problem(
                f"accelerator {cfg.accelerator!r}: none is available on this machine",
                ("train", "accelerator"),
                hint="use accelerator: auto (a GPU when there is one, else the CPU) or cpu",
            )
        )
    on_cpu = cfg.accelerator == "cpu" or (
        cfg.accelerator == "auto" and not available["gpu"] and not available["tpu"]
    )
    if cfg.precision == "16-mixed" and on_cpu:  # Lightning would warn and quietly train in bf16
        problems.append(
            spec.document.problem(
                "precision 16-mixed (float16 with a gradient scaler) needs a GPU; this run is on the CPU",
                ("train", "precision"),
                hint="use bf16-mixed (what a CPU mixes in) or 32",
            )
        )
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if cfg.strategy not in strategies:
        close = difflib.get_close_matches(cfg.strategy, strategies, n=1)
        problems.append(
            spec.document.problem(
                f"strategy {cfg.strategy!r} is not a Lightning strategy",
                ("train", "strategy"),
                hint=(f"did you mean {close[0]!r}? " if close else "") + "e.g. auto, ddp, fsdp",
            )
        )
    elif "spawn" in cfg.strategy:  # it pickles the module for each process: a spec's is built, not importable
        problems.append(
            spec.document.problem(
                f"strategy {cfg.strategy!r} starts its processes by pickling the training objects, "
                "and netspec's are built from the spec (their classes cannot be pickled)",
                ("train", "strategy"),
                hint="use ddp: each process runs the same netspec command, with the same result",
            )
        )
    cores = os.cpu_count() or 1
    if on_cpu and isinstance(cfg.devices, int) and cfg.devices > cores:  # one process each
        problems.append(
            spec.document.problem(
                f"devices {cfg.devices} on the CPU starts {cfg.devices} training processes, and this "
                f"machine has {cores} cores",
                ("train", "devices"),
                hint=f"use at most {cores} (or devices: auto)",
            )
        )
    if cfg.num_nodes > 1 and not _multi_node_launch():
        problems.append(
            spec.document.problem(
                f"num_nodes {cfg.num_nodes}: nothing says where the other nodes are, so the run would "
                "wait for them forever",
                ("train", "num_nodes"),
                hint="run the same command on each node with MASTER_ADDR, MASTER_PORT and NODE_RANK set, "
                "or under a cluster launcher (SLURM, torchrun)",
            )
        )
    if problems:
        raise SpecError(problems)


def _multi_node_launch() -> bool:
    """Whether this process was told how to meet other nodes: by hand (MASTER_ADDR) or by a
    cluster launcher Lightning detects (SLURM, torchrun's WORLD_SIZE, LSF, Kubeflow)."""
    env = os.environ
    return any(
        key in env for key in ("MASTER_ADDR", "WORLD_SIZE", "SLURM_NTASKS", "LSB_JOBID", "KUBERNETES_PORT")
    )


def _run_dir(spec: Spec, cfg) -> Path:
    """``train.run_dir`` as given, else ``runs/<name>-<time>`` (the name is one safe path component).

    Under DDP the other ranks are started by rank 0 with the same command line: they take rank 0's
    directory from the environment instead of a timestamp of their own.
    """
    if cfg.run_dir:
        return Path(cfg.run_dir)
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(inherited)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = RUNS_ROOT / f"{spec.name}-{stamp}"
    for n in range(1, MAX_SAME_SECOND + 1):  # runs of one spec started within the same second
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if not path.exists():
            return path
    return path  # _make_run_dir refuses it: it holds a run


RUN_FILES = ("spec.yaml", "checkpoints", "metrics.csv")  # what makes a directory a run's
MAX_SAME_SECOND = 1000


def _refuse_a_used_run_dir(spec: Spec, run_dir: Path) -> bool:
    """A new run into a directory that holds one would overwrite its checkpoints and metrics.

    Returns True for the one exception: the directory holds nothing but the spec.yaml this run
    would write, left by the same run that stopped before its first checkpoint; it starts over."""
    if run_dir.exists() and not run_dir.is_dir():
        raise _run_dir_error(
            spec, f"cannot create the run directory {run_dir}: it is a file", "choose another train.run_dir"
        )
    if not any((run_dir / name).exists() for name in RUN_FILES):
        return False
    only_spec = not any((run_dir / name).exists() for name in RUN_FILES if name != "spec.yaml")
    if only_spec and _same_spec_file(run_dir / "spec.yaml", spec):
        print(
            f"netspec: note: {run_dir} holds only the spec.yaml of this run, stopped before its first "
            "checkpoint: starting over there",
            file=sys.stderr,
        )
        return True
    hint = f"continue it with --resume {run_dir}, or choose another train.run_dir"
    if only_spec:
        hint = (
            f"it holds only a spec.yaml (no checkpoint, no metrics: a run that stopped before its first "
            f"checkpoint, or a file of yours); remove {run_dir / 'spec.yaml'} to start there, or choose "
            "another train.run_dir"
        )
    raise _run_dir_error(
        spec,
        f"the run directory {run_dir} already holds a run; a new run would overwrite its checkpoints and "
        "metrics",
        hint,
    )


def _same_spec_file(path: Path, spec: Spec) -> bool:
    """Is ``path`` the resolved spec this run writes (and nothing a user wrote by hand)?"""
    try:
        return path.is_file() and path.read_text(encoding="utf-8") == _resolved_yaml(spec)
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _shared_run_dir(run_dir: Path):
    """Tell the ranks rank 0 starts (they inherit the environment) where the run directory is."""
    old = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = old


def _make_run_dir(spec: Spec, run_dir: Path, new: bool) -> None:
    """Create the run directory (parents too) and write the resolved spec; OSError is exit 2.

    A new run's spec.yaml is created exclusively: of two runs that chose one directory at once
    (the same default name, the same second), the second stops here instead of sharing it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "spec.yaml").open("x" if new else "w", encoding="utf-8") as file:
            file.write(_resolved_yaml(spec))
    except FileExistsError:  # another run has just taken the directory
        _refuse_a_used_run_dir(spec, run_dir)
        raise _run_dir_error(
            spec,
            f"another run has just started in the run directory {run_dir}",
            "choose another train.run_dir",
        ) from None
    except OSError as exc:
        raise _run_dir_error(
            spec,
            f"cannot create the run directory {run_dir}: {exc.strerror or exc}",
            "choose a writable train.run_dir",
        ) from None


def _run_dir_error(spec: Spec, message: str, hint: str) -> SpecError:
    """A problem with the run directory, located where it was chosen (train.run_dir, or the name)."""
    where = ("train", "run_dir") if spec.model.train.run_dir else ("name",)
    return SpecError([spec.document.problem(message, where, hint=hint)])


def _resolved_yaml(spec: Spec) -> str:
    return yaml.safe_dump(
        spec.model.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False
    )


def _quiet_lightning() -> None:
    """Lightning's advice about workers and logging intervals does not apply to tensor batches."""
    import logging

    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*The number of training batches.*")
    warnings.filterwarnings("ignore", ".*is an invalid generator.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # the run dir holds spec.yaml
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
    # a continued run may add, drop or change early stopping (finetune.CONTINUABLE)
    warnings.filterwarnings("ignore", ".*callbacks used to create the checkpoint.*")
    # train.loop: fast (chunks.py) takes the loader's iterator and optimizes by hand; its steps
    # are checkpointed after the optimizer step, as Lightning's own loop does
    # (its hooks' batch_idx then counts calls: netspec's read the batch count instead)
    warnings.filterwarnings("ignore", ".*Found `dataloader_iter` argument in the `[a-z]+_step`.*")
    warnings.filterwarnings("ignore", ".*You are using the `dataloader_iter` step flavor.*")
    warnings.filterwarnings("ignore", ".*manual optimization and every_n_train_steps.*")
    # float16 with a GradScaler skips the optimizer step on overflow (the first steps, by design);
    # the schedule counts it all the same, in either loop: PyTorch takes that for a misordering
    warnings.filterwarnings("ignore", ".*Detected call of `lr_scheduler.step.*` before `optimizer.step.*")
    # padding: same with an even kernel pads one side more, as the spec asked (PyTorch's note on its cost)
    warnings.filterwarnings("ignore", ".*padding='same' with even kernel lengths.*")


MAX_HISTORY_BYTES = 64 << 20  # ~2 million rows (~35 s, 2 GB to resume): beyond, not a history netspec wrote


def _check_history_file(path: Path) -> None:
    """The metrics.csv a resumed run continues: a FIFO would block its reading for ever, /dev/zero
    fill the memory, a directory fail its writing after the spec.yaml was rewritten."""
    if not path.exists() and not path.is_symlink():
        return  # a run killed before its first row: the history starts here
    problem = None
    if not path.is_file():
        problem = "is not a regular file"
    elif path.stat().st_size > MAX_HISTORY_BYTES:
        problem = f"holds {path.stat().st_size:,} bytes, more than a run's history ({MAX_HISTORY_BYTES:,})"
    if problem:
        raise SpecError(
            [
                Problem(
                    f"{path} {problem}",
                    str(path),
                    hint="a run directory's metrics.csv is the file netspec wrote; remove it to resume "
                    "without the earlier rows",
                )
            ]
        )


def _resume_checkpoint(spec: Spec, run_dir: Path, data_dir=None):
    """``run_dir``'s last.ckpt, which must exist and come from this spec: the same but for the
    stopping criteria and progress display (a finished run continues with a larger max_epochs)."""
    from netspec.training.checkpoint import read_checkpoint
    from netspec.training.finetune import continuation

    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.is_file():
        raise SpecError(
            [
                Problem(
                    f"no checkpoint to resume from: {ckpt_path} does not exist",
                    str(run_dir),
                    hint="check the run directory, or start a fresh run without --resume",
                )
            ]
        )
    from netspec.yamlio import load_yaml, read_spec_file

    checkpoint = read_checkpoint(ckpt_path)  # weights-only, before anything else is read
    _check_history_file(run_dir / "metrics.csv")
    saved = run_dir / "spec.yaml"
    if not saved.is_file():
        raise SpecError(
            [
                Problem(
                    f"{run_dir} has no spec.yaml: nothing to check the spec against",
                    str(saved),
                    hint="a run directory holds the spec it was started with; start a new run from "
                    "its weights with --init",
                )
            ]
        )
    old = read_spec_file(saved).data  # netspec's own reader: a damaged file is a located error
    if not isinstance(old, dict):
        raise SpecError(
            [Problem("the run's spec.yaml holds no spec", str(saved), hint="start a new run with --init")]
        )
    _old_data_files(old, data_dir)
    new = load_yaml(_resolved_yaml(spec)).data
    return continuation(spec, old, new, checkpoint, ckpt_path, saved)


def fit(
    source: Any,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    data_dir: str | Path | None = None,
    init: str | Path | None = None,
) -> RunResult:
    """Train the spec's network as its ``train:`` section says; returns metrics and checkpoints.

    Everything the user can get wrong is checked before the first step: the config against
    Lightning and this machine, the data against the network, a resumed checkpoint against both.
    Under DDP only rank 0 writes the run directory; ``RunResult.rank`` tells the others apart.
    ``resume`` continues a run (with larger limits, if the spec says so); ``init`` (or
    ``train.init``) starts from other weights (see :mod:`netspec.training.finetune`).
    """
    spec, cfg = prepare(source, overrides)
    if resume is not None and init is not None:
        raise SpecError(
            [
                Problem(
                    "--init and --resume: a resumed run continues from its own last.ckpt",
                    str(init),
                    hint="drop --init to continue the run, or --resume to start a new run from these weights",
                )
            ]
        )
    spec, cfg, weights = _with_init(spec, cfg, init)
    spec, cfg = _with_data_files(spec, cfg, data_dir)
    run_dir = Path(resume) if resume is not None else _run_dir(spec, cfg)
    retry = resume is None and _rank_zero() and _refuse_a_used_run_dir(spec, run_dir)
    resumed = _resume_checkpoint(spec, run_dir, data_dir) if resume is not None else None
    with frozen_heap("pytorch_lightning"), _torch_state_restored():  # the run's heavy imports
        return _fit(spec, cfg, run_dir, resumed, data_dir, None if resumed else weights, retry)


def _with_init(spec: Spec, cfg, init):
    """The spec with ``train.init`` made absolute (so the run's spec.yaml reloads from anywhere)."""
    from netspec.training.finetune import resolve_init

    weights = resolve_init(spec, init)
    if weights is not None:
        cfg = cfg.model_copy(update={"init": str(weights.path)})
        spec.model = spec.model.model_copy(update={"train": cfg})
    return spec, cfg, weights


ARRAY_FILES = ("path", "test_path")  # the arrays dataset's files, looked for from the working directory


def _with_data_files(spec: Spec, cfg, data_dir):
    """The spec with the arrays dataset's files as absolute paths, as found now: the run's spec.yaml
    then names the data it trained on, and a resume from another directory cannot take other files
    of the same name (it trained on them in silence)."""
    if cfg.data is None or cfg.data.name != "arrays":
        return spec, cfg
    found = {f: _data_file(getattr(cfg.data, f), data_dir) for f in ARRAY_FILES if getattr(cfg.data, f)}
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=found)})
    spec.model = spec.model.model_copy(update={"train": cfg})
    return spec, cfg


def _data_file(value: str, data_dir) -> str:
    """Where the arrays dataset finds ``value``; as given when it finds nothing (it says so, located)."""
    from netspec.datasets.arrays import resolve

    try:
        return str(resolve(value, Path(data_dir or "data")))
    except DataError:
        return value


def _old_data_files(old: dict, data_dir) -> None:
    """A run's spec.yaml from before its data files were made absolute: resolve them the same way."""
    data = (old.get("train") or {}).get("data") if isinstance(old.get("train"), dict) else None
    if isinstance(data, dict) and data.get("name") == "arrays":
        for field_name in ARRAY_FILES:
            if isinstance(data.get(field_name), str):
                data[field_name] = _data_file(data[field_name], data_dir)


def _rank_zero() -> bool:
    """Before the Trainer exists: is this the process that reports (not a DDP rank it started)?"""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


@contextlib.contextmanager
def _torch_state_restored():
    """Lightning sets torch's determinism flags for a run and leaves them set: put them back (and
    the warning filters), so later work in the same process (a notebook, a test) is unaffected."""
    import torch

    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    with warnings.catch_warnings():
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def _fit(spec: Spec, cfg, run_dir: Path, resumed, data_dir, weights=None, retry: bool = False) -> RunResult:
    import pytorch_lightning as pl

    from netspec.training.chunks import ChunkedSpecModule
    from netspec.training.data import SpecDataModule
    from netspec.training.module import SpecModule

    _quiet_lightning()
    check_machine(spec, cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = _splits(spec, cfg, data_dir)
    check_data(spec, splits)
    check_splits_for_training(spec, splits)
    trained = heads(spec, cfg, splits)
    check_monitor(spec, cfg, trained)
    ckpt_path = resumed.checkpoint if resumed is not None else None
    history = []
    if ckpt_path is not None:
        from netspec.training.history import read_history

        history = read_history(run_dir / "metrics.csv")
    trainer, checkpoint = _trainer(spec, cfg, run_dir, history)
    del history  # the logger keeps the earlier rows as lines; these dicts need not live on
    module_type = ChunkedSpecModule if _fast_loop(cfg, trainer) else SpecModule
    module = module_type(spec, cfg, trained, 1, splits.normalization)
    from netspec.training.finetune import prepare_weights

    prepare_weights(spec, module.model, weights, rank_zero=_rank_zero())  # frozen batch norm: eval mode
    norms = batch_norm_layers(module.model)
    drop_last = cfg.compile or _refuse_or_drop_a_lone_batch(spec, cfg, splits, norms)
    total_steps = module.total_steps = _total_steps(cfg, splits, drop_last)
    if resumed is not None:
        from netspec.training.checkpoint import check_fits, read_checkpoint
        from netspec.training.resumable import check_netspec_state

        content = read_checkpoint(ckpt_path)
        check_fits(content["state_dict"], module.state_dict(), ckpt_path, spec.source)
        metric_names = {name for metrics in module.metrics["train_metrics"] for name in metrics}
        check_netspec_state(content, ckpt_path, metric_names)
        _notice_continuation(resumed, cfg, run_dir, splits, total_steps, norms)
    if cfg.memory_format == "channels_last":
        import torch

        module.model.to(memory_format=torch.channels_last)
        module.channels_last = True
    if cfg.compile:
        module.model.compile()  # in place: checkpoints keep plain state_dict keys
        module.static_batch = cfg.data.batch_size  # one graph for evaluation: short batches padded
    # compiled: every training batch the same size (the last partial one of each epoch dropped)
    datamodule = SpecDataModule(splits, cfg.data, cfg.seed, drop_last=drop_last)
    if trainer.is_global_zero:
        from netspec.training.tasks import notice

        print(notice(trained, cfg.data.name), file=sys.stderr)
        _notice_nondeterminism(spec, cfg, trainer.strategy.root_device.type, trained)
        _make_run_dir(spec, run_dir, new=resumed is None and not retry)
    with _writes_finished(trainer):
        with _shared_run_dir(run_dir), _nonfinite_is_a_spec_error(spec), _restoring(trainer, ckpt_path):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics, best = _test_and_report(spec, run_dir, trainer, checkpoint, module, datamodule, splits)
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    if best is not None and best.parent.resolve() == folder.resolve():
        best = folder / best.name  # as the run directory was given (Lightning made it absolute)
    return RunResult(
        run_dir,
        metrics,
        best,
        last if last.exists() else None,
        trainer.current_epoch,
        trainer.global_step,
        trainer.global_rank,
        splits.test is not None,
    )


def _restoring(trainer, ckpt_path):
    """A resumed run: errors of Lightning's restore of the checkpoint are the file's (exit 2)."""
    if ckpt_path is None:
        return contextlib.nullcontext()
    from netspec.training.resumable import restore_errors_are_the_files

    return restore_errors_are_the_files(trainer, ckpt_path)


def _test_and_report(spec: Spec, run_dir: Path, trainer, checkpoint, module, datamodule, splits):
    """After fit: the test pass, curves.png and previews, while the last checkpoint may still be
    writing; the metrics (test and validation) and the best checkpoint."""
    validated = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    # the best weights are those in memory when no step followed its save (often the last epoch)
    reload = best is not None and checkpoint.best_step != trainer.global_step
    tested = trainer.test(
        module,
        datamodule=datamodule,
        ckpt_path=str(best) if reload else None,
        verbose=False,
        weights_only=True,
    )
    metrics = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    metrics.update(validated)
    if trainer.is_global_zero:
        from netspec.training.plot import plot_curves

        plot_curves(run_dir / "metrics.csv", run_dir / "curves.png", title=spec.name)
        from netspec.training.previews import write_previews

        write_previews(module, splits, run_dir)
    return metrics, best


def _trainer(spec: Spec, cfg, run_dir: Path, history: list[dict]):
    """The Lightning Trainer; a configuration Lightning refuses is a located error, exit 2."""
    import pytorch_lightning as pl
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from netspec.training.module import LOG_EVERY

    callbacks, checkpoint = _callbacks(cfg, run_dir)
    try:
        trainer = pl.Trainer(
            default_root_dir=run_dir,
            max_epochs=cfg.max_epochs if cfg.max_steps is None else -1,
            max_steps=cfg.max_steps or -1,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            strategy=cfg.strategy,
            num_nodes=cfg.num_nodes,
            precision=cfg.precision,
            gradient_clip_val=cfg.gradient_clip_val,
            accumulate_grad_batches=cfg.accumulate_grad_batches,
            deterministic=cfg.deterministic,
            logger=_loggers(run_dir, history),
            callbacks=callbacks,
            plugins=_checkpoint_writer(cfg),
            enable_progress_bar=cfg.progress != "none",
            enable_model_summary=False,
            log_every_n_steps=LOG_EVERY,
            num_sanity_val_steps=0,
            # compiled: test under no_grad like validation (inference tensors would need a graph of
            # their own)
            inference_mode=not cfg.compile,
        )
    except (MisconfigurationException, TypeError, ValueError, RuntimeError) as exc:
        raise SpecError(
            [
                spec.document.problem(
                    f"Lightning refuses this training setup: {exc}",
                    ("train",),
                    hint="check train.accelerator, devices, strategy, num_nodes and precision",
                )
            ]
        ) from None
    return trainer, checkpoint


def _fast_loop(cfg, trainer) -> bool:
    """``train.loop: fast`` where it applies (one process, one device): the module then makes
    several optimizer steps per Lightning batch, and clips and accumulates itself."""
    from netspec.training.chunks import fast_loop_applies, take_over

    if cfg.loop != "fast" or not fast_loop_applies(trainer):
        return False
    take_over(trainer)
    return True


def _checkpoint_writer(cfg) -> list:
    """netspec's background checkpoint writer, where one process writes one file per checkpoint
    (one device, DDP); FSDP, DeepSpeed and XLA keep the writers their strategies bring. The run
    closes it (``_writes_finished``): the last write overlaps the test pass and curves.png."""
    from netspec.training.checkpoint_io import RunCheckpointIO

    own = cfg.strategy == "auto" or cfg.strategy.startswith("ddp")
    return [RunCheckpointIO(wait_at_teardown=False)] if own and cfg.accelerator != "tpu" else []


def _writer_of(trainer):
    """The trainer's netspec checkpoint writer, if it has one."""
    from netspec.training.checkpoint_io import RunCheckpointIO

    writer = trainer.strategy.checkpoint_io
    return writer if isinstance(writer, RunCheckpointIO) else None


@contextlib.contextmanager
def _writes_finished(trainer):
    """Every checkpoint on disk when the run returns or fails (a failed write is the error then,
    unless the run already failed for another reason)."""
    writer = _writer_of(trainer)
    try:
        yield
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        raise
    if writer is not None:
        writer.close()


def _notice_nondeterminism(spec: Spec, cfg, device: str, heads: list) -> None:
    """Name the layers that have no deterministic kernel on this device.

    With ``deterministic: warn`` (the default) they run and are named once; with ``true`` PyTorch
    would raise at the first such op, mid-run: refuse before the start instead.
    """
    if cfg.deterministic is False:
        return
    from netspec.training.determinism import nondeterministic_layers

    found = nondeterministic_layers(spec, device, heads)
    if not found:
        return
    if cfg.deterministic is True:
        raise SpecError(
            [
                spec.document.problem(
                    f"deterministic: true, but these have no deterministic kernel on {device}: "
                    + "; ".join(found),
                    ("train", "deterministic"),
                    hint="use deterministic: warn (run them anyway, say so) or false",
                )
            ]
        )
    # PyTorch would warn on every call of each of these ops: the notice below says it once
    warnings.filterwarnings("ignore", ".*does not have a deterministic implementation.*")
    lines = "\n".join(f"  {item}" for item in found)
    print(
        f"netspec: note: no deterministic kernel on {device} for (results may differ slightly "
        f"between runs; `deterministic: true` makes this an error):\n{lines}",
        file=sys.stderr,
    )


@contextlib.contextmanager
def _nonfinite_is_a_spec_error(spec: Spec):
    """A loss that became NaN/inf stops the run: the message names the step, exit 2."""
    from netspec.training.module import NonFiniteLoss

    try:
        yield
    except NonFiniteLoss as exc:
        raise SpecError(
            [
                spec.document.problem(
                    str(exc),
                    ("train",),
                    hint="lower train.optimizer.lr, set train.gradient_clip_val, or check the data for "
                    "NaN/inf; the checkpoints hold the last finite state",
                )
            ]
        ) from None


def _notice_continuation(
    resumed, cfg, run_dir: Path, splits: Splits, total_steps: int, norms: list[str]
) -> None:
    """Say what a continued run changes: its limit, and a schedule stretched to the new length."""
    from netspec.training.finetune import continuation_notes

    old_total = total_steps
    if resumed.saved_train is not None:
        saved = resumed.saved_train
        old_cfg = cfg.model_copy(
            update={"max_epochs": saved.get("max_epochs"), "max_steps": saved.get("max_steps")}
        )
        dropped = old_cfg.compile or _one_sample_batches(old_cfg, splits, norms) == "last"
        old_total = _total_steps(old_cfg, splits, dropped)
    if _rank_zero():
        for note in continuation_notes(resumed, cfg, run_dir, (old_total, total_steps)):
            print(f"netspec: note: {note}", file=sys.stderr)


def _world(cfg) -> int:
    """Processes the training split is shared between (devices × nodes)."""
    devices = (
        cfg.devices
        if isinstance(cfg.devices, int)
        else len(cfg.devices)
        if isinstance(cfg.devices, list)
        else 1
    )
    return devices * cfg.num_nodes


def _total_steps(cfg, splits: Splits, drop_last: bool = False) -> int:
    """Optimizer steps of the whole run (for learning-rate schedules)."""
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.data.batch_size * _world(cfg)
    per_epoch = -(-len(splits.train) // per_step)
    if drop_last and len(splits.train) >= per_step:  # the last partial batch is dropped
        per_epoch = len(splits.train) // per_step
    return max(1, cfg.max_epochs * -(-per_epoch // cfg.accumulate_grad_batches))


def _one_sample_batches(cfg, splits: Splits, norms: list[str]) -> str | None:
    """In a network with batch norm that trains: "every" when each training batch would hold one
    sample, "last" when an epoch's last one would, else None."""
    if not norms:
        return None
    per_rank, size = _per_rank(cfg, splits), cfg.data.batch_size
    if size == 1 or per_rank == 1:
        return "every"
    return "last" if per_rank % size == 1 else None


def _per_rank(cfg, splits: Splits) -> int:
    return len(splits.train) // _world(cfg) if _world(cfg) > 1 else len(splits.train)


def _refuse_or_drop_a_lone_batch(spec: Spec, cfg, splits: Splits, norms: list[str]) -> bool:
    """Batch norm cannot train on a batch of one sample (PyTorch raises where each channel then has
    one value; elsewhere the statistics would be one sample's). A last batch of one is left out
    (a different sample each epoch: the order is shuffled), with a note; batches that all hold one
    are refused. Returns whether the last partial batch is dropped."""
    which = _one_sample_batches(cfg, splits, norms)
    if which is None:
        return False
    per_rank, size = _per_rank(cfg, splits), cfg.data.batch_size
    named = ", ".join(repr(name) for name in norms[:3]) + (", …" if len(norms) > 3 else "")
    if which == "every":
        if size == 1:
            what, where, hint = "train.data.batch_size is 1", ("train", "data", "batch_size"), "use 2 or more"
        else:
            device = " per device" if _world(cfg) > 1 else ""
            what, where, hint = (
                f"the training split has 1 sample{device}",
                ("train", "data"),
                "give more samples",
            )
        raise SpecError(
            [
                spec.document.problem(
                    f"{what}, and batch norm ({named}) cannot train on a batch of one sample",
                    where,
                    hint=f"{hint} (or freeze those layers with train.freeze: frozen, they stay in eval mode)",
                )
            ]
        )
    if _rank_zero():
        print(
            f"netspec: note: the last training batch of each epoch would hold 1 sample ({per_rank} = "
            f"{per_rank // size} × {size} + 1), and batch norm ({named}) cannot train on a batch of one: "
            "it is left out, a different sample each epoch (another train.data.batch_size avoids this)",
            file=sys.stderr,
        )
    return True


def batch_norm_layers(model) -> list[str]:
    """The network's layers that hold batch norm that trains (inside a plugin's block too; not the
    frozen ones, which stay in eval mode), by module name."""
    from torch.nn.modules.batchnorm import _BatchNorm

    modules = model.named_modules()
    names = (name.split(".")[0] for name, m in modules if isinstance(m, _BatchNorm) and m.training)
    return list(dict.fromkeys(names))


def _callbacks(cfg, run_dir: Path):
    from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar

    from netspec.training.checkpoint_io import checkpoint_callback
    from netspec.training.finetune import early_stopping_callback

    checkpoint = checkpoint_callback(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_last=True,
        enable_version_counter=False,
    )
    callbacks: list = [checkpoint]
    if cfg.checkpoint_every_n_steps:
        callbacks.append(
            checkpoint_callback(
                dirpath=run_dir / "checkpoints",
                filename="last",
                every_n_train_steps=cfg.checkpoint_every_n_steps,
                enable_version_counter=False,
                save_top_k=1,
                monitor=None,
            )
        )
    if cfg.early_stopping is not None:
        callbacks.append(early_stopping_callback(cfg.early_stopping))
    if cfg.progress == "rich":
        callbacks.append(_with_step_metrics(RichProgressBar)())
    elif cfg.progress == "tqdm":
        callbacks.append(_with_step_metrics(TQDMProgressBar)())
    return callbacks, checkpoint


REDRAW_SECONDS = 0.1  # the training bar redraws at most this often (and at the epoch's last batch)


def _with_step_metrics(bar: type) -> type:
    """A Lightning progress bar that also shows the module's per-step values (``SpecModule.step_metrics``,
    logged without ``self.log``), counts batches under ``train.loop: fast`` too (one Lightning
    batch is several there), and redraws at most every ``REDRAW_SECONDS``: Lightning's bars redraw
    at every batch, ~260 Python calls a step for rich and ~1,000 for tqdm (unicode widths)."""

    class Bar(bar):
        _drawn = -math.inf

        def get_metrics(self, trainer, pl_module):
            return {**super().get_metrics(trainer, pl_module), **getattr(pl_module, "step_metrics", {})}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
            now = time.monotonic()
            # the epoch's last batch, or the run's (max_steps: the module stops it after this hook)
            last = (
                done >= trainer.num_training_batches
                or trainer.should_stop
                or 0 < trainer.max_steps <= trainer.global_step
            )
            if now - self._drawn < REDRAW_SECONDS and not last:
                return
            self._drawn = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, done - 1)

    if hasattr(bar, "configure_columns"):  # rich

        def configure_columns(self, trainer) -> list:
            return _average_speed(bar.configure_columns(self, trainer))

        def _get_train_description(self, current_epoch: int) -> str:
            by_steps = (self.trainer.max_epochs or 0) < 0  # max_steps: no last epoch ("Epoch 0/-2")
            if by_steps:
                return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"
            return bar._get_train_description(self, current_epoch)

        Bar.configure_columns = configure_columns
        Bar._get_train_description = _get_train_description
    Bar.__name__ = Bar.__qualname__ = bar.__name__  # Lightning names callbacks' state by class
    return Bar


def _average_speed(columns: list) -> list:
    """Rich estimates a bar's speed from the updates it gets, and a bar redrawn a few times an epoch
    (an evaluation pass in a few chunks) gives too few: it read 0.00it/s. Batches per second since
    the bar started instead."""
    from pytorch_lightning.callbacks.progress.rich_progress import ProcessingSpeedColumn
    from rich.text import Text

    class AverageSpeed(ProcessingSpeedColumn):
        def render(self, task):
            rate = task.completed / task.elapsed if task.elapsed else 0.0
            return Text(f"{rate:>.2f}it/s", style=self.style)

    return [AverageSpeed(c.style) if isinstance(c, ProcessingSpeedColumn) else c for c in columns]


def _loggers(run_dir: Path, history: list[dict]) -> list:
    from netspec.training.history import HistoryCSVLogger

    loggers: list = [HistoryCSVLogger(run_dir, history)]
    try:
        import tensorboard  # noqa: F401
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def _module_from_checkpoint(spec: Spec, cfg, checkpoint: str | Path, splits: Splits):
    """A SpecModule with the checkpoint's network weights (or a plain state_dict's), read
    weights-only and checked to fit; the heads and normalization come from the spec and data."""
    from netspec.training.checkpoint import load_network_weights
    from netspec.training.module import SpecModule

    module = SpecModule(spec, cfg, heads(spec, cfg, splits), normalization=splits.normalization)
    load_network_weights(module.model, checkpoint, spec.source)
    return module


def evaluate(
    source: Any, checkpoint: str | Path, *, overrides: Sequence[str] = (), data_dir: str | Path | None = None
) -> dict[str, float]:
    """Metrics of a checkpoint on the test split (the validation split when there is none)."""
    spec, cfg = prepare(source, overrides)
    with frozen_heap("pytorch_lightning"), _torch_state_restored():
        return _evaluate(spec, cfg, checkpoint, data_dir)


def _evaluate(spec: Spec, cfg, checkpoint: str | Path, data_dir) -> dict[str, float]:
    import pytorch_lightning as pl

    from netspec.training.data import SpecDataModule

    _quiet_lightning()
    check_machine(spec, cfg)
    splits = _splits(spec, cfg, data_dir)
    check_data(spec, splits)
    module = _module_from_checkpoint(spec, cfg, checkpoint, splits)
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    result = trainer.test(module, datamodule=SpecDataModule(splits, cfg.data, cfg.seed), verbose=False)
    if splits.test is None:
        print(NO_TEST_SPLIT, file=sys.stderr)
    return {k: float(v) for k, v in result[0].items()}


def export_onnx(
    source: Any,
    checkpoint: str | Path | None,
    path: str | Path,
    *,
    overrides: Sequence[str] = (),
    log=None,
) -> Path:
    """Write the network (with a checkpoint's weights, if given) as ONNX with a dynamic batch.

    One self-contained file, its outputs named after the spec's outputs and its input ``input``;
    only a network over ONNX's 2 GB limit keeps its weights beside it, in ``<file>.data``.
    Without a checkpoint the weights are a seeded random init, and ``log`` (default: stderr) says
    so. Like a run directory, a missing parent directory of ``path`` is created.
    """
    _check_onnx_installed()
    with frozen_heap("torch"):
        return _export_onnx(source, checkpoint, path, overrides, log)


def _export_onnx(source: Any, checkpoint, path, overrides: Sequence[str], log) -> Path:
    import logging

    import torch

    log = log or (lambda text: print(text, file=sys.stderr))
    spec = netspec.load(source, overrides=list(overrides))
    path = _output_file(path)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = spec.build().eval()
    if checkpoint is not None:
        from netspec.training.checkpoint import load_network_weights

        load_network_weights(model, checkpoint, spec.source)
    else:
        log("netspec: note: no --checkpoint: the weights are a random initialisation (seed 0)")
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    x = torch.randn(2, *spec.input_shape)
    batch = torch.export.Dim("batch", min=1)
    onnx_logger = logging.getLogger("torch.onnx")  # "torchvision is not installed. Skipping ..."
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                input_names=["input"],
                output_names=list(spec.outputs),
                external_data=weight_bytes >= ONNX_SINGLE_FILE_LIMIT,
                verbose=False,
            )
    except OSError as exc:
        from netspec.outfiles import refusal

        raise refusal("--onnx", path, exc) from None
    finally:
        onnx_logger.setLevel(level)
    return path


ONNX_SINGLE_FILE_LIMIT = 1 << 31  # protobuf's 2 GiB: larger weights go to <file>.data
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx.export(dynamo=True) imports


def _check_onnx_installed() -> None:
    """ONNX export needs the optional packages: say how to get them (exit 2), not ImportError."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise SpecError(
            [
                Problem(
                    f"ONNX export needs the packages {', '.join(missing)}, which are not installed",
                    "netspec export",
                    hint="pip install 'netspec[onnx]'",
                )
            ]
        )


def _output_file(path: str | Path) -> Path:
    """``path`` with its parent directories created; a path that cannot be written is exit 2."""
    from netspec.outfiles import check

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot create the directory of {path}: {exc.strerror or exc}", str(path))]
        ) from None
    check("--onnx", path, "model.onnx", "netspec export")
    return path
