"""Array files as network inputs: ``.npy``/``.npz`` without pickle, ``.pt`` weights-only.

Shapes are checked before data is read (an ``.npz`` member's header before it is decompressed),
so a wrong or huge array is exit 2 saying the shape expected.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

from netspec.errors import SpecError
from netspec.npzfiles import NpzTooLarge, check_fits_in_memory, member_header
from netspec.predict.limits import MAX_INPUTS
from netspec.predict.problems import reason, refuse
from netspec.predict.sources import ArrayFile
from netspec.shapes import describe

ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
INPUT_KEYS = ("x", "inputs", "X")  # the input keys of netspec.datasets.arrays.KEY_PAIRS
SAVE_TENSOR = "save a tensor, or a dict {'x': tensor}, with torch.save"


def read_samples(path: str | Path, shape: Sequence[int]) -> ArrayFile:
    """The samples of a ``.npy``/``.npz``/``.pt`` file: ``[N, *shape]`` or one sample ``shape``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = _read_npy(path)
    elif suffix == ".npz":
        data = _read_npz(path, shape)
    else:
        data = _read_pt(path)
    single = _check_samples(path, tuple(data.shape), data.dtype, tuple(shape))
    return ArrayFile(path, data, single)


def _read_npy(path: Path):
    import numpy as np

    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)  # read as batches are needed
    except Exception as exc:  # pickled, truncated, not an .npy at all
        raise refuse(
            f"cannot read {path} as .npy: {reason(exc)}", path, hint="save it with numpy.save"
        ) from None
    if not isinstance(data, np.ndarray):
        with contextlib.suppress(Exception):
            data.close()
        raise refuse(f"{path} is not an .npy array (it is an .npz archive)", path, hint="name it .npz")
    return data


def _read_npz(path: Path, shape):
    import numpy as np

    with contextlib.ExitStack() as stack:  # our own handle: np.load leaks its own on a broken zip
        try:
            archive = np.load(stack.enter_context(path.open("rb")), allow_pickle=False)
        except Exception as exc:
            raise refuse(
                f"cannot read {path} as .npz: {reason(exc)}", path, hint="save it with numpy.savez"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise refuse(f"{path} is not an .npz archive", path, hint="name an .npy file .npy")
        stack.callback(archive.close)
        keys = [k for k in INPUT_KEYS if k in archive.files]
        if not keys and len(archive.files) != 1:
            raise _no_input_key(path, "arrays", archive.files)
        key = keys[0] if keys else archive.files[0]
        try:  # the header first: a wrong or huge shape is refused before anything is decompressed
            header_shape, dtype = member_header(archive.zip, key)
            _check_samples(path, header_shape, dtype, tuple(shape), key)
            check_fits_in_memory(header_shape, dtype, f"array {key!r} of {path}")
            return archive[key]
        except SpecError:
            raise
        except NpzTooLarge as exc:
            raise refuse(str(exc), path, hint="predict on fewer samples at a time") from None
        except Exception as exc:
            raise refuse(f"cannot read {key!r} in {path}: {reason(exc)}", path) from None


def _read_pt(path: Path):
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but tensors and containers
        raise refuse(
            f"cannot read {path} with torch.load(weights_only=True): {reason(exc)}",
            path,
            hint=SAVE_TENSOR,
        ) from None
    if isinstance(content, dict):
        keys = [k for k in INPUT_KEYS if k in content]
        if not keys:
            raise _no_input_key(path, "keys", list(content))
        content = content[keys[0]]
    if not isinstance(content, torch.Tensor):
        raise refuse(
            f"{path} holds a {type(content).__name__}, not a tensor of inputs", path, hint=SAVE_TENSOR
        )
    from netspec.filetensors import layout_problem

    problem = layout_problem(content)
    if problem:
        raise refuse(f"{path} holds {problem}", path, hint=SAVE_TENSOR)
    return content


def _no_input_key(path: Path, what: str, names: list) -> SpecError:
    """An archive or dict that holds none of :data:`INPUT_KEYS` (and no single array to take)."""
    found = ", ".join(repr(k) for k in names[:20]) or "none"
    return refuse(
        f"{path} has the {what} {found}; expected the inputs under one of "
        + ", ".join(repr(k) for k in INPUT_KEYS),
        path,
    )


def _numeric(dtype) -> bool:
    """Real numbers or booleans: a numpy or torch dtype."""
    import numpy as np
    import torch

    if isinstance(dtype, torch.dtype):
        if dtype == torch.bool or dtype.is_floating_point:
            return True
        try:
            torch.iinfo(dtype)  # integers; complex and quantized types raise
        except TypeError:
            return False
        return True
    return np.dtype(dtype).kind in "biuf"


def _check_samples(path: Path, found, dtype, shape, key: str | None = None) -> bool:
    """Whether the array is one sample (else a stack); anything but numbers or the input shape is
    exit 2, saying the shape expected."""
    what = f"{key!r} in {path}" if key else str(path)
    if not _numeric(dtype):
        raise refuse(f"{what} holds {dtype} values; expected real numbers", path)
    if found == shape:
        return True
    if found[1:] == shape:
        if found[0] > MAX_INPUTS:
            raise refuse(f"{what} holds {found[0]} samples, more than {MAX_INPUTS}", path)
        return False
    hint = f"save the samples as [N, {', '.join(map(str, shape))}]"
    if found and math.prod(found[1:]) == math.prod(shape):
        hint = f"reshape the array to [{found[0]}, {', '.join(map(str, shape))}]"
    elif found and math.prod(found) == math.prod(shape):
        hint = f"reshape the array to {describe(shape)}"
    raise refuse(
        f"{what} has shape {describe(found)}, but the network takes samples of shape {describe(shape)}: "
        f"expected [N, {', '.join(map(str, shape))}] or {describe(shape)}",
        path,
        hint=hint,
    )
