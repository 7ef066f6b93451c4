"""Transposed convolution, with output_padding given directly or derived from a target size."""

from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field, model_validator

from netspec.errors import ShapeError
from netspec.explain import TCONV_SYMBOLIC, conv_weight_lines, spatial_lines, tconv_teach
from netspec.hookspecs import hookimpl
from netspec.layers.conv import check_groups
from netspec.params import LayerParams, NonNegativeSizes, PositiveInt, PositiveSizes, StrictBool
from netspec.registry import LayerContext, LayerType, ParamCount, Window, check_declared, spatial_rank
from netspec.shapes import SPATIAL_NAMES, Shape, describe, effective_kernel, expand, tconv_output_size


class TConvParams(LayerParams):
    """Transposed convolution (ConvTranspose1d/2d/3d by input rank)."""

    out_channels: PositiveInt
    kernel_size: PositiveSizes
    stride: PositiveSizes = 1
    padding: NonNegativeSizes = 0
    output_padding: NonNegativeSizes | None = Field(
        None, description="Extra size on one side; default 0, or derived from output_size."
    )
    output_size: PositiveSizes | None = Field(
        None, description="Target spatial size; output_padding is derived from it."
    )
    dilation: PositiveSizes = 1
    groups: PositiveInt = 1
    bias: StrictBool = True
    in_channels: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if self.output_padding is not None and self.output_size is not None:
            raise ValueError("give output_padding or output_size, not both")
        return self


def tconv_geometry(p: TConvParams, shape: Shape) -> dict[str, tuple[int, ...]]:
    """kernel_size/stride/padding/dilation per spatial dim."""
    rank = len(shape) - 1
    return {
        name: expand(getattr(p, name), rank, name)
        for name in ("kernel_size", "stride", "padding", "dilation")
    }


def resolved_output_padding(p: TConvParams, shape: Shape) -> tuple[int, ...]:
    """output_padding per dim: given, derived from ``output_size``, or 0 — and checked."""
    rank = len(shape) - 1
    kernel, stride, padding, dilation = tconv_geometry(p, shape).values()
    if p.output_size is None:
        output_padding = expand(p.output_padding or 0, rank, "output_padding")
        for dim, op, s, d in zip(SPATIAL_NAMES[rank], output_padding, stride, dilation, strict=True):
            if op >= s and op >= d:
                raise ShapeError(
                    f"output_padding {op} in {dim} must be smaller than the stride ({s}) "
                    f"or the dilation ({d})",
                    hint=f"use output_padding < {max(s, d)}, or give output_size instead",
                    field="output_padding",
                )
        return output_padding
    targets = expand(p.output_size, rank, "output_size")
    derived = []
    for dim, size, target, k, s, pad, d in zip(
        SPATIAL_NAMES[rank], shape[1:], targets, kernel, stride, padding, dilation, strict=True
    ):
        smallest = tconv_output_size(size, k, s, pad, 0, d)
        if not smallest <= target <= smallest + s - 1:
            reach = f"{smallest}" if s == 1 else f"{smallest}..{smallest + s - 1}"
            raise ShapeError(
                f"output_size {target} in {dim} is not reachable from input {describe(shape)}: "
                f"this tconv can give {reach}",
                hint="change output_size, stride, padding or kernel_size",
                field="output_size",
            )
        derived.append(target - smallest)
    return tuple(derived)


def _tconv_rule(p: TConvParams, ctx: LayerContext) -> Shape:
    shape = ctx.input
    rank = spatial_rank(shape, "tconv")
    channels = shape[0]
    check_declared(p.in_channels, channels, "in_channels")
    check_groups(channels, p.out_channels, p.groups)
    kernel, stride, padding, dilation = tconv_geometry(p, shape).values()
    output_padding = resolved_output_padding(p, shape)
    out = []
    for dim, size, k, s, pad, op, d in zip(
        SPATIAL_NAMES[rank], shape[1:], kernel, stride, padding, output_padding, dilation, strict=True
    ):
        size_out = tconv_output_size(size, k, s, pad, op, d)
        if size_out < 1:
            raise ShapeError(
                f"output {dim} would be {size_out}: padding {pad} removes more than the "
                f"transposed convolution produces from input {describe(shape)}",
                hint="reduce padding",
                field="padding",
            )
        out.append(size_out)
    return (p.out_channels, *out)


