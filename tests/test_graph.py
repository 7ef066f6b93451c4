"""Graphs: names, from:, outputs, references — and the errors for each way to get them wrong."""

from __future__ import annotations

import pytest
import torch

import netspec


def spec(layers: list[dict], **top) -> dict:
    return {"input": top.pop("input", [4, 8, 8]), "layers": layers, **top}


def rejected(data: dict) -> netspec.SpecError:
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(data)
    return info.value


def test_default_input_is_the_previous_layer_and_names_are_generated():
    s = netspec.load(spec([{"type": "conv", "out_channels": 2, "kernel_size": 3}, {"type": "relu"}]))
    assert [layer.name for layer in s.layers] == ["conv_0", "relu_1"]
    assert s.layers[0].inputs == ("input",) and s.layers[1].inputs == ("conv_0",)
    assert s.shapes() == {"conv_0": (2, 6, 6), "relu_1": (2, 6, 6)}


def test_skip_connection_and_multiple_outputs():
    s = netspec.load(
        spec(
            [
                {"type": "conv", "name": "a", "out_channels": 4, "kernel_size": 3, "padding": 1},
                {"type": "relu", "name": "b"},
                {"type": "add", "name": "sum", "from": ["b", "input"]},
                {"type": "global_avgpool", "name": "pooled", "from": "a"},
            ],
            outputs=["sum", "pooled"],
        )
    )
    model = s.build()
    x = torch.randn(2, 4, 8, 8)
    out_sum, out_pooled = model(x)
    assert tuple(out_sum.shape[1:]) == s.layer("sum").output_shape == (4, 8, 8)
    assert tuple(out_pooled.shape[1:]) == s.layer("pooled").output_shape == (4,)
    with torch.no_grad():
        expected = torch.relu(model.a(x)) + x
    torch.testing.assert_close(out_sum, expected)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "relu", "name": "a", "from": "a"}], "is this layer itself (a cycle)"),
        ([{"type": "relu", "from": "b"}, {"type": "relu", "name": "b"}], "refers forward to layer 1"),
        ([{"type": "relu", "from": "nope"}], "'nope' is not a layer name"),
        (
            [{"type": "relu", "name": "a"}, {"type": "relu", "name": "a"}],
            "name 'a' is already used by layer 0",
        ),
        (
            [
                {"type": "relu", "name": "a"},
                {"type": "relu", "name": "b", "from": "input"},
                {"type": "concat", "from": "a"},
            ],
            "concat takes at least 2 input(s), got 1",
        ),
        (
            [{"type": "relu", "name": "a"}, {"type": "relu", "from": ["a", "input"]}],
            "relu takes 1 input(s), got 2",
        ),
        (
            [{"type": "relu", "name": "a"}, {"type": "relu", "name": "b", "from": "input"}],
            "this layer's output is never used",
        ),
        ([{"type": "relu"}, {"type": "unpool", "indices": "relu_0"}], "it must be maxpool"),
        ([{"type": "unpool", "indices": "input"}], "must name a layer, not the input"),
    ],
)
def test_graph_errors(layers, message):
    assert message in str(rejected(spec(layers)))


def test_unknown_output_is_reported():
    err = rejected(spec([{"type": "relu", "name": "act"}], outputs="acts"))
    assert "output 'acts' is not a layer name" in str(err) and "did you mean 'act'" in str(err)


def test_unpool_restores_its_pools_input_and_returns_indices_only_when_used():
    s = netspec.load(
        spec(
            [
                {"type": "maxpool", "name": "pool", "kernel_size": 2, "ceil_mode": True},
                {"type": "maxpool", "name": "other", "kernel_size": 1, "from": "input"},
                {"type": "unpool", "indices": "pool", "from": "pool"},
                {"type": "add", "from": ["other", "unpool_2"]},
            ],
            input=[2, 7, 9],
        )
    )
    assert s.layer("unpool_2").output_shape == (2, 7, 9)
    assert s.layer("pool").aux_outputs == {"indices"}
    assert s.layer("other").aux_outputs == frozenset()
    model = s.build()
    assert model.pool.return_indices and not model.other.return_indices
    x = torch.randn(3, 2, 7, 9)
    assert model(x).shape == (3, 2, 7, 9)


@pytest.mark.parametrize("name", ["forward", "training", "self", "shape_env", "state_dict", "code"])
def test_layer_names_that_shadow_module_attributes_are_rejected_on_load(name):
    with pytest.raises(netspec.SpecError, match="clashes with a torch.nn.Module attribute"):
        netspec.load(spec([{"type": "relu", "name": name}, {"type": "linear", "out_features": 2}]))


@pytest.mark.parametrize("name", ["a.forward", "a.0.training", "a.b.parameters"])
def test_names_inside_blocks_must_not_shadow_module_attributes_either(name):
    with pytest.raises(netspec.SpecError, match="clashes with a torch.nn.Module attribute"):
        netspec.load(spec([{"type": "relu", "name": name}, {"type": "linear", "out_features": 2}]))


def test_a_layer_cannot_also_hold_other_layers():
    layers = [
        {"type": "relu", "name": "a"},
        {"type": "relu", "name": "a.b"},
        {"type": "linear", "out_features": 2},
    ]
    with pytest.raises(netspec.SpecError, match="'a' is both a layer and the block holding"):
        netspec.load(spec(layers))


def test_the_reserved_name_lists_cover_the_installed_torch():
    """netspec checks names without importing torch; the lists must hold everything torch reserves."""
    from torch import fx, nn

    from netspec.params import NAME_RE
    from netspec.reserved import GRAPH_MODULE_ATTRIBUTES, MODULE_ATTRIBUTES

    graph_module = set(vars(fx.GraphModule(nn.Module(), fx.Graph()))) | set(dir(fx.GraphModule))
    module = set(vars(nn.Module())) | set(dir(nn.Module))
    assert {n for n in graph_module if NAME_RE.match(n)} <= GRAPH_MODULE_ATTRIBUTES
    assert {n for n in module if NAME_RE.match(n)} <= MODULE_ATTRIBUTES


def test_loading_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, netspec; netspec.load('specs/lenet.yaml'); "
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)"
    )
    from conftest import REPO

    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
