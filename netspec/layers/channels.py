"""Slicing a dimension and shuffling channels: ShuffleNet's channel split and channel shuffle.

``slice`` takes Python's ``start:stop:step`` of one per-sample dimension (0: the channels), as
``x[:, start:stop]`` does, but refuses what Python would clamp in silence: a bound beyond the
dimension's size, or a slice that selects nothing. ``channel_shuffle`` interleaves the channels
of ``groups`` groups (``nn.ChannelShuffle``; built as view, transpose and flatten, which ONNX
and ``torch.compile`` take).
"""

from __future__ import annotations

from fractions import Fraction

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
)
from netspec.shapes import Shape, describe


class SliceParams(LayerParams):
    """``start:stop:step`` of one per-sample dimension (``dim`` 0: the channels); step ≥ 1."""

    dim: StrictInt = 0
    start: StrictInt = 0
    stop: StrictInt | None = None
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
    for field, value in (("start", p.start), ("stop", p.stop)):
        if value is not None and not -size <= value <= size:
            raise ShapeError(
                f"{field} {value} is outside dim {p.dim} of input {describe(shape)} (size {size})",
                hint=f"use a value in {-size}..{size} (negative counts from the end); "
                "Python and PyTorch would clamp it silently",
                field=field,
            )
    kept = range(size)[p.start : p.stop : p.step]
    if not kept:
        first = range(size)[p.start :].start
        last = size if p.stop is None else range(size)[: p.stop].stop
        raise ShapeError(
            f"{p.start}:{'' if p.stop is None else p.stop}:{p.step} selects nothing of dim {p.dim} "
            f"of input {describe(shape)} (size {size}): it starts at {first} and stops before {last}",
            hint=f"give stop a position after {first}"
            if first < size
            else f"give start a position below {size}",
            field="stop" if p.stop is not None else "start",
        )
    return kept


def _slice_rule(p: SliceParams, ctx: LayerContext) -> Shape:
    dim, kept = slice_dim(p, ctx.input), sliced(p, ctx.input)
    return (*ctx.input[:dim], len(kept), *ctx.input[dim + 1 :])


def _slice_build(p: SliceParams, ctx: LayerContext):
    from netspec.modules import Slice

    return Slice(slice_dim(p, ctx.input) + 1, p.start, p.stop, p.step)


def _slice_explain(p: SliceParams, ctx: LayerContext) -> list[str]:
    dim, kept = slice_dim(p, ctx.input), sliced(p, ctx.input)
    stop = "" if p.stop is None else p.stop
    step = f":{p.step}" if p.step != 1 else ""
    what = "channels" if dim == 0 else "spatial"
    every = f" every {p.step}" if p.step != 1 else ""
    return [
        f"dim {dim} ({what}) of size {ctx.input[dim]}: [{p.start}:{stop}{step}] "
        f"keeps {kept.start}..{kept[-1]}{every}: {len(kept)}"
    ]


def _slice_window(p: SliceParams, ctx: LayerContext) -> Window | None:
    """Each output position sees one input position; along a sliced spatial dim, one step in the
    output is ``step`` in the input (the start's offset moves positions, not the field's size)."""
    window = pointwise_window(p, ctx)
    dim = slice_dim(p, ctx.input)
    if window is None or dim == 0:
        return window
    strides = list(window.stride)
    strides[dim - 1] = Fraction(p.step)
    return Window(window.span, tuple(strides))


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
            hint=f"give the layer before it a multiple of {p.groups} channels, or take groups from "
            f"{', '.join(str(g) for g in range(2, channels) if channels % g == 0) or 'none between 1 and C'}",
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
            summary="Python's start:stop:step of one per-sample dim (0: channels; ShuffleNet's split).",
            examples=(
                {"input": [8, 5, 5], "layers": [{"type": "slice", "stop": 4}]},
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
