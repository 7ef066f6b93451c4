"""Unit tests of the pure functions in netspec.shapes, on the brief's edge cases.

Every expected value is computed by torch inside the test; none is copied from netspec.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from netspec import shapes
from netspec.errors import ShapeError

torch.set_num_threads(1)


def zeros(length: int) -> torch.Tensor:
    return torch.zeros(1, 1, length)


def torch_conv(size, kernel, stride=1, padding=0, dilation=1) -> int:
    weight = torch.zeros(1, 1, kernel)
    return F.conv1d(zeros(size), weight, stride=stride, padding=padding, dilation=dilation).shape[-1]


def torch_pool(size, kernel, stride, padding=0, dilation=1, ceil_mode=False) -> int:
    return F.max_pool1d(zeros(size), kernel, stride, padding, dilation, ceil_mode).shape[-1]


# --- conv -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [
        (5, 5, 1, 0, 1),  # kernel exactly the input
        (3, 5, 1, 1, 1),  # kernel exactly the padded input
        (10, 2, 5, 0, 1),  # stride larger than the kernel
        (9, 3, 2, 1, 3),  # dilation
        (7, 3, 3, 4, 2),  # padding beyond k/2 (fine for convs)
        (1, 1, 4, 0, 1),
    ],
)
def test_conv_output_size(size, kernel, stride, padding, dilation):
    expected = torch_conv(size, kernel, stride, padding, dilation)
    assert shapes.conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_conv_output_size_sweep():
    for size, k, s, p, d in itertools.product(range(1, 8), range(1, 4), range(1, 4), range(3), range(1, 3)):
        if size + 2 * p >= d * (k - 1) + 1:  # torch refuses the rest
            assert shapes.conv_output_size(size, k, s, p, d) == torch_conv(size, k, s, p, d)


@pytest.mark.parametrize(
    ("kernel", "dilation"), [(1, 1), (2, 1), (4, 1), (3, 2), (2, 3), (4, 3), (5, 1), (6, 2)]
)
def test_same_padding_matches_torch(kernel, dilation):
    """Even totals split with the extra element on the right, exactly like padding='same'."""
    gen = torch.Generator().manual_seed(kernel * 10 + dilation)
    x = torch.randn(1, 1, 9, generator=gen)
    w = torch.randn(1, 1, kernel, generator=gen)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Using padding='same'", UserWarning)
        expected = F.conv1d(x, w, padding="same", dilation=dilation)
    left, right = shapes.same_padding(kernel, dilation)
    assert torch.allclose(F.conv1d(F.pad(x, (left, right)), w, dilation=dilation), expected)


def test_effective_kernel_is_the_span_torch_consumes():
    size = 20
    for kernel, dilation in itertools.product(range(1, 5), range(1, 4)):
        consumed = size - torch_conv(size, kernel, 1, 0, dilation) + 1
        assert shapes.effective_kernel(kernel, dilation) == consumed


# --- pooling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [
        (5, 3, 3, 1, 1),  # ceil would start a window at 6 = in + p: dropped
        (6, 5, 4, 2, 1),  # ceil would start a window at 8 = in + p: dropped
        (2, 1, 2, 0, 1),  # no padding: a window starting at the input's end is dropped too
        (3, 2, 4, 1, 2),  # dilated
    ],
)
def test_ceil_mode_drops_a_last_window_in_the_right_padding(size, kernel, stride, padding, dilation):
    expected = torch_pool(size, kernel, stride, padding, dilation, ceil_mode=True)
    # The plain ceil formula over-counts here: these really are the last-window cases.
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    assert math.ceil(span / stride) + 1 == expected + 1
    assert shapes.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode=True) == expected


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [(7, 2, 2, 0), (6, 3, 2, 1), (4, 3, 3, 0), (1, 1, 2, 0)],
)
def test_ceil_mode_keeps_a_last_window_that_reaches_the_input(size, kernel, stride, padding):
    floor = torch_pool(size, kernel, stride, padding)
    ceil = torch_pool(size, kernel, stride, padding, ceil_mode=True)
    assert shapes.pool_output_size(size, kernel, stride, padding) == floor
    assert shapes.pool_output_size(size, kernel, stride, padding, ceil_mode=True) == ceil
    avg = F.avg_pool1d(zeros(size), kernel, stride, padding, ceil_mode=True).shape[-1]
    assert shapes.pool_output_size(size, kernel, stride, padding, ceil_mode=True) == avg


def test_pool_output_size_sweep():
    """Every small 1-D max pool torch accepts (padding ≤ k//2), floor and ceil mode."""
    grid = itertools.product(range(1, 9), range(1, 5), range(1, 5), range(1, 4), (False, True))
    for size, k, s, d, ceil in grid:
        for p in range(k // 2 + 1):
            try:
                expected = torch_pool(size, k, s, p, d, ceil)
            except RuntimeError:
                assert shapes.pool_output_size(size, k, s, p, d, ceil) < 1
                continue
            assert shapes.pool_output_size(size, k, s, p, d, ceil) == expected, (size, k, s, p, d, ceil)


def test_pool_window_in_padding_sweep():
    """A max pool gives -inf exactly for the windows that cover only padding."""
    for size, k, s, d in itertools.product(range(1, 6), range(1, 4), range(1, 4), range(1, 6)):
        for p, ceil in itertools.product(range(k // 2 + 1), (False, True)):
            x = torch.arange(1.0, size + 1).view(1, 1, size)
            try:
                pooled = F.max_pool1d(x, k, s, p, d, ceil)
            except RuntimeError:
                continue
            padding_only = torch.isneginf(pooled).flatten().nonzero().flatten().tolist()
            found = shapes.pool_window_in_padding(size, k, s, p, d, pooled.shape[-1])
            assert found == (padding_only[0] if padding_only else None), (size, k, s, p, d, ceil)


def _windows_in_padding_one_by_one(size, kernel, stride, padding, dilation, count):
    """The definition, window by window: the reference the closed form must equal."""
    for j in range(count):
        start = j * stride - padding
        first = 0 if start >= 0 else -(start // dilation)  # first tap at a position ≥ 0
        if first >= kernel or start + first * dilation >= size:
            return j
    return None


def test_pool_window_in_padding_equals_the_window_by_window_definition():
    """Also outside PyTorch's limits (padding > k/2), so the closed form is exact everywhere."""
    grid = itertools.product(range(1, 9), range(1, 6), range(1, 5), range(6), range(1, 6), range(10))
    for case in grid:
        assert shapes.pool_window_in_padding(*case) == _windows_in_padding_one_by_one(*case), case


def test_pool_window_in_padding_is_constant_time():
    """One loop per output window took 87 s for an input of 10⁹ (maxpool + unpool)."""
    start = time.perf_counter()
    assert shapes.pool_window_in_padding(10**9, 2, 1, 1, 1, 10**9 + 1) is None
    assert shapes.pool_window_in_padding(10**18, 3, 2, 1, 10**9, 10**17) is None
    assert time.perf_counter() - start < 0.1


# --- transposed conv and unpool ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "output_padding", "dilation"),
    [
        (4, 3, 2, 1, 1, 1),
        (4, 3, 2, 0, 2, 3),  # output_padding ≥ stride is fine when < dilation
        (3, 1, 3, 1, 2, 1),
        (1, 2, 1, 0, 0, 4),
        (5, 4, 3, 2, 0, 2),
    ],
)
def test_tconv_output_size(size, kernel, stride, padding, output_padding, dilation):
    weight = torch.zeros(1, 1, kernel)
    expected = F.conv_transpose1d(
        zeros(size), weight, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
    ).shape[-1]
    assert shapes.tconv_output_size(size, kernel, stride, padding, output_padding, dilation) == expected


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"), [(3, 2, 2, 0), (4, 3, 2, 1), (1, 5, 3, 2), (2, 1, 4, 0)]
)
def test_unpool_default_size(size, kernel, stride, padding):
    indices = torch.zeros(1, 1, size, dtype=torch.long)
    expected = F.max_unpool1d(zeros(size), indices, kernel, stride, padding).shape[-1]
    assert shapes.unpool_default_size(size, kernel, stride, padding) == expected


def test_unpool_default_misses_the_input_of_a_ceil_mode_pool():
    """Why netspec restores the pool's input size itself: torch's default is off after ceil_mode."""
    x = zeros(7)
    pooled, indices = F.max_pool1d(x, 2, 2, ceil_mode=True, return_indices=True)
    default = F.max_unpool1d(pooled, indices, 2, 2).shape[-1]
    assert default != x.shape[-1]
    assert shapes.unpool_default_size(pooled.shape[-1], 2, 2) == default


# --- upsample ---------------------------------------------------------------------------------


def test_interpolate_88_times_120_over_88_is_119():
    expected = F.interpolate(zeros(88), scale_factor=120 / 88).shape[-1]
    assert expected == 119  # the brief's example: floor in double precision, not 120
    assert shapes.interpolate_size(88, 120 / 88) == expected


@pytest.mark.parametrize("scale", [0.1, 1 / 3, 0.5, 2.2, 1.3636363636363635, 2.9999999999999996, 3])
def test_interpolate_size_scales(scale):
    for size in (1, 7, 10, 33):
        if math.floor(size * scale) < 1:
            continue  # torch refuses an empty output
        expected = F.interpolate(zeros(size), scale_factor=scale).shape[-1]
        assert shapes.interpolate_size(size, scale) == expected


def test_interpolate_size_target_over_size_sweep():
    """scale = target / size, whose product often rounds just below the target."""
    for size in range(1, 41):
        for target in range(1, 2 * size + 1):
            expected = F.interpolate(zeros(size), scale_factor=target / size).shape[-1]
            assert shapes.interpolate_size(size, target / size) == expected, (size, target)


# --- helpers ----------------------------------------------------------------------------------


def test_expand():
    assert shapes.expand(3, 2, "kernel_size") == (3, 3)
    assert shapes.expand([1, 2, 3], 3, "stride") == (1, 2, 3)
    with pytest.raises(ShapeError) as info:
        shapes.expand([1, 2], 3, "padding")
    assert info.value.field == "padding"
    assert info.value.hint


def test_describe():
    assert shapes.describe((1, 28, 28)) == "[1, 28, 28]"
