"""Dataset plugins: the record a plugin registers, and what its loader returns.

Datasets are plugins exactly like layer types: a ``DatasetType`` record returned from the
``netspec_register_datasets`` hook. Loading one never happens at spec-validation time, only
when training starts; loaders import torch (and anything heavy) lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from netspec.errors import NetspecError

if TYPE_CHECKING:
    from torch.utils.data import Dataset


class DataError(NetspecError):
    """A dataset cannot be loaded (missing files, bad arrays); the message says what to do."""


def about_dataset(name: str, exc: DataError) -> str:
    """``exc``'s message led by ``dataset 'NAME': `` once (the built-in loaders say it themselves)."""
    text = str(exc)
    prefix = f"dataset {name!r}"
    return text if text.startswith(prefix) else f"{prefix}: {text}"


class DatasetParams(BaseModel):
    """Base of every dataset's parameters (``name`` selects the dataset type).

    ``name``, ``batch_size``, ``num_workers``, ``random_crop`` and ``hflip`` are added by the
    trainer to every dataset's parameters: a dataset type must not define them itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # every float finite

    val_fraction: StrictFloat = Field(0.1, ge=0.0, lt=1.0, description="Share of the training data held out.")


@dataclass(frozen=True)
class DataContext:
    """What a loader knows: the spec's per-sample input shape, the seed, where files live."""

    input_shape: tuple[int, ...]
    seed: int = 0
    data_dir: Path = field(default_factory=lambda: Path("data"))


@dataclass(frozen=True)
class Splits:
    """A loaded dataset: train/val/test splits, class count and per-sample shape.

    Each split is a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs. Use
    ``torch.utils.data.TensorDataset`` (or ``netspec.datasets._common.NamedTargets`` for several
    named targets) for data that fits in memory: the trainer then moves it to the GPU once and
    batches it there.
    """

    train: Dataset
    val: Dataset
    test: Dataset | None
    num_classes: int | None  # None for regression targets
    sample_shape: tuple[int, ...]
    # Several named targets (a classification and a box head, say): each split then yields
    # ``(x, {name: y})`` and this maps each name to its class count (None: float targets).
    # ``num_classes`` is then the first target's.
    targets: dict[str, int | None] | None = None
    # The label that marks unlabelled samples or pixels: not a class, ignored by losses and metrics.
    ignore_index: int | None = None
    # Per-channel (mean, std) the inputs were standardised with, in units of [0, 1] pixels: `predict`
    # applies the same to new images, and checkpoints keep it.
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None


Loader = Callable[[Any, DataContext], Splits]


@dataclass(frozen=True)
class DatasetType:
    """One dataset type: its ``name`` in ``train.data``, params model, loader, one-line summary.

    ``files`` tells people what the loader reads and where (``netspec datasets`` shows it): the
    file names, the directories searched (relative to the working directory, ``--data-dir``, a
    ``root:`` option …) and how to get them (a URL, a command, ``download: true``). Its first
    line is the short form shown in the listing; the lines after it are shown by
    ``netspec datasets NAME``. Empty means "not described"; say "none" for data made in memory.
    """

    name: str
    params: type[DatasetParams]
    load: Loader
    summary: str = ""
    files: str = ""
