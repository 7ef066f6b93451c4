"""Hypothesis strategies for netspec layer configs that often sit on PyTorch's edges.

Every strategy draws a *spec* value (a ``dict`` as it would appear in YAML), never an
expected shape: the tests compute expected shapes by running real torch modules.
Layer strategies take the per-sample input shape ``[C, *spatial]`` so that they can pick
kernels near or beyond the input size, paddings near the kernel, and so on.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

# Per-sample spatial size limits by spatial rank: tensors stay at a few hundred elements.
MAX_SPATIAL = {1: 12, 2: 7, 3: 4}
PAD_MODES = ("zeros", "reflect", "replicate", "circular")
UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")

SizeStrategy = Callable[[int], st.SearchStrategy[int]]


def layer(kind: str, **params) -> dict:
    """A layer dict with the params that are not None (None = leave it to the default)."""
    return {"type": kind, **{k: v for k, v in params.items() if v is not None}}


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """``None`` (key omitted, default used) about a third of the time."""
    return st.one_of(st.none(), strategy, strategy)


@st.composite
def input_shapes(draw, ranks=(1, 2, 3), max_channels: int = 4, max_size: int | None = None) -> list[int]:
    """``[C, *spatial]`` with 1–3 spatial dims, small enough for a fast forward pass."""
    rank = draw(st.sampled_from(ranks))
    channels = draw(st.integers(1, max_channels))
    top = MAX_SPATIAL[rank] if max_size is None else min(max_size, MAX_SPATIAL[rank])
    return [channels, *(draw(st.integers(1, top)) for _ in range(rank))]


def tiny_or_small_shapes(**kw) -> st.SearchStrategy[list[int]]:
    """Inputs of at most 3 per spatial dim half the time: kernels and dilations outgrow them."""
    return st.one_of(input_shapes(**kw), input_shapes(max_size=3, **kw))


@st.composite
def per_dim(draw, sizes, make: SizeStrategy):
    """An int for every dim, or a list with one value per dim; ``make(size)`` draws one value."""
    if draw(st.booleans()):
        return draw(make(draw(st.sampled_from(list(sizes)))))
    return [draw(make(s)) for s in sizes]


def kernels(size: int) -> st.SearchStrategy[int]:
    """Kernel sizes up to two past the input size (too-large kernels are an edge to hit)."""
    return st.integers(1, size + 2)


def small(hi: int, lo: int = 1) -> SizeStrategy:
    return lambda size: st.integers(lo, hi)


# ---------------------------------------------------------------------------------------------
# convolutions


@st.composite
def conv_padding(draw, spatial):
    return draw(st.one_of(st.sampled_from(["same", "valid"]), per_dim(spatial, small(4, 0))))


@st.composite
def _conv_common(draw, shape) -> dict:
    spatial = shape[1:]
    padding = draw(optional(conv_padding(spatial)))
    # 'same' needs stride 1, so stride 1 (or omitted) is drawn often.
    stride = draw(st.one_of(st.none(), st.just(1), per_dim(spatial, small(4))))
    return dict(
        kernel_size=draw(per_dim(spatial, kernels)),
        stride=stride,
        padding=padding,
        dilation=draw(optional(per_dim(spatial, small(3)))),
        padding_mode=draw(optional(st.sampled_from(PAD_MODES))),
        bias=draw(optional(st.booleans())),
        in_channels=draw(st.sampled_from([None, None, None, shape[0], shape[0] + 1])),
    )


@st.composite
def conv_layers(draw, shape) -> dict:
    return layer(
        "conv",
        out_channels=draw(st.integers(1, 6)),
        groups=draw(optional(st.integers(1, 4))),
        **draw(_conv_common(shape)),
    )


@st.composite
def depthwise_layers(draw, shape) -> dict:
    return layer("depthwise", multiplier=draw(optional(st.integers(1, 3))), **draw(_conv_common(shape)))


@st.composite
def separable_layers(draw, shape) -> dict:
    return layer(
        "separable",
        out_channels=draw(st.integers(1, 5)),
        multiplier=draw(optional(st.integers(1, 3))),
        **draw(_conv_common(shape)),
    )


@st.composite
def tconv_layers(draw, shape) -> dict:
    """Transposed convs; output_size is drawn around (and outside) its reachable range."""
    spatial = shape[1:]
    rank = len(spatial)
    kernel = draw(per_dim(spatial, small(4)))
    stride = draw(optional(per_dim(spatial, small(3))))
    padding = draw(optional(per_dim(spatial, small(3, 0))))
    dilation = draw(optional(per_dim(spatial, small(3))))
    params = dict(
        out_channels=draw(st.integers(1, 4)),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=draw(optional(st.integers(1, 3))),
        bias=draw(optional(st.booleans())),
        in_channels=draw(st.sampled_from([None, None, None, shape[0], shape[0] + 1])),
    )
    choice = draw(st.sampled_from(["none", "output_padding", "output_size", "output_size"]))
    if choice == "output_padding":
        params["output_padding"] = draw(per_dim(spatial, small(3, 0)))
    elif choice == "output_size":

        def at(value, i):
            return value if isinstance(value, int) else value[i]

        targets = []
        for i, size in enumerate(spatial):
            k, s = at(kernel, i), at(stride or 1, i)
            p, d = at(padding or 0, i), at(dilation or 1, i)
            # Only to aim the draw near the edges of the range; torch decides what is valid.
            low = (size - 1) * s - 2 * p + d * (k - 1) + 1
            near = st.integers(low - 2, low + s + 1).filter(lambda t: t >= 1)
            targets.append(draw(st.one_of(near, near, st.integers(1, 16))))
        if rank == 1 or len(set(targets)) == 1:
            params["output_size"] = draw(st.sampled_from([targets[0], targets]))
        else:
            params["output_size"] = targets
    return layer("tconv", **params)


# ---------------------------------------------------------------------------------------------
# pooling


@st.composite
def _pool_common(draw, shape) -> dict:
    spatial = shape[1:]
    return dict(
        kernel_size=draw(per_dim(spatial, kernels)),
        stride=draw(optional(per_dim(spatial, small(5)))),
        padding=draw(optional(per_dim(spatial, small(3, 0)))),
        ceil_mode=draw(optional(st.booleans())),
    )


@st.composite
def maxpool_layers(draw, shape, name: str | None = None) -> dict:
    dilation = draw(optional(per_dim(shape[1:], small(5))))
    return layer("maxpool", name=name, dilation=dilation, **draw(_pool_common(shape)))


@st.composite
def avgpool_layers(draw, shape) -> dict:
    rank = len(shape) - 1
    # AvgPool1d has no divisor_override (netspec rejects it there; tested separately).
    divisor = draw(optional(st.integers(0, 4))) if rank > 1 else None
    return layer(
        "avgpool",
        count_include_pad=draw(optional(st.booleans())),
        divisor_override=divisor,
        **draw(_pool_common(shape)),
    )


@st.composite
def adaptive_layers(draw, shape) -> dict:
    kind = draw(st.sampled_from(["adaptive_maxpool", "adaptive_avgpool"]))
    spatial = shape[1:]
    if draw(st.booleans()):
        output = draw(st.integers(1, 8))
    else:
        output = [draw(st.one_of(st.none(), st.integers(1, 8))) for _ in spatial]
    return layer(kind, output_size=output)


@st.composite
def global_layers(draw, shape) -> dict:
    kind = draw(st.sampled_from(["global_maxpool", "global_avgpool"]))
    return layer(kind, keepdims=draw(optional(st.booleans())))


# ---------------------------------------------------------------------------------------------
# upsampling


@st.composite
def scales(draw, size: int) -> float | int:
    """Integer, arbitrary float, or ``target/size`` ratios whose product rounds below the target."""
    return draw(
        st.one_of(
            st.integers(1, 3),
            st.floats(0.05, 3.5, allow_nan=False, allow_infinity=False),
            st.integers(1, 3 * size).map(lambda target: target / size),
            st.integers(1, 130)
            .flatmap(lambda a: st.integers(1, 130).map(lambda b: a / b))
            .filter(lambda s: 0.05 <= s <= 3.5),
        )
    )


@st.composite
def upsample_layers(draw, shape) -> dict:
    spatial = shape[1:]
    rank = len(spatial)
    mode = draw(optional(st.sampled_from(UPSAMPLE_MODES)))
    align = draw(st.sampled_from([None, None, True, False]))
    # Wrong-length size/scale lists are drawn sometimes: torch and netspec both refuse them.
    length = draw(st.sampled_from([rank, rank, rank, max(1, rank - 1), rank + 1]))
    if draw(st.booleans()):
        sizes = st.lists(st.integers(1, 10), min_size=length, max_size=length)
        size = draw(st.one_of(st.integers(1, 10), sizes))
        return layer("upsample", size=size, mode=mode, align_corners=align)
    if draw(st.booleans()):
        scale = draw(scales(draw(st.sampled_from(spatial))))
    else:
        sizes = list(spatial) + [spatial[0]] * max(0, length - rank)
        scale = [draw(scales(s)) for s in sizes[:length]]
    return layer("upsample", scale_factor=scale, mode=mode, align_corners=align)


# ---------------------------------------------------------------------------------------------
# reshaping and the rest


@st.composite
def any_shapes(draw, min_rank: int = 1, max_rank: int = 4) -> list[int]:
    """Per-sample shapes of any rank (channels included), at most a few hundred elements."""
    rank = draw(st.integers(min_rank, max_rank))
    return draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))


@st.composite
def flatten_layers(draw, shape) -> dict:
    dims = st.integers(-len(shape) - 1, len(shape))
    return layer("flatten", start_dim=draw(optional(dims)), end_dim=draw(optional(dims)))


@st.composite
def reshape_layers(draw, shape) -> dict:
    total = 1
    for s in shape:
        total *= s
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    entry = st.one_of(st.sampled_from(divisors), st.just(-1), st.integers(1, 8))
    target = draw(st.lists(entry, min_size=1, max_size=4).filter(lambda t: t.count(-1) <= 1))
    return layer("reshape", shape=target)


@st.composite
def linear_layers(draw, shape) -> dict:
    return layer(
        "linear",
        out_features=draw(st.integers(1, 5)),
        bias=draw(optional(st.booleans())),
        in_features=draw(st.sampled_from([None, None, shape[-1], shape[-1] + 1])),
    )


@st.composite
def pixel_shuffle_layers(draw, shape) -> dict:
    if draw(st.booleans()):
        return layer("pixel_shuffle", upscale_factor=draw(st.integers(1, 3)))
    return layer("pixel_unshuffle", downscale_factor=draw(st.integers(1, 4)))


@st.composite
def slice_layers(draw, shape) -> dict:
    """Any dim (some out of range), bounds within and beyond its size, steps 1-3."""
    rank = len(shape)
    dim = draw(st.integers(-rank - 1, rank))
    size = shape[dim] if -rank <= dim < rank else 4
    bound = st.integers(-size - 2, size + 2)
    return layer(
        "slice",
        dim=draw(optional(st.just(dim))),
        start=draw(optional(bound)),
        stop=draw(optional(bound)),
        step=draw(optional(st.integers(1, 3))),
    )


@st.composite
def channel_shuffle_layers(draw, shape) -> dict:
    return layer("channel_shuffle", groups=draw(st.sampled_from([1, 2, 3, shape[0], shape[0] + 1])))


@st.composite
def norm_layers(draw, shape) -> dict:
    rank = len(shape) - 1
    channels = shape[0]
    declared = st.sampled_from([None, None, channels, channels + 1])
    kinds = ["batchnorm", "groupnorm", "layernorm"] + (["instancenorm"] if rank >= 1 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "batchnorm":
        return layer(
            kind,
            num_features=draw(declared),
            affine=draw(optional(st.booleans())),
            track_running_stats=draw(optional(st.booleans())),
        )
    if kind == "instancenorm":
        return layer(
            kind,
            num_features=draw(declared),
            affine=draw(optional(st.booleans())),
            track_running_stats=draw(optional(st.booleans())),
        )
    if kind == "groupnorm":
        return layer(kind, num_groups=draw(st.integers(1, 6)), affine=draw(optional(st.booleans())))
    return layer(kind, dims=draw(optional(st.integers(1, len(shape)))))


@st.composite
def activation_layers(draw, shape) -> dict:
    kind = draw(st.sampled_from(["softmax", "log_softmax", "prelu", "relu", "gelu"]))
    if kind in ("softmax", "log_softmax"):
        return layer(kind, dim=draw(optional(st.integers(-len(shape) - 1, len(shape)))))
    if kind == "prelu":
        return layer(kind, per_channel=draw(optional(st.booleans())))
    return layer(kind)


@st.composite
def other_sizes(draw, sizes: list[int]) -> list[int]:
    """A size list that differs from ``sizes`` in at least one dim (all entries ≥ 1)."""
    out = list(sizes)
    i = draw(st.integers(0, len(sizes) - 1))
    out[i] = draw(st.integers(1, sizes[i] + 3).filter(lambda v: v != sizes[i]))
    return out


# Layers that keep the spatial rank, for random chains (conv → pool → upsample → …).
CHAINABLE = (
    conv_layers,
    depthwise_layers,
    separable_layers,
    tconv_layers,
    maxpool_layers,
    avgpool_layers,
    adaptive_layers,
    upsample_layers,
)
