"""netspec: YAML specs → PyTorch networks, with every shape inferred analytically.

Importing netspec does not import torch; building a module does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.errors import NetspecError, PluginError, ShapeError, SpecError
from netspec.hookspecs import hookimpl
from netspec.params import LayerParams
from netspec.registry import (
    LayerContext,
    LayerRef,
    LayerType,
    RefTarget,
    Window,
    check_declared,
    macs_per_element,
    no_macs,
    pointwise_window,
    spatial_rank,
    undefined_window,
)
from netspec.spec import Spec, load

if TYPE_CHECKING:
    from torch import fx

__version__ = "0.1.0"


def build(spec: Spec | str | dict) -> fx.GraphModule:
    """Build the network of a spec (a loaded :class:`Spec`, a path, YAML text or a dict)."""
    from netspec.builder import build as _build

    return _build(spec if isinstance(spec, Spec) else load(spec))


__all__ = [
    "DataContext",
    "DataError",
    "DatasetParams",
    "DatasetType",
    "LayerContext",
    "LayerParams",
    "LayerRef",
    "LayerType",
    "NetspecError",
    "PluginError",
    "RefTarget",
    "ShapeError",
    "Spec",
    "SpecError",
    "Splits",
    "Window",
    "build",
    "check_declared",
    "hookimpl",
    "load",
    "macs_per_element",
    "no_macs",
    "pointwise_window",
    "spatial_rank",
    "undefined_window",
]
