"""Differential tests: netspec's analytic shape rules against what real torch modules do.

For every generated config the REFERENCE is built straight from ``torch.nn`` /
``torch.nn.functional`` by :func:`reference_forward` (never through netspec) and run on a
small batch. Then:

- torch raises            → ``netspec.load`` must raise :class:`netspec.SpecError`;
- torch gives a tensor    → ``netspec.load`` must accept, every layer's inferred shape must
  equal the reference's, and the module ``netspec.build`` returns must give that shape too.

Differences that netspec makes on purpose are listed (and tested) at the end of the file.
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from contextlib import contextmanager
from functools import reduce

import pytest
import strategies as S
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from torch import Tensor, nn

import netspec

torch.set_num_threads(1)

# NETSPEC_DIFF_SCALE=20 pytest … runs twenty times as many generated cases (a deep search).
SCALE = float(os.environ.get("NETSPEC_DIFF_SCALE", "1"))


def examples(n: int) -> settings:
    return settings(max_examples=max(1, round(n * SCALE)), deadline=None)


# What torch raises for a bad config. (A bug in the reference itself — NameError, KeyError,
# AttributeError — is not in this list, so it fails the test instead of passing as "rejected".)
TORCH_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)


@contextmanager
def quiet():
    """Hide torch's performance warning for 'same' padding with even kernels (not an error)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Using padding='same' with even kernel", UserWarning)
        yield


class Intentional(Exception):
    """Raised by the reference where netspec refuses, on purpose, what torch accepts."""


# ---------------------------------------------------------------------------------------------
# The reference: a tiny interpreter of spec dicts written directly against torch.
# Only the keys present in a layer dict are passed, so torch's own defaults apply.


