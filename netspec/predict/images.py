"""Image files as network inputs, prepared the way the built-in datasets prepare theirs for training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netspec.errors import SpecError
from netspec.predict.limits import MAX_IMAGE_PIXELS
from netspec.predict.problems import reason, refuse
from netspec.shapes import describe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def check_image_input(path: Path, shape) -> None:
    """Images can only feed a network whose input is [1 or 3, H, W]: else exit 2, naming ``path``."""
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise refuse(
            f"images give [1 or 3, H, W], but the network's input is {describe(shape)}",
            path,
            hint="give the samples as arrays (.npy/.npz/.pt) of that shape",
        )


def read_image(path: str | Path, shape: Sequence[int], max_pixels: int = MAX_IMAGE_PIXELS):
    """An image file as float32 [C, H, W] in [0, 1], the way the built-in datasets prepare theirs.

    Grey or RGB as decoded (16-bit grey keeps its depth), then ``fit_images``: bilinear resize to
    the spec's H×W (antialiased when shrinking), grey → RGB by repetition, RGB → grey by luma.
    Images of more than ``max_pixels`` are refused before they are decoded.
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from netspec.datasets._common import fit_images

    path = Path(path)
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise refuse(
                    f"the image {path} has {width}×{height} pixels, more than {max_pixels}",
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
        raise refuse(
            f"cannot read the image {path}: {reason(exc)}", path, hint="give a PNG or JPEG file"
        ) from None
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return fit_images(pixels.unsqueeze(0), tuple(shape), scale=scale)[0]
