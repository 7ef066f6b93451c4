"""``digits``: the offline default dataset, so ``netspec train`` works with no download.

1797 handwritten digits (8×8 grey, values 0..16, 10 classes; the UCI set that scikit-learn ships
as ``load_digits``) come with netspec, in ``data/digits.npz`` (45 KB). They are resized to
whatever [1 or 3, H, W] input the spec declares, scaled to [0, 1] and (by default) standardised
with the training split's statistics. The split is seeded, so the same spec and seed always train
and validate on the same samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, StrictBool, StrictFloat

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.hookspecs import hookimpl

DIGITS_FILE = Path(__file__).resolve().parent / "data" / "digits.npz"


class DigitsParams(DatasetParams):
    """The UCI 8×8 handwritten digits bundled with netspec, resized to the spec's input."""

    test_fraction: StrictFloat = Field(
        0.2, ge=0.0, lt=1.0, description="Share of all samples held out for test."
    )
    normalize: StrictBool = Field(True, description="Standardise with the training split's mean and std.")


def digits_arrays() -> tuple[Any, Any]:
    """(images [1797, 8, 8] float64 0..16, labels [1797] int64), as scikit-learn's ``load_digits``."""
    import numpy as np

    from netspec.datasets._common import read_npz

    bundled = read_npz(DIGITS_FILE, "dataset 'digits' (reinstall netspec)")
    images, labels = bundled.get("images"), bundled.get("labels")
    if images is None or labels is None or images.shape != (1797, 8, 8) or labels.shape != (1797,):
        raise DataError(f"dataset 'digits': {DIGITS_FILE} is not netspec's digits file; reinstall netspec")
    return images.astype(np.float64), labels.astype(np.int64)


def load_digits(p: DigitsParams, ctx: DataContext) -> Splits:
    """1797 samples → test (test_fraction), then val (val_fraction of the rest), then train."""
    import torch

    from netspec.datasets import _common

    shape = _common.image_shape(ctx.input_shape, "digits")
    images, labels = digits_arrays()
    images = torch.from_numpy(images).unsqueeze(1)  # [1797, 1, 8, 8], float64 0..16
    labels = torch.from_numpy(labels).to(torch.int64)
    x = _common.fit_images(images, shape, scale=16.0)
    train, (test, val) = _common.random_split(len(x), (p.test_fraction, p.val_fraction), ctx.seed, "digits")
    parts = [(x[i], labels[i]) for i in (train, val, test)]
    normalization = None
    if p.normalize:
        normalization = _common.standardize(parts[0][0], parts[1][0], parts[2][0])
    return _common.pack(
        parts[0], parts[1], parts[2] if len(test) else None, num_classes=10, normalization=normalization
    )


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "digits",
            DigitsParams,
            load_digits,
            summary="Handwritten 8×8 digits (UCI; bundled, offline, 10 classes), resized to the input.",
            files="none to fetch: netspec ships them (netspec/datasets/data/digits.npz, 45 KB)\n"
            "nothing is looked for in --data-dir and nothing is downloaded",
        )
    ]
