"""``netspec tune``: Lightning's learning-rate finder on a spec's network and data.

The finder trains from the spec's initial weights (``train.init`` and ``train.freeze`` apply)
for ``steps`` optimizer steps while the learning rate grows exponentially from ``min_lr`` to
``max_lr``; netspec records each step's rate and loss and suggests the rate where the smoothed
loss falls fastest per decade of rate (:func:`suggest`). The spec's
schedule is not used (the finder drives the rate); the weights are put back afterwards and
nothing is saved but the picture (``lr_find.png``) and the points (``lr_find.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import functools
import logging
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netspec.errors import Problem, SpecError
from netspec.heap import frozen_heap

SKIP_BEGIN, SKIP_END = 10, 1  # points left out of the suggestion (as Lightning's own rule does)
MIN_STEPS = SKIP_BEGIN + SKIP_END + 2  # fewer leave no two points to compare
MIN_FALL = 0.02  # a smoothed loss that falls by less than this share of its start did not fall
BETA = 0.98  # smoothing of the loss (as Lightning's finder smooths it)


def smoothed(losses: list[float]) -> list[float]:
    """Exponential moving average, bias-corrected from the first point; NaN where the loss was."""
    out, average, seen = [], 0.0, 0
    for loss in losses:
        if not math.isfinite(loss):
            out.append(math.nan)
            continue
        seen += 1
        average = BETA * average + (1 - BETA) * loss
        out.append(average / (1 - BETA**seen))
    return out


def suggest(lrs: list[float], smooth: list[float]) -> float | None:
    """The rate where the smoothed loss falls fastest per decade of learning rate.

    Lightning's ``suggestion()`` differentiates against the rate itself, so the tiny steps
    between the smallest rates turn noise into the steepest "descent"; and its smoothing is
    corrected one step late, so the first points rise. Against log(lr), from the recorded raw
    losses, the steepest part of the curve is the one a plot shows. None: fewer than 2 usable
    points, or a loss that never fell by MIN_FALL of its start.
    """
    index = [i for i in range(SKIP_BEGIN, len(lrs) - SKIP_END) if math.isfinite(smooth[i])]
    if len(index) < 2:
        return None
    x = [math.log10(lrs[i]) for i in index]
    y = [smooth[i] for i in index]
    slopes = []
    for k in range(len(index)):
        lo, hi = max(k - 1, 0), min(k + 1, len(index) - 1)
        slopes.append((y[hi] - y[lo]) / (x[hi] - x[lo]) if x[hi] != x[lo] else 0.0)
    if min(y) > y[0] - MIN_FALL * abs(y[0]):  # noise on a flat curve is no steepest descent
        return None
    best = min(range(len(slopes)), key=slopes.__getitem__)
    return lrs[index[best]] if slopes[best] < 0 else None


@dataclass
class TuneResult:
    """The finder's suggestion and where its picture and points are."""

    run_dir: Path
    suggestion: float
    plot: Path
    points: Path
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # raw, one per optimizer step


def lr_text(lr: float) -> str:
    """3 significant digits, in a form YAML reads as a float (``1e-05`` would be a string)."""
    text = f"{lr:.3g}"
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def find_lr(
    source: Any,
    *,
    overrides: Sequence[str] = (),
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 100,
) -> TuneResult:
    """Run the learning-rate finder; write ``lr_find.png`` and ``lr_find.csv`` into ``out``
    (default ``runs/<name>-tune-<time>``). No suggestion possible is a :class:`SpecError`."""
    from netspec.training.run import _torch_state_restored, _with_init, prepare

    spec, cfg = prepare(source, overrides)
    if not 0 < min_lr < max_lr or not math.isfinite(max_lr):
        raise SpecError([Problem(f"--min-lr {min_lr} must be below --max-lr {max_lr}", "netspec tune")])
    if steps < MIN_STEPS:  # refused before training, not after it
        raise SpecError(
            [
                Problem(
                    f"--steps {steps}: the finder needs at least {MIN_STEPS} (it skips the first "
                    f"{SKIP_BEGIN} points and the last {SKIP_END}, and compares at least 2)",
                    "netspec tune",
                )
            ]
        )
    spec, cfg, weights = _with_init(spec, cfg, None)
    with frozen_heap("pytorch_lightning"), _torch_state_restored():
        return _find_lr(spec, cfg, weights, data_dir, out, min_lr, max_lr, steps)


