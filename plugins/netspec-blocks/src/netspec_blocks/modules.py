"""The nn.Modules behind the block layer types.

Only the builders in :mod:`netspec_blocks.layers` import this module, and only when a network
is built: importing torch takes seconds, and loading or validating a spec never needs it.

Every module is TorchScript-, ``torch.export``- and ONNX-friendly (no starred lists, no
optional submodules), and its submodules have readable names, so ``state_dict`` keys read
``res1.conv1.weight``, ``res1.shortcut.conv.weight``, ``se.fc1.bias``, ``ir.depthwise.bn.weight``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class ConvBN(nn.Sequential):
    """Convolution without bias (the batch norm has one), batch norm, and optionally ReLU6.

    Children: ``conv``, ``bn`` and, when ``relu6``, ``act``.
    """

    def __init__(
        self,
        rank: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        relu6: bool = False,
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=_CONV[rank](
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            bn=_BATCHNORM[rank](out_channels),
        )
        if relu6:
            layers["act"] = nn.ReLU6()
        super().__init__(layers)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3×3 convolutions and a shortcut.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; the shortcut is the identity,
    or a 1×1 convolution with the block's stride plus batch norm when the channels or the
    stride change.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ConvBN(2, in_channels, out_channels, 1, stride=stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): rescale each channel by a learned gate.

    ``x · sigmoid(fc2(relu(fc1(mean over the spatial dims of x))))``, the gate broadcast
    over the spatial dims. Works for 1, 2 or 3 spatial dims.
    """

    def __init__(self, rank: int, channels: int, hidden: int):
        super().__init__()
        self.rank = rank
        self.dims = list(range(2, 2 + rank))
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=self.dims)))))
        for _ in range(self.rank):  # [N, C] → [N, C, 1, …]
            gate = gate.unsqueeze(-1)
        return x * gate

    def extra_repr(self) -> str:
        return f"rank={self.rank}"


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual (Sandler et al. 2018), 1-D/2-D/3-D by ``rank``.

    1×1 expand to ``in_channels · expansion`` (skipped when expansion is 1) + BN + ReLU6,
    3×3 depthwise with the stride + BN + ReLU6, 1×1 linear projection + BN; the input is
    added back when the stride is 1 and the channels are unchanged.
    """

    def __init__(self, rank: int, in_channels: int, out_channels: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        if expansion != 1:
            self.expand: nn.Module = ConvBN(rank, in_channels, hidden, 1, relu6=True)
        else:
            self.expand = nn.Identity()
        self.depthwise = ConvBN(rank, hidden, hidden, 3, stride=stride, groups=hidden, relu6=True)
        self.project = ConvBN(rank, hidden, out_channels, 1)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if self.use_residual:
            return x + out
        return out

    def extra_repr(self) -> str:
        return f"use_residual={self.use_residual}"
