"""Convolutions: plain, dilated, grouped, depthwise and separable, 1-D/2-D/3-D by input rank."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

from pydantic import Field

from netspec.errors import ShapeError
from netspec.explain import CONV_SYMBOLIC, CONV_SYMBOLIC_LR, conv_teach, conv_weight_lines, spatial_lines
from netspec.hookspecs import hookimpl
from netspec.params import ConvPadding, LayerParams, PositiveInt, PositiveSizes, StrictBool
from netspec.registry import LayerContext, LayerType, ParamCount, Window, check_declared, spatial_rank
from netspec.shapes import (
    SPATIAL_NAMES,
    Shape,
    check_size,
    conv_output_size,
    describe,
    effective_kernel,
    expand,
    same_padding,
)

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


class _ConvBase(LayerParams):
    kernel_size: PositiveSizes
    stride: PositiveSizes = 1
    padding: ConvPadding = 0
    dilation: PositiveSizes = 1
    bias: StrictBool = True
    padding_mode: PaddingMode = "zeros"
    in_channels: PositiveInt | None = Field(None, description="Optional; checked against the input.")


class ConvParams(_ConvBase):
    """Convolution (Conv1d/2d/3d by input rank)."""

    out_channels: PositiveInt
    groups: PositiveInt = 1


class DepthwiseParams(_ConvBase):
    """Depthwise convolution: one filter group per input channel (groups = C_in)."""

    multiplier: PositiveInt = Field(1, description="Output channels per input channel.")


class SeparableParams(_ConvBase):
    """Depthwise convolution followed by a 1×1 pointwise convolution to out_channels."""

    out_channels: PositiveInt
    multiplier: PositiveInt = 1


def conv_padding(padding, kernel, stride, dilation, rank: int) -> list[tuple[int, int]]:
    """(left, right) padding per spatial dim for an int/list/'same'/'valid' padding."""
    if padding == "valid":
        return [(0, 0)] * rank
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ShapeError(
                "padding 'same' needs stride 1 (PyTorch does not support it with strides)",
                hint="use an explicit padding, or stride 1",
                field="padding",
            )
        return [same_padding(k, d) for k, d in zip(kernel, dilation, strict=True)]
    return [(p, p) for p in expand(padding, rank, "padding")]


def check_groups(channels: int, out_channels: int, groups: int) -> None:
    """Grouped (and transposed) convolutions need groups to divide both channel counts."""
    if channels % groups or out_channels % groups:
        raise ShapeError(
            f"groups={groups} must divide both the input channels ({channels}) "
            f"and out_channels ({out_channels})",
            hint="choose groups as a common divisor of both channel counts",
            field="groups",
        )


def conv_shape(
    shape: Shape,
    *,
    out_channels: int,
    kernel_size,
    stride,
    padding,
    dilation,
    groups: int,
    padding_mode: str,
    in_channels: int | None,
    layer: str = "conv",
) -> Shape:
    """Output shape of Conv{1,2,3}d on a per-sample ``[C, *spatial]`` input."""
    rank = spatial_rank(shape, layer)
    channels, spatial = shape[0], shape[1:]
    check_declared(in_channels, channels, "in_channels")
    kernel = expand(kernel_size, rank, "kernel_size")
    strides = expand(stride, rank, "stride")
    dilations = expand(dilation, rank, "dilation")
    check_groups(channels, out_channels, groups)
    pads = conv_padding(padding, kernel, strides, dilations, rank)
    out = []
    for dim, size, k, s, d, (left, right) in zip(
        SPATIAL_NAMES[rank], spatial, kernel, strides, dilations, pads, strict=True
    ):
        _check_padding_mode(padding_mode, dim, size, max(left, right))
        span = d * (k - 1) + 1
        if size + left + right < span:
            raise ShapeError(
                f"kernel spans {span} in {dim} but the padded input is only "
                f"{size + left + right} ({size} + padding {left + right}) in input {describe(shape)}",
                hint="use a smaller kernel_size/dilation, more padding, or a larger input",
                field="kernel_size",
            )
        out.append(conv_output_size(size + left + right, k, s, 0, d))
    return (out_channels, *out)


def _check_padding_mode(mode: str, dim: str, size: int, pad: int) -> None:
    """reflect needs pad < size; circular pad ≤ size (PyTorch's F.pad limits)."""
    if mode == "reflect" and pad >= size:
        raise ShapeError(
            f"padding_mode 'reflect' needs padding < input size, but {dim} padding is {pad} "
            f"and the input {dim} is {size}",
            hint="reduce padding, or use padding_mode 'replicate' or 'zeros'",
            field="padding",
        )
    if mode == "circular" and pad > size:
        raise ShapeError(
            f"padding_mode 'circular' needs padding ≤ input size, but {dim} padding is {pad} "
            f"and the input {dim} is {size}",
            hint="reduce padding, or use padding_mode 'replicate' or 'zeros'",
            field="padding",
        )


def _torch_padding(padding, rank):
    return padding if isinstance(padding, str) else expand(padding, rank, "padding")


def _conv_module(ctx: LayerContext, p: _ConvBase, out_channels: int, groups: int):
    from torch import nn

    rank = len(ctx.input) - 1
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[rank - 1]
    return cls(
        ctx.input[0],
        out_channels,
        kernel_size=expand(p.kernel_size, rank, "kernel_size"),
        stride=expand(p.stride, rank, "stride"),
        padding=_torch_padding(p.padding, rank),
        dilation=expand(p.dilation, rank, "dilation"),
        groups=groups,
        bias=p.bias,
        padding_mode=p.padding_mode,
    )


def _common(p: _ConvBase) -> dict:
    return dict(
        kernel_size=p.kernel_size,
        stride=p.stride,
        padding=p.padding,
        dilation=p.dilation,
        padding_mode=p.padding_mode,
        in_channels=p.in_channels,
    )


def _conv_rule(p: ConvParams, ctx: LayerContext) -> Shape:
    return conv_shape(ctx.input, out_channels=p.out_channels, groups=p.groups, **_common(p))


def _conv_build(p: ConvParams, ctx: LayerContext):
    return _conv_module(ctx, p, p.out_channels, p.groups)


def _depthwise_rule(p: DepthwiseParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "depthwise")
    c = ctx.input[0]
    return conv_shape(ctx.input, out_channels=c * p.multiplier, groups=c, layer="depthwise", **_common(p))


def _depthwise_build(p: DepthwiseParams, ctx: LayerContext):
    c = ctx.input[0]
    return _conv_module(ctx, p, c * p.multiplier, c)


def _separable_rule(p: SeparableParams, ctx: LayerContext) -> Shape:
    mid = _depthwise_rule(p, ctx)
    check_size(mid, "the depthwise part's output")  # a tensor inside the layer: infer sees only its output
    return (p.out_channels, *mid[1:])


def _separable_build(p: SeparableParams, ctx: LayerContext):
    from collections import OrderedDict

    from torch import nn

    c = ctx.input[0]
    depthwise = _conv_module(ctx, p, c * p.multiplier, c)
    pointwise_cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(ctx.input) - 2]
    pointwise = pointwise_cls(c * p.multiplier, p.out_channels, kernel_size=1, bias=p.bias)
    return nn.Sequential(OrderedDict(depthwise=depthwise, pointwise=pointwise))


