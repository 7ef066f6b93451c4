"""Slicing a dimension and shuffling channels: ShuffleNet's channel split and channel shuffle.

``slice`` takes Python's ``start:end:step`` of one per-sample dimension (0: the channels), as
``x[:, start:end]`` does, but refuses what Python would clamp in silence: a bound beyond the
dimension's size, or a slice that selects nothing. ``channel_shuffle`` interleaves the channels
of ``groups`` groups (``nn.ChannelShuffle``; built as view, transpose and flatten, which ONNX
and ``torch.compile`` take).
"""

from __future__ import annotations

from pydantic import StrictInt

from netspec.errors import ShapeError
from netspec.hookspecs import hookimpl
from netspec.params import LayerParams, PositiveInt
from netspec.registry import (
    LayerContext,
    LayerType,
    Window,
    no_macs,
    no_parameters,
    pointwise_window,
    undefined_window,
)
from netspec.shapes import Shape, describe


class SliceParams(LayerParams):
    """``start:end:step`` of one per-sample dimension (``dim`` 0: the channels)."""

    dim: StrictInt = 0
    start: StrictInt = 0
    end: StrictInt | None = None
    step: PositiveInt = 1


class ChannelShuffleParams(LayerParams):
    """The channels as ``groups`` groups, interleaved (ShuffleNet)."""

    groups: PositiveInt


def slice_dim(p: SliceParams, shape: Shape) -> int:
    """The sliced dimension of ``shape`` (per-sample), checked."""
    rank = len(shape)
    if not -rank <= p.dim < rank:
        raise ShapeError(
            f"dim {p.dim} is out of range for input {describe(shape)}",
            hint=f"use a value in {-rank}..{rank - 1} (per-sample dims, 0 is the channels; no batch dim)",
            field="dim",
        )
    return p.dim % rank


def sliced(p: SliceParams, shape: Shape) -> range:
    """The indices the slice keeps, as Python's slicing gives them."""
    size = shape[slice_dim(p, shape)]
    for field, value in (("start", p.start), ("end", p.end)):
        if value is not None and not -size <= value <= size:
            raise ShapeError(
                f"{field} {value} is outside dim {p.dim} of input {describe(shape)} (size {size})",
                hint=f"use a value in {-size}..{size} (negative counts from the end); "
                "Python and PyTorch would clamp it silently",
                field=field,
            )
    kept = range(size)[p.start : p.end : p.step]
    if not kept:
        raise ShapeError(
            f"{p.start}:{'' if p.end is None else p.end}:{p.step} selects nothing of dim {p.dim} "
            f"of input {describe(shape)} (size {size})",
            hint="make end come after start",
            field="end",
        )
    return kept


def _slice_rule(p: SliceParams, ctx: LayerContext) -> Shape:
    dim, kept = slice_dim(p, ctx.input), sliced(p, ctx.input)
    return (*ctx.input[:dim], len(kept), *ctx.input[dim + 1 :])


def _slice_build(p: SliceParams, ctx: LayerContext):
    from netspec.modules import Slice

    return Slice(slice_dim(p, ctx.input) + 1, p.start, p.end, p.step)


def _slice_explain(p: SliceParams, ctx: LayerContext) -> list[str]:
    dim, kept = slice_dim(p, ctx.input), sliced(p, ctx.input)
    end = "" if p.end is None else p.end
    step = f":{p.step}" if p.step != 1 else ""
    what = "channels" if dim == 0 else "spatial"
    every = f" every {p.step}" if p.step != 1 else ""
    return [
        f"dim {dim} ({what}) of size {ctx.input[dim]}: [{p.start}:{end}{step}] "
        f"keeps {kept.start}..{kept[-1]}{every}: {len(kept)}"
    ]


def _slice_window(p: SliceParams, ctx: LayerContext) -> Window | None:
    """Slicing channels keeps every position; slicing a spatial dimension shifts them."""
    return pointwise_window(p, ctx) if slice_dim(p, ctx.input) == 0 else undefined_window(p, ctx)


def _shuffle_rule(p: ChannelShuffleParams, ctx: LayerContext) -> Shape:
    channels = ctx.input[0]
    if len(ctx.input) < 2:
        raise ShapeError(
            f"channel_shuffle needs a [C, ...] input with at least one spatial dim, got {list(ctx.input)}",
            hint="shuffle before flattening",
        )
    if channels % p.groups:
        raise ShapeError(
            f"input channels {channels} are not divisible by groups {p.groups}",
            hint=f"give the layer before it a multiple of {p.groups} channels",
            field="groups",
        )
    return ctx.input


def _shuffle_build(p: ChannelShuffleParams, ctx: LayerContext):
    from netspec.modules import ChannelShuffle

    return ChannelShuffle(p.groups)


def _shuffle_explain(p: ChannelShuffleParams, ctx: LayerContext) -> list[str]:
    c, g = ctx.input[0], p.groups
    order = [j * (c // g) + i for i in range(c // g) for j in range(g)]
    shown = ", ".join(map(str, order[:8])) + (", …" if c > 8 else "")
    return [f"{c} channels as {g} groups of {c // g}, interleaved: output channels come from input {shown}"]


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "slice",
            SliceParams,
            _slice_rule,
            _slice_build,
            macs=no_macs,
            parameters=no_parameters,
            window=_slice_window,
            explain=_slice_explain,
            summary="Python's start:end:step of one per-sample dim (0: channels; ShuffleNet's split).",
            examples=(
                {"input": [8, 5, 5], "layers": [{"type": "slice", "end": 4}]},
                {"input": [6, 7, 5], "layers": [{"type": "slice", "dim": -2, "start": -5, "step": 2}]},
            ),
        ),
        LayerType(
            "channel_shuffle",
            ChannelShuffleParams,
            _shuffle_rule,
            _shuffle_build,
            macs=no_macs,
            parameters=no_parameters,
            window=pointwise_window,
            explain=_shuffle_explain,
            summary="Interleave the channels of `groups` groups (ShuffleNet's channel shuffle).",
            examples=({"input": [6, 4, 4], "layers": [{"type": "channel_shuffle", "groups": 3}]},),
        ),
    ]
