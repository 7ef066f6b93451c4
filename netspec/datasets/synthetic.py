"""``synthetic``: random data of any shape and class count, for tests and benchmarks.

It needs no files and is learnable: each class has a fixed random prototype and a sample is its
class prototype plus Gaussian noise, so a network (even a linear one) can fit it and a training
run that does not learn shows up as a bug rather than as a hard dataset. Everything is drawn
from ``ctx.seed``.
"""

from __future__ import annotations

import math

from pydantic import Field, StrictFloat

from netspec.data import DataContext, DatasetParams, DatasetType, Splits
from netspec.hookspecs import hookimpl
from netspec.params import PositiveInt


class SyntheticParams(DatasetParams):
    """Class prototypes plus Gaussian noise: any shape, any number of classes."""

    num_samples: PositiveInt = Field(1024, description="Samples in all (train + val + test).")
    num_classes: PositiveInt = Field(10, description="Classes (labels 0..num_classes-1, balanced).")
    shape: list[PositiveInt] | None = Field(
        None, min_length=1, description="Per-sample shape (default: the spec's input)."
    )
    noise: StrictFloat = Field(
        1.0, ge=0.0, description="Std of the noise added to the unit-variance prototypes."
    )
    test_fraction: StrictFloat = Field(
        0.2, ge=0.0, lt=1.0, description="Share of all samples held out for test."
    )


def load_synthetic(p: SyntheticParams, ctx: DataContext) -> Splits:
    """x = prototype[y] + noise · N(0, 1); labels balanced, then a seeded split like ``digits``."""
    import torch

    from netspec.datasets import _common

    shape = tuple(p.shape) if p.shape is not None else tuple(ctx.input_shape)
    _common.check_generated_size("synthetic", p.num_samples, shape, 4 * math.prod(shape))
    gen = _common.generator(ctx.seed)
    prototypes = torch.randn((p.num_classes, *shape), generator=gen)
    labels = torch.arange(p.num_samples) % p.num_classes
    x = prototypes[labels] + p.noise * torch.randn((p.num_samples, *shape), generator=gen)
    train, (test, val) = _common.random_split(
        p.num_samples, (p.test_fraction, p.val_fraction), ctx.seed + 1, "synthetic"
    )
    parts = [(x[i], labels[i]) for i in (train, val, test)]
    return _common.pack(parts[0], parts[1], parts[2] if len(test) else None, num_classes=p.num_classes)


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "synthetic",
            SyntheticParams,
            load_synthetic,
            summary="Random class prototypes plus noise, any shape (tests and benchmarks; no files).",
            files="none: generated in memory from the run's seed",
        )
    ]
