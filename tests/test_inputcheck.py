"""The built module checks its first eager input and explains a wrong one in words."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

import netspec
from netspec.inputcheck import InputShapeError, is_checking, uninstall


@pytest.fixture(scope="module")
def lenet():
    return netspec.load(str(REPO / "specs/lenet.yaml"))


def _unchecked(model):
    uninstall(model)
    return model


def test_wrong_channels_are_named_per_dimension_with_the_spec_line(lenet):
    x = torch.zeros(64, 3, 32, 32)
    with pytest.raises(InputShapeError) as info:
        lenet.build()(x)
    message = str(info.value)
    assert "lenet5 was built for input [N, 1, 28, 28]" in message
    assert "`input: [1, 28, 28]` at " in message and "specs/lenet.yaml:5:8" in message
    assert "channels: expected 1, got 3; H: expected 28, got 32; W: expected 28, got 32" in message
    with pytest.raises(RuntimeError, match="to have 1 channels"):  # what PyTorch would have said
        _unchecked(lenet.build())(x)


def test_a_missing_batch_dimension_and_a_wrong_rank(lenet):
    model = lenet.build()
    with pytest.raises(InputShapeError, match=r"no batch dimension. Add one: x.unsqueeze\(0\)"):
        model(torch.zeros(1, 28, 28))
    with pytest.raises(InputShapeError, match=r"expected 4 dimensions \[N, channels, H, W\], got 2"):
        model(torch.zeros(28, 28))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert not is_checking(model)  # checked once; the steady state does no checking


def test_other_sizes_pass_when_the_built_layers_take_them_and_fail_in_words_when_not(lenet):
    with pytest.raises(InputShapeError, match=r"layer 7 'f5' \(linear\) was built for input \[400\]"):
        lenet.build()(torch.zeros(2, 1, 20, 20))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        _unchecked(lenet.build())(torch.zeros(2, 1, 20, 20))
    unet = netspec.load(str(REPO / "specs/unet.yaml"))  # built for 60: its tconvs' output_padding are fixed
    with pytest.raises(InputShapeError, match=r"'dec3.cat' \(concat\): inputs disagree.*--input 1,64,64"):
        unet.build()(torch.zeros(1, 1, 64, 64))
    with pytest.raises(RuntimeError):
        _unchecked(unet.build())(torch.zeros(1, 1, 64, 64))
    resnet = netspec.load(str(REPO / "specs/resnet18.yaml"), input_shape=[3, 32, 32])
    assert resnet.build()(torch.zeros(1, 3, 48, 40)).shape == (1, 1000)  # adaptive pool: any size


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_scripting_compiling_and_exporting_before_the_first_call(lenet):
    x = torch.randn(2, 1, 28, 28)
    model = lenet.build().eval()
    expected = _unchecked(lenet.build().eval())
    expected.load_state_dict(model.state_dict())
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(x), expected(x))
    fresh = lenet.build().eval()
    fresh.load_state_dict(model.state_dict())
    compiled = torch.compile(fresh, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(x), expected(x))
    program = torch.export.export(lenet.build().eval(), (x,))
    assert program.module()(x).shape == (2, 10)


def test_a_built_model_still_pickles(lenet):
    import io

    buffer = io.BytesIO()
    torch.save(lenet.build(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=False)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