def _tconv_build(p: TConvParams, ctx: LayerContext):
    from torch import nn

    rank = len(ctx.input) - 1
    cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[rank - 1]
    return cls(
        ctx.input[0],
        p.out_channels,
        kernel_size=expand(p.kernel_size, rank, "kernel_size"),
        stride=expand(p.stride, rank, "stride"),
        padding=expand(p.padding, rank, "padding"),
        output_padding=resolved_output_padding(p, ctx.input),
        groups=p.groups,
        bias=p.bias,
        dilation=expand(p.dilation, rank, "dilation"),
    )


def _tconv_macs(p: TConvParams, ctx: LayerContext) -> int:
    """Every *input* position multiplies the whole kernel (torchinfo counts output positions,
    about stride^rank times too many); biases are added once per output position."""
    rank = len(ctx.input) - 1
    kernel = math.prod(expand(p.kernel_size, rank, "kernel_size"))
    weights = ctx.input[0] * (p.out_channels // p.groups) * kernel
    bias = p.out_channels * math.prod(ctx.output[1:]) if p.bias else 0
    return weights * math.prod(ctx.input[1:]) + bias


def _tconv_window(p: TConvParams, ctx: LayerContext) -> Window:
    """An output position receives from ceil(span / s) inputs; one output step is 1/s input."""
    rank = len(ctx.input) - 1
    spans, strides = [], []
    for k, s, d in zip(
        expand(p.kernel_size, rank, "kernel_size"),
        expand(p.stride, rank, "stride"),
        expand(p.dilation, rank, "dilation"),
        strict=True,
    ):
        spans.append(-(-effective_kernel(k, d) // s))
        strides.append(Fraction(1, s))
    return Window(tuple(spans), tuple(strides))


def _tconv_explain(p: TConvParams, ctx: LayerContext) -> list[str]:
    rank = len(ctx.input) - 1
    kernel, stride, padding, dilation = tconv_geometry(p, ctx.input).values()
    output_padding = resolved_output_padding(p, ctx.input)
    formulas = [
        tconv_teach(size, k, s, pad, op, d, p.output_size is not None)
        for size, k, s, pad, op, d in zip(
            ctx.input[1:], kernel, stride, padding, output_padding, dilation, strict=True
        )
    ]
    lines = spatial_lines(SPATIAL_NAMES[rank], TCONV_SYMBOLIC, formulas)
    if p.output_size is not None:
        lines.append(f"output_padding {list(output_padding)} derived from output_size {p.output_size}")
    c = ctx.input[0]
    lines.append(f"channels: C_out = out_channels = {p.out_channels}")
    return lines + conv_weight_lines(c, p.out_channels, p.groups, kernel, p.bias, transposed=True)


def _tconv_parameters(p: TConvParams, ctx: LayerContext) -> ParamCount:
    """Weight ``[in, out/groups, *kernel]`` plus an optional bias ``[out]``."""
    kernel = math.prod(expand(p.kernel_size, len(ctx.input) - 1, "kernel_size"))
    return ParamCount(
        ctx.input[0] * (p.out_channels // p.groups) * kernel + (p.out_channels if p.bias else 0)
    )


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "tconv",
            TConvParams,
            _tconv_rule,
            _tconv_build,
            macs=_tconv_macs,
            parameters=_tconv_parameters,
            window=_tconv_window,
            explain=_tconv_explain,
            summary="Transposed convolution; ConvTranspose1d/2d/3d from the input rank.",
            examples=(
                {
                    "input": [8, 7, 7],
                    "layers": [{"type": "tconv", "out_channels": 4, "kernel_size": 2, "stride": 2}],
                },
                {
                    "input": [4, 5, 5],
                    "layers": [
                        {
                            "type": "tconv",
                            "out_channels": 4,
                            "kernel_size": 3,
                            "stride": 2,
                            "padding": 1,
                            "output_size": 10,
                        }
                    ],
                },
                {
                    "input": [2, 9],
                    "layers": [
                        {
                            "type": "tconv",
                            "out_channels": 2,
                            "kernel_size": 3,
                            "stride": 2,
                            "dilation": 3,
                            "output_padding": 2,
                            "groups": 2,
                        }
                    ],
                },
            ),
        )
    ]
