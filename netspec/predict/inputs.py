"""What ``netspec predict`` reads: the inputs given, in their order, as sources of batches.

Image files (alone or in directories), array files and a split of the spec's own dataset; how
many of them one run may take is in :mod:`netspec.predict.limits`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netspec.errors import SpecError
from netspec.predict.arrays import ARRAY_SUFFIXES, read_samples
from netspec.predict.images import IMAGE_SUFFIXES, check_image_input
from netspec.predict.limits import MAX_DIR_FILES, MAX_INPUTS
from netspec.predict.problems import Log, refuse
from netspec.predict.sources import DatasetSplit, ImageFiles, Source
from netspec.spec import Spec

SPLITS = ("test", "val", "train")


def gather_sources(spec: Spec, cfg, inputs, split, normalization, data_dir, max_pixels: int) -> list[Source]:
    """The inputs in the order given; neighbouring image files are batched together."""
    shape = tuple(spec.input_shape)
    sources: list[Source] = []
    images: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images += _directory_images(path, shape)
        elif not path.exists():
            raise refuse(f"input {path} does not exist", path)
        elif not path.is_file():  # a FIFO or a device: reading it may never end
            raise refuse(f"input {path} is not a regular file", path, hint="give image or array files")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            check_image_input(path, shape)
            images.append(path)
        elif path.suffix.lower() in ARRAY_SUFFIXES:
            if images:
                sources.append(ImageFiles(images, shape, normalization, max_pixels))
                images = []
            sources.append(read_samples(path, shape))
        else:
            raise refuse(
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
        sources.append(ImageFiles(images, shape, normalization, max_pixels))
    if split is not None:
        sources.append(_split_source(spec, cfg, split, data_dir))
    return sources


def _directory_images(path: Path, shape) -> list[Path]:
    found = []
    try:
        for count, entry in enumerate(path.iterdir()):
            if count >= MAX_DIR_FILES:
                raise refuse(
                    f"directory {path} has more than {MAX_DIR_FILES} entries",
                    path,
                    hint="predict its images in several runs (give subdirectories or files)",
                )
            if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                found.append(entry)
    except OSError as exc:
        raise refuse(f"cannot list the directory {path}: {exc.strerror or exc}", path) from None
    if not found:
        raise refuse(
            f"directory {path} holds no images",
            path,
            hint="it should hold " + ", ".join(IMAGE_SUFFIXES) + " files",
        )
    check_image_input(path, shape)
    return sorted(found)


def _split_source(spec: Spec, cfg, split: str, data_dir) -> DatasetSplit:
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
    return DatasetSplit(dataset, f"{cfg.data.name}:{split}")


def unknown_normalization(path, what: str) -> str:
    """The note for images given to a network whose checkpoint does not say how its training
    inputs were normalized (``what``: "predictions", "pictures")."""
    return (
        f"netspec: note: {path} does not record how the training inputs were normalized: images are "
        f"only scaled to [0, 1]; if training standardised them, the {what} may be off"
    )


def notice_scaling(sources: list[Source], normalization, path, log: Log) -> None:
    """Say when inputs may not reach the network in the units it was trained on."""
    kinds = {s.kind for s in sources}
    if "images" in kinds and normalization == "unknown":
        log(unknown_normalization(path, "predictions"))
    if "arrays" in kinds and isinstance(normalization, tuple):
        mean, std = (", ".join(f"{v:.4g}" for v in t.flatten().tolist()) for t in normalization)
        log(
            "netspec: note: arrays go to the network as they are; the training images were "
            f"standardised ((x - mean) / std, x in [0, 1]) with mean [{mean}] and std [{std}]"
        )


def batches(sources: list[Source], batch_size: int) -> Iterator[tuple[list[str], Any]]:
    """(labels, float32 tensor) per batch, in order; an input with NaN or infinities is exit 2."""
    import torch

    for source in sources:
        for start in range(0, len(source), batch_size):
            stop = min(start + batch_size, len(source))
            labels = source.labels(start, stop)
            x = source.load(start, stop)
            finite = torch.isfinite(x).flatten(1).all(dim=1)
            if not bool(finite.all()):
                bad = labels[int((~finite).nonzero()[0, 0])]
                raise refuse(f"input {bad} holds NaN or infinite values", bad, hint="remove or replace them")
            yield labels, x
