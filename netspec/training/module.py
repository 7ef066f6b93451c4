"""The LightningModule built from a spec: loss, metrics, optimizer and schedule from ``train:``."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn

from netspec.errors import NetspecError
from netspec.spec import Spec
from netspec.training import fast
from netspec.training.history import write_rows
from netspec.training.losses import HeadLoss, build_metrics, metric_inputs
from netspec.training.optim import make_optimizer
from netspec.training.tasks import Head, target_of

LOG_EVERY = 10  # optimizer steps between per-step loss points in metrics.csv and the progress bar


class NonFiniteLoss(NetspecError):
    """The training loss became NaN or infinite; the run stops (``fit`` makes it a located error)."""


class SpecModule(pl.LightningModule):
    """Trains ``spec.build()`` with the loss, metrics, optimizer and schedule of ``spec.train``."""

    def __init__(
        self,
        spec: Spec,
        cfg,
        heads: list[Head],
        total_steps: int = 1,
        normalization: tuple | None = None,
    ):
        super().__init__()
        # this epoch's training loss and the first non-finite step, kept on the device (fast.py)
        self._losses = fast.StepLosses()
        self._eval_losses = fast.EpochMeans()  # validation or test losses of the running epoch
        self._train_parts = fast.EpochMeans()  # with several heads: each one's training loss
        self._pooled = fast.PooledUpdates()  # metric updates made once per few batches
        self._logged_step = -1  # the optimizer step of the last per-step row
        self.step_metrics: dict[str, float] = {}  # the latest per-step values, for the progress bar
        self.static_batch: int | None = None  # compiled: evaluation batches padded to this size
        self.channels_last = False  # train.memory_format: channels_last (run.py sets both)
        self.total_steps = total_steps  # for schedules (not trainer.estimated_stepping_batches: asking
        # for it sets up the dataloaders before a checkpoint is restored, which breaks mid-epoch resume)
        self.cfg = cfg
        self.heads = heads
        self.normalization = normalization  # kept in checkpoints for `netspec predict`
        self.several_outputs = len(spec.outputs) > 1
        self.output_shapes = [tuple(shape) for shape in spec.output_shapes()]
        self.model = spec.build()
        self.losses = nn.ModuleList([HeadLoss(head) for head in heads])
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": nn.ModuleList([build_metrics(head) for head in heads])
                for stage in ("train", "val", "test")
            }
        )

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets _current_fx_name around every hook call (~30 times a step); nn.Module's
        # __setattr__ checks for parameters, modules and buffers each time: skip that for it
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor):
        return fast.forward(self.model, x, static_batch=self.static_batch, channels_last=self.channels_last)

    def _head_losses(self, x, y, outs) -> list[torch.Tensor]:
        """Each head's loss on its output and target."""
        return [
            loss_fn(outs[head.index] if self.several_outputs else outs, target_of(head, x, y))
            for head, loss_fn in zip(self.heads, self.losses, strict=True)
        ]

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        outs = self.forward(x)
        parts = self._head_losses(x, y, outs)
        # the weighted sum of the heads' losses (a lone head of weight 1: its loss, no extra op)
        loss = parts[0] if len(parts) == 1 and self.heads[0].weight == 1 else parts[0] * self.heads[0].weight
        for part, head in zip(parts[1:], self.heads[1:], strict=True):
            loss = loss + part * head.weight
        for head, metrics in zip(self.heads, self.metrics[f"{stage}_metrics"], strict=True):
            if metrics:
                out = outs[head.index] if self.several_outputs else outs
                self._pooled.update(metrics, *metric_inputs(head, out, target_of(head, x, y)))
        if stage == "train":
            # sum the loss on the device and log once per epoch; a per-step point every LOG_EVERY
            # steps (bench/train_speed.py)
            step = self.global_step
            self._losses.add(loss.detach(), len(x), step)
            if len(parts) > 1:  # each head's own loss, for metrics.csv and early stopping
                self._train_parts.add(
                    {f"train_{h.prefix}loss": p for h, p in zip(self.heads, parts, strict=True)}, len(x)
                )
            if (step + 1) % LOG_EVERY == 0 and self._logged_step != step:
                self._stop_if_nonfinite()
                self._log_step(loss)
        else:  # summed on the device, logged at the epoch's end (_log_evaluation)
            losses = {f"{stage}_loss": loss}
            if len(parts) > 1:
                losses.update(
                    (f"{stage}_{head.prefix}loss", part) for head, part in zip(self.heads, parts, strict=True)
                )
            self._eval_losses.add(losses, len(x))
        return loss

    def _log_step(self, loss: torch.Tensor) -> None:
        """``train_loss_step`` and ``lr`` straight to the loggers (a row at the step Lightning would
        write it) and to the progress bar (``step_metrics``). Lightning's ``self.log`` costs ~1 ms a
        call, as it moves its record of the value to the device each time: ~0.2 ms a LeNet step."""
        self._logged_step = self.global_step  # with accumulation, one row per optimizer step
        values = {
            "train_loss_step": float(loss.detach()),
            "lr": float(self.trainer.optimizers[0].param_groups[0]["lr"]),
        }
        self.step_metrics = {"train_loss_step": values["train_loss_step"]}
        for logger in self.loggers:
            logger.log_metrics({**values, "epoch": self.current_epoch}, step=self.global_step)
            logger.save()

    def _log_evaluation(self, stage: str) -> None:
        """The epoch's validation or test losses and metrics (as Lightning's on_epoch logging would)."""
        shown = stage == "val"
        for name, value in self._eval_losses.means().items():
            self._log_epoch(name, value, prog_bar=shown and name == f"{stage}_loss")
        self._log_metrics(stage, prog_bar=shown)

    def _log_epoch(self, name: str, value, prog_bar: bool = False) -> None:
        """One value per epoch, reduced already: no batch size to weigh it by (and a ``train.loop:
        fast`` step gives Lightning no batch to measure one from)."""
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, batch_size=1)

    def _log_metrics(self, stage: str, prog_bar: bool = False) -> None:
        """Each head's metrics over the epoch (torchmetrics syncs them across processes), then reset."""
        self._pooled.flush()
        for metrics in self.metrics[f"{stage}_metrics"]:
            for name, metric in metrics.items():
                if metric.update_called:
                    self._log_epoch(f"{stage}_{name}", metric.compute(), prog_bar=prog_bar)
                metric.reset()

    def on_validation_epoch_start(self) -> None:
        self._eval_losses.reset()  # nothing left from an interrupted pass
        self._pooled.flush()  # training's pending updates go to the training metrics

    def on_test_epoch_start(self) -> None:
        self._eval_losses.reset()
        self._pooled.flush()

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _stop_if_nonfinite(self) -> None:
        """Checked every LOG_EVERY steps, at epoch end and before a checkpoint is written."""
        step = self._losses.first_bad()
        if step is not None:
            raise NonFiniteLoss(
                f"the training loss became NaN or infinite at step {step} (epoch {self.current_epoch}); "
                "the run stopped"
            )

    def on_train_epoch_start(self) -> None:
        self._losses.reset()
        self._train_parts.reset()
        # the last epoch's training row came after its checkpoint, and a resume from that
        # checkpoint starts with this epoch: the row must be on disk before a kill can lose it
        write_rows(self.loggers)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # max_steps reached mid-epoch: Lightning would stop without validating the last steps (no
        # val metrics, no best.ckpt for a run shorter than an epoch); a run asked to stop validates
        trainer = self.trainer
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches (train.loop: fast too)
        if 0 < trainer.max_steps <= self.global_step and done < trainer.num_training_batches:
            trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        self._stop_if_nonfinite()
        if self._losses.seen:
            self._log_epoch("train_loss_epoch", self._losses.total / self._losses.seen)
        for name, value in self._train_parts.means().items():
            self._log_epoch(name, value)
        self._log_metrics("train")

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]  # train.freeze: frozen ones stay out
        # Lightning refuses to clip the gradients of a fused optimizer under mixed precision (the
        # fused step unscales them itself): clipped mixed-precision runs take the unfused one
        mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
        fused = not (mixed and self.cfg.gradient_clip_val)
        optimizer = make_optimizer(self.cfg.optimizer, params, fused=fused)
        schedule = lr_lambda(self.cfg.scheduler, self.cfg.optimizer.lr, self.total_steps)
        if schedule is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self._stop_if_nonfinite()  # never overwrite last.ckpt with NaN weights
        write_rows(self.loggers)
        # dropout and friends draw from the global generator: save it for an exact resume
        checkpoint["netspec_rng"] = {"cpu": torch.get_rng_state()}
        checkpoint["netspec_epoch_loss"] = self._losses.state()  # a resume mid-epoch keeps it
        checkpoint["netspec_epoch_head_losses"] = self._train_parts.state()
        self._pooled.flush()
        # this epoch's train metrics so far (torchmetrics keeps them out of state_dict)
        checkpoint["netspec_train_metrics"] = {
            name: {"state": dict(metric.metric_state), "updates": metric._update_count}
            for metrics in self.metrics["train_metrics"]
            for name, metric in metrics.items()
        }
        # what `netspec predict` needs to read new inputs and the outputs without the training data
        checkpoint["netspec_heads"] = [head.record() for head in self.heads]
        checkpoint["netspec_normalization"] = (
            [list(self.normalization[0]), list(self.normalization[1])] if self.normalization else None
        )
        if torch.cuda.is_available():
            checkpoint["netspec_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        same_steps_in_both_loops(checkpoint)  # before Lightning restores its loops from it
        self._losses.load(checkpoint.get("netspec_epoch_loss", (0.0, 0)))
        self._train_parts.load(checkpoint.get("netspec_epoch_head_losses", {}))
        train_metrics = {name: m for metrics in self.metrics["train_metrics"] for name, m in metrics.items()}
        for name, saved in checkpoint.get("netspec_train_metrics", {}).items():
            metric = train_metrics[name]
            for key, value in saved["state"].items():
                setattr(metric, key, value.to(self.device) if isinstance(value, torch.Tensor) else value)
            metric._update_count, metric._computed = saved["updates"], None
        state = checkpoint.get("netspec_rng")
        if state:
            torch.set_rng_state(state["cpu"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])


def same_steps_in_both_loops(checkpoint: dict) -> None:
    """Lightning counts optimizer steps in one place under automatic optimization and in another
    under manual (``train.loop: fast``): on loading, give both the count, so either loop resumes
    the other's checkpoints (and those written before the fast loop existed) at the right step."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    automatic = loop.get("epoch_loop.automatic_optimization.optim_progress", {}).get("optimizer", {})
    counters = [
        automatic.get("step", {}).get("total"),
        loop.get("epoch_loop.manual_optimization.optim_step_progress", {}).get("total"),
    ]
    if not all(isinstance(c, dict) and isinstance(c.get("completed"), int) for c in counters):
        return
    steps = max(c["completed"] for c in counters)
    for counter in counters:
        counter["ready"] = counter["completed"] = steps


def lr_lambda(sched, base_lr: float, total_steps: float):
    """Multiplier of the base learning rate per optimizer step (None: constant)."""
    if sched.name == "none" and not sched.warmup_steps:
        return None
    total = max(1, int(total_steps) if math.isfinite(total_steps) else 1)
    warmup = sched.warmup_steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = step - warmup
        span = max(1, total - warmup)
        if sched.name == "step":
            return sched.gamma ** (t // sched.step_size)
        if sched.name == "cosine":
            floor = sched.min_lr / base_lr
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
        if sched.name == "onecycle":
            peak = (sched.max_lr or base_lr) / base_lr
            rise = max(1, int(0.3 * span))
            if t < rise:
                return peak / 25 + (peak - peak / 25) * t / rise
            return peak * 0.5 * (1 + math.cos(math.pi * min(t - rise, span - rise) / max(1, span - rise)))
        return 1.0

    return factor
