"""ConvNeXt's pieces: `linear` and `layernorm` over the channels at each position, and
`layer_scale`, a parameter the enclosing block holds (its key is the layer's own path)."""

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
    return block.gamma.scale * h.permute(0, 3, 1, 2) + x


def test_over_channels_maps_each_position_as_torch_does_channels_last():
    torch.manual_seed(0)
    model = netspec.load(BLOCK).build()
    x = torch.randn(2, 6, 5, 7)
    expected = model.top.scale * _unit(model.second, _unit(model.first, x))
    torch.testing.assert_close(model(x), expected)
    assert list(model.first.up.weight.shape) == [24, 6] and list(model.first.norm.weight.shape) == [6]
    assert isinstance(model.first.up, torch.nn.Linear) and isinstance(model.first.norm, torch.nn.LayerNorm)


def test_layer_scale_is_a_parameter_of_its_block_first_in_the_state_dict():
    model = netspec.load(BLOCK).build()
    keys = list(model.state_dict())
    assert keys[:3] == ["top", "first.gamma", "first.dw.weight"]  # own parameters before children's
    assert "second.gamma" in keys and not any(k.endswith(".scale") for k in keys)
    assert list(model.state_dict()["first.gamma"].shape) == [6, 1, 1]
    state = model.state_dict()
    assert torch.all(state["first.gamma"] == 0.5) and torch.all(state["top"] == 1e-6)
    assert next(name for name, _ in model.first.named_children()) == "gamma"


def test_layer_scale_loads_strictly_and_names_what_is_wrong_by_its_key():
    torch.manual_seed(0)
    model, other = netspec.load(BLOCK).build(), netspec.load(BLOCK).build()
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    assert not other.load_state_dict(state, strict=True).missing_keys
    for key, value in state.items():
        assert torch.equal(other.state_dict()[key], value)
    x = torch.randn(2, 6, 5, 7)
    model.load_state_dict(state)
    torch.testing.assert_close(model(x), other(x), rtol=0, atol=0)
    incomplete = {k: v for k, v in state.items() if k != "second.gamma"}
    assert other.load_state_dict(incomplete, strict=False).missing_keys == ["second.gamma"]
    with pytest.raises(RuntimeError, match=r"size mismatch for first\.gamma: .*\[3, 1, 1\]"):
        other.load_state_dict({**state, "first.gamma": torch.ones(3, 1, 1)})
    copied = copy.deepcopy(model)  # EMA and SWA copies keep the keys and the loading
    assert list(copied.state_dict()) == list(model.state_dict())
    assert not copied.load_state_dict(state).missing_keys


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