def _t(value):
    """Spec value → torch argument (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _kw(layer: dict, *keys: str) -> dict:
    return {k: _t(layer[k]) for k in keys if k in layer}


def _cls(family: str, x: Tensor):
    """torch.nn class of a family for a batched input, e.g. ('Conv', [N, C, H, W]) → nn.Conv2d."""
    rank = x.dim() - 2
    if rank not in (1, 2, 3):
        raise ValueError(f"no {family} for {rank} spatial dims")  # netspec layers are 1-3-D
    return getattr(nn, f"{family}{rank}d")


def _per_sample(fn, *xs: Tensor) -> Tensor:
    """Apply ``fn`` to each sample on its own (netspec's dims are per-sample)."""
    return torch.func.vmap(fn)(*xs)


def ref_conv(layer, x):
    cin = layer.get("in_channels", x.shape[1])
    kw = _kw(layer, "stride", "padding", "dilation", "groups", "bias", "padding_mode")
    return _cls("Conv", x)(cin, layer["out_channels"], _t(layer["kernel_size"]), **kw)(x)


def _depthwise(layer, x):
    cin = layer.get("in_channels", x.shape[1])
    mid = cin * layer.get("multiplier", 1)
    kw = _kw(layer, "stride", "padding", "dilation", "bias", "padding_mode")
    return _cls("Conv", x)(cin, mid, _t(layer["kernel_size"]), groups=cin, **kw), mid


def ref_depthwise(layer, x):
    return _depthwise(layer, x)[0](x)


def ref_separable(layer, x):
    depthwise, mid = _depthwise(layer, x)
    pointwise = _cls("Conv", x)(mid, layer["out_channels"], 1, **_kw(layer, "bias"))
    return pointwise(depthwise(x))


def ref_tconv(layer, x):
    cin = layer.get("in_channels", x.shape[1])
    kw = _kw(layer, "stride", "padding", "output_padding", "dilation", "groups", "bias")
    module = _cls("ConvTranspose", x)(cin, layer["out_channels"], _t(layer["kernel_size"]), **kw)
    size = layer.get("output_size")
    if size is None:
        return module(x)
    return module(x, output_size=[size] * (x.dim() - 2) if isinstance(size, int) else size)


def ref_maxpool(layer, x, return_indices=False):
    kw = _kw(layer, "stride", "padding", "dilation", "ceil_mode")
    return _cls("MaxPool", x)(_t(layer["kernel_size"]), return_indices=return_indices, **kw)(x)


def ref_avgpool(layer, x):
    kw = _kw(layer, "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    return _cls("AvgPool", x)(_t(layer["kernel_size"]), **kw)(x)


def ref_adaptive(family):
    return lambda layer, x: _cls(family, x)(_t(layer["output_size"]))(x)


def ref_global(kind):
    def run(layer, x):
        dims = tuple(range(2, x.dim()))
        reduce_ = torch.amax if kind == "max" else torch.mean
        return reduce_(x, dim=dims, keepdim=layer.get("keepdims", False))

    return run


def ref_upsample(layer, x):
    return F.interpolate(x, **_kw(layer, "size", "scale_factor", "mode", "align_corners"))


def ref_unpool(layer, x, indices, pool: dict, pool_input: Tensor):
    """F.max_unpool back to the pool's input size; the window span d·(k−1)+1 is the kernel."""
    rank = pool_input.dim() - 2

    def dims(key, default):
        value = pool.get(key, default)
        return [value] * rank if isinstance(value, int) else list(value)

    kernel = dims("kernel_size", None)
    stride = dims("stride", pool["kernel_size"])
    padding = dims("padding", 0)
    dilation = dims("dilation", 1)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    unpool = getattr(F, f"max_unpool{rank}d")
    return unpool(x, indices, span, stride, padding, output_size=list(pool_input.shape[2:]))


def ref_flatten(layer, x):
    return _per_sample(lambda s: torch.flatten(s, layer.get("start_dim", 0), layer.get("end_dim", -1)), x)


def ref_reshape(layer, x):
    return _per_sample(lambda s: s.reshape(layer["shape"]), x)


def ref_linear(layer, x):
    return nn.Linear(layer.get("in_features", x.shape[-1]), layer["out_features"], **_kw(layer, "bias"))(x)


def ref_norm(layer, x):
    # Torch's "num_features does not match" warning (affine=False) counts as a rejection.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        try:
            return _ref_norm(layer, x)
        except UserWarning as warning:
            raise ValueError(str(warning)) from warning


def _ref_norm(layer, x):
    kind, c = layer["type"], x.shape[1]
    if (
        layer.get("num_features", c) != c
        and not layer.get("affine", kind == "batchnorm")
        and not layer.get("track_running_stats", kind == "batchnorm")
    ):
        # Without weights or running stats torch never looks at num_features (batch norm does not
        # even warn); netspec checks a declared count against the input all the same.
        raise Intentional("a declared num_features must match the channels")
    if kind == "batchnorm":
        cls = nn.BatchNorm1d if x.dim() <= 3 else _cls("BatchNorm", x)
        return cls(layer.get("num_features", c), **_kw(layer, "affine", "track_running_stats"))(x)
    if kind == "instancenorm":
        cls = _cls("InstanceNorm", x)
        return cls(layer.get("num_features", c), **_kw(layer, "affine", "track_running_stats"))(x)
    if kind == "groupnorm":
        return nn.GroupNorm(layer["num_groups"], c, **_kw(layer, "affine"))(x)
    dims = layer.get("dims", x.dim() - 1)
    return nn.LayerNorm(list(x.shape[x.dim() - dims :]))(x)


def ref_activation(layer, x):
    kind = layer["type"]
    if kind in ("softmax", "log_softmax"):
        fn = torch.softmax if kind == "softmax" else torch.log_softmax
        return _per_sample(lambda s: fn(s, layer.get("dim", 0)), x)
    if kind == "prelu":
        return nn.PReLU(x.shape[1] if layer.get("per_channel", False) else 1)(x)
    return {"relu": nn.ReLU(), "gelu": nn.GELU()}[kind](x)


def ref_slice(layer, x):
    """Python's slicing, as torch indexes; netspec refuses a bound Python would clamp, on purpose."""
    dim = layer.get("dim", 0)
    size = x.shape[1:][dim]  # an IndexError for a dim out of range
    start, stop, step = layer.get("start", 0), layer.get("stop"), layer.get("step", 1)
    if any(b is not None and not -size <= b <= size for b in (start, stop)):
        raise Intentional("a bound beyond the dimension's size, which Python clamps")
    index = [slice(None)] * x.dim()
    index[dim % (x.dim() - 1) + 1] = slice(start, stop, step)
    return x[tuple(index)]


def ref_concat(layer, *xs):
    return _per_sample(lambda *s: torch.cat(s, layer.get("dim", 0)), *xs)


REFERENCE = {
    "conv": ref_conv,
    "depthwise": ref_depthwise,
    "separable": ref_separable,
    "tconv": ref_tconv,
    "maxpool": ref_maxpool,
    "avgpool": ref_avgpool,
    "adaptive_maxpool": ref_adaptive("AdaptiveMaxPool"),
    "adaptive_avgpool": ref_adaptive("AdaptiveAvgPool"),
    "global_maxpool": ref_global("max"),
    "global_avgpool": ref_global("avg"),
    "upsample": ref_upsample,
    "pixel_shuffle": lambda layer, x: nn.PixelShuffle(layer["upscale_factor"])(x),
    "pixel_unshuffle": lambda layer, x: nn.PixelUnshuffle(layer["downscale_factor"])(x),
    "slice": ref_slice,
    "channel_shuffle": lambda layer, x: nn.ChannelShuffle(layer["groups"])(x),
    "flatten": ref_flatten,
    "reshape": ref_reshape,
    "linear": ref_linear,
    **dict.fromkeys(["batchnorm", "instancenorm", "groupnorm", "layernorm"], ref_norm),
    **dict.fromkeys(["softmax", "log_softmax", "prelu", "relu", "gelu"], ref_activation),
    "concat": ref_concat,
    "add": lambda layer, *xs: reduce(operator.add, xs),
    "mul": lambda layer, *xs: reduce(operator.mul, xs),
}


def reference_forward(spec: dict, x: Tensor) -> list[Tensor]:
    """Every layer's output, in spec order, computed with torch alone."""
    values: dict[str, Tensor] = {"input": x}
    indices: dict[str, Tensor] = {}
    layers = {lay.get("name"): lay for lay in spec["layers"]}
    wanted = {lay["indices"] for lay in spec["layers"] if lay["type"] == "unpool"}
    inputs_of: dict[str, Tensor] = {}
    outputs, previous = [], "input"
    for i, lay in enumerate(spec["layers"]):
        name = lay.get("name", f"#{i}")
        source = lay.get("from", previous)
        xs = [values[s] for s in ([source] if isinstance(source, str) else source)]
        inputs_of[name] = xs[0]
        if lay["type"] == "maxpool" and name in wanted:
            out, indices[name] = ref_maxpool(lay, xs[0], return_indices=True)
        elif lay["type"] == "unpool":
            pool = lay["indices"]
            out = ref_unpool(lay, xs[0], indices[pool], layers[pool], inputs_of[pool])
        else:
            out = REFERENCE[lay["type"]](lay, *xs)
        values[name] = out
        outputs.append(out)
        previous = name
    return outputs


# ---------------------------------------------------------------------------------------------
# The differential check


def event(label: str) -> None:
    """hypothesis.event, also usable from plain (non-generated) tests."""
    if currently_in_test_context():
        hypothesis_event(label)


def check(spec: dict, x: Tensor, label: str) -> tuple[netspec.Spec, Tensor, list[Tensor]] | None:
    """Compare netspec with the torch reference on ``spec``; None when both reject it."""
    try:
        with quiet():
            expected = reference_forward(spec, x)
    except Intentional as exc:
        event(f"{label}: netspec refuses on purpose ({exc})")
        with pytest.raises(netspec.SpecError):
            netspec.load(spec)
        return None
    except TORCH_ERRORS as exc:
        event(f"{label}: torch rejects")
        try:
            loaded = netspec.load(spec)
        except netspec.SpecError:
            return None
        pytest.fail(
            f"torch rejects {spec}\n  with {type(exc).__name__}: {exc}\n"
            f"but netspec accepts it, inferring {[lay.output_shape for lay in loaded.layers]}"
        )
    want = [tuple(t.shape[1:]) for t in expected]
    if any(0 in shape for shape in want):
        # torch hands back an empty tensor (e.g. a tconv whose padding eats all it produces);
        # netspec never lets a layer produce an empty tensor, on purpose.
        event(f"{label}: torch gives an empty tensor")
        with pytest.raises(netspec.SpecError):
            netspec.load(spec)
        return None
    event(f"{label}: torch accepts")
    try:
        loaded = netspec.load(spec)
    except netspec.SpecError as exc:
        pytest.fail(f"torch accepts {spec} (shapes {want}) but netspec rejects it:\n{exc}")
    inferred = [lay.output_shape for lay in loaded.layers]
    assert inferred == want, f"{spec}: netspec infers {inferred}, torch gives {want}"
    module = netspec.build(loaded)
    with quiet():
        actual = module(x)
    assert tuple(actual.shape[1:]) == inferred[-1], f"{spec}: netspec's module gives {tuple(actual.shape)}"
    return loaded, actual, expected


def one_layer(shape: list[int], lay: dict) -> dict:
    return {"input": list(shape), "layers": [lay]}


batches = st.sampled_from([1, 2])


def single_layer_test(layers_strategy, shapes=None, max_examples=200, batch=batches, label=None):
    """A generated test: one layer from ``layers_strategy(shape)`` on a random input."""
    shapes = shapes if shapes is not None else S.tiny_or_small_shapes()

    @examples(max_examples)
    @given(data=st.data(), shape=shapes, n=batch)
    def test(data, shape, n):
        lay = data.draw(layers_strategy(shape), label="layer")
        check(one_layer(shape, lay), torch.zeros(n, *shape), label or lay["type"])

    return test


# ---------------------------------------------------------------------------------------------
# One layer at a time

test_conv = single_layer_test(S.conv_layers, max_examples=700)
test_depthwise = single_layer_test(S.depthwise_layers, max_examples=150)
test_separable = single_layer_test(S.separable_layers, max_examples=150)
test_tconv = single_layer_test(S.tconv_layers, max_examples=600)
test_maxpool = single_layer_test(S.maxpool_layers, max_examples=500)
test_avgpool = single_layer_test(S.avgpool_layers, max_examples=500)
test_adaptive_pool = single_layer_test(S.adaptive_layers, max_examples=100)
test_global_pool = single_layer_test(S.global_layers, max_examples=40)
test_upsample = single_layer_test(S.upsample_layers, max_examples=600)
test_pixel_shuffle = single_layer_test(
    S.pixel_shuffle_layers, shapes=S.input_shapes(ranks=(2,), max_channels=12), max_examples=100
)
test_slice = single_layer_test(S.slice_layers, shapes=S.any_shapes(), max_examples=150)
test_channel_shuffle = single_layer_test(S.channel_shuffle_layers, shapes=S.any_shapes(), max_examples=60)
test_flatten = single_layer_test(S.flatten_layers, shapes=S.any_shapes(), max_examples=100)
test_reshape = single_layer_test(S.reshape_layers, shapes=S.any_shapes(), max_examples=100)
test_linear = single_layer_test(S.linear_layers, shapes=S.any_shapes(1, 3), max_examples=60)
# Norms run in training mode, so the batch is 2 (BatchNorm needs > 1 value per channel).
test_norms = single_layer_test(S.norm_layers, shapes=S.input_shapes(), max_examples=150, batch=st.just(2))
test_norms_on_vectors = single_layer_test(
    S.norm_layers, shapes=S.any_shapes(1, 1), max_examples=40, batch=st.just(2), label="norm on [C]"
)
test_activations = single_layer_test(S.activation_layers, shapes=S.any_shapes(), max_examples=60)


# Hand-picked edges (torch still decides every verdict and every shape).
EDGES = [
    ([1, 5], {"type": "conv", "out_channels": 1, "kernel_size": 4, "padding": "same"}),
    (
        [1, 5, 6],
        {"type": "conv", "out_channels": 2, "kernel_size": [4, 2], "dilation": [1, 3], "padding": "same"},
    ),
    ([1, 6], {"type": "conv", "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": "same"}),
    ([1, 6], {"type": "conv", "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": "valid"}),
    ([1, 3], {"type": "conv", "out_channels": 1, "kernel_size": 3, "padding": 2, "padding_mode": "reflect"}),
    ([1, 3], {"type": "conv", "out_channels": 1, "kernel_size": 3, "padding": 3, "padding_mode": "reflect"}),
    ([1, 3], {"type": "conv", "out_channels": 1, "kernel_size": 7, "padding": 3, "padding_mode": "circular"}),
    ([1, 3], {"type": "conv", "out_channels": 1, "kernel_size": 9, "padding": 4, "padding_mode": "circular"}),
    (
        [1, 2],
        {"type": "conv", "out_channels": 1, "kernel_size": 8, "padding": "same", "padding_mode": "reflect"},
    ),
    ([1, 4], {"type": "conv", "out_channels": 1, "kernel_size": 6, "padding": 1}),
    ([4, 5], {"type": "conv", "out_channels": 6, "kernel_size": 1, "groups": 4}),
    ([4, 5], {"type": "conv", "out_channels": 6, "kernel_size": 1, "groups": 2}),
    (
        [2, 4],
        {
            "type": "tconv",
            "out_channels": 2,
            "kernel_size": 3,
            "stride": 2,
            "dilation": 3,
            "output_padding": 2,
        },
    ),
    (
        [2, 4],
        {
            "type": "tconv",
            "out_channels": 2,
            "kernel_size": 3,
            "stride": 2,
            "dilation": 2,
            "output_padding": 2,
        },
    ),
    *[
        (
            [1, 4],
            {
                "type": "tconv",
                "out_channels": 1,
                "kernel_size": 3,
                "stride": 3,
                "padding": 1,
                "dilation": 2,
                "output_size": size,
            },
        )
        for size in (10, 11, 12, 13, 14)
    ],
    (
        [1, 1],
        {"type": "tconv", "out_channels": 1, "kernel_size": 1, "stride": 3, "padding": 1, "output_size": 1},
    ),
    ([1, 5], {"type": "maxpool", "kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True}),
    ([1, 6], {"type": "avgpool", "kernel_size": 5, "stride": 4, "padding": 2, "ceil_mode": True}),
    ([1, 7], {"type": "maxpool", "kernel_size": 2, "padding": 2, "dilation": 3}),
    ([1, 7], {"type": "maxpool", "kernel_size": 2, "padding": 1, "dilation": 3}),
    ([1, 2, 2, 2], {"type": "avgpool", "kernel_size": 3, "padding": 1}),
    ([1, 2, 2], {"type": "avgpool", "kernel_size": 3, "padding": 1}),
    ([1, 88], {"type": "upsample", "scale_factor": 120 / 88}),
    ([1, 88], {"type": "upsample", "size": 120, "mode": "linear", "align_corners": True}),
    ([1, 3, 3], {"type": "upsample", "scale_factor": 2, "mode": "nearest", "align_corners": False}),
    ([1, 3, 3], {"type": "upsample", "scale_factor": 2, "mode": "linear"}),
    ([1, 3, 3], {"type": "upsample", "scale_factor": [1.5, 0.4], "mode": "area"}),
    ([1, 3, 3], {"type": "upsample", "scale_factor": 0.3}),
    ([1, 4], {"type": "adaptive_avgpool", "output_size": [None]}),
    ([1, 4, 4], {"type": "adaptive_maxpool", "output_size": [None, 9]}),
]


@pytest.mark.parametrize(("shape", "lay"), EDGES, ids=[f"{e[1]['type']}{i}" for i, e in enumerate(EDGES)])
def test_edge_cases(shape, lay):
    check(one_layer(shape, lay), torch.zeros(2, *shape), lay["type"])


UNPOOL_EDGES = [
    ([1, 7, 9], {"kernel_size": 2, "ceil_mode": True}),
    ([1, 5], {"kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True}),
    ([1, 11], {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}),
    (
        [1, 6, 5],
        {"kernel_size": [3, 2], "stride": [1, 3], "padding": [1, 1], "dilation": [2, 1], "ceil_mode": True},
    ),
    ([1, 1], {"kernel_size": 2, "padding": 1, "dilation": 2}),  # a window of padding only
    ([1, 4, 4], {"kernel_size": [1, 2], "padding": [0, 1], "dilation": [1, 5], "stride": [1, 1]}),
]


@pytest.mark.parametrize(("shape", "pool"), UNPOOL_EDGES)
def test_unpool_edge_cases(shape, pool):
    spec = {
        "input": shape,
        "layers": [{"type": "maxpool", "name": "pool", **pool}, {"type": "unpool", "indices": "pool"}],
    }
    check_unpool(spec, torch.randn(2, *shape), "unpool")


def test_maxpool_1d_paths_agree():
    """max_pool1d has a fast path (no grad) and an indices path; netspec's rule must fit both."""
    for lay, length in [
        ({"kernel_size": 3, "padding": 1, "dilation": 2, "ceil_mode": True}, 3),
        ({"kernel_size": 2, "stride": 3, "padding": 1, "ceil_mode": True}, 4),
    ]:
        spec = one_layer([1, length], {"type": "maxpool", **lay})
        for x in (torch.zeros(1, 1, length), torch.zeros(1, 1, length, requires_grad=True)):
            check(spec, x, "maxpool 1-D path")


@examples(150)
@given(data=st.data(), length=st.integers(1, 12), n=batches)
def test_maxpool_1d_grad_path(data, length, n):
    """The same 1-D max pools with an input that requires grad (the path used when training)."""
    lay = data.draw(S.maxpool_layers([2, length]))
    check(one_layer([2, length], lay), torch.zeros(n, 2, length, requires_grad=True), "maxpool 1-D grad")


# ---------------------------------------------------------------------------------------------
# Unpool: shapes, and every value back where the pool took it from


def _window_in_padding(pool: dict, x: Tensor) -> bool:
    """Does some window of this (torch-accepted) pool cover only padding? torch gives -inf there."""
    try:
        with quiet():
            pooled = ref_maxpool(pool, x)
    except TORCH_ERRORS:
        return False
    return bool(torch.isneginf(pooled).any())


def check_unpool(spec: dict, x: Tensor, label: str):
    """check(), except where a pool window covers only padding: its -inf comes with an index
    that is past the input (torch's unpool raises) or at a wrong place (torch's unpool puts the
    -inf there silently); netspec refuses the unpool in both cases."""
    if _window_in_padding(spec["layers"][0], x):
        event(f"{label}: a pool window covers only padding")
        with pytest.raises(netspec.SpecError, match="covers only padding"):
            netspec.load(spec)
        return None
    return check(spec, x, label)


@examples(500)
@given(data=st.data(), shape=S.tiny_or_small_shapes(), n=batches, relu=st.booleans())
def test_unpool(data, shape, n, relu):
    pool = data.draw(S.maxpool_layers(shape, name="pool"), label="pool")
    layers = [pool, {"type": "relu"}] if relu else [pool]
    unpool = {"type": "unpool", "indices": "pool"}
    spec = {"input": shape, "layers": [*layers, unpool]}
    x = torch.randn(n, *shape)
    result = check_unpool(spec, x, "unpool")
    if result is None:
        return
    _, actual, expected = result
    # F.max_unpool (the reference) equals scattering the pooled values into zeros shaped like
    # the pool's input, at the pool's indices — and netspec's module must give exactly that.
    pooled, idx = ref_maxpool(pool, x, return_indices=True)
    values = pooled.relu() if relu else pooled
    scattered = torch.zeros(n, shape[0], math.prod(shape[1:])).scatter_(2, idx.flatten(2), values.flatten(2))
    scattered = scattered.view(n, *shape)
    assert torch.equal(expected[-1], scattered)
    assert torch.equal(actual, scattered)
    # Each value sits where the pool took it from: wherever the output is set, it equals x.
    nonzero = scattered != 0
    assert torch.equal(scattered[nonzero], (x.relu() if relu else x)[nonzero])


@examples(60)
@given(data=st.data(), shape=S.tiny_or_small_shapes(), same=st.booleans())
def test_unpool_output_size(data, shape, same):
    """output_size equal to the pool's input is accepted; any other size is refused (netspec's rule)."""
    pool = data.draw(S.maxpool_layers(shape, name="pool"))
    spatial = shape[1:]
    size = list(spatial) if same else data.draw(S.other_sizes(spatial))
    spec = {"input": shape, "layers": [pool, {"type": "unpool", "indices": "pool", "output_size": size}]}
    if same:
        check_unpool(spec, torch.randn(1, *shape), "unpool output_size")
        return
    event("unpool output_size: differs from the pool's input")
    with pytest.raises(netspec.SpecError):
        netspec.load(spec)


# ---------------------------------------------------------------------------------------------
# Chains and merges: shapes threaded through several layers


@st.composite
def chains(draw):
    """2–4 rank-keeping layers, each drawn for the shape torch actually produced before it.

    A layer that torch refuses is redrawn a few times, so most chains run to their end;
    a refused one that is kept ends the chain (netspec must then point at that layer).
    """
    shape = draw(S.input_shapes())
    x = torch.zeros(1, *shape)
    layers: list[dict] = []
    for _ in range(draw(st.integers(2, 4))):
        current = [int(s) for s in x.shape[1:]]
        if math.prod(current) > 400:
            break
        for attempt in range(4):
            candidate = draw(st.sampled_from(S.CHAINABLE).flatmap(lambda make, c=current: make(c)))
            try:
                with quiet():
                    out = reference_forward({"input": current, "layers": [candidate]}, x)[-1]
            except (*TORCH_ERRORS, Intentional):
                if attempt == 3 or draw(st.integers(0, 5)) == 0:
                    return {"input": shape, "layers": [*layers, candidate]}
                continue
            if 0 in out.shape:
                continue
            layers.append(candidate)
            x = out
            break
    assume(layers)
    return {"input": shape, "layers": layers}


@examples(300)
@given(spec=chains(), n=batches)
def test_chains(spec, n):
    check(spec, torch.zeros(n, *spec["input"]), f"chain of {len(spec['layers'])}")


@st.composite
def merges(draw):
    """Branches: 1×1 conv → adaptive pool (→ flatten); then add, mul or concat of them."""
    shape = draw(S.input_shapes())
    rank = len(shape) - 1
    kind = draw(st.sampled_from(["add", "mul", "concat"]))
    layers, names = [], []
    for i in range(draw(st.integers(2, 3))):
        channels = draw(st.sampled_from([1, 2, 3]))
        sizes = [draw(st.sampled_from([1, 2, 3])) for _ in range(rank)]
        layers.append(
            {"type": "conv", "name": f"c{i}", "from": "input", "out_channels": channels, "kernel_size": 1}
        )
        layers.append({"type": "adaptive_avgpool", "name": f"a{i}", "output_size": sizes})
        names.append(f"a{i}")
        if kind == "concat" and draw(st.integers(0, 5)) == 0:
            layers.append({"type": "flatten", "name": f"f{i}", "start_dim": 1})
            names[-1] = f"f{i}"
    merge = {"type": kind, "from": names}
    if kind == "concat":
        merge["dim"] = draw(st.integers(-rank - 2, rank + 1))
    return {"input": shape, "layers": [*layers, merge]}


@examples(200)
@given(spec=merges(), n=batches)
def test_merges(spec, n):
    check(spec, torch.zeros(n, *spec["input"]), spec["layers"][-1]["type"])


# ---------------------------------------------------------------------------------------------
# Where netspec refuses what torch accepts, on purpose


def _torch_accepts(fn) -> bool:
    try:
        fn()
    except TORCH_ERRORS:
        return False
    return True


def test_intentional_divisor_override_on_1d_avgpool():
    """AvgPool1d has no divisor_override; netspec refuses it rather than ignore it."""
    with pytest.raises(TypeError):
        nn.AvgPool1d(2, divisor_override=2)
    with pytest.raises(netspec.SpecError, match="divisor_override"):
        netspec.load(one_layer([2, 8], {"type": "avgpool", "kernel_size": 2, "divisor_override": 2}))


def test_intentional_negative_divisor_override():
    """torch divides by a negative divisor silently; netspec's params refuse it (and 0)."""
    assert _torch_accepts(lambda: nn.AvgPool2d(2, divisor_override=-2)(torch.ones(1, 1, 4, 4)))
    for value in (-2, 0):
        with pytest.raises(netspec.SpecError, match="divisor_override"):
            lay = {"type": "avgpool", "kernel_size": 2, "divisor_override": value}
            netspec.load(one_layer([1, 4, 4], lay))


def test_intentional_instancenorm_on_single_element():
    """torch refuses this unless it uses running stats in eval mode; netspec refuses it always."""
    x = torch.zeros(2, 3, 1, 1)
    assert not _torch_accepts(lambda: nn.InstanceNorm2d(3)(x))
    assert not _torch_accepts(lambda: nn.InstanceNorm2d(3).eval()(x))
    assert _torch_accepts(lambda: nn.InstanceNorm2d(3, track_running_stats=True).eval()(x))
    with pytest.raises(netspec.SpecError, match="single value"):
        netspec.load(one_layer([3, 1, 1], {"type": "instancenorm", "track_running_stats": True}))


def test_intentional_unpool_other_output_size():
    """torch accepts an output_size within default ± stride, misplacing the values; netspec refuses."""
    x = torch.randn(1, 1, 7)
    pooled, idx = F.max_pool1d(x, 2, return_indices=True)
    assert _torch_accepts(lambda: F.max_unpool1d(pooled, idx, 2, output_size=[6]))
    spec = {
        "input": [1, 7],
        "layers": [
            {"type": "maxpool", "name": "pool", "kernel_size": 2},
            {"type": "unpool", "indices": "pool", "output_size": 6},
        ],
    }
    with pytest.raises(netspec.SpecError, match="output_size"):
        netspec.load(spec)


def test_dilated_pool_unpool_needs_window_span():
    """MaxUnpool with the raw kernel of a dilated pool refuses its own input size; netspec does not."""
    x = torch.randn(1, 1, 11)
    pooled, idx = F.max_pool1d(x, 3, stride=2, padding=1, dilation=3, return_indices=True)
    assert not _torch_accepts(lambda: F.max_unpool1d(pooled, idx, 3, 2, 1, output_size=[11]))
    spec = {
        "input": [1, 11],
        "layers": [
            {"type": "maxpool", "name": "pool", "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 3},
            {"type": "unpool", "indices": "pool"},
        ],
    }
    check(spec, x, "dilated unpool")


def test_pool_window_in_padding_misplaces_silently():
    """When the rows that reach past the input are skipped, torch's unpool writes -inf at a
    wrong position without an error; netspec refuses that unpool."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    geometry = dict(kernel_size=(1, 2), stride=(2, 1), padding=(0, 1), dilation=(1, 5))
    pooled, idx = F.max_pool2d(x, return_indices=True, **geometry)
    assert torch.isneginf(pooled).all()
    out = F.max_unpool2d(pooled, idx, (1, 6), (2, 1), (0, 1), output_size=[4, 4])
    assert torch.isneginf(out).sum() == 2  # -inf now sits where x had real values
    pool = {"type": "maxpool", "name": "pool", **{k: list(v) for k, v in geometry.items()}}
    spec = {"input": [1, 4, 4], "layers": [pool, {"type": "unpool", "indices": "pool"}]}
    netspec.load({"input": [1, 4, 4], "layers": [pool]})  # the pool alone: torch accepts it too
    with pytest.raises(netspec.SpecError, match="covers only padding"):
        netspec.load(spec)


def _torchvision_stochastic_depth(input, p, mode, training=True):
    """torchvision 0.28's ``torchvision.ops.stochastic_depth``, verbatim less its argument checks
    and API-usage logging (torchvision is not importable here)."""
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    if mode == "row":  # noqa: SIM108 (torchvision's code as written)
        size = [input.shape[0]] + [1] * (input.ndim - 1)
    else:
        size = [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


@pytest.mark.parametrize(
    ("p", "mode"), [(0.0, "row"), (0.3, "row"), (0.5, "batch"), (1.0, "row"), (1.0, "batch")]
)
def test_stochastic_depth_draws_what_torchvision_draws(p, mode):
    model = netspec.build(
        {"input": [3, 4, 4], "layers": [{"type": "stochastic_depth", "p": p, "mode": mode}]}
    )
    x = torch.randn(64, 3, 4, 4)
    for seed in range(3):
        torch.manual_seed(seed)
        ours = model.train()(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours, _torchvision_stochastic_depth(x, p, mode), rtol=0, atol=0)
    assert torch.equal(model.eval()(x), x)


def test_channel_shuffle_and_slice_give_torch_values():
    x = torch.randn(2, 12, 3, 5)
    shuffle = netspec.build({"input": [12, 3, 5], "layers": [{"type": "channel_shuffle", "groups": 3}]})
    assert torch.equal(shuffle(x), nn.ChannelShuffle(3)(x))
    cut = netspec.build(
        {"input": [12, 3, 5], "layers": [{"type": "slice", "start": 2, "stop": -1, "step": 3}]}
    )
    assert torch.equal(cut(x), x[:, 2:-1:3])
    spatial = netspec.build({"input": [12, 3, 5], "layers": [{"type": "slice", "dim": -1, "start": -4}]})
    assert torch.equal(spatial(x), x[..., -4:])
