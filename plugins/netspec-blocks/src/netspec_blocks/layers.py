"""The netspec-blocks plugin: ``residual``, ``squeeze_excite`` and ``inverted_residual``.

This module is the plugin: ``pyproject.toml`` registers it in the ``netspec`` entry-point
group (``blocks = "netspec_blocks.layers"``), and netspec calls its
:func:`netspec_register_layers` hook once, when it first needs its registry.

Each layer type is one :class:`netspec.LayerType` record made of:

- a parameter model (a :class:`netspec.LayerParams` subclass: unknown keys are errors),
- a pure shape rule ``(params, ctx) -> shape``, computed with netspec's formulas and never
  by running a module; it raises :class:`netspec.ShapeError` naming the values, with a hint
  and the field at fault,
- a builder ``(params, ctx) -> nn.Module`` that imports torch lazily (this module never
  imports torch, so loading a spec stays fast),
- analysis rules for ``netspec build --summary``: ``macs``, ``window`` and ``explain``,
- a summary line and small example specs, which the contract tests build and run.

MACs follow netspec's convention (torchinfo's for convolutions and linear layers):
a convolution or linear layer costs (weights + biases) × output positions, an element-wise
operation (batch norm, ReLU, ReLU6, sigmoid, add, multiply) one per output element, a global
average pool one per input element.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from netspec import LayerContext, LayerParams, LayerType, ShapeError, hookimpl
from netspec.explain import conv_formula, per_dim
from netspec.params import PositiveInt
from netspec.registry import Window, spatial_rank, undefined_window
from netspec.shapes import SPATIAL_NAMES, Shape, check_size, conv_output_size, describe

# ----------------------------------------------------------------------------- residual


class ResidualParams(LayerParams):
    """ResNet basic block: 3×3 conv (stride) + BN + ReLU, 3×3 conv + BN, shortcut, ReLU."""

    out_channels: PositiveInt | None = Field(None, description="Output channels; default: the input's.")
    stride: PositiveInt = Field(1, description="Stride of the first 3×3 conv (and of the projection).")


def _out_channels(p: ResidualParams | InvertedResidualParams, ctx: LayerContext) -> int:
    return p.out_channels if p.out_channels is not None else ctx.input[0]


def _projects(p: ResidualParams, ctx: LayerContext) -> bool:
    """The shortcut needs a 1×1 conv + BN when the block changes the channels or strides."""
    return p.stride != 1 or _out_channels(p, ctx) != ctx.input[0]


def residual_shape(p: ResidualParams, ctx: LayerContext) -> Shape:
    """[C, H, W] → [out_channels, ⌊(H − 1)/s⌋ + 1, ⌊(W − 1)/s⌋ + 1].

    conv1 (3×3, padding 1, stride s) gives ``conv_output_size(H, 3, s, 1)``; conv2 (3×3,
    padding 1, stride 1) keeps it, and the 1×1 stride-s projection gives the same size, so
    the shortcut always matches.
    """
    if len(ctx.input) != 3:
        raise ShapeError(
            f"residual is a 2-D block and needs a [C, H, W] input, got {describe(ctx.input)}",
            hint="use it on images, before any flatten/global pooling; for 1-D or 3-D data use "
            "inverted_residual, or compose conv, batchnorm, relu and add layers",
        )
    spatial = (conv_output_size(size, 3, p.stride, 1) for size in ctx.input[1:])
    return (_out_channels(p, ctx), *spatial)


def residual_build(p: ResidualParams, ctx: LayerContext):
    from netspec_blocks.modules import BasicBlock

    return BasicBlock(ctx.input[0], _out_channels(p, ctx), p.stride)


def residual_macs(p: ResidualParams, ctx: LayerContext) -> int:
    """Per output position (C_in → C_out channels):

    conv1 9·C_in·C_out + conv2 9·C_out·C_out (no biases: the batch norms have them),
    plus 5·C_out element-wise operations (bn1, relu, bn2, the add, the final relu),
    plus C_in·C_out + C_out for a projection shortcut (1×1 conv + bn).
    """
    c_in, c_out = ctx.input[0], ctx.output[0]
    per_position = 9 * c_in * c_out + 9 * c_out * c_out + 5 * c_out
    if _projects(p, ctx):
        per_position += c_in * c_out + c_out
    return per_position * math.prod(ctx.output[1:])


def residual_window(p: ResidualParams, ctx: LayerContext) -> Window:
    """Two 3×3 convs, the first with stride s: span 3 + 2·s, stride s.

    Through conv1 a field grows by 2 input steps, through conv2 by 2 steps of conv1's
    output (2·s input steps); the shortcut's 1×1 window lies inside that span.
    """
    return Window((3 + 2 * p.stride,) * 2, (Fraction(p.stride),) * 2)


def residual_explain(p: ResidualParams, ctx: LayerContext) -> list[str]:
    c_in, c_out = ctx.input[0], _out_channels(p, ctx)
    formulas = [conv_formula(size, 3, p.stride, 1, 1, 1) for size in ctx.input[1:]]
    lines = [f"conv1 3×3, stride {p.stride}, padding 1: {line}" for line in per_dim(("H", "W"), formulas)]
    lines.append(f"conv2 3×3, stride 1, padding 1 keeps the size; channels {c_in} → {c_out}")
    if _projects(p, ctx):
        lines.append(
            f"shortcut: 1×1 conv (stride {p.stride}) + batchnorm projects {c_in} → {c_out} channels; "
            f"floor((size − 1) / {p.stride}) + 1 gives the same size as conv1"
        )
    else:
        lines.append("shortcut: identity (same channels, stride 1)")
    return lines


# ----------------------------------------------------------------------- squeeze_excite


class SqueezeExciteParams(LayerParams):
    """Squeeze-and-excitation: a per-channel gate from globally pooled features."""

    reduction: PositiveInt = Field(16, description="Hidden units = channels // reduction.")


def _hidden(p: SqueezeExciteParams, ctx: LayerContext) -> int:
    return ctx.input[0] // p.reduction


def squeeze_excite_shape(p: SqueezeExciteParams, ctx: LayerContext) -> Shape:
    """The shape is kept; the bottleneck C // reduction must have at least one unit."""
    spatial_rank(ctx.input, "squeeze_excite")  # [C, L], [C, H, W] or [C, D, H, W]
    channels = ctx.input[0]
    if _hidden(p, ctx) < 1:
        raise ShapeError(
            f"reduction {p.reduction} leaves no hidden units for the {channels} input channels "
            f"({channels} // {p.reduction} = 0)",
            hint=f"use a reduction of at most {channels} (e.g. {max(1, channels // 4)}), "
            "or put the block after a layer with more channels",
            field="reduction",
        )
    return ctx.input


