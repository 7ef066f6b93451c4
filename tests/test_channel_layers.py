"""ConvNeXt's pieces: `linear` and `layernorm` over the channels at each position, and
`layer_scale`, a parameter the enclosing block holds (named by the layer's own path)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import netspec

BLOCK = """
input: [6, 5, 7]
blocks:
  unit:
    layers:
      - {type: conv, name: dw, out_channels: =in_channels, kernel_size: 3, padding: 1, groups: =in_channels}
      - {type: layernorm, name: norm, over: channels, eps: 0.000001}
      - {type: linear, name: up, out_features: =4 * in_channels, over: channels}
      - {type: gelu, name: act}
      - {type: linear, name: down, out_features: =in_channels, over: channels}
      - {type: layer_scale, name: gamma, init: 0.5}
      - {type: add, name: add, from: [gamma, input]}
layers:
  - {type: unit, name: first}
  - {type: unit, name: second}
  - {type: layer_scale, name: top}
"""


def _unit(block, x: torch.Tensor) -> torch.Tensor:
    """One unit as ConvNeXt's CNBlock computes it: permute to channels-last, LayerNorm, Linear,
    GELU, Linear, permute back, times γ, plus the input."""
    h = block.dw(x).permute(0, 2, 3, 1)
    h = F.layer_norm(h, (x.shape[1],), block.norm.weight, block.norm.bias, 1e-6)
    h = F.linear(F.gelu(F.linear(h, block.up.weight, block.up.bias)), block.down.weight, block.down.bias)
    return block.gamma * h.permute(0, 3, 1, 2) + x


def test_over_channels_maps_each_position_as_torch_does_channels_last():
    torch.manual_seed(0)
    model = netspec.load(BLOCK).build()
    x = torch.randn(2, 6, 5, 7)
    expected = model.top * _unit(model.second, _unit(model.first, x))
    torch.testing.assert_close(model(x), expected)
    assert list(model.first.up.weight.shape) == [24, 6] and list(model.first.norm.weight.shape) == [6]
    assert isinstance(model.first.up, torch.nn.Linear) and isinstance(model.first.norm, torch.nn.LayerNorm)


def test_layer_scale_is_a_parameter_of_its_block_first_in_the_state_dict():
    model = netspec.load(BLOCK).build()
    keys = list(model.state_dict())
    assert keys[:3] == ["top", "first.gamma", "first.dw.weight"]  # own parameters before children's
    assert keys == [name for name, _ in model.named_parameters()]  # one name everywhere
    state = model.state_dict()
    assert list(state["first.gamma"].shape) == [6, 1, 1]
    assert torch.all(state["first.gamma"] == 0.5) and torch.all(state["top"] == 1e-6)


def test_layer_scale_loads_saves_copies_and_calls_as_a_block_parameter(tmp_path):
    """The first design renamed a child's `.scale` key: torch.save lost the renaming hook, and
    functional_call and export saw other names. A real parameter of the block has none of that."""
    torch.manual_seed(0)
    model, other = netspec.load(BLOCK).build(), netspec.load(BLOCK).build()
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 6, 5, 7)
    expected = model(x)
    assert other.load_state_dict(
        {k: v for k, v in state.items() if k != "second.gamma"}, strict=False
    ).missing_keys == ["second.gamma"]
    with pytest.raises(RuntimeError, match=r"size mismatch for first\.gamma"):
        other.load_state_dict({**state, "first.gamma": torch.ones(3, 1, 1)})
    torch.save(model, tmp_path / "model.pt")
    for copied in (copy.deepcopy(model), torch.load(tmp_path / "model.pt", weights_only=False)):
        assert not copied.load_state_dict(state, strict=True).missing_keys
        torch.testing.assert_close(copied(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(torch.func.functional_call(model, state, (x,)), expected, rtol=0, atol=0)
    exported = torch.export.export(model, (x,))
    assert list(exported.state_dict) == list(state)
    torch.testing.assert_close(exported.module()(x), expected)


def test_dims_and_over_channels_together_are_refused_at_dims():
    with pytest.raises(netspec.SpecError, match="dims and over: channels both say what to normalise"):
        netspec.load("input: [4, 3, 3]\nlayers:\n  - {type: layernorm, over: channels, dims: 1}\n")


@pytest.mark.parametrize("shape", [[4], [4, 9], [4, 3, 5], [4, 2, 3, 2]])
def test_over_channels_works_at_every_rank(shape):
    spec = netspec.load(
        {
            "input": shape,
            "layers": [
                {"type": "layernorm", "over": "channels"},
                {"type": "linear", "out_features": 3, "over": "channels"},
                {"type": "layer_scale", "init": 2.0},
            ],
        }
    )
    model = spec.build()
    assert list(model(torch.randn(2, *shape)).shape) == [2, 3, *shape[1:]]
    assert spec.layers[1].output_shape == (3, *shape[1:])
