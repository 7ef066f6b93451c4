"""Parameter counts from modules built on the meta device: exact, and nothing allocated."""

from __future__ import annotations

from netspec.spec import Spec


def parameter_counts(spec: Spec) -> dict[str, int]:
    """Number of parameters of every layer, by name, without allocating any."""
    import torch

    from netspec.builder import build

    with torch.device("meta"):
        model = build(spec)
    return {
        layer.name: sum(p.numel() for p in model.get_submodule(layer.name).parameters())
        for layer in spec.layers
    }
