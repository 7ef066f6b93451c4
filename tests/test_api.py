"""The Python API a notebook user reaches for: load from a path, text or dict; shapes; build."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO, SPECS, real_shapes

import netspec

LENET_TEXT = (REPO / "specs/lenet.yaml").read_text()


@pytest.mark.parametrize("source", [str(REPO / "specs/lenet.yaml"), REPO / "specs/lenet.yaml", LENET_TEXT])
def test_load_from_path_string_or_text(source):
    spec = netspec.load(source)
    assert spec.name == "lenet5"
    assert spec.shapes()["c3"] == (16, 10, 10)


def test_load_from_a_dict_and_build():
    import yaml

    spec = netspec.load(yaml.safe_load(LENET_TEXT))
    model = netspec.build(spec)
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    assert type(model).__name__ == "Lenet5"


def test_build_accepts_a_path_directly():
    assert isinstance(netspec.build(str(REPO / "specs/lenet.yaml")), torch.fx.GraphModule)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_shapes_match_a_real_forward_pass(path: Path):
    spec = netspec.load(path)
    assert real_shapes(spec, spec.build()) == spec.shapes()


def test_segnet_unpool_puts_values_back_where_the_pool_found_them():
    spec = netspec.load(REPO / "specs/segnet.yaml")
    model = spec.build().eval()
    x = torch.randn(1, *spec.layer("enc1.pool").input_shapes[0])
    pooled, indices = model.enc1.pool(x)
    restored = model.unpool1(pooled, indices)
    expected = torch.zeros_like(x).flatten(2).scatter(2, indices.flatten(2), pooled.flatten(2)).view_as(x)
    torch.testing.assert_close(restored, expected)
    assert restored.shape == x.shape  # 45×60 restored, not PyTorch's default 46×60


def test_the_package_exports_what_it_lists_and_imports_it_lazily():
    import subprocess
    import sys

    assert set(netspec.__all__) == {*netspec._MODULE_OF, "build"}
    for name in netspec.__all__:
        assert getattr(netspec, name) is not None
    code = (
        "import sys, netspec.cli; print(sorted(m for m in ('pydantic', 'yaml', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # `netspec --help` pays for none of them


def _base(**kw) -> dict:
    return {"netspec": 1, "name": "t", "input": [3, 8, 8], "layers": [{"type": "relu"}], **kw}


def _deep(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


_cycle: list = [1]
_cycle.append(_cycle)


class _OddStr(str):
    def __eq__(self, other):
        raise RuntimeError("compared")

    __hash__ = str.__hash__


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: netspec.load(_base(params={"x": _deep(5000)})), "nested deeper than 64 levels"),
        (lambda: netspec.load(_base(params={"x": _cycle})), "(or it contains itself)"),
        (
            lambda: netspec.load(_base(params={"x": lambda: 2}, layers=[{"type": "relu", "repeat": "=x"}])),
            "function is not a value",
        ),
        (lambda: netspec.load(_base(params={"x": object()})), "object is not a value a spec holds"),
        (lambda: netspec.load(_base(), input_shape="3,8,8"), "input_shape must be a list of ints"),
        (lambda: netspec.load(_base(), input_shape=object()), "input_shape must be a list of ints"),
        (
            lambda: netspec.load(_base(), overrides=[object()]),
            "overrides must be a list of 'key=value' strings",
        ),
        (lambda: netspec.load(_base(), registry="x"), "registry must be a netspec Registry"),
        (lambda: netspec.load("a\x00b.yaml"), "the path holds a NUL character"),
        (lambda: netspec.load(_base(include="a\x00.yaml")), "cannot be read"),
        (lambda: netspec.load(_base(include="a" * 300 + ".yaml")), "cannot be read (File name too long)"),
    ],
)
def test_the_api_refuses_what_a_yaml_file_cannot_hold_with_a_spec_error(call, message):
    """A dict holds what YAML holds: deep, self-containing or non-data values (a function, which an
    expression called) were RecursionErrors or went on into the spec; wrong arguments were raw errors."""
    with pytest.raises(netspec.SpecError) as caught:
        call()
    assert message in str(caught.value)


def test_a_dict_with_str_subclasses_is_read_as_plain_strings():
    spec = netspec.load({_OddStr("netspec"): 1, "input": [3, 8, 8], "layers": [{"type": _OddStr("relu")}]})
    assert [layer.type for layer in spec.layers] == ["relu"]
    assert netspec.load(_base(input=(3, 8, 8))).input_shape == (3, 8, 8)  # a tuple is a list


def test_a_dict_spec_takes_numpy_numbers_and_no_more_text_than_a_file():
    import numpy as np

    spec = netspec.load(_base(input=[np.int64(3), 8, 8], layers=[{"type": "dropout", "p": np.float32(0.5)}]))
    assert spec.input_shape == (3, 8, 8) and spec.layers[0].params.p == 0.5
    with pytest.raises(netspec.SpecError, match="strings hold more than 1,048,576 characters"):
        netspec.load(_base(description="x" * 2_000_000))
    with pytest.raises(netspec.SpecError, match="must be text; got int 5\n  hint: a spec's keys are strings"):
        netspec.load(_base(layers=[{"type": "relu", 5: 1}]))
