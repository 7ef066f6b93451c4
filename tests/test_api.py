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
