"""``shapes``: a segmentation dataset drawn on the spot, so segmentation trains with no download.

Each image holds a few shapes (discs, squares, triangles, then rings and crosses when more
classes are asked for) of random size, position, rotation and colour on a textured, noisy
background; the mask gives each pixel its class (0: background, k: the k-th kind of shape,
the shape drawn last wins where they overlap). Colours are drawn independently of the kind, so
only the geometry tells the classes apart, yet a small U-Net learns it in a few hundred steps.
Everything is drawn from ``ctx.seed`` with tensor operations (about 1,000 64×64 images in a
fraction of a second).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.hookspecs import hookimpl
from netspec.params import PositiveInt

if TYPE_CHECKING:
    import torch

KINDS = ("disc", "square", "triangle", "ring", "cross")
MIN_SIZE = 8
RADIUS = (0.1, 0.22)  # of the image's shorter side; a shape's area is about π r²
PIXELS = 2**22  # per-shape values drawn at a time ([images, shapes, H, W]), to bound memory


class ShapesParams(DatasetParams):
    """Shapes on textured backgrounds with per-pixel class masks (segmentation)."""

    num_samples: PositiveInt = Field(1000, description="Images in all (train + val + test).")
    num_classes: StrictInt = Field(
        4,
        ge=2,
        le=len(KINDS) + 1,
        description=f"Classes: background, then num_classes - 1 kinds of shape from {', '.join(KINDS)}.",
    )
    max_shapes: StrictInt = Field(4, ge=1, le=16, description="Shapes per image: 1 to this many.")
    noise: StrictFloat = Field(
        0.05, ge=0.0, le=1.0, description="Std of the per-pixel noise (pixels are 0..1)."
    )
    test_fraction: StrictFloat = Field(
        0.2, ge=0.0, lt=1.0, description="Share of all samples held out for test."
    )
    normalize: StrictBool = Field(True, description="Standardise with the training split's mean and std.")


def check_shape(input_shape) -> tuple[int, int, int]:
    from netspec.datasets._common import image_shape, shape_text

    c, h, w = image_shape(input_shape, "shapes")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise DataError(
            f"dataset 'shapes' draws images of at least {MIN_SIZE}×{MIN_SIZE} pixels, but the spec's "
            f"input is {shape_text(input_shape)}; use H and W ≥ {MIN_SIZE}"
        )
    return c, h, w


def draw(
    n: int, shape: tuple[int, int, int], kinds: int, max_shapes: int, noise: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images [n, C, H, W] float32 in [0, 1] and their masks [n, H, W] int64."""
    import torch

    c, h, w = shape
    images = torch.empty((n, c, h, w))
    masks = torch.empty((n, h, w), dtype=torch.int64)
    chunk = max(1, PIXELS // (max_shapes * h * w))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        images[start : start + m], masks[start : start + m] = _draw_chunk(
            m, shape, kinds, max_shapes, noise, gen
        )
    return images, masks


def _draw_chunk(m, shape, kinds, max_shapes, noise, gen):
    import torch

    def uniform(low, high, *size):
        return low + (high - low) * torch.rand(size, generator=gen)

    c, h, w = shape
    k = max_shapes
    side = min(h, w)
    # Per shape: kind, whether it is drawn, centre, size, rotation, colour.
    kind = torch.randint(0, kinds, (m, k), generator=gen)
    count = torch.randint(1, k + 1, (m, 1), generator=gen)
    present = torch.arange(k) < count  # [m, k]
    cx = uniform(0.1, 0.9, m, k) * w
    cy = uniform(0.1, 0.9, m, k) * h
    r = (uniform(*RADIUS, m, k) * side).clamp(min=1.5)
    angle = uniform(0.0, 2 * math.pi, m, k)
    # Background: a base level with a smooth random texture; each shape's colour lies a random
    # 0.25..0.45 above or below the base in every channel, so it shows, whatever its kind.
    base = uniform(0.35, 0.65, m, 1, 1, 1)
    coarse = torch.randn((m, c, 4, 4), generator=gen)
    image = base + 0.08 * torch.einsum("hi,mcij,wj->mchw", _upsampler(h), coarse, _upsampler(w))
    sign = torch.randint(0, 2, (m, k, c), generator=gen) * 2 - 1
    colour = base.view(m, 1, 1) + sign * uniform(0.25, 0.45, m, k, c)

    # Which pixels each shape covers, computed kind by kind for the shapes of that kind only.
    hit = torch.zeros((m * k, h, w), dtype=torch.bool)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, dtype=torch.float32) + 0.5).view(1, 1, w)
    flat_kind = torch.where(present, kind, -1).flatten()
    for j in range(kinds):
        (chosen,) = (flat_kind == j).nonzero(as_tuple=True)
        if len(chosen):
            params = (t.flatten()[chosen].view(-1, 1, 1) for t in (cx, cy, r, angle))
            hit[chosen] = _covers(j, xs, ys, *params)
    hit = hit.view(m, k, h, w)

    # The topmost (last drawn) shape covering a pixel gives its class and colour.
    order = torch.arange(1, k + 1, dtype=torch.uint8).view(1, k, 1, 1)
    top = (hit * order).amax(dim=1).long()  # [m, H, W]; 0: background
    covered = top > 0
    index = (top - 1).clamp(min=0).flatten(1)
    mask = torch.where(covered, kind.gather(1, index).view(m, h, w) + 1, 0)
    fill = colour.gather(1, index.unsqueeze(-1).expand(-1, -1, c))  # [m, H·W, c]
    fill = fill.transpose(1, 2).reshape(m, c, h, w)
    image = torch.where(covered.unsqueeze(1), fill, image)
    if noise > 0:
        image = image + noise * torch.randn(image.shape, generator=gen)
    return image.clamp_(0.0, 1.0), mask


