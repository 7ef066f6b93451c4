"""How a run writes its checkpoints: a snapshot on the training thread, the file in the background;
and when (``checkpoint_callback``: Lightning's ModelCheckpoint with netspec's fixes).

Lightning's own writer serializes the whole checkpoint into memory and then copies it to the
file, while training waits: ~270–480 ms per save of a ResNet-18 with Adam (134 MB) on a CPU,
twice an epoch when the epoch improved (best.ckpt and last.ckpt). Here the training thread only
copies the tensors to host memory (a point-in-time snapshot: ~50 ms for those 134 MB; training
goes on changing the originals) and a single writer thread, in order:

- writes each checkpoint with ``torch.save`` to a temporary file beside it and renames it over
  the old one, so a checkpoint file is always complete, even after a crash mid-write (a killed
  run resumes from the previous one);
- makes ``last.ckpt`` a second name (hard link) of the ``best.ckpt`` just written from the same
  state, instead of writing it twice; a later write renames a new file over that name, which
  leaves the other name its own state;
- removes checkpoints Lightning retires.

Reading a checkpoint, and the end of ``fit``/``test`` (or of netspec's whole run, which lets the
last write overlap its test pass), first wait for the writes before them;
an error of a background write (a full disk) is raised there, or at the next save, as a
located error (exit 2) naming the file.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection

from netspec.errors import Problem, SpecError

MAX_QUEUED = 1  # snapshots waiting for the writer besides the new one: at most two copies in memory


def _as_saved(storage, location):
    return storage  # Lightning's default map_location: tensors where the checkpoint says


class RunCheckpointIO(TorchCheckpointIO):
    """Checkpoint files written in order by one background thread (see the module's docstring)."""

    def __init__(self, wait_at_teardown: bool = True) -> None:
        super().__init__()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        # False: whoever made it calls close() (netspec's fit does, after the test pass and
        # curves.png, which the last checkpoint's write then overlaps)
        self.wait_at_teardown = wait_at_teardown

    def _submit(self, fn, *args: Any) -> None:
        self._raise_failed()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netspec-checkpoint")
        self._pending.append(self._executor.submit(fn, *args))

    def _raise_failed(self) -> None:
        """The error of a finished background write, if one failed (each error raised once)."""
        for future in self._pending:
            if future.done() and future.exception() is not None:
                self._pending.remove(future)
                raise future.exception()
        self._pending = [future for future in self._pending if not future.done()]

    def wait(self) -> None:
        """Block until every write submitted so far is on disk; raise the first error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("netspec's checkpoint writer takes no storage_options")
        self._settle(MAX_QUEUED)  # a run saving faster than the disk writes waits, not piles up copies
        snapshot = snapshot_of(checkpoint)
        self._submit(_write, snapshot, os.fspath(path))

    def _settle(self, most: int) -> None:
        """Wait until at most ``most`` writes are pending (each holds a copy of the state in memory)."""
        while len(self._pending) > most:
            self._pending.pop(0).result()

    def link(self, written, path) -> None:
        """``path`` as a second name of the checkpoint file ``written`` (after its write)."""
        self._submit(share, os.fspath(written), os.fspath(path))

    def remove_checkpoint(self, path) -> None:
        self._submit(super().remove_checkpoint, path)

    def load_checkpoint(
        self, path, map_location: Any = _as_saved, weights_only: bool | None = None
    ) -> dict[str, Any]:
        self.wait()
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def teardown(self) -> None:
        if self.wait_at_teardown:
            self.close()

    def close(self) -> None:
        """Wait for every write, then stop the writer thread (a later save starts a new one)."""
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """A copy in host memory that later training steps do not change."""
    return t.detach().to("cpu", copy=True)


def snapshot_of(value: Any) -> Any:
    """``value`` with every tensor in it copied to host memory, containers rebuilt as they were.

    What a Lightning checkpoint is made of (dicts, OrderedDicts, defaultdicts, lists, tuples,
    namedtuples) is walked here, at ~0.4 of the cost of Lightning's ``apply_to_collection``
    (0.6 ms of each LeNet save), which also rebuilt ``state_dict`` without its ``_metadata``
    (the modules' state versions, which ``load_state_dict`` reads); ``copy.copy`` keeps a
    mapping's type, attributes and ``default_factory``. Anything else (a plugin's extra state:
    dataclasses, other mappings and sequences) goes to ``apply_to_collection`` as before.
    """
    kind = type(value)
    if isinstance(value, torch.Tensor):
        return _to_host(value)
    if kind in _MAPPINGS:
        copied = copy.copy(value)
        for key, item in value.items():
            copied[key] = snapshot_of(item)
        return copied
    if kind is list:
        return [snapshot_of(item) for item in value]
    if kind is tuple:
        return tuple(snapshot_of(item) for item in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return kind(*(snapshot_of(item) for item in value))
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return value
    return apply_to_collection(value, torch.Tensor, _to_host)


_MAPPINGS = (dict, collections.OrderedDict, collections.defaultdict)


def _write(checkpoint: dict[str, Any], path: str) -> None:
    """``torch.save`` to a temporary file in the same directory, renamed over ``path`` when complete."""
    folder = os.path.dirname(path) or "."
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise _not_written(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(temporary):
                os.unlink(temporary)


def _not_written(path: str, exc: OSError) -> SpecError:
    """A checkpoint the disk refused (full, read-only, gone): exit 2 naming the file, not a bug."""
    return SpecError(
        [
            Problem(
                f"cannot write the checkpoint {path}: {exc.strerror or exc}",
                path,
                hint="free disk space or choose a writable train.run_dir; the checkpoints written "
                "before this one are complete",
            )
        ]
    )


def share(written: str, path: str) -> None:
    """``path`` as a second name of the file ``written``, put in place by a rename (never missing);
    a copy where hard links are not allowed."""
    folder = os.path.dirname(path) or "."
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.link")
    try:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        try:
            os.link(written, temporary)
        except OSError:  # a file system without hard links (some network and FUSE mounts)
            shutil.copyfile(written, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise _not_written(path, exc) from None


def checkpoint_callback(**kwargs: Any):
    """Lightning's ModelCheckpoint, except that:

    - a run directory that was moved (or copied) and then resumed keeps its best score: Lightning
      would forget it and point best_model_path at the old place;
    - ``last.ckpt`` is written at the end of every epoch: Lightning 2.6 writes it only when a
      best checkpoint was written at the same step, so after an epoch that did not improve (the
      last ``patience`` epochs of an early-stopped run, by definition) ``--resume`` started over
      from an older epoch;
    - ``best_step`` says when this run wrote its best checkpoint: the test pass skips reading it
      back when the weights in memory are still that state;
    - with netspec's checkpoint writer (:mod:`netspec.training.checkpoint_io`), an epoch that
      improves the best score writes its checkpoint once: ``last.ckpt`` becomes a second name
      of the ``best.ckpt`` just written from the same state (Lightning serializes it twice).
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    class RunCheckpoint(ModelCheckpoint):
        best_step: int | None = None  # the optimizer step of the best checkpoint written by this run

        def _update_best_and_save(self, current: Any, trainer: Any, monitor_candidates: dict) -> None:
            super()._update_best_and_save(current, trainer, monitor_candidates)
            self.best_step = trainer.global_step

        def _generate_state_key(self, **key: Any) -> str:
            return f"ModelCheckpoint{key!r}"  # the plain callback's key: checkpoints of either load

        def on_validation_end(self, trainer: Any, module: Any) -> None:
            super().on_validation_end(trainer, module)
            if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(
                trainer
            ):
                self._save_last_if_behind(trainer)

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            super().on_train_epoch_end(trainer, module)
            if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(
                trainer
            ):
                self._save_last_if_behind(trainer)

        def _save_last_if_behind(self, trainer: Any) -> None:
            if self.save_last and self._last_global_step_saved != trainer.global_step:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

        def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
            written, writer = self._last_checkpoint_saved, trainer.strategy.checkpoint_io
            if not (
                isinstance(writer, RunCheckpointIO)
                and written
                and written != filepath
                and self._last_global_step_saved == trainer.global_step
            ):
                super()._save_checkpoint(trainer, filepath)
                return
            if trainer.is_global_zero:  # the same state: a second name for the file just written
                writer.link(written, filepath)
            trainer.strategy.barrier()
            self._last_checkpoint_saved = filepath
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.after_save_checkpoint(self)

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            old = state_dict.get("dirpath")
            if old and self.dirpath and os.path.abspath(old) != os.path.abspath(self.dirpath):
                here = Path(self.dirpath)

                def moved(path: Any) -> Any:
                    return str(here / Path(path).name) if isinstance(path, str) and path else path

                state_dict = {
                    **state_dict,
                    "dirpath": self.dirpath,
                    **{
                        k: moved(state_dict.get(k))
                        for k in ("best_model_path", "kth_best_model_path", "last_model_path")
                    },
                    "best_k_models": {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()},
                }
            super().load_state_dict(state_dict)

    return RunCheckpoint(**kwargs)
