"""Max unpooling that uses the indices of a named max pool and restores its input size."""

from __future__ import annotations

from fractions import Fraction

from pydantic import Field

from netspec.errors import ShapeError
from netspec.explain import per_dim, unpool_formula
from netspec.hookspecs import hookimpl
from netspec.layers.pool import pool_geometry
from netspec.params import LayerParams, PositiveSizes
from netspec.registry import LayerContext, LayerRef, LayerType, Window, no_macs, no_parameters, spatial_rank
from netspec.shapes import SPATIAL_NAMES, Shape, describe, effective_kernel, expand, pool_window_in_padding


class UnpoolParams(LayerParams):
    """Max unpooling (MaxUnpool1d/2d/3d) with the indices of the max pool named by ``indices``."""

    indices: str = Field(description="Name of the maxpool layer whose indices this unpool uses.")
    output_size: PositiveSizes | None = Field(
        None, description="Optional; must equal that pool's input size (the default)."
    )


def _unpool_rule(p: UnpoolParams, ctx: LayerContext) -> Shape:
    pool = ctx.refs["indices"]
    spatial_rank(ctx.input, "unpool")
    if tuple(ctx.input) != tuple(pool.output):
        raise ShapeError(
            f"input {describe(ctx.input)} does not match the output {describe(pool.output)} "
            f"of '{pool.name}', whose indices this unpool uses",
            hint=f"feed unpool a tensor shaped like '{pool.name}''s output",
        )
    restored = tuple(pool.inputs[0][1:])
    geo = pool_geometry(pool.params, pool.inputs[0])
    for dim, size, count, k, s, pad, d in zip(
        SPATIAL_NAMES[len(restored)], restored, pool.output[1:], *geo.values(), strict=True
    ):
        window = pool_window_in_padding(size, k, s, pad, d, count)
        if window is not None:
            raise ShapeError(
                f"window {window} in {dim} of '{pool.name}' covers only padding (kernel {k}, dilation {d}, "
                f"padding {pad} on an input {dim} of {size}): the pool gives -inf there, with an index "
                "that is no position of that window, so unpooling cannot put the value back",
                hint=f"reduce the padding or dilation of '{pool.name}' so every window reaches the input",
            )
    if p.output_size is not None:
        wanted = expand(p.output_size, len(restored), "output_size")
        if tuple(wanted) != restored:
            raise ShapeError(
                f"output_size {list(wanted)} differs from the input size {list(restored)} of "
                f"'{pool.name}': the indices address positions in that size, so any other size "
                "misplaces the values",
                hint="remove output_size (netspec restores the pool's input size)",
                field="output_size",
            )
    return (ctx.input[0], *restored)


def _unpool_build(p: UnpoolParams, ctx: LayerContext):
    from netspec.modules import MaxUnpool

    pool = ctx.refs["indices"]
    geo = pool_geometry(pool.params, pool.inputs[0])
    # MaxUnpool uses the kernel only to bound output_size; a dilated pool's span is d·(k−1)+1.
    kernel = [effective_kernel(k, d) for k, d in zip(geo["kernel_size"], geo["dilation"], strict=True)]
    return MaxUnpool(kernel, list(geo["stride"]), list(geo["padding"]), list(pool.inputs[0][1:]))


def _unpool_window(p: UnpoolParams, ctx: LayerContext) -> Window:
    """Each output position holds at most one input value; one output step is 1/s input."""
    stride = pool_geometry(ctx.refs["indices"].params, ctx.refs["indices"].inputs[0])["stride"]
    return Window((1,) * len(stride), tuple(Fraction(1, s) for s in stride))


def _unpool_explain(p: UnpoolParams, ctx: LayerContext) -> list[str]:
    pool = ctx.refs["indices"]
    geo = pool_geometry(pool.params, pool.inputs[0])
    formulas = [
        unpool_formula(size, k, s, pad, restored)
        for size, k, s, pad, restored in zip(
            ctx.input[1:], geo["kernel_size"], geo["stride"], geo["padding"], ctx.output[1:], strict=True
        )
    ]
    return per_dim(SPATIAL_NAMES[len(ctx.input) - 1], formulas)


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    return [
        LayerType(
            "unpool",
            UnpoolParams,
            _unpool_rule,
            _unpool_build,
            refs=(LayerRef("indices", "indices", ("maxpool",)),),
            macs=no_macs,
            parameters=no_parameters,
            window=_unpool_window,
            explain=_unpool_explain,
            summary="Max unpooling with a max pool's indices; restores that pool's input size.",
            examples=(
                {
                    "input": [2, 7, 9],
                    "layers": [
                        {"type": "maxpool", "name": "pool", "kernel_size": 2, "ceil_mode": True},
                        {"type": "unpool", "indices": "pool"},
                    ],
                },
                {
                    "input": [2, 11],
                    "layers": [
                        {
                            "type": "maxpool",
                            "name": "pool",
                            "kernel_size": 3,
                            "stride": 2,
                            "dilation": 2,
                            "padding": 1,
                        },
                        {"type": "relu"},
                        {"type": "unpool", "indices": "pool"},
                    ],
                },
            ),
        )
    ]
