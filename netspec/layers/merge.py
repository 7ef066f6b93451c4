"""Merges for skip connections: add, mul and concat of several named inputs."""

from __future__ import annotations

import math

from pydantic import Field, StrictInt

from netspec.errors import ShapeError
from netspec.hookspecs import hookimpl
from netspec.params import LayerParams, NoParams
from netspec.registry import LayerContext, LayerType, Window, no_macs, no_parameters, pointwise_window
from netspec.shapes import Shape


class ConcatParams(LayerParams):
    """Concatenate inputs along a per-sample dim (default 0: channels)."""

    dim: StrictInt = Field(0, description="Per-sample dimension; 0 = channels.")


def broadcast_shape(shapes: tuple[Shape, ...], layer: str) -> Shape:
    """Element-wise merge result: equal ranks, and each dim equal or 1 (PyTorch broadcasting)."""
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1:
        raise ShapeError(
            f"{layer} inputs have different ranks",
            hint="flatten or reshape so the inputs have the same number of dimensions",
        )
    sizes = [sorted({s for s in dim if s != 1}) for dim in zip(*shapes, strict=True)]
    differ = [i for i, big in enumerate(sizes) if len(big) > 1]
    if differ:
        spatial = [i for i in differ if i]
        what = [f"channels: {sizes[0]}"] if differ[0] == 0 else []
        if spatial:
            what.append("spatial " + ", ".join(f"dim {i}: {sizes[i]}" for i in spatial))
        raise ShapeError(
            f"{layer} inputs disagree on {' and '.join(what)}",
            hint="make the inputs the same shape (or size 1 where one should broadcast)",
        )
    return tuple(big[0] if big else 1 for big in sizes)


def _elementwise_rule(name: str):
    def rule(p: NoParams, ctx: LayerContext) -> Shape:
        return broadcast_shape(ctx.inputs, name)

    return rule


def _concat_rule(p: ConcatParams, ctx: LayerContext) -> Shape:
    rank = len(ctx.inputs[0])
    if any(len(s) != rank for s in ctx.inputs):
        raise ShapeError(
            "concat inputs have different ranks",
            hint="flatten or reshape so the inputs have the same number of dimensions",
        )
    if not -rank <= p.dim < rank:
        raise ShapeError(
            f"dim {p.dim} is out of range for {rank}-dimensional inputs",
            hint=f"use a dim in {-rank}..{rank - 1} (per-sample; 0 = channels)",
            field="dim",
        )
    dim = p.dim % rank
    differ = [i for i in range(rank) if i != dim and len({s[i] for s in ctx.inputs}) > 1]
    if differ:
        i = differ[0]
        sizes = sorted({s[i] for s in ctx.inputs})
        dims = f"dim {i}" if len(differ) == 1 else "dims " + ", ".join(map(str, differ))
        if i == 0:
            what = "channels" if len(differ) == 1 else "channels and spatial size"
            hint = "concatenate along channels (dim 0), or give the inputs equal channels"
        else:
            what = "spatial size"
            hint = (
                f"sizes {sizes}: a strided pool/conv on an odd size rounds down; give the upsampling "
                f"layer output_size (tconv) or size (upsample) {sizes[-1]}, or change padding/strides"
            )
        raise ShapeError(
            f"inputs disagree on {what} ({dims}); concat along dim {dim} needs every other dim equal",
            hint=hint,
        )
    return tuple(sum(s[i] for s in ctx.inputs) if i == dim else ctx.inputs[0][i] for i in range(rank))


def _module(class_name: str):
    def build(p: LayerParams, ctx: LayerContext):
        from netspec import modules

        return getattr(modules, class_name)()

    return build


def _concat_build(p: ConcatParams, ctx: LayerContext):
    from netspec.modules import Concat

    return Concat(p.dim % len(ctx.inputs[0]) + 1)


def _example(layer: dict) -> dict:
    return {
        "input": [4, 6, 6],
        "layers": [
            {"type": "conv", "name": "a", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "relu", "name": "b", "from": "input"},
            {**layer, "from": ["a", "b"]},
        ],
    }


def _elementwise_macs(p: NoParams, ctx: LayerContext) -> int:
    """n inputs: n − 1 operations per output element."""
    return (len(ctx.inputs) - 1) * math.prod(ctx.output)


def _concat_window(p: ConcatParams, ctx: LayerContext) -> Window | None:
    """Along channels, every position keeps its place; along a spatial dim, positions shift."""
    return pointwise_window(p, ctx) if p.dim % len(ctx.inputs[0]) == 0 else None


def _concat_explain(p: ConcatParams, ctx: LayerContext) -> list[str]:
    dim = p.dim % len(ctx.inputs[0])
    sizes = [s[dim] for s in ctx.inputs]
    if dim == 0:
        return [
            f"channels: C_out = {' + '.join(map(str, sizes))} = {sum(sizes)} "
            "(concat along channels adds them; every other dim must be equal)"
        ]
    return [f"dim {dim}: {' + '.join(map(str, sizes))} = {sum(sizes)} (every other dim must be equal)"]


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "add",
            NoParams,
            _elementwise_rule("add"),
            _module("Add"),
            inputs=(2, None),
            macs=_elementwise_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Element-wise sum of the inputs.",
            examples=(_example({"type": "add"}),),
        ),
        LayerType(
            "mul",
            NoParams,
            _elementwise_rule("mul"),
            _module("Mul"),
            inputs=(2, None),
            macs=_elementwise_macs,
            parameters=no_parameters,
            window=pointwise_window,
            summary="Element-wise product of the inputs.",
            examples=(_example({"type": "mul"}),),
        ),
        LayerType(
            "concat",
            ConcatParams,
            _concat_rule,
            _concat_build,
            inputs=(2, None),
            macs=no_macs,
            parameters=no_parameters,
            window=_concat_window,
            explain=_concat_explain,
            summary="Concatenation along a per-sample dim (default: channels).",
            examples=(_example({"type": "concat"}),),
        ),
    ]
