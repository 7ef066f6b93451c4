"""``train.loop: fast``: several optimizer steps per pass through Lightning's batch loop
(and several evaluation batches per pass through its evaluation loop).

Lightning's automatic optimization costs ~1,600 Python calls per optimizer step (hooks, the
closure, progress tracking, logger bookkeeping): 0.3–0.8 ms, ~15 % of a LeNet step on one CPU
thread (``python -m bench.lightning_overhead``). ``ChunkedSpecModule`` takes the loader's iterator
instead of a batch (Lightning's ``dataloader_iter`` step) and makes up to ``CHUNK_BATCHES``
optimizer steps per call, with PyTorch's backward, clipping, AMP scaling, optimizer and schedule
called directly, as Lightning's loop calls them. Lightning's bookkeeping stays exact:

- its batch counters count batches, not calls (a mid-epoch resume skips the right batches, the
  progress bar counts batches) and ``global_step`` counts optimizer steps;
- a call ends where Lightning must act between two steps: at a multiple of
  ``checkpoint_every_n_steps``, at ``max_steps``, at the epoch's end, and after
  ``CHUNK_SECONDS`` (a slow network still shows its progress);
- a chunk holds whole accumulation groups, so every call ends on an optimizer step.

Same batches, same updates, same checkpoints as Lightning's loop: the tests compare the weights
bit for bit. Either loop resumes the other's checkpoints. It applies to one process on one
device with the precisions netspec offers (32, bf16-mixed, 16-mixed); DDP, FSDP, DeepSpeed and
XLA keep Lightning's loop.
"""

from __future__ import annotations

import time

import torch

from netspec.training.module import SpecModule

CHUNK_BATCHES = 16  # most batches per call
CHUNK_SECONDS = 0.2  # a call ends once it has run this long


def fast_loop_applies(trainer) -> bool:
    """One process, one device, a precision whose steps this module makes as Lightning would."""
    from pytorch_lightning.plugins.precision import MixedPrecision, Precision
    from pytorch_lightning.strategies import SingleDeviceStrategy

    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and trainer.num_nodes == 1
        and type(trainer.precision_plugin) in (Precision, MixedPrecision)
    )


def take_over(trainer) -> None:
    """The module clips and accumulates itself (Lightning refuses both under manual optimization)."""
    trainer.gradient_clip_val = None
    trainer.accumulate_grad_batches = 1


class ChunkedSpecModule(SpecModule):
    """``SpecModule`` whose ``training_step`` makes up to ``CHUNK_BATCHES`` optimizer steps."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def training_step(self, dataloader_iter):
        trainer = self.trainer
        loop = trainer.fit_loop.epoch_loop
        optimizer = self.optimizers(use_pl_optimizer=False)
        scheduler = self.lr_schedulers()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        accumulate = self.cfg.accumulate_grad_batches
        before = loop.batch_progress.current.ready - 1  # this epoch's batches before this call
        batches = steps = pending = 0
        start = time.perf_counter()
        for batch in self._batches(dataloader_iter):
            batches += 1
            loss = self._step(batch, "train")
            # as Lightning's closure: each batch's share of the accumulated gradient
            self._backward(loss / accumulate if accumulate > 1 else loss, scaler)
            pending += 1
            if (before + batches) % accumulate and not dataloader_iter.done:
                continue
            self._optimizer_step(optimizer, scaler, scheduler)
            steps, pending = steps + 1, 0
            if self._chunk_ends(batches, start):
                break
        if pending:  # the loader ended without saying so in advance (no length): step what was summed
            self._optimizer_step(optimizer, scaler, scheduler)
            steps += 1
        _count(loop, batches, steps)

    def validation_step(self, dataloader_iter):
        self._evaluate(dataloader_iter, "val")

    def test_step(self, dataloader_iter):
        self._evaluate(dataloader_iter, "test")

    def _evaluate(self, dataloader_iter, stage: str) -> None:
        """Up to ``CHUNK_BATCHES`` evaluation batches per call (Lightning's evaluation loop costs
        ~0.6 ms a batch around the step: a LeNet validation batch takes ~2.5 ms on a CPU)."""
        start = time.perf_counter()
        for batches, batch in enumerate(self._batches(dataloader_iter), start=1):
            self._step(batch, stage)
            if batches >= CHUNK_BATCHES or time.perf_counter() - start >= CHUNK_SECONDS:
                break

    def _batches(self, dataloader_iter):
        """The loader's batches on the device, until the epoch's end (the caller may stop sooner)."""
        while not dataloader_iter.done:
            try:
                batch, _, _ = next(dataloader_iter)
            except StopIteration:
                return
            yield self._on_device(batch)

    def _on_device(self, batch):
        """What Lightning's loop does to a batch before the step (it leaves that to a
        ``dataloader_iter`` step): the precision's input dtype, then the device."""
        from netspec.training.data import on_device

        trainer = self.trainer
        batch = trainer.precision_plugin.convert_input(batch)
        if on_device(batch, self.device):
            return batch
        return trainer.strategy.batch_to_device(batch, dataloader_idx=0)

    @staticmethod
    def _backward(loss: torch.Tensor, scaler) -> None:
        if scaler is not None:
            loss = scaler.scale(loss)
        device = loss.device.type
        if torch.is_autocast_enabled(device):  # Lightning's backward runs outside the step's autocast
            with torch.autocast(device, enabled=False):
                loss.backward()
        else:
            loss.backward()

    def _optimizer_step(self, optimizer, scaler, scheduler) -> None:
        """Unscale, clip, step, zero, schedule: Lightning's order (``MixedPrecision.optimizer_step``)."""
        if scaler is not None and not getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        clip = self.cfg.gradient_clip_val
        if clip:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()  # global_step
        if scheduler is not None:
            scheduler.step()

    def _chunk_ends(self, batches: int, start: float) -> bool:
        """After an optimizer step: must Lightning act before the next one?"""
        step = self.global_step
        every = self.cfg.checkpoint_every_n_steps
        max_steps = self.trainer.max_steps
        return (
            batches >= CHUNK_BATCHES
            or bool(every and step % every == 0)
            or 0 < max_steps <= step
            or time.perf_counter() - start >= CHUNK_SECONDS
        )


def _count(loop, batches: int, steps: int) -> None:
    """Lightning counts one batch and one logger step per call: make it count what the call did.

    Its batch progress then counts batches as in its own loop (the loader's resume position, the
    end of the epoch, the progress bar read it) and ``_batches_that_stepped`` (the step of the
    values logged at epoch end) counts optimizer steps.
    """
    if batches > 1:
        extra = batches - 1
        for tracker in (loop.batch_progress.total, loop.batch_progress.current):
            tracker.ready += extra
            tracker.started += extra
            tracker.processed += extra
            tracker.completed += extra
    if steps > 1:
        loop._batches_that_stepped += steps - 1
