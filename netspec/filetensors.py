"""Tensors read from a user's file (``torch.load(weights_only=True)``) come in any layout and on
any device: sparse, quantized, nested or meta tensors load as readily as dense ones. netspec
computes with dense CPU tensors, so anything else is named as the file's problem, not met as an
internal error in the first operation on it."""

from __future__ import annotations

from typing import Any


def layout_problem(tensor: Any) -> str | None:
    """What makes ``tensor`` unusable as data or weights, or None for a dense CPU tensor."""
    import torch

    if tensor.is_meta or tensor.device.type != "cpu":
        return f"a tensor on the {tensor.device.type} device, which holds no values"
    if tensor.is_nested:
        return "a nested tensor"
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor; save t.to_dense()"
    if tensor.is_quantized:
        return "a quantized tensor; save t.dequantize()"
    return None
