"""Which layers have no deterministic kernel, so a run can say so instead of crashing.

``torch.use_deterministic_algorithms(True)`` raises in the middle of training when an op has no
deterministic implementation (PyTorch's list: ``help(torch.use_deterministic_algorithms)``).
netspec's default, ``deterministic: warn``, keeps every deterministic kernel and lets these few
run anyway; :func:`nondeterministic_layers` names the layers of a spec that fall in that list,
from the table below, so the user learns it at the start of the run (and can set
``deterministic: true`` to make them errors, or ``false`` for speed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ALL_DEVICES = frozenset({"cpu", "cuda", "mps"})
CUDA = frozenset({"cuda"})
INTERPOLATING = frozenset({"linear", "bilinear", "bicubic", "trilinear"})


@dataclass(frozen=True)
class Nondeterministic:
    """A layer type whose kernel is not deterministic on ``devices`` when ``applies(layer)``."""

    devices: frozenset[str]
    reason: str
    applies: Callable[[Any], bool] = lambda layer: True


def _spatial_rank(layer) -> int:
    return len(layer.input_shapes[0]) - 1 if layer.input_shapes else 0


def _pads(layer) -> bool:
    padding = getattr(layer.params, "padding", 0)
    values = padding if isinstance(padding, list) else [padding]
    return any(v not in (0, "valid") for v in values)  # "same" pads when the kernel > 1


# Built-in layer types only; PyTorch's own warning still names the op of any other layer.
TABLE: dict[str, Nondeterministic] = {
    "unpool": Nondeterministic(ALL_DEVICES, "max unpooling (MaxUnpool) scatters into its output"),
    "adaptive_avgpool": Nondeterministic(
        CUDA,
        "adaptive average pooling backward to sizes other than 1",
        lambda layer: any(s != 1 for s in layer.output_shape[1:]),
    ),
    "adaptive_maxpool": Nondeterministic(
        CUDA,
        "adaptive max pooling backward to sizes other than 1",
        lambda layer: any(s != 1 for s in layer.output_shape[1:]),
    ),
    "avgpool": Nondeterministic(
        CUDA, "3-D average pooling backward", lambda layer: _spatial_rank(layer) == 3
    ),
    **{
        kind: Nondeterministic(
            CUDA,
            "reflect padding backward",
            lambda layer: getattr(layer.params, "padding_mode", "zeros") == "reflect" and _pads(layer),
        )
        for kind in ("conv", "depthwise", "separable")
    },
    "upsample": Nondeterministic(
        CUDA,
        "linear/bilinear/bicubic/trilinear interpolation backward",
        lambda layer: getattr(layer.params, "mode", None) in INTERPOLATING,
    ),
}


def nondeterministic_layers(spec, device: str, heads=()) -> list[str]:
    """Labels (with the reason) of the spec's layers, and the heads' losses, without a deterministic
    kernel on ``device``."""
    found = [
        f"{layer.label}: {entry.reason}"
        for layer in spec.layers
        if (entry := TABLE.get(layer.type)) is not None and device in entry.devices and entry.applies(layer)
    ]
    if device == "cuda":
        shapes = spec.output_shapes()
        for head in heads:
            if "cross_entropy" in head.loss and len(shapes[head.index]) > 1:
                found.append(f"loss {head.loss} on the dense output '{head.output}': nll_loss2d on CUDA")
    return found