def _upsampler(size: int) -> torch.Tensor:
    """[size, 4]: bicubic interpolation of 4 values to ``size`` (a smooth texture, as a matmul)."""
    import torch
    import torch.nn.functional as F

    eye = torch.eye(4).view(4, 1, 4, 1)
    return F.interpolate(eye, size=(size, 1), mode="bicubic", align_corners=False).view(4, size).T


def _covers(kind: int, xs, ys, cx, cy, r, angle) -> torch.Tensor:
    """[S, H, W]: the pixels inside each of S shapes of one kind (sizes give each ≈ π r² of area)."""
    import torch

    dx, dy = xs - cx, ys - cy
    if kind in (0, 3):  # disc; ring (outer radius 1.25 r, inner 0.62 of it)
        dist2 = dx * dx + dy * dy
        if kind == 0:
            return dist2 <= r * r
        outer = 1.25 * r
        return (dist2 <= outer * outer) & (dist2 >= (0.62 * outer) ** 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    u, v = dx * cos + dy * sin, dy * cos - dx * sin  # the shape's own (rotated) axes
    if kind == 1:  # square, side 1.77 r
        return torch.maximum(u.abs(), v.abs()) <= 0.886 * r
    if kind == 2:  # equilateral triangle, inradius 0.78 r: three edges with normals 120° apart
        inradius = 0.78 * r
        return (v <= inradius) & (0.866 * u - 0.5 * v <= inradius) & (-0.866 * u - 0.5 * v <= inradius)
    arm, half = 1.15 * r, 0.4 * r  # cross: two bars 2.3 r by 0.8 r
    au, av = u.abs(), v.abs()
    return ((au <= arm) & (av <= half)) | ((av <= arm) & (au <= half))


def load_shapes(p: ShapesParams, ctx: DataContext) -> Splits:
    """Draw ``num_samples`` images, then a seeded split like ``digits`` and train-set standardisation."""
    from netspec.datasets import _common

    shape = check_shape(ctx.input_shape)
    # float32 pixels of C channels and an int64 mask: (4·C + 8) bytes per pixel
    _common.check_generated_size("shapes", p.num_samples, shape, (4 * shape[0] + 8) * shape[1] * shape[2])
    gen = _common.generator(ctx.seed)
    x, masks = draw(p.num_samples, shape, p.num_classes - 1, p.max_shapes, p.noise, gen)
    train, (test, val) = _common.random_split(
        p.num_samples, (p.test_fraction, p.val_fraction), ctx.seed + 1, "shapes"
    )
    parts = [(x[i], masks[i]) for i in (train, val, test)]
    normalization = None
    if p.normalize:
        normalization = _common.standardize(parts[0][0], parts[1][0], parts[2][0])
    return _common.pack(
        parts[0],
        parts[1],
        parts[2] if len(test) else None,
        num_classes=p.num_classes,
        normalization=normalization,
    )


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "shapes",
            ShapesParams,
            load_shapes,
            summary="Shapes on textured backgrounds with per-pixel class masks (segmentation; no files).",
            files="none: drawn in memory from the run's seed",
        )
    ]
