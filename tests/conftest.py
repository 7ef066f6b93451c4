"""Shared fixtures: the repository's paths and a way to write specs to files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))

torch.set_num_threads(1)


@pytest.fixture
def write_spec(tmp_path):
    """Write dedented YAML text to a file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def real_shapes(spec, model) -> dict:
    """Every layer's output shape, observed by forward hooks on a real forward pass."""
    seen = {}
    for layer in spec.layers:
        module = model.get_submodule(layer.name)
        module.register_forward_hook(
            lambda mod, args, out, name=layer.name: seen.__setitem__(
                name, tuple((out[0] if isinstance(out, tuple) else out).shape[1:])
            )
        )
    with torch.no_grad():
        model.eval()(torch.randn(2, *spec.input_shape))
    return seen
