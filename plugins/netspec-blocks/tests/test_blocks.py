"""netspec-blocks keeps netspec's layer-type contract, through the installed entry point.

Run from the repository root after ``pip install -e plugins/netspec-blocks``::

    pytest plugins/netspec-blocks/tests
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

import netspec
from netspec.plugins import default_registry
from netspec.summary import summarize
from netspec.testing import check_layer_type

BLOCKS = ("residual", "squeeze_excite", "inverted_residual")

# A small classifier using all three block types: identity and projection shortcuts, an SE
# gate, inverted residuals with and without the residual add.
NETWORK = """\
netspec: 1
name: blocks_demo
input: [3, 16, 16]
layers:
  - {type: conv, name: stem, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
  - {type: batchnorm, name: stem_bn}
  - {type: relu, name: stem_relu}
  - {type: residual, name: res1}
  - {type: residual, name: res2, out_channels: 32, stride: 2}
  - {type: squeeze_excite, name: se, reduction: 8}
  - {type: inverted_residual, name: ir1, out_channels: 32, expansion: 4}
  - {type: inverted_residual, name: ir2, out_channels: 48, stride: 2}
  - {type: global_avgpool, name: pool}
  - {type: linear, name: head, out_features: 10}
"""


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------- the contract


@pytest.mark.parametrize("name", BLOCKS)
def test_registered_through_the_entry_point(name):
    registry = default_registry()
    assert name in registry, "netspec-blocks is not installed: pip install -e plugins/netspec-blocks"
    assert registry.owners[name] == "blocks"  # the entry point's name in pyproject.toml


@pytest.mark.parametrize("name", BLOCKS)
def test_layer_contract(name):
    check_layer_type(name)


# ----------------------------------------------------------- a network using all three


def test_network_validates_with_analytic_shapes():
    spec = netspec.load(NETWORK)
    assert spec.shapes() == {
        "stem": (16, 16, 16),
        "stem_bn": (16, 16, 16),
        "stem_relu": (16, 16, 16),
        "res1": (16, 16, 16),
        "res2": (32, 8, 8),
        "se": (32, 8, 8),
        "ir1": (32, 8, 8),
        "ir2": (48, 4, 4),
        "pool": (48,),
        "head": (10,),
    }


def test_network_builds_with_readable_state_dict_keys():
    model = netspec.load(NETWORK).build()
    keys = set(model.state_dict())
    assert {
        "res1.conv1.weight",
        "res1.bn1.running_mean",
        "res1.conv2.weight",
        "res2.shortcut.conv.weight",
        "res2.shortcut.bn.bias",
        "se.fc1.weight",
        "se.fc2.bias",
        "ir1.expand.conv.weight",
        "ir1.depthwise.conv.weight",
        "ir1.project.bn.weight",
    } <= keys
    assert not any(k.startswith("res1.shortcut.") for k in keys)  # identity shortcut
    assert model(torch.randn(4, 3, 16, 16)).shape == (4, 10)


def _hand_macs(block: nn.Module, x: torch.Tensor, layer_type: str) -> int:
    """MACs of one block counted from its modules' weights and a real forward pass."""
    sizes: dict[nn.Module, torch.Size] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out: sizes.__setitem__(mod, out.shape[1:]))
        for m in block.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU6))
    ]
    with torch.no_grad():
        out = block(x)
    for hook in hooks:
        hook.remove()
    total = 0
    for module, shape in sizes.items():
        if isinstance(module, nn.Conv2d):  # (weights + biases) × output positions
            weights = module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
            total += weights * math.prod(shape[1:])
        elif isinstance(module, nn.Linear):
            total += module.weight.numel() + module.bias.numel()
        else:  # batch norm, ReLU6: one per element
            total += math.prod(shape)
    # the functional element-wise operations in the forward methods
    n_out, n_in = math.prod(out.shape[1:]), math.prod(x.shape[1:])
    if layer_type == "residual":
        total += 3 * n_out  # relu after bn1, the add, the final relu
    elif layer_type == "squeeze_excite":
        hidden = block.fc1.out_features
        total += n_in + hidden + x.shape[1] + n_out  # mean, relu, sigmoid, the scale
    elif layer_type == "inverted_residual" and block.use_residual:
        total += n_out  # the add
    return total


