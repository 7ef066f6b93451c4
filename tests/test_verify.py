"""Every build checks plugin modules against their shape rules, on the meta device."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import SPECS
from torch import nn

import netspec
from netspec.params import LayerParams, PositiveInt
from netspec.plugins import collect_registry, default_registry, make_plugin_manager
from netspec.registry import LayerType
from netspec.summary import summarize
from netspec.verify import verify_shapes


class DoubleParams(LayerParams):
    """A layer that claims to keep the shape."""

    times: PositiveInt = 2


class Repeat(nn.Module):
    def __init__(self, times: int):
        super().__init__()
        self.times = times

    def forward(self, x):
        return torch.cat([x] * self.times, dim=1)


def _claims_same_shape(p, ctx):
    return ctx.input


def registry_of(record: LayerType):
    class Plugin:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [record]

    return collect_registry(make_plugin_manager(entry_points=False, extra=(Plugin(),)))


LIAR = LayerType("repeat", DoubleParams, _claims_same_shape, lambda p, ctx: Repeat(p.times))
SPEC = """input: [3, 8, 8]
layers:
  - {type: conv, out_channels: 4, kernel_size: 3}
  - {type: repeat, name: rep}
"""


def test_a_plugin_whose_module_disagrees_with_its_shape_rule_is_named():
    spec = netspec.load(SPEC, registry=registry_of(LIAR))
    assert spec.shapes()["rep"] == (4, 6, 6)  # what the lying rule says
    with pytest.raises(netspec.PluginError) as info:
        spec.build()
    assert re.match(
        r"<string>:4: layer 1 'rep' \(repeat\): layer type 'repeat' of plugin '\d+' ", str(info.value)
    )
    assert "its shape rule says [4, 6, 6] but its module outputs [8, 6, 6]" in str(info.value)
    assert info.value.provides == ("repeat",)


def test_the_summary_catches_the_lie_too_without_allocating():
    spec = netspec.load(SPEC, registry=registry_of(LIAR))
    with pytest.raises(netspec.PluginError, match="module outputs"):
        summarize(spec)


def test_a_module_that_rejects_its_inferred_input_is_named():
    wrong_input = LayerType("wrong", DoubleParams, lambda p, ctx: (5,), lambda p, ctx: nn.Linear(7, 5))
    spec = netspec.load("input: [3]\nlayers:\n  - {type: wrong}\n", registry=registry_of(wrong_input))
    with pytest.raises(netspec.PluginError, match=r"fails on inputs of the inferred shapes: RuntimeError\("):
        spec.build()


class Listing(nn.Module):
    def forward(self, x):
        return [x]


def test_a_module_that_returns_no_tensor_is_named():
    no_tensor = LayerType("none", DoubleParams, _claims_same_shape, lambda p, ctx: Listing())
    spec = netspec.load("input: [3]\nlayers:\n  - {type: none}\n", registry=registry_of(no_tensor))
    with pytest.raises(netspec.PluginError, match="its module returned list, not a tensor"):
        spec.build()


class KeepsCpuTensor(nn.Module):
    """A module holding a tensor outside its parameters and buffers: it cannot run on meta."""

    def __init__(self):
        super().__init__()
        self.offset = torch.ones(3)

    def forward(self, x):
        return x + self.offset


def test_a_module_that_cannot_run_on_meta_is_not_refused():
    honest = LayerType("offset", DoubleParams, _claims_same_shape, lambda p, ctx: KeepsCpuTensor())
    spec = netspec.load("input: [3]\nlayers:\n  - {type: offset}\n", registry=registry_of(honest))
    assert spec.build()(torch.zeros(2, 3)).tolist() == [[1.0] * 3] * 2


class NormDrop(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.norm(x))


def test_verification_changes_nothing_the_model_or_the_rng_holds():
    record = LayerType("normdrop", DoubleParams, _claims_same_shape, lambda p, ctx: NormDrop(ctx.input[0]))
    spec = netspec.load("input: [4, 5]\nlayers:\n  - {type: normdrop}\n", registry=registry_of(record))
    torch.manual_seed(0)
    model = spec.build()
    rng = torch.get_rng_state()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    verify_shapes(spec, model)
    assert torch.equal(rng, torch.get_rng_state())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert after["normdrop_0.norm.num_batches_tracked"].item() == 0
    assert all(t.device.type == "cpu" for t in after.values())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_passes_the_check_of_all_its_layers(path):
    spec = netspec.load(path)
    with torch.device("meta"):
        verify_shapes(spec, spec.build(), builtins=True)


def test_every_registered_example_passes_the_check_of_all_its_layers():
    registry = default_registry()
    for record in registry.layers.values():
        for example in record.examples:
            spec = netspec.load(example, registry=registry)
            with torch.device("meta"):
                verify_shapes(spec, spec.build(), builtins=True)


def test_deterministic_mode_does_not_make_the_check_blame_a_plugin():
    spec = netspec.load(SPECS[[p.name for p in SPECS].index("segnet.yaml")])
    model = spec.build()
    torch.use_deterministic_algorithms(True)  # max unpooling has no deterministic kernel
    try:
        verify_shapes(spec, model, builtins=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
