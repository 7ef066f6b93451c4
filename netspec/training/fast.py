"""What keeps a training step cheap: per-step bookkeeping off the device's critical path.

- ``StepLosses``: each step's training loss is only appended to a list (no tensor op, no sync);
  every ``LOG_EVERY`` steps, at the end of the epoch and before a checkpoint, the list is folded
  into the epoch's loss sum and the first non-finite step, in a few ops on the device.
- ``forward``: a compiled network sees one batch size only (the last partial training batch is
  dropped, a short evaluation batch padded and its outputs cut back), so validation and test
  reuse one graph instead of recompiling; ``train.memory_format: channels_last`` puts image
  batches in NHWC.
- ``EpochMeans``: validation and test losses (and each head's training loss, with several
  heads) summed on the device and logged once per epoch;
  a ``self.log`` per batch costs ~0.3 ms, one of a torchmetrics object ~1 ms (Lightning moves
  the whole metric module to the device at every call).
- ``PooledUpdates``: a small output's metric inputs (a classifier's logits) pooled over
  ``POOLED_BATCHES`` batches into one torchmetrics update: an update costs ~70 µs of Python
  whatever its size, 1 % of a LeNet step on a CPU.
- ``compile_counts``: how many graphs ``torch.compile`` built (bench/train_speed.py and the
  tests read it).
"""

from __future__ import annotations

import torch


class StepLosses:
    """This epoch's training loss (sum over samples, count) and the first step whose loss was not finite.

    ``add`` costs no tensor op: it keeps a reference to the step's (detached) loss. ``fold`` turns
    the pending losses into a running sum and a "first bad step" on the device; ``first_bad`` then
    reads that one number (a sync), which the module does every ``LOG_EVERY`` steps.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0  # sum of loss × batch size over the epoch so far
        self.seen = 0  # samples so far
        self._bad: torch.Tensor | None = None  # step of the first non-finite loss, -1: none
        self._pending: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._steps: list[int] = []

    def reset(self) -> None:
        """A new epoch: the loss sum starts again (a non-finite step already seen stays)."""
        self.fold()
        self.total, self.seen = 0.0, 0

    def add(self, loss: torch.Tensor, size: int, step: int) -> None:
        self._pending.append(loss)
        self._sizes.append(size)
        self._steps.append(step)
        self.seen += size

    def fold(self) -> None:
        if not self._pending:
            return
        losses = torch.stack(self._pending).float()
        device = losses.device
        sizes = torch.tensor(self._sizes, dtype=losses.dtype).to(device, non_blocking=True)
        steps = torch.tensor(self._steps, dtype=torch.int64).to(device, non_blocking=True)
        self.total = self.total + (losses * sizes).sum()
        bad = ~torch.isfinite(losses)
        # the first pending step with a non-finite loss, else -1; an earlier one found before wins
        first = torch.where(bad.any(), steps[bad.int().argmax()], -1)
        self._bad = first if self._bad is None else torch.where(self._bad >= 0, self._bad, first)
        self._pending, self._sizes, self._steps = [], [], []

    def first_bad(self) -> int | None:
        """The step whose loss first was NaN or infinite (None: none); reads one number from the device."""
        self.fold()
        if self._bad is None:
            return None
        step = int(self._bad)
        return step if step >= 0 else None

    def state(self) -> tuple[float, int]:
        """For checkpoints: a resumed run continues this epoch's loss sum."""
        self.fold()
        return float(self.total), self.seen

    def load(self, state: tuple[float, int]) -> None:
        self._pending, self._sizes, self._steps = [], [], []
        self.total, self.seen = state


POOLED_BATCHES = 8  # batches whose metric inputs make one torchmetrics update
POOLED_ELEMENTS = 1 << 16  # outputs up to this many values a batch are pooled; larger ones update at once


