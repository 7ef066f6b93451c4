"""``netspec tune``: Lightning's learning-rate finder on a spec's network and data.

The finder trains from the spec's initial weights (``train.init`` and ``train.freeze`` apply)
for ``steps`` optimizer steps while the learning rate grows exponentially from ``min_lr`` to
``max_lr``, records the loss, and suggests the rate where the loss falls fastest. The spec's
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

SKIP_BEGIN, SKIP_END = 10, 1  # Lightning's suggestion ignores these first and last points


@dataclass
class TuneResult:
    """The finder's suggestion and where its picture and points are."""

    run_dir: Path
    suggestion: float
    plot: Path
    points: Path
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


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
    spec, cfg, weights = _with_init(spec, cfg, None)
    with _torch_state_restored():
        return _find_lr(spec, cfg, weights, data_dir, out, min_lr, max_lr, steps)


def _find_lr(spec, cfg, weights, data_dir, out, min_lr, max_lr, steps) -> TuneResult:
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from netspec.training import run
    from netspec.training.data import SpecDataModule
    from netspec.training.finetune import prepare_weights

    run._quiet_lightning()
    warnings.filterwarnings("ignore", ".*does not have a deterministic implementation.*")
    run.check_machine(spec, cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = run._splits(spec, cfg, data_dir)
    run.check_data(spec, splits)
    trained = run.heads(spec, cfg, splits)
    module = _finder_module()(spec, cfg, trained, 1, splits.normalization)
    prepare_weights(spec, module.model, weights)
    if cfg.compile:
        module.model.compile()
    out_dir = Path(out) if out is not None else _tune_dir(spec)
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
        deterministic=cfg.deterministic if cfg.deterministic is not True else "warn",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    # the finder restores its own temporary checkpoint afterwards: weights-only, like every load
    connector = trainer._checkpoint_connector
    connector.restore = functools.partial(connector.restore, weights_only=True)
    with _quiet(cfg.progress == "none"), contextlib.redirect_stdout(sys.stderr):
        finder = Tuner(trainer).lr_find(
            module,
            datamodule=SpecDataModule(splits, cfg.data, cfg.seed),
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=steps,
            update_attr=False,
        )
        suggestion = finder.suggestion(skip_begin=SKIP_BEGIN, skip_end=SKIP_END) if finder else None
    lrs = [float(x) for x in finder.results.get("lr", [])] if finder else []
    losses = [float(x) for x in finder.results.get("loss", [])] if finder else []
    points = out_dir / "lr_find.csv"
    with open(points, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(lrs, losses, strict=False))
    plot = _plot(out_dir / "lr_find.png", lrs, losses, suggestion, spec.name)
    if suggestion is None:
        usable = sum(math.isfinite(x) for x in losses[SKIP_BEGIN:-SKIP_END])
        raise SpecError(
            [
                Problem(
                    f"the learning-rate finder cannot suggest a rate: {len(losses)} of {steps} steps ran, "
                    f"leaving {usable} finite loss point(s) after skipping the first {SKIP_BEGIN} and the "
                    f"last {SKIP_END}; at least 2 are needed (the points are in {points})",
                    spec.source,
                    hint="run more steps (--steps 100), or a smaller --max-lr if the loss blew up early",
                )
            ]
        )
    return TuneResult(out_dir, float(suggestion), plot, points, lrs, losses)


def _finder_module():
    """SpecModule that lets the finder see a loss blow up: a non-finite loss ends the search
    (the finder leaves such points out of its suggestion) instead of stopping with an error."""
    import torch

    from netspec.training.module import SpecModule

    class FinderModule(SpecModule):
        def _stop_if_nonfinite(self) -> None:
            pass

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if not torch.isfinite(loss):
                self.trainer.should_stop = True
            return loss

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


def _plot(path: Path, lrs: list[float], losses: list[float], suggestion: float | None, title: str) -> Path:
    """Loss against learning rate (log scale), the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if lrs:
        ax.plot(lrs, losses, color="#1f77b4")
        ax.set_xscale("log")
    if suggestion is not None:
        at = min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggestion))
        ax.plot([suggestion], [losses[at]], marker="o", markersize=9, color="#d62728", linestyle="")
        ax.annotate(
            f"suggested lr {lr_text(suggestion)}",
            (suggestion, losses[at]),
            textcoords="offset points",
            xytext=(8, 8) if at < len(lrs) / 2 else (-8, 8),
            ha="left" if at < len(lrs) / 2 else "right",
            color="#d62728",
        )
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title}: learning-rate finder", loc="left")
    ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
