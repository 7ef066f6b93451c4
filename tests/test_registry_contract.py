"""One contract over the whole registry: every layer type, built-in or plugin, keeps its promises."""

from __future__ import annotations

import pytest
import torch

import netspec
from netspec.plugins import default_registry
from netspec.summary import parameter_counts

REGISTRY = default_registry()
EXAMPLES = [
    pytest.param(name, example, id=f"{name}-{i}")
    for name, record in sorted(REGISTRY.layers.items())
    for i, example in enumerate(record.examples)
]


@pytest.mark.parametrize("name", sorted(REGISTRY.layers))
def test_every_layer_type_has_an_example_and_a_summary(name):
    record = REGISTRY[name]
    assert record.examples, f"{name} has no example"
    assert record.summary
    for example in record.examples:
        assert example["layers"][-1]["type"] == name


@pytest.mark.parametrize(("name", "example"), EXAMPLES)
def test_layer_contract(name, example):
    spec = netspec.load(example)
    layer = spec.layers[-1]
    model = spec.build().train()
    torch.manual_seed(0)
    x = torch.randn(2, *spec.input_shape, requires_grad=True)
    out = model(x)
    # inferred shape == what the module really returns
    assert tuple(out.shape) == (2, *layer.output_shape)
    # parameters counted on the meta device == the real module's, to the unit
    real = {
        lay.name: sum(p.numel() for p in model.get_submodule(lay.name).parameters()) for lay in spec.layers
    }
    assert {name: total for name, (total, _) in parameter_counts(spec)[0].items()} == real
    # gradients flow to the input and to every parameter
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all()