def squeeze_excite_build(p: SqueezeExciteParams, ctx: LayerContext):
    from netspec_blocks.modules import SqueezeExcite

    return SqueezeExcite(len(ctx.input) - 1, ctx.input[0], _hidden(p, ctx))


def squeeze_excite_macs(p: SqueezeExciteParams, ctx: LayerContext) -> int:
    """C channels, S spatial positions, h = C // reduction hidden units:

    the average pool C·S, fc1 h·(C + 1), relu h, fc2 C·(h + 1), sigmoid C, the scale C·S.
    """
    channels, hidden = ctx.input[0], _hidden(p, ctx)
    elements = math.prod(ctx.input)
    return 2 * elements + hidden * (channels + 1) + hidden + channels * (hidden + 1) + channels


def squeeze_excite_explain(p: SqueezeExciteParams, ctx: LayerContext) -> list[str]:
    channels, hidden = ctx.input[0], _hidden(p, ctx)
    dims = ", ".join(SPATIAL_NAMES[len(ctx.input) - 1])
    return [
        f"hidden units = C // reduction = {channels} // {p.reduction} = {hidden}",
        f"gate = sigmoid(fc2(relu(fc1(mean over {dims})))): {channels} → {hidden} → {channels}",
        f"output = input · gate: the shape {describe(ctx.input)} is kept",
    ]


# -------------------------------------------------------------------- inverted_residual


class InvertedResidualParams(LayerParams):
    """MobileNetV2 block: 1×1 expand + BN + ReLU6, 3×3 depthwise + BN + ReLU6, 1×1 project + BN."""

    out_channels: PositiveInt | None = Field(None, description="Output channels; default: the input's.")
    expansion: PositiveInt = Field(6, description="Hidden channels = input channels × expansion.")
    stride: Literal[1, 2] = Field(1, description="Stride of the depthwise conv: 1 or 2.")

    @field_validator("stride", mode="before")
    @classmethod
    def _exactly_an_int(cls, value: Any) -> Any:
        # Literal[1, 2] alone would take True as 1 and 2.0 as 2; netspec's own params are strict.
        if type(value) is not int:
            raise PydanticCustomError("stride_1_or_2", "expected 1 or 2; got {value}", {"value": repr(value)})
        return value


def _residual_add(p: InvertedResidualParams, ctx: LayerContext) -> bool:
    return p.stride == 1 and _out_channels(p, ctx) == ctx.input[0]


def inverted_residual_shape(p: InvertedResidualParams, ctx: LayerContext) -> Shape:
    """[C, *spatial] → [out_channels, *(⌊(size − 1)/stride⌋ + 1)]: only the depthwise conv strides."""
    spatial_rank(ctx.input, "inverted_residual")
    spatial = tuple(conv_output_size(size, 3, p.stride, 1) for size in ctx.input[1:])
    hidden = ctx.input[0] * p.expansion
    check_size((hidden, *ctx.input[1:]), "the expanded hidden tensor")  # inside the block only
    return (_out_channels(p, ctx), *spatial)


