"""Max, average, adaptive and global pooling, 1-D/2-D/3-D by input rank."""

from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field

from netspec.errors import ShapeError
from netspec.explain import POOL_SYMBOLIC, pool_teach, spatial_lines
from netspec.hookspecs import hookimpl
from netspec.params import (
    LayerParams,
    NonNegativeSizes,
    OptionalSizes,
    PositiveInt,
    PositiveSizes,
    StrictBool,
)
from netspec.registry import LayerContext, LayerType, Window, no_parameters, spatial_rank, undefined_window
from netspec.shapes import SPATIAL_NAMES, Shape, describe, effective_kernel, expand, pool_output_size

INT32_MAX = 2**31 - 1  # max/avg pooling (and max unpooling) read their geometry as C ints


class _PoolBase(LayerParams):
    kernel_size: PositiveSizes
    stride: PositiveSizes | None = Field(None, description="Default: kernel_size.")
    padding: NonNegativeSizes = 0
    ceil_mode: StrictBool = False


class MaxPoolParams(_PoolBase):
    """Max pooling (MaxPool1d/2d/3d). Returns indices when an unpool names it."""

    dilation: PositiveSizes = 1


class AvgPoolParams(_PoolBase):
    """Average pooling (AvgPool1d/2d/3d)."""

    count_include_pad: StrictBool = True
    divisor_override: PositiveInt | None = Field(None, description="2-D and 3-D only.")


class AdaptivePoolParams(LayerParams):
    """Adaptive pooling to a fixed output size (null keeps that dimension)."""

    output_size: OptionalSizes


class GlobalPoolParams(LayerParams):
    """Pool every spatial dimension to 1: [C, *spatial] → [C] (or [C, 1, …] with keepdims)."""

    keepdims: StrictBool = False


def pool_geometry(p: _PoolBase, shape: Shape) -> dict[str, tuple[int, ...]]:
    """kernel/stride/padding/dilation per spatial dim, stride defaulting to the kernel."""
    rank = len(shape) - 1
    kernel = expand(p.kernel_size, rank, "kernel_size")
    return {
        "kernel_size": kernel,
        "stride": kernel if p.stride is None else expand(p.stride, rank, "stride"),
        "padding": expand(p.padding, rank, "padding"),
        "dilation": expand(getattr(p, "dilation", 1), rank, "dilation"),
    }


def pool_shape(p: _PoolBase, shape: Shape, layer: str) -> Shape:
    """Output shape of a max/avg pool, with PyTorch's padding limit and ceil_mode rule."""
    rank = spatial_rank(shape, layer)
    geo = pool_geometry(p, shape)
    for field, values in geo.items():
        if max(values) > INT32_MAX:
            raise ShapeError(
                f"{field} {max(values)} is more than PyTorch's pooling kernels take "
                f"({INT32_MAX}, a 32-bit int)",
                hint=f"use a {field} below 2^31",
                field="kernel_size" if field == "stride" and p.stride is None else field,
            )
    out = []
    for dim, size, k, s, pad, d in zip(SPATIAL_NAMES[rank], shape[1:], *geo.values(), strict=True):
        if pad > k // 2:
            raise ShapeError(
                f"padding {pad} in {dim} is more than half the kernel size ({k})",
                hint=f"use padding ≤ {k // 2} (PyTorch's limit for pools)",
                field="padding",
            )
        size_out = pool_output_size(size, k, s, pad, d, p.ceil_mode)
        if size_out < 1:
            span = d * (k - 1) + 1
            raise ShapeError(
                f"pooling window spans {span} in {dim} but the input {describe(shape)} "
                f"is only {size} (+ padding {2 * pad})",
                hint="use a smaller kernel_size, more padding, or pool earlier/less",
                field="kernel_size",
            )
        out.append(size_out)
    return (shape[0], *out)


def _maxpool_rule(p: MaxPoolParams, ctx: LayerContext) -> Shape:
    return pool_shape(p, ctx.input, "maxpool")