def _find_lr(spec, cfg, weights, data_dir, out, min_lr, max_lr, steps) -> TuneResult:
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from netspec.training import run
    from netspec.training.data import SpecDataModule
    from netspec.training.finetune import prepare_weights

    run._quiet_lightning()
    warnings.filterwarnings("ignore", ".*does not have a deterministic implementation.*")
    # the finder trains only: Lightning still sizes the validation loader, and an empty one warned
    warnings.filterwarnings("ignore", ".*Total length of .* across ranks is zero.*")
    run.check_machine(spec, cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = run._splits(spec, cfg, data_dir)
    run.check_data(spec, splits)
    run.check_splits_for_training(spec, splits, validation=False)  # it trains, augmented, not validates
    if run._world(cfg) > 1:
        print(
            f"netspec: note: the finder runs in one process on one device (train.devices × num_nodes is "
            f"{run._world(cfg)}); a rate found there is a starting point for the batch it sees",
            file=sys.stderr,
        )
    trained = run.heads(spec, cfg, splits)
    module = _finder_module()(spec, cfg, trained, 1, splits.normalization)
    prepare_weights(spec, module.model, weights)  # frozen batch norm: eval mode
    drop_last = cfg.compile or run._refuse_or_drop_a_lone_batch(
        spec, cfg, splits, run.batch_norm_layers(module.model)
    )
    if cfg.compile:
        module.model.compile()
    out_dir = Path(out) if out is not None else _tune_dir(spec)
    _refuse_to_overwrite(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "spec.yaml").write_text(run._resolved_yaml(spec))  # the spec next to the picture
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot create the directory {out_dir}: {exc.strerror or exc}", str(out_dir))]
        ) from None
    trainer = pl.Trainer(
        default_root_dir=out_dir,
        max_epochs=-1,  # the finder stops after `steps` steps, however many epochs that is
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        gradient_clip_val=cfg.gradient_clip_val,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        # true was checked just below like a run's (every layer has a deterministic kernel here);
        # "warn" spares the finder's own restore PyTorch's checks
        deterministic=cfg.deterministic if cfg.deterministic is not True else "warn",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # the finder reads training losses only
    )
    run._notice_nondeterminism(spec, cfg, trainer.strategy.root_device.type, trained)
    # the finder restores its own temporary checkpoint afterwards: weights-only, like every load
    connector = trainer._checkpoint_connector
    connector.restore = functools.partial(connector.restore, weights_only=True)
    with _quiet(cfg.progress == "none"), contextlib.redirect_stdout(sys.stderr):
        Tuner(trainer).lr_find(
            module,
            datamodule=SpecDataModule(splits, cfg.data, cfg.seed, drop_last=drop_last),
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=steps,
            update_attr=False,
        )
    lrs, losses = [lr for lr, _ in module.points], [loss for _, loss in module.points]
    smooth = smoothed(losses)
    suggestion = suggest(lrs, smooth)
    points = out_dir / "lr_find.csv"
    with open(points, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["lr", "loss", "smoothed_loss"])
        writer.writerows(zip(lrs, losses, smooth, strict=True))
    plot = _plot(out_dir / "lr_find.png", lrs, losses, smooth, suggestion, spec.name)
    if suggestion is None:
        usable = sum(math.isfinite(x) for x in smooth[SKIP_BEGIN : len(smooth) - SKIP_END])
        why = (
            f"{len(losses)} of {steps} steps ran, leaving {usable} finite loss point(s) after skipping the "
            f"first {SKIP_BEGIN} and the last {SKIP_END}; at least 2 are needed"
            if usable < 2
            else f"the smoothed loss did not fall by {MIN_FALL:.0%} anywhere from {min_lr:g} to {lrs[-1]:g} "
            "(more --steps or a wider --min-lr/--max-lr range may show the fall)"
        )
        raise SpecError(
            [
                Problem(
                    f"the learning-rate finder cannot suggest a rate: {why} (the points are in {points})",
                    spec.source,
                    hint="run more steps (--steps 100) or widen the range (--min-lr, --max-lr); "
                    "a smaller --max-lr if the loss blew up early",
                )
            ]
        )
    return TuneResult(out_dir, suggestion, plot, points, lrs, losses)


