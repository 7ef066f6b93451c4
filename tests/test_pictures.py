"""Pictures of inputs and masks: palette PNGs hold the class indices, grids have the promised layout."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from netspec.training import pictures
from netspec.training.pictures import image_to_rgb, mask_to_rgb, palette, save_comparison, save_mask_png


def test_importing_pictures_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, netspec.training.pictures\n"
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_palette_is_fixed_and_distinguishable():
    colours = palette(300)
    assert colours.shape == (300, 3) and colours.dtype == np.uint8
    assert tuple(colours[0]) == (0, 0, 0)  # background black
    assert np.array_equal(palette(5), colours[:5])  # a class keeps its colour whatever the count
    first = colours[:19].astype(int)
    distance = np.abs(first[:, None] - first[None]).sum(-1) + 1000 * np.eye(19, dtype=int)
    assert distance.min() > 60
    for special in (pictures.IGNORE_COLOUR, pictures.UNKNOWN_COLOUR):
        assert np.abs(first - np.array(special)).sum(-1).min() > 60


def test_mask_to_rgb_colours_classes_ignore_and_strays():
    mask = torch.tensor([[0, 1, 2], [255, 3, -1]])
    rgb = mask_to_rgb(mask, num_classes=3, ignore_index=255)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    colours = palette(3)
    assert (rgb[0] == colours).all()
    assert tuple(rgb[1, 0]) == pictures.IGNORE_COLOUR
    assert tuple(rgb[1, 1]) == tuple(rgb[1, 2]) == pictures.UNKNOWN_COLOUR  # neither class nor ignored
    assert np.array_equal(mask_to_rgb(mask.numpy(), 3, 255), rgb)  # arrays work like tensors
    with pytest.raises(ValueError, match=r"\[H, W\] class indices; got shape \[1, 2, 3\]"):
        mask_to_rgb(mask[None], 3)


def test_palette_png_round_trips_the_indices(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 21, (17, 23))
    mask[0, :5] = 255
    path = save_mask_png(tmp_path / "out" / "mask.png", torch.from_numpy(mask), 21, ignore_index=255)
    with Image.open(path) as image:
        assert image.mode == "P" and image.size == (23, 17)
        assert np.array_equal(np.array(image), mask)  # the pixel values are the classes
        shown = np.array(image.convert("RGB"))  # and a viewer shows the palette's colours
    assert np.array_equal(shown, mask_to_rgb(mask, 21, 255))
    # An ignore label outside 0..255 is stored as 255, which then shows as ignored.
    mask[0, :5] = -100
    with Image.open(save_mask_png(tmp_path / "neg.png", mask, 21, ignore_index=-100)) as image:
        stored = np.array(image)
        assert (stored[0, :5] == 255).all() and np.array_equal(stored[1:], mask[1:])
        assert tuple(np.array(image.convert("RGB"))[0, 0]) == pictures.IGNORE_COLOUR
    with pytest.raises(ValueError, match="do not fit a PNG of classes 0..255"):
        save_mask_png(tmp_path / "bad.png", mask, 21)


def test_many_classes_are_a_16_bit_png(tmp_path):
    mask = np.arange(600).reshape(20, 30)
    with Image.open(save_mask_png(tmp_path / "wide.png", mask, 600)) as image:
        assert np.array_equal(np.array(image).astype(np.int64), mask)


def test_image_to_rgb_undoes_normalization_or_stretches():
    grey = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])
    mean, std = (0.5,), (0.25,)
    rgb = image_to_rgb((grey - 0.5) / 0.25, (mean, std))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].tolist() == [[0, 128], [255, 64]]
    assert (rgb[..., 0] == rgb[..., 2]).all()  # grey → RGB
    stretched = image_to_rgb(grey * 40 - 7)
    assert stretched[..., 0].tolist() == [[0, 128], [255, 64]]
    colour = torch.stack([torch.zeros(2, 2), torch.ones(2, 2), torch.full((2, 2), 0.5)])
    norm = ((0.1, 0.2, 0.3), (2.0, 1.0, 0.5))
    out = image_to_rgb(colour, norm)
    assert tuple(out[0, 0]) == (26, 255, 140)  # per channel: x · std + mean, clipped
    assert (image_to_rgb(torch.full((3, 4, 4), 7.0)) == 128).all()  # flat image: mid grey
    with pytest.raises(ValueError, match=r"\[1 or 3, H, W\]; got shape \[2, 4, 4\]"):
        image_to_rgb(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="2 mean"):
        image_to_rgb(colour, ((0.1, 0.2), (1.0, 1.0)))


def test_comparison_grid_layout(tmp_path):
    rows, h, w = 3, 10, 14
    inputs = [image_to_rgb(torch.rand(1, h, w)) for _ in range(rows)]
    masks = [mask_to_rgb(torch.randint(0, 4, (h, w)), 4) for _ in range(rows)]
    path = save_comparison(
        tmp_path / "grid.png", [("input", inputs), ("predicted", masks), ("true", masks)], scale=5
    )
    with Image.open(path) as image:
        grid = np.array(image.convert("RGB"))
    gap = pictures.GAP
    height, width = grid.shape[:2]
    assert width == 3 * w * 5 + 4 * gap  # columns wider than their titles: the pictures set the width
    title_h = height - rows * (h * 5 + gap)
    assert 10 < title_h < 40
    # Each cell is its picture enlarged 5× with nearest-neighbour, in order, row by row.
    for column, pictures_ in enumerate((inputs, masks, masks)):
        for row, picture in enumerate(pictures_):
            top, left = title_h + row * (h * 5 + gap), gap + column * (w * 5 + gap)
            cell = grid[top : top + h * 5, left : left + w * 5]
            assert np.array_equal(cell, picture.repeat(5, 0).repeat(5, 1))
    title_band = grid[:title_h]
    assert (title_band != pictures.BACKGROUND).any(axis=-1).sum() > 20  # the titles are drawn


def test_comparison_default_scale_and_wide_titles(tmp_path):
    tiny = [np.zeros((4, 4, 3), dtype=np.uint8)] * 2
    path = save_comparison(
        tmp_path / "tiny.png", [("a long column title", tiny), ("x", [np.zeros((4, 4), np.uint8)] * 2)]
    )
    with Image.open(path) as image:
        grid = np.array(image.convert("RGB"))
    scale = pictures.MAX_SCALE  # MIN_CELL / 4 would be more: the scale is capped
    title_h = grid.shape[0] - 2 * (4 * scale + pictures.GAP)
    assert 10 < title_h < 40
    black = (grid[title_h:] == 0).all(-1)
    assert black.sum() == 4 * (4 * scale) ** 2  # four cells, each a 4×4 picture enlarged
    assert grid.shape[1] > 2 * 4 * scale + 3 * pictures.GAP + 40  # the long title widens its column
    with pytest.raises(ValueError, match="same number of pictures; got 'a': 2, 'b': 1"):
        save_comparison(tmp_path / "bad.png", [("a", tiny), ("b", tiny[:1])])
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        save_comparison(tmp_path / "bad.png", [("a", [np.zeros((4, 4, 3))])])
