"""The plugin framework: built-ins and third parties register through the same hooks."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

import netspec
from netspec import hookspecs
from netspec.params import LayerParams, PositiveInt
from netspec.plugins import BUILTIN_PLUGINS, collect_registry, default_registry, make_plugin_manager
from netspec.registry import LayerType


class ScaleParams(LayerParams):
    """Multiply by a constant factor."""

    factor: PositiveInt = 2


def _scale_rule(p, ctx):
    return ctx.input


def _scale_build(p, ctx):
    from torch import nn

    class Scale(nn.Module):
        def forward(self, x):
            return x * p.factor

    return Scale()


SCALE = LayerType(
    "scale",
    ScaleParams,
    _scale_rule,
    _scale_build,
    summary="Multiply by a constant.",
    examples=({"input": [3], "layers": [{"type": "scale"}]},),
)


class ScalePlugin:
    @netspec.hookimpl
    def netspec_register_layers(self):
        return [SCALE]


def test_hookimpl_is_exported_from_the_package_root():
    assert netspec.hookimpl is hookspecs.hookimpl


def test_every_builtin_plugin_is_registered_through_the_hooks():
    pm = make_plugin_manager(entry_points=False)
    names = {pm.get_name(p) for p in pm.get_plugins()}
    assert set(BUILTIN_PLUGINS) <= names
    registry = collect_registry(pm)
    assert set(registry.owners.values()) == set(BUILTIN_PLUGINS)


def test_the_default_registry_has_the_whole_catalogue():
    expected = {
        "conv",
        "depthwise",
        "separable",
        "tconv",
        "maxpool",
        "avgpool",
        "adaptive_maxpool",
        "adaptive_avgpool",
        "global_avgpool",
        "global_maxpool",
        "unpool",
        "upsample",
        "relu",
        "leaky_relu",
        "gelu",
        "silu",
        "sigmoid",
        "tanh",
        "softmax",
        "batchnorm",
        "groupnorm",
        "layernorm",
        "instancenorm",
        "dropout",
        "flatten",
        "linear",
        "reshape",
        "identity",
        "pixel_shuffle",
        "pixel_unshuffle",
        "add",
        "mul",
        "concat",
    }
    assert expected <= set(default_registry().layers)


def test_a_third_party_plugin_adds_a_usable_layer_type():
    registry = collect_registry(make_plugin_manager(entry_points=False, extra=(ScalePlugin(),)))
    spec = netspec.load({"input": [3], "layers": [{"type": "scale", "factor": 3}]}, registry=registry)
    import torch

    assert spec.build()(torch.ones(1, 3)).tolist() == [[3.0, 3.0, 3.0]]


def test_entry_point_plugins_are_loaded(monkeypatch):
    module = types.ModuleType("netspec_scale_plugin")
    module.netspec_register_layers = ScalePlugin().netspec_register_layers
    monkeypatch.setitem(__import__("sys").modules, "netspec_scale_plugin", module)

    class EntryPoint:
        name, group, value = "scale", "netspec", "netspec_scale_plugin"

        def load(self):
            return module

    class Distribution:
        entry_points = (EntryPoint(),)
        metadata = {"name": "netspec-scale"}

    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [Distribution()])
    registry = collect_registry(make_plugin_manager())
    assert "scale" in registry and registry.owners["scale"] == "scale"


def test_duplicate_layer_type_names_both_plugins():
    class Impostor:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [LayerType("conv", ScaleParams, _scale_rule, _scale_build)]

    pm = make_plugin_manager(entry_points=False)
    pm.register(Impostor(), name="impostor")
    with pytest.raises(
        netspec.PluginError, match="'conv' is registered by both 'netspec.layers.conv' and 'impostor'"
    ):
        collect_registry(pm)


def test_a_misspelled_hook_fails_at_startup():
    class Typo:
        @netspec.hookimpl
        def netspec_register_layer(self):
            return []

    import pluggy

    with pytest.raises(pluggy.PluginValidationError, match="netspec_register_layer"):
        make_plugin_manager(entry_points=False, extra=(Typo(),))


def test_malformed_records_and_crashing_hooks_name_the_plugin():
    class Malformed:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [{"name": "dict"}]

    class Crashing:
        @netspec.hookimpl
        def netspec_register_layers(self):
            raise RuntimeError("boom")

    for plugin, message in [
        (Malformed(), "returned dict"),
        (Crashing(), "failed in netspec_register_layers"),
    ]:
        pm = make_plugin_manager(entry_points=False)
        pm.register(plugin, name="bad-plugin")
        with pytest.raises(netspec.PluginError, match=message) as info:
            collect_registry(pm)
        assert "'bad-plugin'" in str(info.value)


def test_a_crashing_shape_rule_is_a_plugin_error_not_a_spec_error():
    def broken(p, ctx):
        raise ZeroDivisionError("oops")

    class Broken:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [LayerType("broken", ScaleParams, broken, _scale_build)]

    registry = collect_registry(make_plugin_manager(entry_points=False, extra=(Broken(),)))
    with pytest.raises(netspec.PluginError, match="shape rule of layer type 'broken'"):
        netspec.load({"input": [3], "layers": [{"type": "broken"}]}, registry=registry)
