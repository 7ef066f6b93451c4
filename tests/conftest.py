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
    """Every layer's output shape, observed node by node on a real forward pass (a layer_scale is
    a multiply by its block's γ, not a module a hook could watch)."""
    from torch import fx

    from netspec.builder import LAYER

    seen = {}

    class Watch(fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if LAYER in node.meta:
                seen[node.meta[LAYER]] = tuple((out[0] if isinstance(out, tuple) else out).shape[1:])
            return out

    with torch.no_grad():
        Watch(model.eval()).run(torch.randn(2, *spec.input_shape))
    return seen