def conv_weights(in_channels: int, out_channels: int, groups: int, kernel_size, rank: int, bias: bool) -> int:
    """Weight ``[out, in/groups, *kernel]`` plus an optional bias ``[out]``."""
    kernel = math.prod(expand(kernel_size, rank, "kernel_size"))
    return out_channels * (in_channels // groups) * kernel + (out_channels if bias else 0)


def _conv_parameters(p: ConvParams, ctx: LayerContext) -> ParamCount:
    rank = len(ctx.input) - 1
    return ParamCount(conv_weights(ctx.input[0], p.out_channels, p.groups, p.kernel_size, rank, p.bias))


def _depthwise_parameters(p: DepthwiseParams, ctx: LayerContext) -> ParamCount:
    c, rank = ctx.input[0], len(ctx.input) - 1
    return ParamCount(conv_weights(c, c * p.multiplier, c, p.kernel_size, rank, p.bias))


def _separable_parameters(p: SeparableParams, ctx: LayerContext) -> ParamCount:
    mid = ctx.input[0] * p.multiplier
    pointwise = conv_weights(mid, p.out_channels, 1, 1, len(ctx.input) - 1, p.bias)
    return ParamCount(_depthwise_parameters(p, ctx).total + pointwise)


def conv_macs(in_shape: Shape, out_shape: Shape, kernel_size, groups: int, bias: bool) -> int:
    """torchinfo's convention: (weights + biases) × output positions."""
    rank = len(in_shape) - 1
    weights = out_shape[0] * (in_shape[0] // groups) * math.prod(expand(kernel_size, rank, "kernel_size"))
    return (weights + (out_shape[0] if bias else 0)) * math.prod(out_shape[1:])


def conv_window(p: _ConvBase, ctx: LayerContext) -> Window:
    """Each output sees a dilated kernel's span; one output step is one stride."""
    rank = len(ctx.input) - 1
    kernel = expand(p.kernel_size, rank, "kernel_size")
    dilation = expand(p.dilation, rank, "dilation")
    return Window(
        tuple(effective_kernel(k, d) for k, d in zip(kernel, dilation, strict=True)),
        tuple(Fraction(s) for s in expand(p.stride, rank, "stride")),
    )


def conv_explain(p: _ConvBase, ctx: LayerContext) -> list[str]:
    """The output size formula in symbols, with numbers, per dim; channels, weight and parameters."""
    rank = len(ctx.input) - 1
    kernel = expand(p.kernel_size, rank, "kernel_size")
    stride = expand(p.stride, rank, "stride")
    dilation = expand(p.dilation, rank, "dilation")
    pads = conv_padding(p.padding, kernel, stride, dilation, rank)
    formulas = [
        conv_teach(size, k, s, left, right, d)
        for size, k, s, (left, right), d in zip(ctx.input[1:], kernel, stride, pads, dilation, strict=True)
    ]
    symmetric = all(left == right for left, right in pads)
    lines = spatial_lines(SPATIAL_NAMES[rank], CONV_SYMBOLIC if symmetric else CONV_SYMBOLIC_LR, formulas)
    if p.padding == "same":
        lines.append(
            "padding 'same' pads dilation·(kernel_size − 1) in all, any odd one on the right: "
            + ", ".join(f"{left} + {right}" for left, right in pads)
        )
    return lines + _channel_lines(p, ctx, kernel)


def _channel_lines(p: _ConvBase, ctx: LayerContext, kernel: tuple[int, ...]) -> list[str]:
    c = ctx.input[0]
    if isinstance(p, ConvParams):
        return [
            f"channels: C_out = out_channels = {p.out_channels} (every filter sees the input's "
            f"{c // p.groups} channel{'s' if c // p.groups > 1 else ''} of its group)",
            *conv_weight_lines(c, p.out_channels, p.groups, kernel, p.bias),
        ]
    mid = c * p.multiplier
    lines = [
        f"channels: depthwise C = in_channels·multiplier = {c}·{p.multiplier} = {mid} "
        f"(groups = in_channels = {c})",
        *conv_weight_lines(c, mid, c, kernel, p.bias),
    ]
    if isinstance(p, SeparableParams):
        lines += [
            f"then pointwise 1×1: C_out = out_channels = {p.out_channels}",
            *conv_weight_lines(mid, p.out_channels, 1, (1,) * len(kernel), p.bias),
        ]
    return lines


def _conv_macs(p: ConvParams, ctx: LayerContext) -> int:
    return conv_macs(ctx.input, ctx.output, p.kernel_size, p.groups, p.bias)


def _depthwise_macs(p: DepthwiseParams, ctx: LayerContext) -> int:
    return conv_macs(ctx.input, ctx.output, p.kernel_size, ctx.input[0], p.bias)


def _separable_macs(p: SeparableParams, ctx: LayerContext) -> int:
    mid = (ctx.input[0] * p.multiplier, *ctx.output[1:])
    depthwise = conv_macs(ctx.input, mid, p.kernel_size, ctx.input[0], p.bias)
    return depthwise + conv_macs(mid, ctx.output, 1, 1, p.bias)


_ANALYSIS = {"window": conv_window, "explain": conv_explain}


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "conv",
            ConvParams,
            _conv_rule,
            _conv_build,
            macs=_conv_macs,
            parameters=_conv_parameters,
            **_ANALYSIS,
            summary="Convolution; Conv1d/2d/3d chosen from the input rank.",
            examples=(
                {"input": [3, 16, 16], "layers": [{"type": "conv", "out_channels": 8, "kernel_size": 3}]},
                {
                    "input": [4, 20],
                    "layers": [
                        {
                            "type": "conv",
                            "out_channels": 6,
                            "kernel_size": 4,
                            "padding": "same",
                            "groups": 2,
                            "dilation": 2,
                        }
                    ],
                },
                {
                    "input": [2, 6, 7, 8],
                    "layers": [
                        {
                            "type": "conv",
                            "out_channels": 4,
                            "kernel_size": 3,
                            "stride": [1, 2, 2],
                            "padding": 1,
                            "padding_mode": "reflect",
                        }
                    ],
                },
            ),
        ),
        LayerType(
            "depthwise",
            DepthwiseParams,
            _depthwise_rule,
            _depthwise_build,
            macs=_depthwise_macs,
            parameters=_depthwise_parameters,
            **_ANALYSIS,
            summary="Depthwise convolution (groups = input channels, optional channel multiplier).",
            examples=(
                {
                    "input": [4, 12, 12],
                    "layers": [{"type": "depthwise", "kernel_size": 3, "padding": 1, "multiplier": 2}],
                },
            ),
        ),
        LayerType(
            "separable",
            SeparableParams,
            _separable_rule,
            _separable_build,
            macs=_separable_macs,
            parameters=_separable_parameters,
            **_ANALYSIS,
            summary="Depthwise-separable convolution: depthwise then 1×1 pointwise.",
            examples=(
                {
                    "input": [4, 12, 12],
                    "layers": [{"type": "separable", "out_channels": 8, "kernel_size": 3, "padding": "same"}],
                },
            ),
        ),
    ]