def test_summary_counts_parameters_and_macs_exactly():
    spec = netspec.load(NETWORK)
    summary = summarize(spec)
    model = spec.build().eval()
    rows = {row.name: row for row in summary.rows}
    inputs: dict[str, torch.Tensor] = {}
    for layer in spec.layers:
        model.get_submodule(layer.name).register_forward_hook(
            lambda mod, args, out, name=layer.name: inputs.__setitem__(name, args[0])
        )
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    for layer in spec.layers:
        module = model.get_submodule(layer.name)
        assert rows[layer.name].params == sum(p.numel() for p in module.parameters()), layer.label
        if layer.type in BLOCKS:
            assert rows[layer.name].macs == _hand_macs(module, inputs[layer.name], layer.type), layer.label
    assert summary.totals.params == sum(p.numel() for p in model.parameters())
    # one case written out in full: res2, 16 → 32 channels, stride 2, on 16×16 → 8×8
    positions = 8 * 8
    conv1, conv2, projection = 9 * 16 * 32, 9 * 32 * 32, 16 * 32
    elementwise = 5 * 32 + 32  # bn1, relu, bn2, add, relu; the projection's bn
    assert rows["res2"].macs == (conv1 + conv2 + projection + elementwise) * positions == 929_792
    # the receptive field through two residual blocks after a 3×3 stem: 3 → 7 → 13
    assert rows["res2"].field.size == (13, 13)


def test_conv_and_linear_macs_agree_with_torchinfo():
    torchinfo = pytest.importorskip("torchinfo")
    spec = netspec.load(NETWORK)
    rows = {row.name: row for row in summarize(spec).rows}
    model = spec.build().eval()
    result = torchinfo.summary(model, input_size=(1, 3, 16, 16), verbose=0, device="cpu")
    owner = {id(m): name.split(".")[0] for name, m in model.named_modules() if name}
    counted: dict[str, int] = {}
    for info in result.summary_list:
        if isinstance(info.module, (nn.Conv2d, nn.Linear)):
            name = owner[id(info.module)]
            counted[name] = counted.get(name, 0) + info.macs
    # res1: the convs are the whole cost but for 5 element-wise operations per output element
    assert rows["res1"].macs - counted["res1"] == 5 * 16 * 16 * 16


def test_one_training_step():
    spec = netspec.load(NETWORK)
    model = spec.build().train()
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss) and torch.isfinite(after)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(before), set(before) - set(changed)
    assert after.item() < loss.item()


def test_exports_with_torchscript_and_torch_export():
    spec = netspec.load(NETWORK)
    model = spec.build().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; it still works
            warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
            warnings.filterwarnings("ignore", r"The TorchScript type system doesn't support", UserWarning)
            scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(x), expected)


def test_loading_a_spec_does_not_import_torch():
    code = textwrap.dedent(
        f"""
        import sys, netspec
        spec = netspec.load({NETWORK!r})
        spec.shapes()
        assert "torch" not in sys.modules, "loading a spec imported torch"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------- located errors


def _problem(text: str):
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(text)
    (problem,) = info.value.problems
    return problem


def _position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first ``needle`` in ``text``."""
    for line_number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return line_number, line.index(needle) + 1
    raise AssertionError(needle)


def test_a_shape_error_points_at_the_parameter():
    text = """\
input: [4, 8, 8]
layers:
  - {type: conv, out_channels: 12, kernel_size: 3}
  - {type: squeeze_excite, name: se, reduction: 16}
"""
    problem = _problem(text)
    assert problem.layer == "layer 1 'se' (squeeze_excite)"
    assert "reduction 16 leaves no hidden units for the 12 input channels" in problem.message
    assert "at most 12" in problem.hint
    assert (problem.location.line, problem.location.column) == _position(text, "16}")


def test_a_bad_parameter_value_is_located():
    text = """\
input: [4, 8, 8]
layers:
  - {type: inverted_residual, out_channels: 8,
     stride: 3}
"""
    problem = _problem(text)
    assert "stride" in problem.message and "1 or 2" in problem.message
    assert (problem.location.line, problem.location.column) == _position(text, "3}")


def test_a_wrong_input_rank_is_explained():
    problem = _problem("input: [4, 32]\nlayers:\n  - {type: residual}\n")
    assert "needs a [C, H, W] input, got [4, 32]" in problem.message
    assert "inverted_residual" in problem.hint
    assert problem.location.line == 3