def inverted_residual_build(p: InvertedResidualParams, ctx: LayerContext):
    from netspec_blocks.modules import InvertedResidual

    rank = len(ctx.input) - 1
    return InvertedResidual(rank, ctx.input[0], _out_channels(p, ctx), p.expansion, p.stride)


def inverted_residual_macs(p: InvertedResidualParams, ctx: LayerContext) -> int:
    """C_in → hidden h = C_in·t → C_out, k = 3^rank taps, S_in/S_out spatial positions:

    expand (only when t > 1) S_in·(h·C_in + 2h) (conv, bn, relu6); depthwise S_out·(h·k + 2h);
    project S_out·(C_out·h + C_out) (conv, bn); the residual add S_out·C_out.
    """
    c_in, c_out = ctx.input[0], ctx.output[0]
    hidden = c_in * p.expansion
    taps = 3 ** (len(ctx.input) - 1)
    s_in, s_out = math.prod(ctx.input[1:]), math.prod(ctx.output[1:])
    macs = s_out * (hidden * taps + 2 * hidden) + s_out * (c_out * hidden + c_out)
    if p.expansion != 1:
        macs += s_in * (hidden * c_in + 2 * hidden)
    if _residual_add(p, ctx):
        macs += s_out * c_out
    return macs


def inverted_residual_window(p: InvertedResidualParams, ctx: LayerContext) -> Window:
    """Only the 3×3 depthwise conv looks at neighbours: span 3, stride ``stride``."""
    rank = len(ctx.input) - 1
    return Window((3,) * rank, (Fraction(p.stride),) * rank)


def inverted_residual_explain(p: InvertedResidualParams, ctx: LayerContext) -> list[str]:
    c_in, c_out = ctx.input[0], _out_channels(p, ctx)
    hidden = c_in * p.expansion
    lines = [f"hidden channels = C · expansion = {c_in}·{p.expansion} = {hidden}"]
    if p.expansion == 1:
        lines[0] += " (expansion 1: no 1×1 expand conv)"
    formulas = [conv_formula(size, 3, p.stride, 1, 1, 1) for size in ctx.input[1:]]
    dims = SPATIAL_NAMES[len(ctx.input) - 1]
    lines += [f"depthwise 3×3, stride {p.stride}, padding 1: {line}" for line in per_dim(dims, formulas)]
    lines.append(f"project 1×1: {hidden} → {c_out} channels")
    if _residual_add(p, ctx):
        lines.append(f"residual add: stride 1 and {c_in} = {c_out} channels")
    else:
        why = f"stride {p.stride}" if p.stride != 1 else f"channels change {c_in} → {c_out}"
        lines.append(f"no residual add ({why})")
    return lines


# ------------------------------------------------------------------------------- the hook


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "residual",
            ResidualParams,
            residual_shape,
            residual_build,
            macs=residual_macs,
            window=residual_window,
            explain=residual_explain,
            summary="ResNet basic block (two 3×3 convs + BN, identity or 1×1 projection shortcut); 2-D.",
            examples=(
                {"input": [8, 8, 8], "layers": [{"type": "residual"}]},
                {
                    "input": [3, 9, 9],
                    "layers": [
                        {"type": "conv", "out_channels": 8, "kernel_size": 3, "padding": 1},
                        {"type": "residual", "out_channels": 16, "stride": 2},
                    ],
                },
            ),
        ),
        LayerType(
            "squeeze_excite",
            SqueezeExciteParams,
            squeeze_excite_shape,
            squeeze_excite_build,
            macs=squeeze_excite_macs,
            window=undefined_window,  # the gate sees the whole input
            explain=squeeze_excite_explain,
            summary="Squeeze-and-excitation channel gate (global pool, C→C/r→C, sigmoid); keeps the shape.",
            examples=(
                {"input": [16, 6, 6], "layers": [{"type": "squeeze_excite", "reduction": 4}]},
                {"input": [32, 10], "layers": [{"type": "squeeze_excite"}]},
                {"input": [8, 3, 4, 4], "layers": [{"type": "squeeze_excite", "reduction": 2}]},
            ),
        ),
        LayerType(
            "inverted_residual",
            InvertedResidualParams,
            inverted_residual_shape,
            inverted_residual_build,
            macs=inverted_residual_macs,
            window=inverted_residual_window,
            explain=inverted_residual_explain,
            summary="MobileNetV2 inverted residual (expand, 3×3 depthwise, project; add when shapes match).",
            examples=(
                {"input": [8, 8, 8], "layers": [{"type": "inverted_residual", "expansion": 4}]},
                {
                    "input": [8, 9, 9],
                    "layers": [{"type": "inverted_residual", "out_channels": 12, "stride": 2}],
                },
                {
                    "input": [6, 10],
                    "layers": [{"type": "inverted_residual", "out_channels": 6, "expansion": 1}],
                },
            ),
        ),
    ]