def _avgpool_rule(p: AvgPoolParams, ctx: LayerContext) -> Shape:
    out = pool_shape(p, ctx.input, "avgpool")
    rank = len(ctx.input) - 1
    if p.divisor_override is not None and rank == 1:
        raise ShapeError(
            "divisor_override is not supported for 1-D average pooling (AvgPool1d has none)",
            hint="remove divisor_override",
            field="divisor_override",
        )
    if rank == 3:  # AvgPool3d checks the raw input against the kernel, padding aside
        kernel = pool_geometry(p, ctx.input)["kernel_size"]
        for dim, size, k in zip(SPATIAL_NAMES[3], ctx.input[1:], kernel, strict=True):
            if size < k:
                raise ShapeError(
                    f"3-D average pooling needs an input of at least kernel_size in every "
                    f"dimension, but {dim} is {size} < {k} in input {describe(ctx.input)}",
                    hint="use a smaller kernel_size (PyTorch's AvgPool3d ignores padding here)",
                    field="kernel_size",
                )
    return out


def _maxpool_build(p: MaxPoolParams, ctx: LayerContext):
    from torch import nn

    cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[len(ctx.input) - 2]
    return cls(
        **pool_geometry(p, ctx.input), ceil_mode=p.ceil_mode, return_indices="indices" in ctx.aux_outputs
    )


def _avgpool_build(p: AvgPoolParams, ctx: LayerContext):
    from torch import nn

    rank = len(ctx.input) - 1
    geo = pool_geometry(p, ctx.input)
    del geo["dilation"]
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[rank - 1]
    extra = {} if rank == 1 else {"divisor_override": p.divisor_override}
    return cls(**geo, ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad, **extra)


def _adaptive_rule(p: AdaptivePoolParams, ctx: LayerContext) -> Shape:
    rank = spatial_rank(ctx.input, "adaptive pooling")
    sizes = expand(p.output_size, rank, "output_size")
    if rank == 1 and sizes[0] is None:
        raise ShapeError(
            "output_size null (keep the size) is not supported for 1-D adaptive pooling "
            "(PyTorch's AdaptiveAvgPool1d/AdaptiveMaxPool1d need a number)",
            hint=f"give the size itself: output_size: {ctx.input[1]}",
            field="output_size",
        )
    return (ctx.input[0], *(s if t is None else t for s, t in zip(ctx.input[1:], sizes, strict=True)))


def _adaptive_build(kind: str):
    def build(p: AdaptivePoolParams, ctx: LayerContext):
        from torch import nn

        rank = len(ctx.input) - 1
        classes = {
            "max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
            "avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
        }[kind]
        size = p.output_size if isinstance(p.output_size, int) else tuple(p.output_size)
        return classes[rank - 1](size)

    return build


def _global_rule(p: GlobalPoolParams, ctx: LayerContext) -> Shape:
    rank = spatial_rank(ctx.input, "global pooling")
    return (ctx.input[0], *([1] * rank)) if p.keepdims else (ctx.input[0],)


def _global_build(kind: str):
    def build(p: GlobalPoolParams, ctx: LayerContext):
        from netspec.modules import GlobalPool

        return GlobalPool(kind, len(ctx.input) - 1, p.keepdims)

    return build


def _pool_macs(p: _PoolBase, ctx: LayerContext) -> int:
    """One operation per window tap: output elements × kernel volume."""
    return math.prod(ctx.output) * math.prod(pool_geometry(p, ctx.input)["kernel_size"])


def _pool_window(p: _PoolBase, ctx: LayerContext) -> Window:
    geo = pool_geometry(p, ctx.input)
    return Window(
        tuple(effective_kernel(k, d) for k, d in zip(geo["kernel_size"], geo["dilation"], strict=True)),
        tuple(Fraction(s) for s in geo["stride"]),
    )


def _pool_explain(p: _PoolBase, ctx: LayerContext) -> list[str]:
    geo = pool_geometry(p, ctx.input)
    rounding = ("⌈", "⌉") if p.ceil_mode else ("⌊", "⌋")
    lines = spatial_lines(
        SPATIAL_NAMES[len(ctx.input) - 1],
        POOL_SYMBOLIC.replace("{r}", rounding[0]).replace("{R}", rounding[1]),
        [
            pool_teach(size, k, s, pad, d, p.ceil_mode)
            for size, k, s, pad, d in zip(ctx.input[1:], *geo.values(), strict=True)
        ],
    )
    if p.stride is None:
        lines.append("stride defaults to kernel_size")
    lines.append(f"channels: kept, C_out = C_in = {ctx.input[0]} (pooling works on each channel alone)")
    lines.append("parameters: none")
    return lines


