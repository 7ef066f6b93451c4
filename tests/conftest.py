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
