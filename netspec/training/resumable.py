"""Can this checkpoint be resumed? Its training state is data from a file, and checked as such.

A checkpoint is loaded weights-only, so it cannot run code, but a damaged or forged one can still
hold a step count that is text, an optimizer state that is not a dict or an RNG state of the
wrong type. netspec checks what it reads itself (the counters, its epoch sums, train metrics and
RNG state) before anything is built; what Lightning restores (loops, callbacks, optimizers,
schedules, its version migration) is checked by Lightning restoring it, and an error there is
reported as the file's (exit 2, naming it), not as an internal error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netspec.errors import Problem, SpecError, exception_line

HINT = "the checkpoint is damaged or was not written by netspec; start a new run (--init takes its weights)"


def refuse(path: str | Path, what: str) -> SpecError:
    return SpecError([Problem(f"not a resumable netspec checkpoint: {what}", str(path), hint=HINT)])


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def counters(checkpoint: dict, path: str | Path) -> tuple[int, int]:
    """(epochs done, optimizer steps done): the loop's count of finished epochs when it has one."""
    steps = checkpoint.get("global_step", 0)
    if not _count(steps):
        raise refuse(path, f"global_step is {steps!r}, not a step count")
    epochs = checkpoint.get("epoch", 0)
    loops = checkpoint.get("loops", {"fit_loop": {}})
    fit_loop = loops.get("fit_loop") if isinstance(loops, dict) else None
    if not isinstance(fit_loop, dict):
        raise refuse(path, "its loops hold no fit_loop state")
    progress = fit_loop.get("epoch_progress", {})
    current = progress.get("current", {}) if isinstance(progress, dict) else None
    if isinstance(current, dict) and "processed" in current:
        epochs = current["processed"]
    if not _count(epochs):
        raise refuse(path, f"the epoch count is {epochs!r}, not a number of epochs")
    return epochs, steps


def check_netspec_state(checkpoint: dict, path: str | Path, metric_names: set[str]) -> None:
    """The parts netspec's own ``on_load_checkpoint`` reads: the epoch's loss sums, each head's,
    the train metrics' states (of metrics this network has) and the RNG state."""
    import torch

    def pair(value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and isinstance(value[0], (int, float))
            and _count(value[1])
        )

    loss = checkpoint.get("netspec_epoch_loss", (0.0, 0))
    if not pair(loss):
        raise refuse(path, "netspec_epoch_loss is not a (sum, count) pair")
    heads = checkpoint.get("netspec_epoch_head_losses", {})
    if not isinstance(heads, dict) or not all(isinstance(k, str) and pair(v) for k, v in heads.items()):
        raise refuse(path, "netspec_epoch_head_losses is not a mapping of names to (mean, count) pairs")
    metrics = checkpoint.get("netspec_train_metrics", {})
    if not isinstance(metrics, dict):
        raise refuse(path, "netspec_train_metrics is not a mapping")
    for name, saved in metrics.items():
        if name not in metric_names:
            raise refuse(path, f"it holds the state of a train metric {name!r} this network does not have")
        if (
            not isinstance(saved, dict)
            or not isinstance(saved.get("state"), dict)
            or not all(isinstance(k, str) for k in saved["state"])
            or not _count(saved.get("updates"))
        ):
            raise refuse(path, f"the state of train metric {name!r} is malformed")
    rng = checkpoint.get("netspec_rng")
    if rng is None:
        return
    cpu = rng.get("cpu") if isinstance(rng, dict) else None
    if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8 and cpu.dim() == 1):
        raise refuse(path, "netspec_rng holds no CPU generator state (a 1-D uint8 tensor)")
    cuda = rng.get("cuda", [])
    if not (
        isinstance(cuda, (list, tuple))
        and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 for t in cuda)
    ):
        raise refuse(path, "netspec_rng's CUDA states are not 1-D uint8 tensors")


RESTORE_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError, RuntimeError)


@contextlib.contextmanager
def restore_errors_are_the_files(trainer: Any, path: str | Path) -> Iterator[None]:
    """Inside: an error while Lightning restores the checkpoint (and netspec's hook it calls) is
    the file's fault, exit 2; errors anywhere else in training are not touched."""
    connector = trainer._checkpoint_connector
    wrapped = {}
    for name in ("_restore_modules_and_callbacks", "restore_training_state"):
        original = getattr(connector, name)

        def restore(*args: Any, _original=original, **kwargs: Any) -> Any:
            try:
                return _original(*args, **kwargs)
            except SpecError:
                raise
            except RESTORE_ERRORS as exc:
                reason = f"Lightning could not restore its training state: {type(exc).__name__}: "
                raise refuse(path, reason + exception_line(exc)) from None

        wrapped[name] = original
        setattr(connector, name, restore)
    try:
        yield
    finally:
        for name in wrapped:
            with contextlib.suppress(AttributeError):
                delattr(connector, name)  # back to the class's method
