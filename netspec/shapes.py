"""Shape arithmetic: pure functions, one formula each, exactly as PyTorch computes them.

Shapes are per-sample (the batch dimension is implicit): ``(C, H, W)`` for an image.
Layer rules call these per spatial dimension; nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from netspec.errors import ShapeError

Shape = tuple[int, ...]

SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


# Per-sample limits every shape obeys, the input's and every layer's output alike.
MAX_RANK = 8  # PyTorch's element-wise kernels stop at 25 dims; conv/pool/norm take ≤ 3 spatial
# A tensor's bytes must fit in int64 ("Storage size calculation overflowed"): 2^48 elements per
# sample leaves room for a batch of 4096 in float64 (2^48 · 2^12 · 8 bytes = 2^63).
MAX_NUMEL = 2**48


def size_limit_problem(shape: Sequence[int]) -> tuple[str, str] | None:
    """(message, hint) when a per-sample shape is beyond what a tensor can be, else None.

    Checked on the input and on every layer's output before anything is built, so a huge
    size is a located error instead of an overflow inside torch at build or forward time.
    """
    if len(shape) > MAX_RANK:
        return (
            f"shape has {len(shape)} dimensions; netspec supports at most {MAX_RANK} per sample",
            "reshape or flatten to fewer dimensions",
        )
    numel = math.prod(shape)
    if numel > MAX_NUMEL:
        return (
            f"shape {describe(shape)} has {numel:,} elements per sample, more than netspec's limit "
            f"of 2^48 (a batch of such tensors overflows PyTorch's 64-bit storage size)",
            "use smaller sizes",
        )
    return None


def check_size(shape: Sequence[int], what: str) -> None:
    """Raise ShapeError when a tensor a layer makes inside itself (``what``) is beyond the limits."""
    problem = size_limit_problem(shape)
    if problem is not None:
        raise ShapeError(f"{what}: {problem[0]}", hint=problem[1])


def describe(shape: Sequence[int]) -> str:
    """``(1, 28, 28)`` → ``[1, 28, 28]``: the way shapes are written in a spec."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def expand(value: int | Sequence[int], rank: int, field: str) -> tuple[int, ...]:
    """Normalise an int-or-list parameter to one value per spatial dimension."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise ShapeError(
            f"{field} has {len(value)} values but the input has {rank} spatial "
            f"dimension{'s' if rank > 1 else ''}",
            hint=f"give {field} a single number or {rank} values",
            field=field,
        )
    return tuple(value)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``d·(k−1) + 1``."""
    return dilation * (kernel - 1) + 1


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``floor((in + 2p − d·(k−1) − 1) / s) + 1`` (Conv*d, and pools without ceil_mode)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) padding that keeps the size at stride 1: total ``d·(k−1)``, extra on the right."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Max/avg pool output size, including ceil_mode's last-window rule.

    With ``ceil_mode`` the division rounds up, but a last window that would start inside
    the right padding is dropped: ``if (out − 1)·s ≥ in + p: out −= 1``.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_window_in_padding(
    size: int, kernel: int, stride: int, padding: int, dilation: int, count: int
) -> int | None:
    """Index of the first of ``count`` pool windows whose every tap lies in the padding, else None.

    Window ``j`` taps ``j·s − p + i·d`` for ``i < k``. A max pool gives ``-inf`` there, with an
    index that points at a wrong position or past the input (so max unpooling fails or misplaces).

    Solved per case instead of trying every window (an input of 10⁹ would take minutes):
    windows starting at or after 0 miss the input once ``j·s − p ≥ size``; windows starting
    in the left padding first reach position ``(j·s − p) mod d`` ≥ 0, which repeats every
    ``d / gcd(s, d)`` windows, so at most ``min(p/s, d)`` of them need a look.
    """
    if count <= 0:
        return None
    if padding > (kernel - 1) * dilation:  # window 0 ends before position 0
        return 0
    in_left_padding = -(-padding // stride)  # windows with j·s < p
    if size < dilation:  # only then can a window straddle the input without a tap in it
        period = dilation // math.gcd(stride, dilation)
        for j in range(min(in_left_padding, count, period)):
            if (j * stride - padding) % dilation >= size:
                return j
    past_input = -(-(size + padding) // stride)  # first j with j·s − p ≥ size
    first = max(past_input, in_left_padding)
    return first if first < count else None


def tconv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """``(in − 1)·s − 2p + d·(k−1) + output_padding + 1`` (ConvTranspose*d)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def unpool_default_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """MaxUnpool's default output size: ``(in − 1)·s + k − 2p``."""
    return (size - 1) * stride + kernel - 2 * padding


def interpolate_size(size: int, scale: float) -> int:
    """``floor(in · scale)`` in double precision, as ``F.interpolate`` does (88·(120/88) → 119)."""
    return math.floor(float(size) * float(scale))
