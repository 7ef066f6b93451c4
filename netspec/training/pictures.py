"""Pictures of inputs and masks: colour masks, palette PNGs and titled comparison grids.

Used for the prediction previews written at the end of a run and by ``netspec predict``. PIL and
numpy only (matplotlib takes seconds to import); tensors are accepted wherever arrays are, without
importing torch here.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Class 0 (background, by convention) is black; then Sasha Trubetskoy's distinct colours without
# the greys, white, black and beige (too close to white); more classes get golden-ratio hues.
# Ignored pixels are white, values that are no class (neither in range nor ignored) mid grey.
BASE_PALETTE = (
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
)
IGNORE_COLOUR = (255, 255, 255)
UNKNOWN_COLOUR = (128, 128, 128)
BACKGROUND = (200, 200, 200)  # of comparison grids: white (ignored) and black masks both show on it
TEXT = (0, 0, 0)
GAP = 4  # pixels between the cells of a grid
MIN_CELL = 96  # the automatic scale makes cells at least this many pixels on their longer side
MAX_SCALE = 16
FONT_SIZE = 13


def palette(num_classes: int) -> np.ndarray:
    """[num_classes, 3] uint8: one fixed colour per class, the same in every picture."""
    colours = list(BASE_PALETTE[:num_classes])
    for i in range(len(colours), num_classes):
        hue = (i * 0.618033988749895) % 1.0
        value = (1.0, 0.75, 0.55)[i % 3]
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, value)))
    return np.array(colours, dtype=np.uint8).reshape(-1, 3)


def _array(values: Any) -> np.ndarray:
    """A numpy array from an array or a (CPU or GPU) tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def mask_to_rgb(mask: Any, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Class indices [H, W] → uint8 RGB [H, W, 3] in :func:`palette`'s colours (ignored: white)."""
    indices = _array(mask).astype(np.int64)
    if indices.ndim != 2:
        raise ValueError(f"a mask is [H, W] class indices; got shape {list(indices.shape)}")
    colours = palette(num_classes)
    known = (indices >= 0) & (indices < num_classes)
    out = np.empty((*indices.shape, 3), dtype=np.uint8)
    out[...] = UNKNOWN_COLOUR
    out[known] = colours[indices[known]]
    if ignore_index is not None:
        out[indices == ignore_index] = IGNORE_COLOUR
    return out


def save_mask_png(path: str | Path, mask: Any, num_classes: int, ignore_index: int | None = None) -> Path:
    """Write a mask as a PNG whose pixel values are the class indices, viewable in colour.

    A palette ("P") PNG when the indices fit 0..255: ``numpy.array(PIL.Image.open(path))`` gives the
    indices back and any viewer shows :func:`palette`'s colours (ignored pixels white; an ignore
    label outside 0..255 is stored as 255). More classes: a 16-bit grey PNG of the indices.
    """
    from PIL import Image

    indices = _array(mask).astype(np.int64)
    if indices.ndim != 2:
        raise ValueError(f"a mask is [H, W] class indices; got shape {list(indices.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if num_classes <= 256:
        stored = indices.copy()
        if ignore_index is not None and not 0 <= ignore_index <= 255:
            stored[indices == ignore_index] = 255
            ignore_index = 255
        if stored.size and (stored.min() < 0 or stored.max() > 255):
            raise ValueError(f"mask values {stored.min()}..{stored.max()} do not fit a PNG of classes 0..255")
        table = np.empty((256, 3), dtype=np.uint8)
        table[:] = UNKNOWN_COLOUR
        table[:num_classes] = palette(num_classes)
        if ignore_index is not None:
            table[ignore_index] = IGNORE_COLOUR
        height, width = stored.shape
        image = Image.frombytes("P", (width, height), stored.astype(np.uint8).tobytes())
        image.putpalette(table.flatten().tolist())
    else:
        if indices.size and (indices.min() < 0 or indices.max() > 65535):
            raise ValueError(f"mask values {indices.min()}..{indices.max()} do not fit a 16-bit PNG")
        image = Image.fromarray(indices.astype(np.uint16))
    image.save(path, format="PNG")
    return path


def image_to_rgb(x: Any, normalization: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """An input [C, H, W] (C 1 or 3; or [H, W]) → uint8 RGB [H, W, 3] for looking at.

    ``normalization`` (per-channel mean, std, as ``Splits.normalization``) is undone, giving pixels in
    [0, 1]; without it the image is min–max scaled, so any range shows. Grey is repeated to RGB.
    """
    values = _array(x).astype(np.float32)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"an image is [1 or 3, H, W]; got shape {list(values.shape)}")
    channels = values.shape[0]
    if normalization is not None:
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in normalization)
        if len(mean) not in (1, channels) or len(std) not in (1, channels):
            raise ValueError(
                f"normalization has {len(mean)} mean(s) and {len(std)} std(s) for {channels} channel(s)"
            )
        values = values * std + mean
    else:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        values = (values - low) / (high - low) if high > low else np.full_like(values, 0.5)
    values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    pixels = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))


