"""``netspec predict``: run a trained network on new inputs and write what it predicts.

Inputs are image files (PNG/JPEG, made grey or RGB, resized and standardised exactly as the
built-in datasets do for training), directories of such images, arrays of samples (``.npy``,
``.npz``, ``.pt``; fed to the network as they are) or a split of the spec's own dataset.

What each output of the network predicts comes from the checkpoint: training records every
output's task (classification, segmentation, reconstruction, regression) with its class count,
and the normalization of the inputs. An older checkpoint, or a plain ``state_dict``, has neither:
the tasks are then inferred from the output shapes and the spec's ``train:`` losses, and stderr
says so. Everything a user can get wrong (an unreadable image, arrays of another sample shape,
a checkpoint of another network, an output directory that cannot be written) is a
:class:`~netspec.errors.SpecError` naming the file: exit 2.

Files are read without trusting them: checkpoints and ``.pt`` weights-only, ``.npy``/``.npz``
without pickle (an ``.npz`` member's shape is checked before it is decompressed), images only up
to :data:`MAX_IMAGE_PIXELS`. Torch, numpy and PIL are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netspec
from netspec.errors import Problem, SpecError
from netspec.shapes import describe
from netspec.spec import Spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
INPUT_KEYS = ("x", "inputs", "X")  # the input keys of netspec.datasets.arrays.KEY_PAIRS
SPLITS = ("test", "val", "train")
DEVICES = ("auto", "cpu", "cuda")
MAX_INPUTS = 1_000_000  # samples in one run, all sources together
MAX_DIR_FILES = 100_000  # entries of one input directory
MAX_IMAGE_PIXELS = 1 << 26  # 67 M pixels (8192²): larger images are refused before decoding
MAX_TOP_K = 100
TABLE_ROWS = 20  # rows of the table printed to stdout; the files have every row
OVERVIEW = 16  # inputs pictured in overview.png
CSV_VALUES = 16  # regression outputs with at most this many values also go to predictions.csv
WHERE = "netspec predict"

CLASSIFICATION, SEGMENTATION = "classification", "segmentation"
RECONSTRUCTION, REGRESSION = "reconstruction", "regression"
CLASS_LOSSES = ("cross_entropy", "dice", "cross_entropy_dice")

Log = Callable[[str], None]


@dataclass
class PredictResult:
    """What ``predict`` wrote: the directory, how many inputs, every file and the stdout report."""

    out_dir: Path
    count: int
    files: list[Path] = field(default_factory=list)
    report: str = ""


@dataclass(frozen=True)
class OutputTask:
    """What one output of the network predicts."""

    output: str
    index: int  # position in spec.outputs
    shape: tuple[int, ...]
    task: str
    num_classes: int | None = None
    ignore_index: int | None = None
    loss: str | None = None
    trained: bool = True  # False: the checkpoint trained no loss on it (its values are written raw)


def _refuse(message: str, source: str | Path = WHERE, hint: str | None = None) -> SpecError:
    return SpecError([Problem(message, str(source), hint=hint)])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def predict(
    source: Any,
    checkpoint: str | Path,
    inputs: Sequence[str | Path] = (),
    *,
    split: str | None = None,
    out_dir: str | Path = "predictions",
    batch_size: int = 64,
    top_k: int = 5,
    device: str = "auto",
    overrides: Sequence[str] = (),
    data_dir: str | Path | None = None,
    log: Log | None = None,
) -> PredictResult:
    """Predict every input with the network of ``source`` and the weights of ``checkpoint``.

    ``inputs``: image files, directories of images, ``.npy``/``.npz``/``.pt`` arrays; ``split``
    (test, val or train) adds that split of the spec's ``train.data``. Writes into ``out_dir``
    (see the README's "Using a trained model") and returns the files and a short report.
    Notices (inferred tasks, unknown normalization) go to ``log`` (default: stderr).
    """
    import torch

    log = log or _stderr
    if not inputs and split is None:
        raise _refuse(
            "no inputs: nothing to predict",
            hint="give image files, directories of images, .npy/.npz/.pt arrays, or --split test",
        )
    if split is not None and split not in SPLITS:
        raise _refuse(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if not 1 <= top_k <= MAX_TOP_K:
        raise _refuse(f"--top-k {top_k}: expected 1 to {MAX_TOP_K}")
    if batch_size < 1:
        raise _refuse(f"--batch-size {batch_size}: expected a positive number")
    spec, cfg = _load_spec(source, overrides, split is not None)
    dev = _device(device)
    content, weights, plain = _read_weights(checkpoint)
    model = _model(spec, weights, checkpoint)
    tasks = _tasks(spec, cfg, content, checkpoint, plain, log)
    normalization = _normalization(spec, content, checkpoint, plain)
    sources = _sources(spec, cfg, inputs, split, normalization, data_dir)
    _notice_scaling(sources, normalization, checkpoint, log)
    total = sum(len(s) for s in sources)
    if total == 0:
        raise _refuse("no inputs: the inputs given hold no samples")
    if total > MAX_INPUTS:
        raise _refuse(
            f"{total} inputs: more than {MAX_INPUTS} in one run", hint="predict them in several runs"
        )
    out = _out_dir(out_dir)
    context = _Context(out, total, normalization, tuple(spec.input_shape), len(tasks) > 1, top_k)
    model = model.to(dev).eval()
    with _writing(out), contextlib.ExitStack() as cleanup:  # an error mid-way closes every file
        writers = []
        for task in tasks:
            writers.append(_WRITERS[task.task](task, context))
            cleanup.enter_context(writers[-1].open_files)
        index = 0
        with torch.inference_mode():
            for labels, x in _batches(sources, batch_size):
                outs = _forward(model, x, dev)
                outs = outs if isinstance(outs, tuple | list) else (outs,)
                names = [context.stem(index + i, label) for i, label in enumerate(labels)]
                for writer in writers:
                    writer.add(index, labels, names, x, outs[writer.task.index].float().cpu())
                index += len(labels)
        files = [path for writer in writers for path in writer.close()]
    report = "\n\n".join(writer.report() for writer in writers)
    report += f"\n\npredictions for {total} input{'s' if total != 1 else ''} written to {out}"
    return PredictResult(out, total, files, report.strip("\n"))


# --- the network and its checkpoint -----------------------------------------------------------


def _load_spec(source: Any, overrides: Sequence[str], needs_data: bool) -> tuple[Spec, Any]:
    """The spec and its ``train:`` section (None when absent; with every default for --split)."""
    if needs_data:
        from netspec.training.run import prepare

        return prepare(source, overrides)
    spec = netspec.load(source, overrides=list(overrides))
    return spec, spec.model.train


def _device(name: str):
    import torch

    if name not in DEVICES:
        raise _refuse(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise _refuse(
            "--device cuda: no CUDA GPU is available on this machine", hint="use --device auto or cpu"
        )
    return torch.device(name)


def _read_weights(path: str | Path) -> tuple[dict, dict, bool]:
    """(checkpoint dict, the network's weights, whether it was a plain state_dict), weights-only.

    A netspec/Lightning checkpoint keeps the network under ``model.`` in its ``state_dict``; a
    plain ``state_dict`` (``torch.save(model.state_dict(), path)``) is accepted as it is.
    """
    from netspec.training.checkpoint import read_checkpoint

    try:
        content = read_checkpoint(path)
    except SpecError:
        plain = _plain_state_dict(Path(path))
        if plain is None:
            raise
        return {}, plain, True
    state = content["state_dict"]
    if any(key.startswith("model.") for key in state):
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return content, state, False


def _plain_state_dict(path: Path) -> dict | None:
    """The file as a flat dict of tensors (loaded weights-only), or None when it is not one."""
    import torch

    from netspec.training.checkpoint import ALLOWED_GLOBALS

    if not path.is_file():
        return None
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only file: read_checkpoint's message says so
        return None
    if (
        isinstance(content, dict)
        and content
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())
    ):
        return dict(content)
    return None


def _model(spec: Spec, weights: dict, path: str | Path):
    """The network with the checkpoint's weights, checked to fit (exit 2 for another network)."""
    from netspec.training.checkpoint import check_fits

    model = spec.build()
    check_fits(weights, model.state_dict(), path, spec.source)
    model.load_state_dict(weights)
    return model


def _tasks(spec: Spec, cfg, content: dict, path, plain: bool, log: Log) -> list[OutputTask]:
    """Each output's task: as the checkpoint recorded it, else inferred (with a notice)."""
    from netspec.training.tasks import heads_from_checkpoint

    shapes = [tuple(s) for s in spec.output_shapes()]
    records = heads_from_checkpoint(content.get("netspec_heads"))
    if records is not None:
        return _recorded_tasks(spec, shapes, records, path, log)
    tasks = [_inferred_task(spec, cfg, name, i, shapes[i]) for i, name in enumerate(spec.outputs)]
    what = "is a plain state_dict" if plain else "records no tasks (it predates them)"
    inferred = "; ".join(f"{t.output} {describe(t.shape)}: {t.task}" for t in tasks)
    log(f"netspec: note: {path} {what}: inferred from the output shapes and train: losses: {inferred}")
    return tasks


def _recorded_tasks(spec: Spec, shapes, records: list[dict], path, log: Log) -> list[OutputTask]:
    by_name = {r.get("output"): r for r in records}
    foreign = [str(name) for name in by_name if name not in spec.outputs]
    if foreign:
        raise _refuse(
            f"checkpoint {path} was trained for the outputs {', '.join(foreign)}, which the network of "
            f"{spec.source} does not have (outputs: {', '.join(spec.outputs)})",
            path,
            hint="use a checkpoint of a run of this spec (its spec.yaml is in the run directory)",
        )
    tasks, untrained = [], []
    for index, name in enumerate(spec.outputs):
        shape, record = shapes[index], by_name.get(name)
        if record is None:
            untrained.append(name)
            tasks.append(OutputTask(name, index, shape, REGRESSION, trained=False))
            continue
        task, classes = record["task"], record.get("num_classes")
        if task in (CLASSIFICATION, SEGMENTATION):
            rank_fits = (len(shape) == 1) == (task == CLASSIFICATION)
            if not (isinstance(classes, int) and classes == shape[0] and rank_fits):
                raise _refuse(
                    f"checkpoint {path} trained output '{name}' for {task} with {classes} classes, but "
                    f"the network of {spec.source} gives {describe(shape)}",
                    path,
                    hint="use a checkpoint of a run of this spec (its spec.yaml is in the run directory)",
                )
        ignore = record.get("ignore_index")
        loss = record.get("loss")
        tasks.append(
            OutputTask(
                name,
                index,
                shape,
                task,
                classes if task in (CLASSIFICATION, SEGMENTATION) else None,
                ignore if isinstance(ignore, int) and not isinstance(ignore, bool) else None,
                loss if isinstance(loss, str) else None,
            )
        )
    if untrained:
        log(
            f"netspec: note: {path} trained no loss on {', '.join(untrained)}: "
            "their values are written as they are (.npy)"
        )
    return tasks


def _inferred_task(spec: Spec, cfg, name: str, index: int, shape: tuple[int, ...]) -> OutputTask:
    """An output's task from its shape and the spec's ``train:`` loss/task (for old checkpoints).

    An unset loss counts as cross_entropy, the default before checkpoints recorded their tasks,
    except on an output shaped like the input (an autoencoder's).
    """
    own = (getattr(cfg, "outputs", None) or {}).get(name)

    def setting(key):  # the output's own value, else the run's (like training's heads)
        value = getattr(own, key, None)
        return value if value is not None else getattr(cfg, key, None)

    loss, task = setting("loss"), setting("task")
    loss = None if loss == "auto" else loss
    like_input = shape == tuple(spec.input_shape)
    if task in (None, "auto"):
        if like_input and loss in (None, "mse", "l1", "huber"):
            task = RECONSTRUCTION
        elif len(shape) == 1 and loss in (None, "cross_entropy", "bce_with_logits"):
            task = CLASSIFICATION
        elif len(shape) >= 2 and loss in (None, *CLASS_LOSSES):
            task = SEGMENTATION
        else:
            task = REGRESSION
    elif task in (CLASSIFICATION, SEGMENTATION) and (len(shape) == 1) != (task == CLASSIFICATION):
        task = REGRESSION  # a class task this shape cannot have: its values, as they are
    classes = shape[0] if task in (CLASSIFICATION, SEGMENTATION) else None
    ignore = setting("ignore_index") if classes else None
    return OutputTask(name, index, shape, task, classes, ignore, loss)


def _normalization(spec: Spec, content: dict, path, plain: bool):
    """(mean, std) per input channel as tensors [C, 1, …], None for none, or "unknown"."""
    import torch

    if plain or "netspec_normalization" not in content:
        return "unknown"
    value = content["netspec_normalization"]
    if value is None:
        return None
    channels = spec.input_shape[0]
    try:
        mean, std = (torch.tensor([float(v) for v in part], dtype=torch.float32) for part in value)
        ok = (
            len(mean) == len(std) == channels
            and bool(torch.isfinite(mean).all() and torch.isfinite(std).all())
            and bool((std > 0).all())
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _refuse(
            f"checkpoint {path} records a normalization that does not fit the network's "
            f"{channels} input channel(s): {str(value)[:200]}",
            path,
            hint="use a checkpoint of a run of this spec",
        )
    view = (channels,) + (1,) * (len(spec.input_shape) - 1)
    return mean.view(view), std.view(view)


def _forward(model, x, dev):
    import torch

    try:
        return model(x.to(dev))
    except torch.cuda.OutOfMemoryError:
        raise _refuse(
            f"the GPU ran out of memory on a batch of {len(x)}", hint="lower --batch-size"
        ) from None


# --- inputs ------------------------------------------------------------------------------------


class _Source:
    """Some inputs: a label for each, and batches of them as float32 [n, *input] tensors."""

    kind = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self, start: int, stop: int) -> list[str]:
        raise NotImplementedError

    def load(self, start: int, stop: int):
        raise NotImplementedError


class _Images(_Source):
    kind = "images"

    def __init__(self, paths: list[Path], shape: tuple[int, ...], normalization):
        self.paths, self.shape, self.normalization = paths, shape, normalization

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self, start: int, stop: int) -> list[str]:
        return [str(p) for p in self.paths[start:stop]]

    def load(self, start: int, stop: int):
        import torch

        x = torch.stack([read_image(path, self.shape) for path in self.paths[start:stop]])
        if isinstance(self.normalization, tuple):
            mean, std = self.normalization
            x = (x - mean) / std
        return x


class _Array(_Source):
    kind = "arrays"

    def __init__(self, path: Path, data, single: bool):
        self.path, self.data, self.single = path, data, single

    def __len__(self) -> int:
        return 1 if self.single else len(self.data)

    def labels(self, start: int, stop: int) -> list[str]:
        if self.single:
            return [str(self.path)]
        return [f"{self.path}[{i}]" for i in range(start, stop)]

    def load(self, start: int, stop: int):
        import numpy as np
        import torch

        chunk = self.data[None] if self.single else self.data[start:stop]
        if isinstance(chunk, torch.Tensor):
            return chunk.to(torch.float32)
        return torch.from_numpy(np.array(chunk, dtype=np.float32))


class _Split(_Source):
    kind = "split"

    def __init__(self, dataset, name: str):
        self.dataset, self.name = dataset, name

    def __len__(self) -> int:
        return len(self.dataset)

    def labels(self, start: int, stop: int) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(start, stop)]

    def load(self, start: int, stop: int):
        import torch

        ds = self.dataset
        if hasattr(ds, "tensors"):
            x = ds.tensors[0][start:stop]
        elif isinstance(getattr(ds, "x", None), torch.Tensor):
            x = ds.x[start:stop]
        else:
            x = torch.stack([torch.as_tensor(ds[i][0]) for i in range(start, stop)])
        return x.to(torch.float32)