def adaptive_window_total(size: int, out: int) -> int:
    """Sum of adaptive pooling window lengths along one dim: [floor(i·in/out), ceil((i+1)·in/out)).

    In closed form ``in + out − gcd(in, out)`` (summing the windows one by one takes minutes
    for a size of 10⁹): the ceilings exceed the floors by ``in`` in total, plus one for every
    window end ``(i+1)·in/out`` that is not an integer, and ``gcd(in, out)`` of them are.
    """
    return size + out - math.gcd(size, out)


def _adaptive_macs(p: AdaptivePoolParams, ctx: LayerContext) -> int:
    totals = (adaptive_window_total(i, o) for i, o in zip(ctx.input[1:], ctx.output[1:], strict=True))
    return ctx.input[0] * math.prod(totals)


def _adaptive_explain(p: AdaptivePoolParams, ctx: LayerContext) -> list[str]:
    dims = SPATIAL_NAMES[len(ctx.input) - 1]
    return [
        ", ".join(f"{d}_out = {o}" for d, o in zip(dims, ctx.output[1:], strict=True))
        + " (output_size; null keeps the input size); window i covers [floor(i·in/out), ceil((i+1)·in/out))"
    ]


def _global_macs(p: GlobalPoolParams, ctx: LayerContext) -> int:
    return math.prod(ctx.input)


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    img = [3, 9, 9]
    return [
        LayerType(
            "maxpool",
            MaxPoolParams,
            _maxpool_rule,
            _maxpool_build,
            aux_outputs=("indices",),
            macs=_pool_macs,
            parameters=no_parameters,
            window=_pool_window,
            explain=_pool_explain,
            summary="Max pooling; stride defaults to kernel_size.",
            examples=(
                {"input": img, "layers": [{"type": "maxpool", "kernel_size": 2}]},
                {
                    "input": [2, 10],
                    "layers": [
                        {
                            "type": "maxpool",
                            "kernel_size": 3,
                            "stride": 2,
                            "padding": 1,
                            "dilation": 2,
                            "ceil_mode": True,
                        }
                    ],
                },
            ),
        ),
        LayerType(
            "avgpool",
            AvgPoolParams,
            _avgpool_rule,
            _avgpool_build,
            macs=_pool_macs,
            parameters=no_parameters,
            window=_pool_window,
            explain=_pool_explain,
            summary="Average pooling; stride defaults to kernel_size.",
            examples=(
                {
                    "input": img,
                    "layers": [
                        {
                            "type": "avgpool",
                            "kernel_size": 3,
                            "stride": 2,
                            "padding": 1,
                            "ceil_mode": True,
                            "count_include_pad": False,
                        }
                    ],
                },
                {
                    "input": [2, 4, 5, 6],
                    "layers": [{"type": "avgpool", "kernel_size": 2, "divisor_override": 3}],
                },
            ),
        ),
        LayerType(
            "adaptive_maxpool",
            AdaptivePoolParams,
            _adaptive_rule,
            _adaptive_build("max"),
            macs=_adaptive_macs,
            parameters=no_parameters,
            window=undefined_window,
            explain=_adaptive_explain,
            summary="Adaptive max pooling to output_size.",
            examples=({"input": img, "layers": [{"type": "adaptive_maxpool", "output_size": [4, None]}]},),
        ),
        LayerType(
            "adaptive_avgpool",
            AdaptivePoolParams,
            _adaptive_rule,
            _adaptive_build("avg"),
            macs=_adaptive_macs,
            parameters=no_parameters,
            window=undefined_window,
            explain=_adaptive_explain,
            summary="Adaptive average pooling to output_size.",
            examples=({"input": img, "layers": [{"type": "adaptive_avgpool", "output_size": 2}]},),
        ),
        LayerType(
            "global_avgpool",
            GlobalPoolParams,
            _global_rule,
            _global_build("avg"),
            macs=_global_macs,
            parameters=no_parameters,
            window=undefined_window,
            summary="Mean over all spatial dimensions.",
            examples=({"input": img, "layers": [{"type": "global_avgpool"}]},),
        ),
        LayerType(
            "global_maxpool",
            GlobalPoolParams,
            _global_rule,
            _global_build("max"),
            macs=_global_macs,
            parameters=no_parameters,
            window=undefined_window,
            summary="Max over all spatial dimensions.",
            examples=({"input": [4, 3, 5, 6], "layers": [{"type": "global_maxpool", "keepdims": True}]},),
        ),
    ]
