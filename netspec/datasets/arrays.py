"""``arrays``: the user's own data, from a ``.npz`` or a ``.pt`` file.

Most people's data already sits in arrays; this loads them without writing a plugin. Inputs
and labels are matched by the usual key names, checked against the spec's input shape (with a
message saying which side to change), and labels decide the task: integer labels are classes
(one per sample, [N], or a mask per sample, [N, *S], for segmentation), float targets are
regression. ``ignore_index`` names a label value that is no class (unlabelled pixels), and
``targets`` names several label arrays in one file (a class and a box, say): the splits then
yield ``(x, {name: y})``. ``.npz`` is read without pickle and ``.pt`` with ``weights_only=True``,
so a data file cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictFloat, StrictInt, model_validator

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.errors import exception_line
from netspec.hookspecs import hookimpl
from netspec.params import PositiveInt

KEY_PAIRS = (("x", "y"), ("inputs", "labels"), ("X", "y"))
SUFFIXES = (".npz", ".pt", ".pth")
INPUT_KEYS = ("x", "inputs", "X")  # with `targets:`, where the inputs are
SAVE = "numpy.savez(FILE, x=inputs, y=labels) or torch.save({'x': inputs, 'y': labels}, FILE)"
FILES = (
    "your own .npz/.pt file, given as `path:` (and `test_path:`): relative paths are looked for in "
    "the working directory, then under --data-dir (default: data/)\n"
    "a .npz holds x/y, inputs/labels or X/y (read without pickle); a .pt holds such a dict or a tuple "
    "(x, y) (read with weights_only=True)\n"
    "inputs: [N, *the spec's input]; labels: [N] integer classes, [N, *S] integer masks, or float "
    "targets (regression); `targets: [y, box]` reads several label arrays by name\n"
    f"to make one: {SAVE}"
)


class ArraysParams(DatasetParams):
    """Your own arrays: a .npz (x/y, inputs/labels or X/y) or a .pt (such a dict, or a tuple (x, y))."""

    path: str = Field(description="The training data; relative paths: the working directory, then data_dir.")
    test_path: str | None = Field(None, description="A separate test set in the same format.")
    test_fraction: StrictFloat = Field(
        0.0, ge=0.0, lt=1.0, description="Share of `path` held out for test (when there is no test_path)."
    )
    num_classes: PositiveInt | dict[str, PositiveInt] | None = Field(
        None,
        description="Classes (default: max label + 1; float targets mean regression); with several "
        "`targets`, one per class target: {y: 10}.",
    )
    targets: list[str] | None = Field(
        None,
        min_length=1,
        description="Several label arrays by their keys in the file (e.g. [y, box]); each split then "
        "yields (x, {name: y}). The inputs are x, inputs or X. Default: the one labels array.",
    )
    ignore_index: Annotated[StrictInt, Field(ge=-(2**31), lt=2**31)] | None = Field(
        None,
        description="A label value that is no class (e.g. 255 for unlabelled pixels): left out of the "
        "class count and range check, and ignored by losses and metrics.",
    )

    @model_validator(mode="after")
    def _one_test_set(self):
        if self.test_path is not None and self.test_fraction > 0:
            raise ValueError("give test_path or test_fraction, not both")
        return self

    @model_validator(mode="after")
    def _targets_and_classes(self):
        targets = self.targets or []
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise ValueError(f"targets lists {', '.join(map(repr, repeated))} more than once")
        if isinstance(self.num_classes, dict):
            unknown = [name for name in self.num_classes if name not in targets]
            if unknown:
                raise ValueError(
                    f"num_classes names {', '.join(map(repr, unknown))}, which `targets` does not list "
                    f"(targets: {', '.join(targets) or 'none'}); give a number without `targets`"
                )
        elif self.num_classes is not None and len(targets) > 1:
            raise ValueError(
                f"num_classes is one number but there are {len(targets)} targets; give it per class "
                f"target, e.g. num_classes: {{{targets[0]}: {self.num_classes}}}"
            )
        return self

    def classes_of(self, target: str | None) -> int | None:
        """The num_classes given for one target (None: the single labels array)."""
        if isinstance(self.num_classes, dict):
            return self.num_classes.get(target) if target is not None else None
        return self.num_classes


def resolve(path: str, data_dir: Path) -> Path:
    """An absolute path, or relative to the working directory, then to ``data_dir``."""
    given = Path(os.path.expanduser(path))
    tried = [given] if given.is_absolute() else [Path.cwd() / given, (Path(data_dir) / given).absolute()]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"dataset 'arrays': file {path!r} not found\n  to get it: `path:` and `test_path:` name your own "
        f"data files; save yours with {SAVE}\n  looked for " + " and ".join(str(t) for t in tried)
    )


def read_arrays(path: Path, targets: list[str] | None = None) -> tuple[Any, Any]:
    """(inputs, labels) from a .npz or .pt file, as tensors; with ``targets``, labels is {name: tensor}."""
    contents = _read(path)
    if targets is None:
        if isinstance(contents, Mapping):
            x, y = _by_keys(contents, path)
        elif isinstance(contents, (tuple, list)) and len(contents) == 2:
            x, y = contents
        else:
            raise DataError(
                f"dataset 'arrays': {path} holds a {type(contents).__name__}; expected a dict with keys "
                f"{_pairs_text()} or a tuple (x, y)"
            )
        return _tensor(x, path, "inputs"), _tensor(y, path, "labels")
    if not isinstance(contents, Mapping):
        raise DataError(
            f"dataset 'arrays': `targets:` names arrays in the file, but {path} holds a "
            f"{type(contents).__name__}; save a dict, e.g. torch.save({{'x': x, 'y': y, 'box': box}}, path)"
        )
    found = ", ".join(repr(k) for k in contents) or "none"
    x_key = next((k for k in INPUT_KEYS if k in contents and k not in targets), None)
    if x_key is None:
        raise DataError(
            f"dataset 'arrays': {path} has keys {found}; the inputs must be one of "
            f"{', '.join(map(repr, INPUT_KEYS))} (not listed in `targets:`)"
        )
    missing = [t for t in targets if t not in contents]
    if missing:
        raise DataError(
            f"dataset 'arrays': `targets:` names {', '.join(map(repr, missing))}, which {path} does not "
            f"hold; its keys: {found}"
        )
    return _tensor(contents[x_key], path, "inputs"), {
        name: _tensor(contents[name], path, _what(name)) for name in targets
    }


def _read(path: Path) -> Any:
    """A .npz as a dict of arrays, or whatever a .pt holds (tensors in dicts, tuples, lists)."""
    import torch

    suffix = path.suffix.lower()
    if suffix == ".npz":
        from netspec.datasets._common import read_npz

        return read_npz(path, "dataset 'arrays'")
    if suffix in (".pt", ".pth"):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for anything but tensors and containers
            raise DataError(
                f"dataset 'arrays': cannot read {path} with torch.load(weights_only=True): "
                f"{exception_line(exc)}; save "
                "plain tensors, e.g. torch.save({'x': x, 'y': y}, path), or use a .npz"
            ) from exc
    raise DataError(f"dataset 'arrays': {path} has suffix {path.suffix!r}; supported: {', '.join(SUFFIXES)}")


def _what(target: str | None) -> str:
    """How messages name a labels array: "labels", or "'box' labels" for a named target."""
    return "labels" if target is None else f"{target!r} labels"


def _pairs_text() -> str:
    return ", ".join(f"{a!r}/{b!r}" for a, b in KEY_PAIRS)


def _by_keys(contents: dict, path: Path) -> tuple[Any, Any]:
    for x_key, y_key in KEY_PAIRS:
        if x_key in contents and y_key in contents:
            return contents[x_key], contents[y_key]
    found = ", ".join(repr(k) for k in contents) or "none"
    raise DataError(
        f"dataset 'arrays': {path} has keys {found}; expected one of the pairs {_pairs_text()} "
        "(inputs/labels), or name the label arrays with `targets:`"
    )


def _tensor(value: Any, path: Path, what: str):
    import torch

    from netspec.filetensors import layout_problem

    if isinstance(value, torch.Tensor) and (problem := layout_problem(value)):
        raise DataError(f"dataset 'arrays': the {what} in {path} are {problem}")
    if not getattr(getattr(value, "dtype", None), "isnative", True):  # a numpy array saved big-endian
        value = value.astype(value.dtype.newbyteorder("="))  # big-endian: the same numbers, swapped
    try:
        tensor = torch.as_tensor(value).detach()  # saved with requires_grad: batches would share a graph
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"dataset 'arrays': the {what} in {path} are not a numeric array: {exc}") from exc
    if tensor.is_floating_point() and tensor.element_size() == 1:  # float8: too few ops (isfinite, …)
        tensor = tensor.to(torch.float32)
    if tensor.dtype.is_complex:
        raise DataError(f"dataset 'arrays': the {what} in {path} are complex; expected real numbers")
    if tensor.dim() == 0:
        raise DataError(f"dataset 'arrays': the {what} in {path} are a scalar; expected one per sample")
    if tensor.dtype == torch.uint64:  # torch computes in int64: values of 2**63 and more would wrap
        tensor = tensor.to(torch.int64)
        if bool((tensor < 0).any()):
            raise DataError(
                f"dataset 'arrays': the {what} in {path} hold uint64 values of 2**63 or more, which "
                "no class label or input needs; save them as a smaller integer or float type"
            )
    return tensor


def check_lengths(x, y, path: Path, what: str = "labels") -> None:
    if len(x) != len(y):
        raise DataError(f"dataset 'arrays': {path} has {len(x)} inputs but {len(y)} {what}; give one each")


def check_inputs(x, path: Path, input_shape: tuple[int, ...]) -> None:
    from netspec.datasets._common import shape_text

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
    kind = "NaN/inf value(s),"
    if not bool(bad.any()) and values.dtype == torch.float64:  # finite, but ±inf once cast to float32
        bad = values.abs() > torch.finfo(torch.float32).max
        kind = "value(s) beyond float32's range (±3.4e38), which training computes in,"
    if bool(bad.any()):
        first = int(bad.reshape(len(values), -1).any(dim=1).nonzero()[0, 0]) if values.dim() else 0
        raise DataError(
            f"dataset 'arrays': the {what} in {path} hold {int(bad.sum())} {kind} the first in sample "
            f"{first}; remove or replace them"
        )


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def labels_task(
    labels: list, paths: list[Path], num_classes: int | None, ignore_index: int | None = None, what="labels"
):
    """Labels as int64 class indices (returns the class count) or float32 regression targets (None).

    Class labels are one per sample ([N]; [N, 1] counts as that) or a mask per sample ([N, *S]);
    ``ignore_index`` values are left out of the count and the range check.
    """
    import torch

    kinds = {y.dtype.is_floating_point for y in labels}
    if len(kinds) > 1:  # the test file's float labels would make the training file's classes regression
        floats = [str(p) for y, p in zip(labels, paths, strict=True) if y.dtype.is_floating_point]
        ints = [str(p) for y, p in zip(labels, paths, strict=True) if not y.dtype.is_floating_point]
        raise DataError(
            f"dataset 'arrays': the {what} in {', '.join(floats)} are floats but those in {', '.join(ints)} "
            "are integers; give every file the same kind of labels (integers: classes, floats: regression)"
        )
    if not any(y.dtype.is_floating_point for y in labels):  # integer or bool labels: classes
        labels = [y.to(torch.int64) for y in labels]
    elif num_classes is not None and all(
        not y.dtype.is_floating_point or bool((y == y.round()).all()) for y in labels
    ):
        for y, path in zip(labels, paths, strict=True):  # 1e20 would wrap to -2**63 in int64
            if y.dtype.is_floating_point and y.numel() and float(y.abs().max()) >= 2**31:
                raise DataError(
                    f"dataset 'arrays': the {what} in {path} hold {float(y.abs().max()):g}, which is no "
                    f"class label (num_classes is {num_classes}); give labels from 0 to {num_classes - 1}"
                )
        labels = [y.to(torch.int64) for y in labels]  # whole-number floats with num_classes: classes
    elif num_classes is not None:
        raise DataError(
            f"dataset 'arrays': num_classes is {num_classes} but the {what} in {paths[0]} are fractional "
            "floats; give integer class labels, or leave num_classes out for regression"
        )
    else:
        labels = [y.to(torch.float32) for y in labels]
        _same_sample_shape(labels, paths, what)
        return labels, None
    labels = [y.squeeze(1) if y.dim() == 2 and y.shape[1] == 1 else y for y in labels]
    _same_sample_shape(labels, paths, what)
    low = high = None  # (value, sample, path) of the smallest and largest class label
    for y, path in zip(labels, paths, strict=True):
        valid = y != ignore_index if ignore_index is not None else torch.ones_like(y, dtype=torch.bool)
        if not bool(valid.any()):
            continue
        values = y[valid]
        smallest, largest = int(values.min()), int(values.max())
        if low is None or smallest < low[0]:
            low = (smallest, _first_sample(y, valid, smallest), path)
        if high is None or largest > high[0]:
            high = (largest, _first_sample(y, valid, largest), path)
    if low is None or high is None:
        raise DataError(
            f"dataset 'arrays': every one of the {what} is ignore_index {ignore_index}; there is nothing "
            "to learn from"
        )
    if low[0] < 0:
        # (ignore_index takes a 32-bit value: a label below that is no marker to name)
        hint = (
            f"; if it marks unlabelled samples or pixels, set ignore_index: {low[0]}"
            if low[0] >= -(2**31)
            else ""
        )
        raise DataError(
            f"dataset 'arrays': class labels must be ≥ 0; found {low[0]} in the {what} of sample {low[1]} "
            f"of {low[2]}" + (hint if ignore_index is None else "")
        )
    if num_classes is None:
        num_classes = high[0] + 1
    elif high[0] >= num_classes:
        ignored = f" and ignore_index {ignore_index}" if ignore_index is not None else ""
        raise DataError(
            f"dataset 'arrays': label {high[0]} (sample {high[1]} of {high[2]}) does not fit num_classes "
            f"{num_classes} (labels are 0..{num_classes - 1}{ignored}); raise num_classes, fix the "
            "labels, or set ignore_index if it marks unlabelled samples or pixels"
        )
    return labels, num_classes


def _first_sample(y, valid, value: int) -> int:
    """The index of the first sample holding ``value`` (among its valid labels), for messages."""
    return int(((y == value) & valid).reshape(len(y), -1).any(dim=1).nonzero()[0, 0])


def _same_sample_shape(labels: list, paths: list[Path], what: str) -> None:
    """The test file's labels must have the train file's per-sample shape (the heads are fit to it)."""
    from netspec.datasets._common import shape_text

    first = tuple(labels[0].shape[1:])
    for y, path in zip(labels[1:], paths[1:], strict=True):
        if tuple(y.shape[1:]) != first:
            raise DataError(
                f"dataset 'arrays': the {what} in {path} have shape {shape_text(y.shape[1:])} per sample, "
                f"but those in {paths[0]} have {shape_text(first)}; give both files the same kind of labels"
            )


def load_arrays(p: ArraysParams, ctx: DataContext) -> Splits:
    """Train (and val, val_fraction of it) from ``path``; test from ``test_path`` or test_fraction."""
    import torch

    from netspec.datasets import _common

    paths = [resolve(p.path, ctx.data_dir)]
    if p.test_path is not None:
        paths.append(resolve(p.test_path, ctx.data_dir))
    files = [read_arrays(path, p.targets) for path in paths]
    names: list[str | None] = list(p.targets) if p.targets is not None else [None]
    by_name = [y if isinstance(y, dict) else {None: y} for _, y in files]
    for (x, _), ys, path in zip(files, by_name, paths, strict=True):
        for name, y in ys.items():
            check_lengths(x, y, path, _what(name))
        check_inputs(x, path, tuple(ctx.input_shape))
        check_finite(x, path, "inputs")
        for name, y in ys.items():
            check_finite(y, path, _what(name))
        if len(x) == 0:
            raise DataError(f"dataset 'arrays': {path} holds no samples")
    typed, classes = {}, {}
    for name in names:
        typed[name], classes[name] = labels_task(
            [ys[name] for ys in by_name], paths, p.classes_of(name), p.ignore_index, _what(name)
        )
    if p.ignore_index is not None and all(c is None for c in classes.values()):
        raise DataError(
            f"dataset 'arrays': ignore_index {p.ignore_index} is a class label to skip, but the "
            f"{_what(names[0]) if len(names) == 1 else 'targets'} are float targets (regression); leave "
            "ignore_index out, or give num_classes for whole-number float class labels"
        )
    xs = [x.to(torch.float32) for x, _ in files]

    def part(file: int, index=None):
        """(x, y) of one file, or of the samples ``index`` of it; y a dict with named targets."""
        pick = (lambda t: t) if index is None else (lambda t: t[index])
        ys = {name: pick(typed[name][file]) for name in names}
        return pick(xs[file]), ys if p.targets is not None else ys[None]

    fractions = (p.test_fraction, p.val_fraction) if p.test_path is None else (0.0, p.val_fraction)
    train, (test, val) = _common.random_split(len(xs[0]), fractions, ctx.seed, "arrays")
    test_part = part(1) if p.test_path is not None else part(0, test) if len(test) else None
    return _common.pack(
        part(0, train),
        part(0, val),
        test_part,
        classes[names[0]],
        targets=dict(classes) if p.targets is not None else None,
        ignore_index=p.ignore_index if any(c is not None for c in classes.values()) else None,
    )


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "arrays",
            ArraysParams,
            load_arrays,
            summary="Your own arrays from a .npz (x/y, inputs/labels, X/y) or a .pt file.",
            files=FILES,
        )
    ]
