"""specs/examples/: the worked examples of conv/pool tutorials, each checked against torch.

Every example's shapes (and its values, where the tutorial fixes them) must be what the
equivalent hand-written torch module gives, and its ``--explain`` must show the formula.
"""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from torch import nn

import netspec
from netspec.cli import main

EXAMPLES = REPO / "specs/examples"
GRID = torch.arange(25.0).reshape(1, 1, 5, 5)
ARANGE16 = torch.arange(16.0).reshape(1, 1, 4, 4)
X2 = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])

# name: (torch module, input, expected values or None, a line --explain must show)
CASES = {
    "conv2d_3x32x32": (
        lambda: nn.Conv2d(3, 6, 3),
        torch.randn(2, 3, 32, 32),
        None,
        "H_out = W_out = ⌊(32 + 2·0 − 1·(3 − 1) − 1) / 1⌋ + 1 = ⌊29 / 1⌋ + 1 = 30",
    ),
    "maxpool_5x5": (
        lambda: nn.MaxPool2d(3),
        GRID,
        [[[[12.0]]]],
        "H_out = W_out = ⌊(5 + 2·0 − 1·(3 − 1) − 1) / 3⌋ + 1 = ⌊2 / 3⌋ + 1 = 1",
    ),
    "maxpool_5x5_ceil": (
        lambda: nn.MaxPool2d(3, ceil_mode=True),
        GRID,
        [[[[12.0, 14.0], [22.0, 24.0]]]],
        "the 2nd window starts at (2 − 1)·3 = 3 < 5 + 0: it overlaps the input, kept → 2",
    ),
    "maxpool_2x3_arange16": (
        lambda: nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1)),
        ARANGE16,
        [[[[5.0, 7.0], [13.0, 15.0]]]],
        "W_out = ⌊(4 + 2·1 − 1·(3 − 1) − 1) / 3⌋ + 1 = ⌊3 / 3⌋ + 1 = 2",
    ),
    "conv_tconv_16_6_16": (
        lambda: nn.Sequential(nn.Conv2d(3, 10, 5, 2), nn.ConvTranspose2d(10, 3, 5, 2, output_padding=1)),
        torch.randn(2, 3, 16, 16),
        None,
        "output_padding ∈ [0, 1] (< stride or < dilation) reaches output_size ∈ [15, 16]",
    ),
    "tconv_2x2_to_3x3": (
        lambda: nn.ConvTranspose2d(1, 1, 2, bias=False),
        X2,
        [[[[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]]]],
        "H_out = W_out = (2 − 1)·1 − 2·0 + 1·(2 − 1) + 0 + 1 = 3",
    ),
    "tconv_2x2_to_4x4": (
        lambda: nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False),
        X2,
        [[[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 3.0], [0.0, 2.0, 0.0, 3.0], [4.0, 6.0, 6.0, 9.0]]]],
        "H_out = W_out = (2 − 1)·2 − 2·0 + 1·(2 − 1) + 0 + 1 = 4",
    ),
    "conv1x1": (
        lambda: nn.Conv2d(3, 2, 1, bias=False),
        torch.randn(1, 3, 3, 3),
        None,
        "weight [out_channels, in_channels/groups, kH, kW] = [2, 3/1, 1, 1] = [2, 3, 1, 1]",
    ),
    "grouped_conv": (
        lambda: nn.Conv2d(4, 6, 3, groups=2),
        torch.randn(2, 4, 8, 8),
        None,
        "weight [out_channels, in_channels/groups, kH, kW] = [6, 4/2, 3, 3] = [6, 2, 3, 3]",
    ),
}


def test_every_example_file_has_a_case():
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_matches_torch_and_explains_its_formula(name, capsys):
    make, x, values, formula = CASES[name]
    spec = netspec.load(str(EXAMPLES / f"{name}.yaml"))
    model = spec.build().eval()
    reference = make().eval()
    params = list(model.parameters())
    assert [tuple(p.shape) for p in params] == [tuple(p.shape) for p in reference.parameters()]
    torch.manual_seed(0)
    with torch.no_grad():
        for mine, theirs in zip(params, reference.parameters(), strict=True):
            theirs.copy_(
                torch.randn_like(theirs) if values is None else torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
            )
            mine.copy_(theirs)
        got, want = model(x), reference(x)
    assert got.shape == want.shape and tuple(got.shape[1:]) == spec.output_shapes()[0]
    assert torch.allclose(got, want, atol=1e-5)
    if values is not None:
        assert got.tolist() == values
    assert main(["build", str(EXAMPLES / f"{name}.yaml"), "--explain"]) == 0
    assert formula in capsys.readouterr().out