TUNE_FILES = ("lr_find.csv", "lr_find.png")


def _refuse_to_overwrite(out_dir: Path) -> None:
    """--out may be rerun (a tune's own files are replaced), but a spec.yaml that no tune wrote
    there (the user's own spec, say) is never overwritten."""
    if (out_dir / "spec.yaml").exists() and not any((out_dir / name).exists() for name in TUNE_FILES):
        raise SpecError(
            [
                Problem(
                    f"--out {out_dir} holds a spec.yaml that no tune wrote; the tune would overwrite it "
                    "with the resolved spec",
                    str(out_dir),
                    hint="choose another --out (an empty or new directory)",
                )
            ]
        )


def _finder_module():
    """SpecModule that records each step's rate and raw loss, and lets the finder see a loss
    blow up: a non-finite loss ends the search instead of stopping with an error."""
    import torch

    from netspec.training.module import SpecModule

    class FinderModule(SpecModule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.points: list[tuple[float, float]] = []  # (learning rate, raw loss) per optimizer step
            self._group: list[float] = []  # the losses of the batches the next step accumulates
            self._lr, self._stepped = 0.0, 0

        def _stop_if_nonfinite(self) -> None:
            pass

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if not self._group:  # the rate of the step these batches make (set after each step)
                self._lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
            self._group.append(float(loss.detach()))
            if not torch.isfinite(loss):
                self.trainer.should_stop = True
            return loss

        def on_train_batch_end(self, outputs, batch, batch_idx):
            super().on_train_batch_end(outputs, batch, batch_idx)
            # a point per optimizer step, however the batches were grouped (an epoch's last,
            # shorter group of accumulated batches steps too): the mean loss of its batches
            if self.trainer.global_step > self._stepped and self._group:
                self.points.append((self._lr, sum(self._group) / len(self._group)))
                self._group, self._stepped = [], self.trainer.global_step

    return FinderModule


@contextlib.contextmanager
def _quiet(no_progress: bool):
    """Lightning's own log lines (its "not enough points" error: the SpecError says it) are
    silenced; the finder's progress bar shows unless ``train.progress: none``."""
    from pytorch_lightning.tuner import lr_finder

    names = ("tuner.lr_finder", "utilities.rank_zero", "trainer.connectors.checkpoint_connector")
    loggers = [logging.getLogger(f"pytorch_lightning.{name}") for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    bar = lr_finder.tqdm
    if no_progress:  # the finder makes its bar itself, with no way to turn it off
        lr_finder.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        lr_finder.tqdm = bar
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _tune_dir(spec) -> Path:
    from netspec.training.run import RUNS_ROOT

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return RUNS_ROOT / f"{spec.name}-tune-{stamp}"


def _plot(
    path: Path,
    lrs: list[float],
    losses: list[float],
    smooth: list[float],
    suggestion: float | None,
    title: str,
) -> Path:
    """Loss (raw, faint; smoothed) against learning rate (log scale), the suggestion marked."""
    from netspec.chart import Key, Line, Note, Panel, draw_chart

    panel = Panel(
        f"{title}: learning-rate finder", "learning rate", "training loss", xlog=True, width=640, left=80
    )
    if lrs:
        panel.lines += [
            Line(list(zip(lrs, losses, strict=True)), "#1f77b4", 1.0, alpha=0.3),
            Line(list(zip(lrs, smooth, strict=True)), "#1f77b4"),
        ]
        finite = [v for v in smooth if math.isfinite(v)]
        if finite:  # a loss that blew up at the end would flatten everything else
            low, high = min(finite), max(finite[: max(1, len(finite) * 9 // 10)])
            panel.ylim = (low - 0.05 * (high - low + 1e-12), high + 0.25 * (high - low + 1e-12))
    if suggestion is not None:
        at = lrs.index(suggestion)
        point = (suggestion, smooth[at])
        panel.lines.append(Line([point], "#d62728", marker="o", marker_size=12, joined=False))
        early = at < len(lrs) / 2
        offset = (8, 8) if early else (-8, 8)
        panel.notes.append(
            Note(point, f"suggested lr {lr_text(suggestion)}", "#d62728", offset, not early, 14)
        )
    keys = [Key("loss", "#a5c8e1"), Key("smoothed", "#1f77b4")] if lrs else []
    draw_chart(path, [panel], keys=keys)
    return path