def save_comparison(
    path: str | Path,
    columns: Sequence[tuple[str, Sequence[Any]]],
    scale: int | None = None,
) -> Path:
    """A grid PNG: one row per sample, one titled column per kind ("input", "predicted", "true").

    Each picture is a uint8 [H, W, 3] (or [H, W] grey) array, enlarged ``scale`` times with
    nearest-neighbour so that single pixels stay visible (default: about ``MIN_CELL`` pixels a side).
    """
    from PIL import Image, ImageDraw

    from netspec.chart import load_font

    if not columns:
        raise ValueError("save_comparison needs at least one column")
    rows = len(columns[0][1])
    if any(len(pictures) != rows for _, pictures in columns):
        counts = ", ".join(f"{title!r}: {len(pictures)}" for title, pictures in columns)
        raise ValueError(f"every column needs the same number of pictures; got {counts}")
    grid = [[_rgb(picture) for picture in pictures] for _, pictures in columns]
    cell_h = max((p.shape[0] for column in grid for p in column), default=1)
    cell_w = max((p.shape[1] for column in grid for p in column), default=1)
    if scale is None:
        scale = min(MAX_SCALE, max(1, math.ceil(MIN_CELL / max(cell_h, cell_w))))
    if scale < 1:
        raise ValueError(f"scale must be ≥ 1; got {scale}")
    font = load_font(FONT_SIZE, scale=1)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), title, font=font) for title, _ in columns]
    title_h = max(box[3] for box in boxes) + 2 * GAP
    widths = [max(cell_w * scale, box[2] - box[0]) for box in boxes]
    width = sum(widths) + GAP * (len(widths) + 1)
    height = title_h + rows * (cell_h * scale + GAP) + GAP * (rows == 0)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    left = GAP
    for (title, _), column, box, col_w in zip(columns, grid, boxes, widths, strict=True):
        draw.text((left + (col_w - (box[2] - box[0])) // 2, GAP), title, fill=TEXT, font=font)
        for row, picture in enumerate(column):
            big = Image.fromarray(picture).resize(
                (picture.shape[1] * scale, picture.shape[0] * scale), Image.Resampling.NEAREST
            )
            top = title_h + row * (cell_h * scale + GAP)
            canvas.paste(big, (left + (col_w - big.width) // 2, top))
        left += col_w + GAP
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def _rgb(picture: Any) -> np.ndarray:
    values = _array(picture)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    if values.ndim != 3 or values.shape[2] != 3 or values.dtype != np.uint8:
        raise ValueError(
            f"a picture is a uint8 [H, W, 3] array (see image_to_rgb, mask_to_rgb); got "
            f"{values.dtype} {list(values.shape)}"
        )
    return values