def _sources(spec: Spec, cfg, inputs, split, normalization, data_dir) -> list[_Source]:
    """The inputs in the order given; neighbouring image files are batched together."""
    shape = tuple(spec.input_shape)
    sources: list[_Source] = []
    images: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images += _directory_images(path, shape)
        elif not path.exists():
            raise _refuse(f"input {path} does not exist", path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            _check_image_input(path, shape)
            images.append(path)
        elif path.suffix.lower() in ARRAY_SUFFIXES:
            if images:
                sources.append(_Images(images, shape, normalization))
                images = []
            sources.append(read_samples(path, shape))
        else:
            raise _refuse(
                f"input {path} has suffix {path.suffix!r}",
                path,
                hint="give images ("
                + ", ".join(IMAGE_SUFFIXES)
                + "), arrays ("
                + ", ".join(ARRAY_SUFFIXES)
                + ") or directories of images",
            )
        if len(images) > MAX_INPUTS:
            break
    if images:
        sources.append(_Images(images, shape, normalization))
    if split is not None:
        sources.append(_split_source(spec, cfg, split, data_dir))
    return sources


def _directory_images(path: Path, shape) -> list[Path]:
    found = []
    try:
        for count, entry in enumerate(path.iterdir()):
            if count >= MAX_DIR_FILES:
                raise _refuse(
                    f"directory {path} has more than {MAX_DIR_FILES} entries",
                    path,
                    hint="predict its images in several runs (give subdirectories or files)",
                )
            if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                found.append(entry)
    except OSError as exc:
        raise _refuse(f"cannot list the directory {path}: {exc.strerror or exc}", path) from None
    if not found:
        raise _refuse(
            f"directory {path} holds no images",
            path,
            hint="it should hold " + ", ".join(IMAGE_SUFFIXES) + " files",
        )
    _check_image_input(path, shape)
    return sorted(found)


def _check_image_input(path: Path, shape) -> None:
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise _refuse(
            f"images give [1 or 3, H, W], but the network's input is {describe(shape)}",
            path,
            hint="give the samples as arrays (.npy/.npz/.pt) of that shape",
        )


GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def read_image(path: str | Path, shape: Sequence[int]):
    """An image file as float32 [C, H, W] in [0, 1], the way the built-in datasets prepare theirs.

    Grey or RGB as decoded (16-bit grey keeps its depth), then ``fit_images``: bilinear resize to
    the spec's H×W (antialiased when shrinking), grey → RGB by repetition, RGB → grey by luma.
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from netspec.datasets._common import fit_images

    path = Path(path)
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _refuse(
                    f"the image {path} has {width}×{height} pixels, more than {MAX_IMAGE_PIXELS}",
                    path,
                    hint="shrink it first",
                )
            picture = ImageOps.exif_transpose(opened)
            if picture.mode.startswith("I;16"):
                pixels, scale = torch.from_numpy(np.array(picture, dtype=np.int32)), 65535.0
            else:
                grey = picture.mode in GREY_MODES
                converted = picture.convert("L" if grey else "RGB")
                pixels, scale = torch.from_numpy(np.array(converted, dtype=np.uint8)), 255.0
    except SpecError:
        raise
    except Exception as exc:  # not an image, truncated, a decompression bomb, unreadable
        raise _refuse(
            f"cannot read the image {path}: {_reason(exc)}", path, hint="give a PNG or JPEG file"
        ) from None
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return fit_images(pixels.unsqueeze(0), tuple(shape), scale=scale)[0]


def read_samples(path: str | Path, shape: Sequence[int]) -> _Array:
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
    return _Array(path, data, single)


def _read_npy(path: Path):
    import numpy as np

    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)  # read as batches are needed
    except Exception as exc:  # pickled, truncated, not an .npy at all
        raise _refuse(
            f"cannot read {path} as .npy: {_reason(exc)}", path, hint="save it with numpy.save"
        ) from None
    if not isinstance(data, np.ndarray):
        with contextlib.suppress(Exception):
            data.close()
        raise _refuse(f"{path} is not an .npy array (it is an .npz archive)", path, hint="name it .npz")
    return data


def _read_npz(path: Path, shape):
    import numpy as np

    with contextlib.ExitStack() as stack:  # our own handle: np.load leaks its own on a broken zip
        try:
            archive = np.load(stack.enter_context(path.open("rb")), allow_pickle=False)
        except Exception as exc:
            raise _refuse(
                f"cannot read {path} as .npz: {_reason(exc)}", path, hint="save it with numpy.savez"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _refuse(f"{path} is not an .npz archive", path, hint="name an .npy file .npy")
        stack.callback(archive.close)
        keys = [k for k in INPUT_KEYS if k in archive.files]
        if not keys and len(archive.files) != 1:
            found = ", ".join(repr(k) for k in archive.files[:20]) or "none"
            raise _refuse(
                f"{path} has the arrays {found}; expected the inputs under one of "
                + ", ".join(repr(k) for k in INPUT_KEYS),
                path,
            )
        key = keys[0] if keys else archive.files[0]
        try:  # the header first: a wrong or huge shape is refused before anything is decompressed
            with archive.zip.open(f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                header_shape, _, dtype = read(member)
            _check_samples(path, tuple(header_shape), dtype, tuple(shape), key)
            return archive[key]
        except SpecError:
            raise
        except Exception as exc:
            raise _refuse(f"cannot read {key!r} in {path}: {_reason(exc)}", path) from None


def _read_pt(path: Path):
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but tensors and containers
        raise _refuse(
            f"cannot read {path} with torch.load(weights_only=True): {_reason(exc)}",
            path,
            hint="save a tensor, or a dict {'x': tensor}, with torch.save",
        ) from None
    if isinstance(content, dict):
        keys = [k for k in INPUT_KEYS if k in content]
        if not keys:
            found = ", ".join(repr(k) for k in list(content)[:20]) or "none"
            raise _refuse(
                f"{path} has the keys {found}; expected the inputs under one of "
                + ", ".join(repr(k) for k in INPUT_KEYS),
                path,
            )
        content = content[keys[0]]
    if not isinstance(content, torch.Tensor):
        raise _refuse(
            f"{path} holds a {type(content).__name__}, not a tensor of inputs",
            path,
            hint="save a tensor, or a dict {'x': tensor}, with torch.save",
        )
    return content


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
        raise _refuse(f"{what} holds {dtype} values; expected real numbers", path)
    if found == shape:
        return True
    if found[1:] == shape:
        if found[0] > MAX_INPUTS:
            raise _refuse(f"{what} holds {found[0]} samples, more than {MAX_INPUTS}", path)
        return False
    hint = f"save the samples as [N, {', '.join(map(str, shape))}]"
    if found and math.prod(found[1:]) == math.prod(shape):
        hint = f"reshape the array to [{found[0]}, {', '.join(map(str, shape))}]"
    elif found and math.prod(found) == math.prod(shape):
        hint = f"reshape the array to {describe(shape)}"
    raise _refuse(
        f"{what} has shape {describe(found)}, but the network takes samples of shape {describe(shape)}: "
        f"expected [N, {', '.join(map(str, shape))}] or {describe(shape)}",
        path,
        hint=hint,
    )


def _split_source(spec: Spec, cfg, split: str, data_dir) -> _Split:
    from netspec.training.run import _splits, check_data

    splits = _splits(spec, cfg, data_dir)
    check_data(spec, splits)
    dataset = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
    if dataset is None:
        raise SpecError(
            [
                spec.document.problem(
                    f"--split {split}: the dataset {cfg.data.name!r} has no {split} split",
                    ("train", "data"),
                    hint="use --split val, or set the dataset's test_fraction",
                )
            ]
        )
    return _Split(dataset, f"{cfg.data.name}:{split}")


def _notice_scaling(sources: list[_Source], normalization, path, log: Log) -> None:
    kinds = {s.kind for s in sources}
    if "images" in kinds and normalization == "unknown":
        log(
            f"netspec: note: {path} does not record how the training inputs were normalized: images "
            "are only scaled to [0, 1]; if training standardised them, the predictions may be off"
        )
    if "arrays" in kinds and isinstance(normalization, tuple):
        mean, std = (", ".join(f"{v:.4g}" for v in t.flatten().tolist()) for t in normalization)
        log(
            "netspec: note: arrays go to the network as they are; the training images were "
            f"standardised ((x - mean) / std, x in [0, 1]) with mean [{mean}] and std [{std}]"
        )


def _batches(sources: list[_Source], batch_size: int) -> Iterator[tuple[list[str], Any]]:
    import torch

    for source in sources:
        for start in range(0, len(source), batch_size):
            stop = min(start + batch_size, len(source))
            labels = source.labels(start, stop)
            x = source.load(start, stop)
            finite = torch.isfinite(x).flatten(1).all(dim=1)
            if not bool(finite.all()):
                bad = labels[int((~finite).nonzero()[0, 0])]
                raise _refuse(f"input {bad} holds NaN or infinite values", bad, hint="remove or replace them")
            yield labels, x


# --- outputs -----------------------------------------------------------------------------------


def _out_dir(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".netspec-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise _refuse(
            f"cannot write to the output directory {out}: {exc.strerror or exc}",
            out,
            hint="choose a writable --out directory",
        ) from None
    return out


@contextlib.contextmanager
def _writing(out: Path):
    """A file that cannot be written (disk full, permissions) is exit 2 naming it."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or out
        raise _refuse(f"cannot write {where}: {exc.strerror or exc}", where, hint="check --out") from None


@dataclass
class _Context:
    out: Path
    total: int
    normalization: Any
    input_shape: tuple[int, ...]
    several: bool
    top_k: int

    def stem(self, index: int, label: str) -> str:
        """``00042-cat``: the input's number (sorting like the inputs) and a safe form of its name."""
        width = len(str(max(self.total - 1, 0)))
        name = Path(label).stem if Path(label).suffix.lower() in IMAGE_SUFFIXES else Path(label).name
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60]
        return f"{index:0{width}d}-{name}" if name else f"{index:0{width}d}"

    def directory(self, task: OutputTask) -> Path:
        if not self.several:
            return self.out
        path = self.out / re.sub(r"[^A-Za-z0-9._-]+", "_", task.output)
        path.mkdir(exist_ok=True)
        return path

    @property
    def image_input(self) -> bool:
        return len(self.input_shape) == 3 and self.input_shape[0] in (1, 3)

    @property
    def stats(self) -> tuple[list[float], list[float]] | None:
        """The normalization as per-channel lists (pictures.image_to_rgb's form), if known."""
        if not isinstance(self.normalization, tuple):
            return None
        return self.normalization[0].flatten().tolist(), self.normalization[1].flatten().tolist()

    def pixels(self, x):
        """A network-unit image [C, H, W] as uint8 [H, W, 3] in the input's pixels: the normalization
        undone, then clipped to [0, 1] (a reconstruction's PNG)."""
        import numpy as np

        if isinstance(self.normalization, tuple):
            mean, std = self.normalization
            x = x * std + mean
        values = np.rint(x.clamp(0, 1).numpy() * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(values, 3 // len(values), axis=0).transpose(1, 2, 0))

    def overview(self, path: Path, inputs: list, column: str, pictures: list) -> Path | None:
        """``overview.png``: the first inputs next to what the network made of them."""
        from netspec.training.pictures import image_to_rgb, save_comparison

        if not pictures:
            return None
        columns = [("input", [image_to_rgb(x, self.stats) for x in inputs])] if self.image_input else []
        return save_comparison(path, [*columns, (column, pictures)])


class _Writer:
    """Writes one output's predictions as batches come; ``close`` returns the files written."""

    def __init__(self, task: OutputTask, context: _Context):
        self.task, self.context = task, context
        self.dir = context.directory(task)
        self.files: list[Path] = []
        self.rows: list[list[str]] = []  # the first TABLE_ROWS rows of the stdout table
        self.open_files = contextlib.ExitStack()

    def add(self, index: int, labels: list[str], names: list[str], x, y) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        self.open_files.close()
        return self.files

    def title(self) -> str:
        shown = f"{self.task.output} {describe(self.task.shape)}"
        note = "" if self.task.trained else " (not trained by this checkpoint)"
        return f"{shown}: {self.task.task}{note}"

    def report(self) -> str:
        lines = [self.title()]
        if self.rows:
            lines.append(_table(self.header(), self.rows))
            if self.context.total > len(self.rows):
                lines.append(f"... {self.context.total - len(self.rows)} more")
        lines += [f"  {path}" for path in self.files]
        return "\n".join(lines)

    def header(self) -> list[str]:
        return []

    def keep(self, row: list[str]) -> None:
        if len(self.rows) < TABLE_ROWS:
            self.rows.append(row)

    def _csv(self, header: list[str]):
        path = self.dir / "predictions.csv"
        handle = self.open_files.enter_context(path.open("w", newline="", encoding="utf-8"))
        self.files.append(path)
        writer = csv.writer(handle)
        writer.writerow(header)
        return writer


class _Classes(_Writer):
    """predictions.csv and predictions.jsonl: class, its probability and the top k, per input."""

    def __init__(self, task: OutputTask, context: _Context):
        super().__init__(task, context)
        self.k = min(context.top_k, task.num_classes or 1)
        self.counts: Counter = Counter()
        self.csv = self._csv(["input", "class", "probability", f"top{self.k}"])
        self.jsonl_path = self.dir / "predictions.jsonl"
        self.jsonl = self.open_files.enter_context(self.jsonl_path.open("w", encoding="utf-8"))
        self.files.append(self.jsonl_path)

    def header(self) -> list[str]:
        return ["input", "class", "probability", f"top{self.k}"]

    def add(self, index, labels, names, x, y) -> None:
        binary = self.task.loss == "bce_with_logits"
        probs = y.sigmoid() if binary else y.softmax(dim=1)
        values, classes = probs.topk(self.k, dim=1)
        for label, top_p, top_c in zip(labels, values.tolist(), classes.tolist(), strict=True):
            self.counts[top_c[0]] += 1
            top = " ".join(f"{c}:{p:.4f}" for c, p in zip(top_c, top_p, strict=True))
            self.csv.writerow([label, top_c[0], f"{top_p[0]:.6g}", top])
            record = {
                "input": label,
                "class": top_c[0],
                "probability": top_p[0],
                "top_k": [{"class": c, "probability": p} for c, p in zip(top_c, top_p, strict=True)],
            }
            self.jsonl.write(json.dumps(record) + "\n")
            self.keep([_short(label), str(top_c[0]), f"{top_p[0]:.3f}", top])

    def close(self) -> list[Path]:
        self.open_files.close()
        return self.files

    def title(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in sorted(self.counts.items()))
        return f"{super().title()} ({self.task.num_classes} classes; predicted {counts})"


class _Masks(_Writer):
    """A class-index mask per input: masks/<input>.png (netspec.training.pictures.save_mask_png: a
    palette PNG whose pixel values are the classes), masks.npy [N, *spatial], overview.png and
    predictions.csv with each mask's file and its largest classes' share of the pixels."""

    def __init__(self, task: OutputTask, context: _Context):
        import numpy as np

        super().__init__(task, context)
        spatial = task.shape[1:]
        self.classes = task.num_classes or task.shape[0]
        self.dtype = np.uint8 if self.classes <= 256 else np.int32
        self.pngs = len(spatial) == 2  # 1-D and 3-D masks: masks.npy only
        self.mask_dir = self.dir / "masks"
        if self.pngs:
            self.mask_dir.mkdir(exist_ok=True)
        self.npy_path = self.dir / "masks.npy"
        self.npy = np.lib.format.open_memmap(
            self.npy_path, mode="w+", dtype=self.dtype, shape=(context.total, *spatial)
        )
        self.files.append(self.npy_path)
        self.csv = self._csv(["input", "mask", "classes"])
        self.inputs: list = []
        self.pictures: list = []

    def header(self) -> list[str]:
        return ["input", "mask", "classes (share of pixels)"]

    def add(self, index, labels, names, x, y) -> None:
        from netspec.training.pictures import mask_to_rgb, save_mask_png

        masks = y.argmax(dim=1)
        self.npy[index : index + len(labels)] = masks.numpy().astype(self.dtype)
        for i, (label, name) in enumerate(zip(labels, names, strict=True)):
            mask = masks[i]
            shares = mask.flatten().bincount(minlength=self.classes).double() / max(1, mask.numel())
            top = sorted(((s, c) for c, s in enumerate(shares.tolist()) if s > 0), reverse=True)[:5]
            text = " ".join(f"{c}:{s:.3f}" for s, c in top)
            shown = ""
            if self.pngs:
                png = save_mask_png(self.mask_dir / f"{name}.png", mask, self.classes, self.task.ignore_index)
                shown = str(png.relative_to(self.dir))
                if len(self.pictures) < OVERVIEW:
                    self.inputs.append(x[i])
                    self.pictures.append(mask_to_rgb(mask, self.classes, self.task.ignore_index))
            self.csv.writerow([label, shown, text])
            self.keep([_short(label), shown or "masks.npy", text])

    def close(self) -> list[Path]:
        self.open_files.close()
        self.npy.flush()
        del self.npy
        if self.pngs:
            self.files.append(self.mask_dir)
            overview = self.context.overview(
                self.dir / "overview.png", self.inputs, "predicted", self.pictures
            )
            if overview is not None:
                self.files.append(overview)
        return self.files


class _Values(_Writer):
    """Float outputs: <output>.npy stacked [N, *out]; image-shaped reconstructions also as PNGs
    (images/<input>.png, in the input's pixel units) and overview.png; predictions.csv holds
    small outputs' values, or each reconstruction's mean squared error against its input."""

    def __init__(self, task: OutputTask, context: _Context):
        import numpy as np

        super().__init__(task, context)
        self.npy_path = self.dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', task.output)}.npy"
        self.npy = np.lib.format.open_memmap(
            self.npy_path, mode="w+", dtype=np.float32, shape=(context.total, *task.shape)
        )
        self.files.append(self.npy_path)
        shape = task.shape
        self.reconstruction = task.task == RECONSTRUCTION and shape == context.input_shape
        self.pngs = self.reconstruction and context.image_input
        self.image_dir = self.dir / "images"
        if self.pngs:
            self.image_dir.mkdir(exist_ok=True)
        self.values = math.prod(shape) if math.prod(shape) <= CSV_VALUES else 0
        extra = (["image"] if self.pngs else []) + (["mse"] if self.reconstruction else [])
        self.columns = ["input", *extra, *(f"v{i}" for i in range(self.values))]
        self.shown = 1 + len(extra) + min(self.values, 6)  # columns of the stdout table
        self.csv = self._csv(self.columns)
        self.inputs: list = []
        self.pictures: list = []

    def header(self) -> list[str]:
        return self.columns[: self.shown]

    def add(self, index, labels, names, x, y) -> None:
        from PIL import Image

        self.npy[index : index + len(labels)] = y.numpy()
        for i, (label, name) in enumerate(zip(labels, names, strict=True)):
            row = [label]
            if self.pngs:
                png = self.image_dir / f"{name}.png"
                picture = self.context.pixels(y[i])
                image = Image.fromarray(picture)
                (image.convert("L") if self.task.shape[0] == 1 else image).save(png, format="PNG")
                row.append(str(png.relative_to(self.dir)))
                if len(self.pictures) < OVERVIEW:
                    self.inputs.append(x[i])
                    self.pictures.append(picture)
            if self.reconstruction:
                row.append(f"{float(((y[i] - x[i]) ** 2).mean()):.6g}")
            row += [f"{v:.6g}" for v in y[i].flatten().tolist()[: self.values]]
            self.csv.writerow(row)
            self.keep([_short(row[0]), *row[1 : self.shown]])

    def close(self) -> list[Path]:
        self.open_files.close()
        self.npy.flush()
        del self.npy
        if self.pngs:
            self.files.append(self.image_dir)
            overview = self.context.overview(
                self.dir / "overview.png", self.inputs, "reconstructed", self.pictures
            )
            if overview is not None:
                self.files.append(overview)
        return self.files


_WRITERS = {CLASSIFICATION: _Classes, SEGMENTATION: _Masks, RECONSTRUCTION: _Values, REGRESSION: _Values}


def _short(label: str, width: int = 40) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
