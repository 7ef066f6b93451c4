"""Normalisation layers: batch, group, layer and instance norm."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from netspec.errors import ShapeError
from netspec.hookspecs import hookimpl
from netspec.params import Epsilon, LayerParams, PositiveInt, Probability, StrictBool
from netspec.registry import (
    LayerContext,
    LayerType,
    ParamCount,
    check_declared,
    macs_per_element,
    pointwise_window,
    spatial_rank,
)
from netspec.shapes import Shape, describe


class BatchNormParams(LayerParams):
    """Batch normalisation (BatchNorm1d for [C] and [C, L], 2d, 3d)."""

    eps: Epsilon = 1e-5
    momentum: Probability | None = 0.1
    affine: StrictBool = True
    track_running_stats: StrictBool = True
    num_features: PositiveInt | None = Field(None, description="Optional; checked against the channels.")


class InstanceNormParams(BatchNormParams):
    """Instance normalisation (InstanceNorm1d/2d/3d); needs spatial dimensions."""

    affine: StrictBool = False
    track_running_stats: StrictBool = False


class GroupNormParams(LayerParams):
    """Group normalisation over channel groups."""

    num_groups: PositiveInt
    eps: Epsilon = 1e-5
    affine: StrictBool = True


class LayerNormParams(LayerParams):
    """Layer normalisation over the last ``dims`` per-sample dimensions (default: all)."""

    dims: PositiveInt | None = Field(None, description="How many trailing dims to normalise; default all.")
    eps: Epsilon = 1e-5
    elementwise_affine: StrictBool = True
    bias: StrictBool = True
    over: Literal["trailing", "channels"] = Field(
        "trailing", description="trailing dims (see dims), or the channels at each position (LayerNorm2d)."
    )


def _batchnorm_rule(p: BatchNormParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "batchnorm", (0, 1, 2, 3))
    check_declared(p.num_features, ctx.input[0], "num_features")
    return ctx.input


def _running_norm(classes: tuple, p: BatchNormParams, ctx: LayerContext):
    """Batch and instance norm share their arguments; the class comes from the input rank."""
    return classes[len(ctx.input) - 1](
        ctx.input[0],
        eps=p.eps,
        momentum=p.momentum,
        affine=p.affine,
        track_running_stats=p.track_running_stats,
    )


def _running_norm_parameters(p: BatchNormParams, ctx: LayerContext) -> ParamCount:
    """weight and bias ``[C]`` when affine; running mean, variance and a batch counter when tracked."""
    c = ctx.input[0]
    return ParamCount(2 * c if p.affine else 0, buffers=2 * c + 1 if p.track_running_stats else 0)


def normalised(p: LayerNormParams, shape: Shape) -> tuple[int, ...]:
    """The shape a layer norm normalises over (its weight's shape)."""
    if p.over == "channels":
        return (shape[0],)
    return tuple(shape[-(p.dims or len(shape)) :])


def _layernorm_parameters(p: LayerNormParams, ctx: LayerContext) -> ParamCount:
    size = math.prod(normalised(p, ctx.input))
    return ParamCount(size * (1 + p.bias) if p.elementwise_affine else 0)


def _batchnorm_build(p: BatchNormParams, ctx: LayerContext):
    from torch import nn

    return _running_norm((nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), p, ctx)


def _instancenorm_rule(p: InstanceNormParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "instancenorm")
    check_declared(p.num_features, ctx.input[0], "num_features")
    spatial = 1
    for size in ctx.input[1:]:
        spatial *= size
    if spatial == 1:
        raise ShapeError(
            f"instance norm of input {describe(ctx.input)} normalises a single value per channel "
            "(PyTorch refuses this when training)",
            hint="normalise before pooling to 1×1, or use batchnorm/layernorm",
        )
    return ctx.input


def _instancenorm_build(p: InstanceNormParams, ctx: LayerContext):
    from torch import nn

    return _running_norm((None, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), p, ctx)


def _groupnorm_rule(p: GroupNormParams, ctx: LayerContext) -> Shape:
    channels = ctx.input[0]
    if channels % p.num_groups:
        raise ShapeError(
            f"num_groups={p.num_groups} does not divide the {channels} input channels",
            hint="choose num_groups as a divisor of the channel count",
            field="num_groups",
        )
    return ctx.input


def _groupnorm_build(p: GroupNormParams, ctx: LayerContext):
    from torch import nn

    return nn.GroupNorm(p.num_groups, ctx.input[0], eps=p.eps, affine=p.affine)


def _layernorm_rule(p: LayerNormParams, ctx: LayerContext) -> Shape:
    if p.over == "channels" and p.dims is not None:
        raise ShapeError(
            "dims and over: channels both say what to normalise",
            hint="over: channels normalises the channels at each position; drop dims",
            field="dims",
        )
    if p.dims is not None and p.dims > len(ctx.input):
        raise ShapeError(
            f"dims={p.dims} but the input {describe(ctx.input)} has only {len(ctx.input)} dimensions",
            hint=f"use dims ≤ {len(ctx.input)}",
            field="dims",
        )
    return ctx.input


def _layernorm_build(p: LayerNormParams, ctx: LayerContext):
    from torch import nn

    from netspec.modules import ChannelsLayerNorm

    kind = ChannelsLayerNorm if p.over == "channels" and len(ctx.input) > 1 else nn.LayerNorm
    shape = list(normalised(p, ctx.input))
    return kind(shape, eps=p.eps, elementwise_affine=p.elementwise_affine, bias=p.bias)


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "batchnorm",
            BatchNormParams,
            _batchnorm_rule,
            _batchnorm_build,
            macs=macs_per_element,
            parameters=_running_norm_parameters,
            window=pointwise_window,
            summary="Batch normalisation (1d/2d/3d from the input rank).",
            examples=(
                {"input": [4, 5, 5], "layers": [{"type": "batchnorm"}]},
                {"input": [6], "layers": [{"type": "batchnorm", "num_features": 6}]},
            ),
        ),
        LayerType(
            "instancenorm",
            InstanceNormParams,
            _instancenorm_rule,
            _instancenorm_build,
            macs=macs_per_element,
            parameters=_running_norm_parameters,
            window=pointwise_window,
            summary="Instance normalisation (1d/2d/3d from the input rank).",
            examples=({"input": [4, 5, 5], "layers": [{"type": "instancenorm", "affine": True}]},),
        ),
        LayerType(
            "groupnorm",
            GroupNormParams,
            _groupnorm_rule,
            _groupnorm_build,
            macs=macs_per_element,
            parameters=lambda p, ctx: ParamCount(2 * ctx.input[0] if p.affine else 0),
            window=pointwise_window,
            summary="Group normalisation.",
            examples=({"input": [6, 4, 4], "layers": [{"type": "groupnorm", "num_groups": 3}]},),
        ),
        LayerType(
            "layernorm",
            LayerNormParams,
            _layernorm_rule,
            _layernorm_build,
            macs=macs_per_element,
            parameters=_layernorm_parameters,
            window=pointwise_window,
            summary="Layer normalisation over trailing dims, or the channels at each position.",
            examples=(
                {"input": [6, 4, 4], "layers": [{"type": "layernorm"}]},
                {"input": [7, 10], "layers": [{"type": "layernorm", "dims": 1}]},
                {"input": [6, 4, 5], "layers": [{"type": "layernorm", "over": "channels", "eps": 1e-6}]},
            ),
        ),
    ]