class PooledUpdates:
    """Metric updates of several batches made as one, on the batches' inputs concatenated.

    The metrics netspec logs keep counts and sums, so one update on the concatenation gives what
    the separate updates give (the same counts; sums of floats grouped differently). ``flush``
    before reading or saving a metric: the module does at each epoch's end and in checkpoints.
    """

    def __init__(self) -> None:
        self._pending: dict[int, tuple[object, list[torch.Tensor], list[torch.Tensor]]] = {}

    def update(self, metrics, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``metrics``: the ModuleDict of one head and stage."""
        if pred.numel() > POOLED_ELEMENTS:
            self.flush()
            _update(metrics, pred, target)
            return
        _, preds, targets = self._pending.setdefault(id(metrics), (metrics, [], []))
        preds.append(pred)
        targets.append(target)
        if len(preds) >= POOLED_BATCHES:
            self.flush()

    def flush(self) -> None:
        for metrics, preds, targets in self._pending.values():
            _update(
                metrics,
                torch.cat(preds) if len(preds) > 1 else preds[0],
                torch.cat(targets) if len(targets) > 1 else targets[0],
            )
        self._pending = {}


def _update(metrics, pred: torch.Tensor, target: torch.Tensor) -> None:
    for metric in metrics.values():
        metric.update(pred, target)


class EpochMeans:
    """Sample-weighted means over an epoch of per-batch values (evaluation losses, heads' training losses).

    ``add`` keeps a reference to the batch's value; ``means`` folds them in one op per name.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[torch.Tensor]] = {}
        self._sizes: list[int] = []

    def add(self, values: dict[str, torch.Tensor], size: int) -> None:
        for name, value in values.items():
            self._values.setdefault(name, []).append(value.detach())
        self._sizes.append(size)

    def reset(self) -> None:
        self._values, self._sizes = {}, []

    def state(self) -> dict[str, list[float]]:
        """For checkpoints: each name's [mean, samples] so far (a resumed epoch continues them)."""
        samples = sum(self._sizes)
        return {name: [float(mean), samples] for name, mean in self._current().items()}

    def load(self, state: dict[str, list[float]]) -> None:
        self.reset()
        for name, (mean, samples) in state.items():
            self._values[name] = [torch.tensor(float(mean))]
            self._sizes = [int(samples)]

    def means(self) -> dict[str, torch.Tensor]:
        """Each name's mean over the samples added since the last call (then starts again)."""
        current = self._current()
        self.reset()
        return current

    def _current(self) -> dict[str, torch.Tensor]:
        if not self._values:
            return {}
        device = next(iter(self._values.values()))[0].device
        weights = torch.tensor(self._sizes, dtype=torch.float32).to(device, non_blocking=True)
        return {
            name: (torch.stack(parts).float() * weights).sum() / weights.sum()
            for name, parts in self._values.items()
        }


def forward(model, x, *, static_batch: int | None, channels_last: bool):
    """The network on one batch: NHWC input for channels_last; static shapes for a compiled model.

    A compiled network recompiles for every new batch size (and on a CPU even a batch dimension
    marked dynamic gets a guard at 16, from the convolution's kernel choice). Training batches
    all have one size (``SpecDataModule`` drops the last partial batch of an epoch when
    compiling: each epoch a different random remainder); in evaluation, a short last batch is
    padded with zeros to ``static_batch`` and its outputs cut back, so every sample still counts
    in the validation and test metrics and eval needs one graph.
    """
    if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    n = len(x) if isinstance(x, torch.Tensor) and x.dim() > 0 else None
    if static_batch is None or model.training or n is None or n >= static_batch:
        return model(x)
    pad = x.new_zeros((static_batch - n, *x.shape[1:]))
    if channels_last and x.dim() == 4:
        pad = pad.contiguous(memory_format=torch.channels_last)
    out = model(torch.cat([x, pad]))
    return tuple(part[:n] for part in out) if isinstance(out, tuple) else out[:n]


def compile_counts() -> dict[str, int]:
    """What torch.compile has built in this process so far (read it before and after a run).

    ``graphs``: graphs compiled (dynamo's ``unique_graphs``); ``frames``: frames compiled, a
    recompile counting again. A training run needs 2 graphs, one compile each: the training
    step's and the evaluation one's (no grad and ``training=False`` fail the first graph's guards:
    a new graph, not a recompile of one). More than 2 means recompiles, e.g. for a new batch size.
    """
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]), "frames": int(counters["frames"]["ok"])}
