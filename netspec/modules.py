"""The few nn.Modules netspec needs that torch.nn lacks; all TorchScript- and export-friendly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GlobalPool(nn.Module):
    """Mean or max over every spatial dimension."""

    def __init__(self, kind: str, rank: int, keepdims: bool):
        super().__init__()
        self.kind = kind
        self.dims = list(range(2, 2 + rank))
        self.keepdims = keepdims

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "max":
            return x.amax(dim=self.dims, keepdim=self.keepdims)
        return x.mean(dim=self.dims, keepdim=self.keepdims)

    def extra_repr(self) -> str:
        return f"{self.kind}, keepdims={self.keepdims}"


class MaxUnpool(nn.Module):
    """Max unpooling to a fixed output size (the pool's input size), given its indices."""

    def __init__(self, kernel_size: list[int], stride: list[int], padding: list[int], output_size: list[int]):
        super().__init__()
        self.rank = len(output_size)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.output_size = output_size

    def forward(self, x: Tensor, indices: Tensor) -> Tensor:
        if self.rank == 1:
            return F.max_unpool1d(x, indices, self.kernel_size, self.stride, self.padding, self.output_size)
        if self.rank == 2:
            return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, self.output_size)
        return F.max_unpool3d(x, indices, self.kernel_size, self.stride, self.padding, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Add(nn.Module):
    """Element-wise sum of its inputs (broadcasting size-1 dims)."""

    def forward(self, xs: list[Tensor]) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    """Element-wise product of its inputs (broadcasting size-1 dims)."""

    def forward(self, xs: list[Tensor]) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """Concatenation along one dimension (batch dimension included in ``dim``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, xs: list[Tensor]) -> Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Reshape(nn.Module):
    """Reshape each sample, keeping the batch dimension."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        # Concatenation, not [x.shape[0], *self.shape]: TorchScript rejects starred list displays.
        return x.reshape([x.shape[0]] + self.shape)  # noqa: RUF005

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Slice(nn.Module):
    """``x[:, …, start:end:step]`` along one dimension (``dim`` counts the batch)."""

    def __init__(self, dim: int, start: int, end: int | None, step: int):
        super().__init__()
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def forward(self, x: Tensor) -> Tensor:
        index = [slice(None)] * self.dim + [slice(self.start, self.end, self.step)]
        return x[tuple(index)]

    def extra_repr(self) -> str:
        end = "" if self.end is None else self.end
        return f"dim={self.dim}, [{self.start}:{end}:{self.step}]"


class ChannelShuffle(nn.Module):
    """``nn.ChannelShuffle`` as torchvision's ShuffleNetV2 writes it (view, transpose, flatten):
    the same values, and it exports to ONNX."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class StochasticDepth(nn.Module):
    """torchvision's ``StochasticDepth`` (Huang et al., 2016): in training, each sample's
    (``row``) or the whole batch's (``batch``) input is zeroed with probability ``p`` and the
    rest scaled by 1 / (1 - p); drawn exactly as torchvision draws it, so seeded runs agree."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class ChannelsLinear(nn.Linear):
    """``nn.Linear`` applied to the channels at each position: ConvNeXt's channels-last MLP
    (permute, Linear, permute back), with Linear's weight ``[out, in]`` and its keys."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


class ChannelsLayerNorm(nn.LayerNorm):
    """Layer normalisation of the channels at each position (torchvision's ``LayerNorm2d``:
    permute to channels-last, normalise the last dim, permute back)."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class LayerScale(nn.Module):
    """A learnable scale per channel, ``γ · x`` (CaiT, ConvNeXt). Built alone (a plugin test, a
    summary count) it is a module with ``scale``; in a network, ``netspec.builder`` registers γ on
    the enclosing block itself, under the layer's name, and multiplies by it in the graph, as
    torchvision's ``CNBlock.layer_scale`` is a parameter of the block: state_dict, named_parameters,
    functional_call, torch.export and torch.save all name it ``features.1.0.layer_scale``."""

    def __init__(self, channels: int, rank: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels, *[1] * rank), float(init)))

    @classmethod
    def holding(cls, scale: nn.Parameter) -> LayerScale:
        """A module view of a γ a block holds (for tools that look a layer's module up)."""
        view = cls.__new__(cls)
        nn.Module.__init__(view)
        view.scale = scale
        return view

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x

    def extra_repr(self) -> str:
        return f"{self.scale.shape[0]}"


def layer_module(model: nn.Module, name: str) -> nn.Module:
    """The module of layer ``name`` in a built network; for a γ its block holds (``layer_scale``),
    a view of that parameter."""
    parent, _, leaf = name.rpartition(".")
    owner = model.get_submodule(parent)
    if leaf in owner._parameters:
        return LayerScale.holding(owner._parameters[leaf])
    return model.get_submodule(name)
