"""Upsampling (F.interpolate) by a target size or a scale factor."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, Literal

from pydantic import Field, StrictBool, model_validator

from netspec.errors import ShapeError
from netspec.explain import interpolate_formula, per_dim
from netspec.hookspecs import hookimpl
from netspec.params import MAX_COEFFICIENT, FiniteFloat, LayerParams, PositiveSizes
from netspec.registry import LayerContext, LayerType, Window, no_parameters, spatial_rank
from netspec.shapes import SPATIAL_NAMES, Shape, describe, expand, interpolate_size

Mode = Literal["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"]
_MODE_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_RANK_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}
# finite, positive and bounded, so that size · scale stays a finite double
Scale = Annotated[FiniteFloat, Field(gt=0.0, le=MAX_COEFFICIENT)]


class UpsampleParams(LayerParams):
    """Upsampling to ``size`` or by ``scale_factor`` (exactly one of them)."""

    size: PositiveSizes | None = None
    scale_factor: Scale | list[Scale] | None = Field(
        None, description="Output size is floor(input · scale), computed in double precision."
    )
    mode: Mode = "nearest"
    align_corners: StrictBool | None = Field(None, description="Only for linear/bilinear/bicubic/trilinear.")

    @model_validator(mode="after")
    def _check(self):
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("give exactly one of size or scale_factor")
        if self.align_corners is not None and self.mode not in _MODE_RANK:
            raise ValueError(
                f"align_corners only applies to the interpolating modes "
                f"(linear, bilinear, bicubic, trilinear), not {self.mode!r}"
            )
        return self


def _scales(p: UpsampleParams, rank: int) -> tuple[float, ...]:
    if isinstance(p.scale_factor, list):
        if len(p.scale_factor) != rank:
            raise ShapeError(
                f"scale_factor has {len(p.scale_factor)} values but the input has "
                f"{rank} spatial dimension(s)",
                hint=f"give a single number or {rank} values",
                field="scale_factor",
            )
        return tuple(p.scale_factor)
    return (p.scale_factor,) * rank


def _upsample_rule(p: UpsampleParams, ctx: LayerContext) -> Shape:
    rank = spatial_rank(ctx.input, "upsample")
    wanted = _MODE_RANK.get(p.mode)
    if wanted is not None and wanted != rank:
        raise ShapeError(
            f"mode {p.mode!r} is for {wanted}-D inputs, but the input {describe(ctx.input)} is {rank}-D",
            hint=f"use mode {_RANK_MODE[rank]!r}" + (" or 'bicubic'" if rank == 2 else ""),
            field="mode",
        )
    if p.size is not None:
        return (ctx.input[0], *expand(p.size, rank, "size"))
    out = []
    for dim, size, scale in zip(SPATIAL_NAMES[rank], ctx.input[1:], _scales(p, rank), strict=True):
        size_out = interpolate_size(size, scale)
        if size_out < 1:
            raise ShapeError(
                f"scale_factor {scale} turns {dim}={size} into {size_out}",
                hint="use a larger scale_factor or give size",
                field="scale_factor",
            )
        out.append(size_out)
    return (ctx.input[0], *out)


def _upsample_build(p: UpsampleParams, ctx: LayerContext):
    from torch import nn

    rank = len(ctx.input) - 1
    size = None if p.size is None else tuple(expand(p.size, rank, "size"))
    scale = None if p.scale_factor is None else _scales(p, rank)
    return nn.Upsample(size=size, scale_factor=scale, mode=p.mode, align_corners=p.align_corners)


# Input taps per output element (nearest copies: no arithmetic); 'area' is adaptive averaging.
_TAPS = {"nearest": 0, "nearest-exact": 0, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8}
_SPAN = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "bicubic": 4, "trilinear": 2}


def _upsample_macs(p: UpsampleParams, ctx: LayerContext) -> int:
    if p.mode == "area":
        from netspec.layers.pool import adaptive_window_total

        totals = (adaptive_window_total(i, o) for i, o in zip(ctx.input[1:], ctx.output[1:], strict=True))
        return ctx.input[0] * math.prod(totals)
    return math.prod(ctx.output) * _TAPS[p.mode]


def _upsample_window(p: UpsampleParams, ctx: LayerContext) -> Window:
    strides = tuple(Fraction(i, o) for i, o in zip(ctx.input[1:], ctx.output[1:], strict=True))
    if p.mode == "area":
        spans = tuple(-(-i // o) for i, o in zip(ctx.input[1:], ctx.output[1:], strict=True))
    else:
        spans = (_SPAN[p.mode],) * len(strides)
    return Window(spans, strides)


def _upsample_explain(p: UpsampleParams, ctx: LayerContext) -> list[str]:
    rank = len(ctx.input) - 1
    if p.size is not None:
        return [
            ", ".join(f"{d}_out = {o}" for d, o in zip(SPATIAL_NAMES[rank], ctx.output[1:], strict=True))
            + " (size)"
        ]
    formulas = [
        interpolate_formula(size, scale) for size, scale in zip(ctx.input[1:], _scales(p, rank), strict=True)
    ]
    return [*per_dim(SPATIAL_NAMES[rank], formulas), "computed in double precision, as F.interpolate does"]


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "upsample",
            UpsampleParams,
            _upsample_rule,
            _upsample_build,
            macs=_upsample_macs,
            parameters=no_parameters,
            window=_upsample_window,
            explain=_upsample_explain,
            summary="Upsampling by size or scale_factor "
            "(nearest, linear, bilinear, bicubic, trilinear, area).",
            examples=(
                {"input": [2, 5, 6], "layers": [{"type": "upsample", "scale_factor": 2}]},
                {
                    "input": [2, 88],
                    "layers": [
                        {
                            "type": "upsample",
                            "scale_factor": 1.3636363636363635,
                            "mode": "linear",
                            "align_corners": True,
                        }
                    ],
                },
                {
                    "input": [1, 3, 4, 5],
                    "layers": [{"type": "upsample", "size": [4, 6, 7], "mode": "trilinear"}],
                },
            ),
        )
    ]
