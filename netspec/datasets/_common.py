"""Helpers shared by the built-in loaders: fitting images to the spec's input, seeded splits,
train-set standardisation and packing tensors into :class:`~netspec.data.Splits`.

Kept in one place so that every built-in dataset splits, resizes and normalises the same way.
Callers import this module inside their loaders: it imports torch at module level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from netspec.data import DataError, Splits
from netspec.npzfiles import NpzArrays

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")
CHUNK = 4096  # images resized at a time, to bound peak memory on the big sets


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def image_shape(input_shape: Sequence[int], dataset: str) -> tuple[int, int, int]:
    """The spec's input as [C, H, W] with C 1 or 3; anything else is a DataError saying what works."""
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[0] not in (1, 3):
        raise DataError(
            f"dataset {dataset!r} gives images, but the spec's input is {shape_text(shape)}; "
            "set the spec's `input:` to [1, H, W] (grey) or [3, H, W] (RGB): any H and W work, "
            "the images are resized to them"
        )
    other_data = (
        "give it data of that shape: your own with `train.data: {name: arrays, path: FILE.npz}`, "
        "or random samples to try it with `--set train.data.name=synthetic`"
    )
    if len(shape) == 1:  # an MLP on images: flatten them in the network
        raise DataError(
            f"dataset {dataset!r} gives images [C, H, W], but the spec's input {shape_text(shape)} is flat; "
            "set `input:` to [1, H, W] (grey) or [3, H, W] (RGB) and start the layers with "
            f"`{{type: flatten}}` (any H and W work, the images are resized to them), or {other_data}"
        )
    if len(shape) != 3:  # a 1-D (audio) or 3-D (video) network: the data must change, not the network
        raise DataError(
            f"dataset {dataset!r} gives images [C, H, W], but the spec's input {shape_text(shape)} has "
            f"{len(shape) - 1} spatial dimension(s); {other_data}"
        )
    return shape  # type: ignore[return-value]


def fit_images(images: torch.Tensor, shape: Sequence[int], scale: float) -> torch.Tensor:
    """Images [N, C, H, W] (any dtype) → float32 [N, *shape], divided by ``scale``.

    Bilinear resize (align_corners=False, antialiased when shrinking), then grey → RGB by
    repetition or RGB → grey by luma. Works in chunks so a uint8 set is never held as float twice.
    """
    c, h, w = shape
    n = images.shape[0]
    out = torch.empty((n, c, h, w), dtype=torch.float32)
    for start in range(0, n, CHUNK):
        x = images[start : start + CHUNK].to(torch.float32) / scale
        if tuple(x.shape[-2:]) != (h, w):
            shrink = x.shape[-2] > h or x.shape[-1] > w
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
        if x.shape[1] != c:
            if c == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                x = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA)).unsqueeze(1)
        out[start : start + CHUNK] = x
    return out


MAX_GENERATED_BYTES = 8 * 2**30  # what a generated dataset may hold in memory


def check_generated_size(dataset: str, samples: int, shape: Sequence[int], bytes_per_sample: int) -> None:
    """A generated set that would not fit in memory is a DataError before anything is allocated
    (the count comes from the spec: a typo must not become an out-of-memory crash)."""
    total = samples * bytes_per_sample
    if total > MAX_GENERATED_BYTES:
        raise DataError(
            f"dataset {dataset!r}: {samples:,} samples of shape {shape_text(shape)} would take "
            f"{total / 2**30:,.1f} GiB; at most {MAX_GENERATED_BYTES // 2**30} GiB are generated: lower "
            f"num_samples (at most {max(1, MAX_GENERATED_BYTES // bytes_per_sample):,} at this shape)"
        )


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def holdout_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes of successive hold-outs, each a fraction of what the previous ones left, then the rest."""
    sizes = []
    left = n
    for fraction in fractions:
        size = round(left * fraction)
        sizes.append(size)
        left -= size
    return [left, *sizes]


def random_split(
    n: int, fractions: Sequence[float], seed: int, dataset: str
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Seeded index split: (train, [held out by each fraction]); the train part must not be empty."""
    sizes = holdout_sizes(n, fractions)
    if sizes[0] < 1:
        raise DataError(
            f"dataset {dataset!r}: {n} samples leave no training data after the hold-outs "
            f"({', '.join(str(s) for s in sizes[1:])}); use smaller val_fraction/test_fraction or more data"
        )
    perm = torch.randperm(n, generator=generator(seed))
    parts = list(torch.split(perm, sizes))
    return parts[0], parts[1:]


def standardize(
    train: torch.Tensor, *others: torch.Tensor | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (dim 1) standardisation with the train split's statistics, in place.

    Returns the per-channel (mean, std) used, as ``Splits.normalization`` keeps them. A constant
    channel keeps std 1.
    """
    dims = [0, *range(2, train.dim())]
    std, mean = torch.std_mean(train, dim=dims, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    for x in (train, *others):
        if x is not None and x.numel():
            x.sub_(mean).div_(std)
    return tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())


class NamedTargets(Dataset):
    """Inputs with several named targets, all in memory: item ``i`` is ``(x[i], {name: y[i]})``.

    The trainer batches it on the device like a ``TensorDataset`` (it reads ``x`` and ``targets``).
    """

    def __init__(self, x: torch.Tensor, targets: dict[str, torch.Tensor]):
        for name, y in targets.items():
            if len(y) != len(x):
                raise DataError(f"target {name!r} has {len(y)} samples but the inputs have {len(x)}")
        self.x, self.targets = x, targets

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {name: y[i] for name, y in self.targets.items()}


Target = torch.Tensor | dict[str, torch.Tensor]


def in_memory(ds: Dataset) -> tuple[torch.Tensor, Target] | None:
    """(inputs, targets) of a split held in tensors (``TensorDataset`` of two, ``NamedTargets``)."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        return ds.tensors[0], ds.tensors[1]
    if isinstance(ds, NamedTargets):
        return ds.x, ds.targets
    return None


def dataset(x: torch.Tensor, y: Target) -> Dataset:
    if isinstance(y, dict):
        return NamedTargets(x.contiguous(), {k: v.contiguous() for k, v in y.items()})
    return TensorDataset(x.contiguous(), y.contiguous())


def pack(
    train: tuple[torch.Tensor, Target],
    val: tuple[torch.Tensor, Target],
    test: tuple[torch.Tensor, Target] | None,
    num_classes: int | None,
    **extra,
) -> Splits:
    """Splits from (x, y) tensor pairs; ``extra``: the optional Splits fields (targets, ignore_index,
    normalization)."""
    return Splits(
        train=dataset(*train),
        val=dataset(*val),
        test=dataset(*test) if test is not None else None,
        num_classes=num_classes,
        sample_shape=tuple(train[0].shape[1:]),
        **extra,
    )


def read_npz(path, who: str) -> NpzArrays:
    """The arrays of a .npz by name (never pickled objects), each decompressed when first asked
    for, and refused when it would not fit in memory: pick the keys before reading. A damaged,
    empty or torn file is a DataError naming ``who`` ("dataset 'arrays'") and the file."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError as exc:
        raise DataError(f"{who}: cannot read {path} as .npz: {exc}") from exc
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # numpy would guess a pickle
        raise DataError(
            f"{who}: {path} is not a .npz file (a zip archive of .npy arrays, as numpy.savez "
            f"writes): {'it is empty' if not head else 'it does not start as a zip archive does'}"
        )
    return NpzArrays(path, lambda reason: DataError(f"{who}: {reason}"))
