"""``arrays``: the user's own data, from a ``.npz`` or a ``.pt`` file.

Most people's data already sits in arrays; this loads them without writing a plugin. Inputs
and labels are matched by the usual key names, checked against the spec's input shape (with a
message saying which side to change), and labels decide the task: integer labels are classes,
float targets are regression. ``.npz`` is read without pickle and ``.pt`` with
``weights_only=True``, so a data file cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.hookspecs import hookimpl
from netspec.params import PositiveInt

KEY_PAIRS = (("x", "y"), ("inputs", "labels"), ("X", "y"))
SUFFIXES = (".npz", ".pt", ".pth")


class ArraysParams(DatasetParams):
    """Your own arrays: a .npz (x/y, inputs/labels or X/y) or a .pt (such a dict, or a tuple (x, y))."""

    path: str = Field(description="The training data; relative paths: the working directory, then data_dir.")
    test_path: str | None = Field(None, description="A separate test set in the same format.")
    test_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of `path` held out for test (when there is no test_path)."
    )
    num_classes: PositiveInt | None = Field(
        None, description="Classes (default: max label + 1; float targets mean regression)."
    )

    @model_validator(mode="after")
    def _one_test_set(self):
        if self.test_path is not None and self.test_fraction > 0:
            raise ValueError("give test_path or test_fraction, not both")
        return self


def resolve(path: str, data_dir: Path) -> Path:
    """An absolute path, or relative to the working directory, then to ``data_dir``."""
    given = Path(os.path.expanduser(path))
    tried = [given] if given.is_absolute() else [Path.cwd() / given, (Path(data_dir) / given).absolute()]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"dataset 'arrays': file {path!r} not found; looked for " + " and ".join(str(t) for t in tried)
    )


def read_pair(path: Path) -> tuple[Any, Any]:
    """(inputs, labels) from a .npz or .pt file, as tensors."""
    import torch

    suffix = path.suffix.lower()
    if suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as archive:
                contents = {k: archive[k] for k in archive.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"dataset 'arrays': cannot read {path} as .npz: {exc}") from exc
        x, y = _by_keys(contents, path)
        return _tensor(x, path, "inputs"), _tensor(y, path, "labels")
    if suffix in (".pt", ".pth"):
        try:
            contents = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for anything but tensors and containers
            raise DataError(
                f"dataset 'arrays': cannot read {path} with torch.load(weights_only=True): {exc}; save "
                "plain tensors, e.g. torch.save({'x': x, 'y': y}, path), or use a .npz"
            ) from exc
        if isinstance(contents, dict):
            x, y = _by_keys(contents, path)
        elif isinstance(contents, (tuple, list)) and len(contents) == 2:
            x, y = contents
        else:
            raise DataError(
                f"dataset 'arrays': {path} holds a {type(contents).__name__}; expected a dict with keys "
                f"{_pairs_text()} or a tuple (x, y)"
            )
        return _tensor(x, path, "inputs"), _tensor(y, path, "labels")
    raise DataError(f"dataset 'arrays': {path} has suffix {path.suffix!r}; supported: {', '.join(SUFFIXES)}")


def _pairs_text() -> str:
    return ", ".join(f"{a!r}/{b!r}" for a, b in KEY_PAIRS)


def _by_keys(contents: dict, path: Path) -> tuple[Any, Any]:
    for x_key, y_key in KEY_PAIRS:
        if x_key in contents and y_key in contents:
            return contents[x_key], contents[y_key]
    found = ", ".join(repr(k) for k in contents) or "none"
    raise DataError(
        f"dataset 'arrays': {path} has keys {found}; expected one of the pairs {_pairs_text()} "
        "(inputs/labels)"
    )


def _tensor(value: Any, path: Path, what: str):
    import torch

    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"dataset 'arrays': the {what} in {path} are not a numeric array: {exc}") from exc
    if tensor.dtype.is_complex:
        raise DataError(f"dataset 'arrays': the {what} in {path} are complex; expected real numbers")
    if tensor.dim() == 0:
        raise DataError(f"dataset 'arrays': the {what} in {path} are a scalar; expected one per sample")
    return tensor


def check_inputs(x, y, path: Path, input_shape: tuple[int, ...]) -> None:
    from netspec.datasets._common import shape_text

    if len(x) != len(y):
        raise DataError(f"dataset 'arrays': {path} has {len(x)} inputs but {len(y)} labels; give one each")
    sample = tuple(x.shape[1:])
    if sample != tuple(input_shape):
        hint = ""
        if _prod(sample) == _prod(input_shape):
            hint = f" (same number of values: reshape the arrays to [N, {', '.join(map(str, input_shape))}])"
        raise DataError(
            f"dataset 'arrays': samples in {path} have shape {shape_text(sample)}, but the spec's input "
            f"is {shape_text(input_shape)}; change the spec's `input:` to {shape_text(sample)} or "
            f"the arrays{hint}"
        )


def check_finite(values, path: Path, what: str) -> None:
    """NaN or inf in the data would train to NaN weights without a word: refuse them here."""
    import torch

    if not values.dtype.is_floating_point:
        return
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        first = int(bad.reshape(len(values), -1).any(dim=1).nonzero()[0, 0]) if values.dim() else 0
        raise DataError(
            f"dataset 'arrays': the {what} in {path} hold {int(bad.sum())} NaN/inf value(s), the "
            f"first in sample {first}; remove or replace them"
        )


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def labels_task(labels: list, paths: list[Path], num_classes: int | None):
    """Labels as int64 class indices (returns the class count) or float32 regression targets (None)."""
    import torch

    if not any(y.dtype.is_floating_point for y in labels):  # integer or bool labels: classes
        labels = [y.to(torch.int64) for y in labels]
    elif num_classes is not None and all(
        not y.dtype.is_floating_point or bool((y == y.round()).all()) for y in labels
    ):
        labels = [y.to(torch.int64) for y in labels]  # whole-number floats with num_classes: classes
    elif num_classes is not None:
        raise DataError(
            f"dataset 'arrays': num_classes is {num_classes} but the labels in {paths[0]} are fractional "
            "floats; give integer class labels, or leave num_classes out for regression"
        )
    else:
        return [y.to(torch.float32) for y in labels], None
    for y, path in zip(labels, paths, strict=True):
        if y.dim() != 1:
            raise DataError(
                f"dataset 'arrays': integer labels in {path} have shape {list(y.shape)}; expected one class "
                "index per sample, shape [N] (float targets of any shape are regression)"
            )
    low = min(int(y.min()) for y in labels if y.numel())
    high = max(int(y.max()) for y in labels if y.numel())
    if low < 0:
        raise DataError(f"dataset 'arrays': class labels must be ≥ 0; found {low}")
    if num_classes is None:
        num_classes = high + 1
    elif high >= num_classes:
        raise DataError(
            f"dataset 'arrays': label {high} does not fit num_classes {num_classes} (labels are "
            f"0..{num_classes - 1}); raise num_classes or fix the labels"
        )
    return labels, num_classes


def load_arrays(p: ArraysParams, ctx: DataContext) -> Splits:
    """Train (and val, val_fraction of it) from ``path``; test from ``test_path`` or test_fraction."""
    import torch

    from netspec.datasets import _common

    paths = [resolve(p.path, ctx.data_dir)]
    if p.test_path is not None:
        paths.append(resolve(p.test_path, ctx.data_dir))
    pairs = [read_pair(path) for path in paths]
    for (x, y), path in zip(pairs, paths, strict=True):
        check_inputs(x, y, path, tuple(ctx.input_shape))
        check_finite(x, path, "inputs")
        check_finite(y, path, "labels")
        if len(x) == 0:
            raise DataError(f"dataset 'arrays': {path} holds no samples")
    ys, num_classes = labels_task([y for _, y in pairs], paths, p.num_classes)
    xs = [x.to(torch.float32) for x, _ in pairs]
    fractions = (p.test_fraction, p.val_fraction) if p.test_path is None else (0.0, p.val_fraction)
    train, (test, val) = _common.random_split(len(xs[0]), fractions, ctx.seed, "arrays")
    if p.test_path is not None:
        test_part = (xs[1], ys[1])
    else:
        test_part = (xs[0][test], ys[0][test]) if len(test) else None
    return _common.pack((xs[0][train], ys[0][train]), (xs[0][val], ys[0][val]), test_part, num_classes)


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "arrays",
            ArraysParams,
            load_arrays,
            summary="Your own arrays from a .npz (x/y, inputs/labels, X/y) or a .pt file.",
        )
    ]
