"""Dropout, stochastic depth, flatten, linear, layer scale, reshape, identity and pixel (un)shuffle."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

from pydantic import Field, StrictInt, field_validator

from netspec.errors import ShapeError
from netspec.hookspecs import hookimpl
from netspec.params import Coefficient, LayerParams, NoParams, PositiveInt, Probability, StrictBool
from netspec.registry import (
    LayerContext,
    LayerType,
    ParamCount,
    Window,
    check_declared,
    macs_per_element,
    no_macs,
    no_parameters,
    pointwise_window,
    spatial_rank,
    undefined_window,
)
from netspec.shapes import Shape, describe


class DropoutParams(LayerParams):
    """Dropout with probability p."""

    p: Probability = 0.5


class StochasticDepthParams(LayerParams):
    """Drop a residual branch per sample (row) or per batch with probability p."""

    p: Probability
    mode: Literal["row", "batch"] = "row"


class FlattenParams(LayerParams):
    """Flatten per-sample dims start_dim..end_dim into one (batch not counted)."""

    start_dim: StrictInt = 0
    end_dim: StrictInt = -1


class LinearParams(LayerParams):
    """Fully connected layer over the last dimension (``over: channels``: over the channels, at
    each position, as ConvNeXt's channels-last MLP)."""

    out_features: PositiveInt
    bias: StrictBool = True
    in_features: PositiveInt | None = Field(None, description="Optional; checked against the input.")
    over: Literal["last", "channels"] = Field(
        "last", description="The dim it maps: the last (default), or the channels at each position."
    )


class LayerScaleParams(LayerParams):
    """A learnable per-channel scale γ (CaiT, ConvNeXt), held by the enclosing block."""

    init: Coefficient = Field(1e-6, description="γ's initial value (torchvision: 1e-6).")


class ReshapeParams(LayerParams):
    """Reshape each sample; one entry may be -1 (inferred)."""

    shape: list[StrictInt] = Field(min_length=1)

    @field_validator("shape")
    @classmethod
    def _check(cls, shape: list[int]) -> list[int]:
        if shape.count(-1) > 1 or any(s < 1 and s != -1 for s in shape):
            raise ValueError("entries must be positive, with at most one -1")
        return shape


class ShuffleParams(LayerParams):
    """Pixel shuffle: [C·r², H, W] → [C, H·r, W·r]."""

    upscale_factor: PositiveInt


class UnshuffleParams(LayerParams):
    """Pixel unshuffle: [C, H·r, W·r] → [C·r², H, W]."""

    downscale_factor: PositiveInt


def _same(p: LayerParams, ctx: LayerContext) -> Shape:
    return ctx.input


def _dropout_build(p: DropoutParams, ctx: LayerContext):
    from torch import nn

    return nn.Dropout(p.p)


def _stochastic_depth_build(p: StochasticDepthParams, ctx: LayerContext):
    from netspec.modules import StochasticDepth

    return StochasticDepth(p.p, p.mode)


def _stochastic_depth_explain(p: StochasticDepthParams, ctx: LayerContext) -> list[str]:
    which = "each sample's input" if p.mode == "row" else "the whole batch's input"
    return [
        f"in training, {which} is zeroed with probability {p.p:g} and otherwise scaled by "
        f"1 / (1 − {p.p:g}); in evaluation it passes unchanged. Shape kept: {describe(ctx.input)}"
    ]


def _spatial_dropout_rule(p: DropoutParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "spatial_dropout")
    return ctx.input


def _spatial_dropout_build(p: DropoutParams, ctx: LayerContext):
    from torch import nn

    return (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)[len(ctx.input) - 2](p.p)


def _normalise_dim(dim: int, rank: int, field: str, shape: Shape) -> int:
    if not -rank <= dim < rank:
        raise ShapeError(
            f"{field} {dim} is out of range for input {describe(shape)}",
            hint=f"use a value in {-rank}..{rank - 1} (per-sample dims; the batch is not counted)",
            field=field,
        )
    return dim % rank


def _flatten_rule(p: FlattenParams, ctx: LayerContext) -> Shape:
    shape = ctx.input
    start = _normalise_dim(p.start_dim, len(shape), "start_dim", shape)
    end = _normalise_dim(p.end_dim, len(shape), "end_dim", shape)
    if start > end:
        raise ShapeError(
            f"start_dim {p.start_dim} comes after end_dim {p.end_dim} in input {describe(shape)}",
            hint="make start_dim ≤ end_dim",
            field="start_dim",
        )
    return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


def _flatten_build(p: FlattenParams, ctx: LayerContext):
    from torch import nn

    rank = len(ctx.input)
    return nn.Flatten(p.start_dim % rank + 1, p.end_dim % rank + 1)


def _mapped(p: LinearParams, shape: Shape) -> int:
    """The per-sample dim a linear layer maps: the channels, or the last."""
    return 0 if p.over == "channels" else len(shape) - 1


def _linear_rule(p: LinearParams, ctx: LayerContext) -> Shape:
    dim = _mapped(p, ctx.input)
    check_declared(p.in_features, ctx.input[dim], "in_features")
    return (*ctx.input[:dim], p.out_features, *ctx.input[dim + 1 :])


def _linear_parameters(p: LinearParams, ctx: LayerContext) -> ParamCount:
    return ParamCount(ctx.input[_mapped(p, ctx.input)] * p.out_features + (p.out_features if p.bias else 0))


def _linear_build(p: LinearParams, ctx: LayerContext):
    from torch import nn

    from netspec.modules import ChannelsLinear

    features = ctx.input[_mapped(p, ctx.input)]
    if p.over == "channels" and len(ctx.input) > 1:
        return ChannelsLinear(features, p.out_features, bias=p.bias)
    return nn.Linear(features, p.out_features, bias=p.bias)


def _linear_window(p: LinearParams, ctx: LayerContext) -> Window | None:
    """Over the channels, a 1x1 map of the positions; over the last dim, every output sees it whole."""
    return pointwise_window(p, ctx) if p.over == "channels" else undefined_window(p, ctx)


def _layer_scale_rule(p: LayerScaleParams, ctx: LayerContext) -> Shape:
    return ctx.input


def _layer_scale_build(p: LayerScaleParams, ctx: LayerContext):
    from netspec.modules import LayerScale

    return LayerScale(ctx.input[0], len(ctx.input) - 1, p.init)


def _layer_scale_parameters(p: LayerScaleParams, ctx: LayerContext) -> ParamCount:
    return ParamCount(ctx.input[0])


def _layer_scale_explain(p: LayerScaleParams, ctx: LayerContext) -> list[str]:
    c = ctx.input[0]
    shape = ", ".join(["1"] * (len(ctx.input) - 1))
    return [
        f"γ of shape [{c}{', ' + shape if shape else ''}], one per channel, starts at {p.init:g}: "
        "the output is γ · x",
        "a parameter of the enclosing block, named by the layer's path (features.1.0.layer_scale)",
    ]


def _reshape_rule(p: ReshapeParams, ctx: LayerContext) -> Shape:
    total = math.prod(ctx.input)
    known = math.prod(s for s in p.shape if s != -1)
    if -1 in p.shape:
        if total % known:
            raise ShapeError(
                f"cannot reshape input {describe(ctx.input)} ({total} values) to {p.shape}: "
                f"{total} is not a multiple of {known}",
                hint="change shape so its product divides the input size",
                field="shape",
            )
        return tuple(total // known if s == -1 else s for s in p.shape)
    if known != total:
        raise ShapeError(
            f"cannot reshape input {describe(ctx.input)} ({total} values) to {p.shape} ({known} values)",
            hint="make the product of shape equal the input size, or use -1 for one entry",
            field="shape",
        )
    return tuple(p.shape)


def _reshape_build(p: ReshapeParams, ctx: LayerContext):
    from netspec.modules import Reshape

    return Reshape(list(p.shape))


def _identity_build(p: LayerParams, ctx: LayerContext):
    from torch import nn

    return nn.Identity()


def _shuffle_rule(p: ShuffleParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "pixel_shuffle", (2,))
    c, h, w = ctx.input
    r = p.upscale_factor
    if c % (r * r):
        raise ShapeError(
            f"input channels {c} are not divisible by upscale_factor² = {r * r}",
            hint=f"give the layer before it a multiple of {r * r} channels",
            field="upscale_factor",
        )
    return (c // (r * r), h * r, w * r)


def _unshuffle_rule(p: UnshuffleParams, ctx: LayerContext) -> Shape:
    spatial_rank(ctx.input, "pixel_unshuffle", (2,))
    c, h, w = ctx.input
    r = p.downscale_factor
    if h % r or w % r:
        raise ShapeError(
            f"input {describe(ctx.input)}: H and W must be divisible by downscale_factor {r}",
            hint="resize the input or choose a divisor of H and W",
            field="downscale_factor",
        )
    return (c * r * r, h // r, w // r)


def _shuffle_build(p: ShuffleParams, ctx: LayerContext):
    from torch import nn

    return nn.PixelShuffle(p.upscale_factor)


def _unshuffle_build(p: UnshuffleParams, ctx: LayerContext):
    from torch import nn

    return nn.PixelUnshuffle(p.downscale_factor)


def _linear_macs(p: LinearParams, ctx: LayerContext) -> int:
    """(weights + biases) for every other position (torchinfo's rule for a [N, F] input)."""
    features = ctx.input[_mapped(p, ctx.input)]
    return math.prod(ctx.input) // features * p.out_features * (features + (1 if p.bias else 0))


def _flatten_explain(p: FlattenParams, ctx: LayerContext) -> list[str]:
    rank = len(ctx.input)
    start, end = p.start_dim % rank, p.end_dim % rank
    merged = ctx.input[start : end + 1]
    return [f"{'·'.join(map(str, merged))} = {math.prod(merged)} (dims {start}..{end} merged)"]


def _linear_explain(p: LinearParams, ctx: LayerContext) -> list[str]:
    i, o = ctx.input[_mapped(p, ctx.input)], p.out_features
    bias = f" + out_features = {o}·{i} + {o}" if p.bias else f" = {o}·{i}"
    if p.over == "channels" and len(ctx.input) > 1:
        rest = ", ".join(map(str, ctx.input[1:]))
        change = f"[{i}, {rest}] → [{o}, {rest}]: the channels become out_features at each position"
    else:
        lead = describe(ctx.input[:-1])[1:-1]
        prefix = f"{lead}, " if lead else ""
        change = f"[{prefix}{i}] → [{prefix}{o}]: the last dim becomes out_features"
    return [
        change,
        f"weight [out_features, in_features] = [{o}, {i}]" + (f"; bias [{o}]" if p.bias else ""),
        f"parameters = out_features·in_features{bias} = {o * i + (o if p.bias else 0):,}",
    ]


def _reshape_explain(p: ReshapeParams, ctx: LayerContext) -> list[str]:
    return [f"{'·'.join(map(str, ctx.input))} = {math.prod(ctx.input)} values as {describe(ctx.output)}"]


def _shuffle_explain(p: ShuffleParams, ctx: LayerContext) -> list[str]:
    c, h, w = ctx.input
    r = p.upscale_factor
    return [f"C_out = {c} / {r}² = {c // (r * r)}, H_out = {h}·{r} = {h * r}, W_out = {w}·{r} = {w * r}"]


def _unshuffle_explain(p: UnshuffleParams, ctx: LayerContext) -> list[str]:
    c, h, w = ctx.input
    r = p.downscale_factor
    return [f"C_out = {c}·{r}² = {c * r * r}, H_out = {h} / {r} = {h // r}, W_out = {w} / {r} = {w // r}"]


def _shuffle_window(p: ShuffleParams, ctx: LayerContext) -> Window:
    return Window((1, 1), (Fraction(1, p.upscale_factor),) * 2)


def _unshuffle_window(p: UnshuffleParams, ctx: LayerContext) -> Window:
    r = p.downscale_factor
    return Window((r, r), (Fraction(r),) * 2)


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    img = [4, 6, 6]
    return [
        LayerType(
            "dropout",
            DropoutParams,
            _same,
            _dropout_build,
            macs=no_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Element-wise dropout.",
            examples=({"input": img, "layers": [{"type": "dropout", "p": 0.1}]},),
        ),
        LayerType(
            "spatial_dropout",
            DropoutParams,
            _spatial_dropout_rule,
            _spatial_dropout_build,
            macs=no_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Channel-wise dropout (Dropout1d/2d/3d from the input rank).",
            examples=({"input": img, "layers": [{"type": "spatial_dropout", "p": 0.2}]},),
        ),
        LayerType(
            "stochastic_depth",
            StochasticDepthParams,
            _same,
            _stochastic_depth_build,
            explain=_stochastic_depth_explain,
            macs=no_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Drop whole samples' residual branches (torchvision's StochasticDepth; before the add).",
            examples=(
                {"input": img, "layers": [{"type": "stochastic_depth", "p": 0.2}]},
                {"input": [5], "layers": [{"type": "stochastic_depth", "p": 0.5, "mode": "batch"}]},
            ),
        ),
        LayerType(
            "flatten",
            FlattenParams,
            _flatten_rule,
            _flatten_build,
            macs=no_macs,
            parameters=no_parameters,
            window=undefined_window,
            explain=_flatten_explain,
            summary="Flatten per-sample dims (default: all) into one.",
            examples=(
                {"input": img, "layers": [{"type": "flatten"}]},
                {"input": [2, 3, 4, 5], "layers": [{"type": "flatten", "start_dim": 1, "end_dim": -2}]},
            ),
        ),
        LayerType(
            "linear",
            LinearParams,
            _linear_rule,
            _linear_build,
            macs=_linear_macs,
            parameters=_linear_parameters,
            window=_linear_window,
            explain=_linear_explain,
            summary="Fully connected layer on the last dimension (over: channels: on the channels).",
            examples=(
                {"input": [12], "layers": [{"type": "linear", "out_features": 5}]},
                {
                    "input": [3, 7],
                    "layers": [{"type": "linear", "out_features": 2, "bias": False, "in_features": 7}],
                },
                {"input": [6, 5, 5], "layers": [{"type": "linear", "out_features": 4, "over": "channels"}]},
            ),
        ),
        LayerType(
            "layer_scale",
            LayerScaleParams,
            _layer_scale_rule,
            _layer_scale_build,
            macs=macs_per_element,
            parameters=_layer_scale_parameters,
            window=pointwise_window,
            explain=_layer_scale_explain,
            summary="A learnable scale per channel, held by the enclosing block (ConvNeXt's layer_scale).",
            examples=(
                {"input": [6, 5, 5], "layers": [{"type": "layer_scale"}]},
                {"input": [4], "layers": [{"type": "layer_scale", "init": 0.1}]},
            ),
        ),
        LayerType(
            "reshape",
            ReshapeParams,
            _reshape_rule,
            _reshape_build,
            macs=no_macs,
            parameters=no_parameters,
            window=undefined_window,
            explain=_reshape_explain,
            summary="Reshape each sample.",
            examples=({"input": img, "layers": [{"type": "reshape", "shape": [-1, 12]}]},),
        ),
        LayerType(
            "identity",
            NoParams,
            _same,
            _identity_build,
            macs=no_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Pass-through (a named tap point).",
            examples=({"input": img, "layers": [{"type": "identity"}]},),
        ),
        LayerType(
            "pixel_shuffle",
            ShuffleParams,
            _shuffle_rule,
            _shuffle_build,
            macs=no_macs,
            parameters=no_parameters,
            window=_shuffle_window,
            explain=_shuffle_explain,
            summary="Sub-pixel upsampling: [C·r², H, W] → [C, H·r, W·r].",
            examples=({"input": [8, 3, 5], "layers": [{"type": "pixel_shuffle", "upscale_factor": 2}]},),
        ),
        LayerType(
            "pixel_unshuffle",
            UnshuffleParams,
            _unshuffle_rule,
            _unshuffle_build,
            macs=no_macs,
            parameters=no_parameters,
            window=_unshuffle_window,
            explain=_unshuffle_explain,
            summary="Inverse of pixel_shuffle: [C, H·r, W·r] → [C·r², H, W].",
            examples=({"input": img, "layers": [{"type": "pixel_unshuffle", "downscale_factor": 3}]},),
        ),
    ]
