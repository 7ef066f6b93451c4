"""netspec: YAML specs → PyTorch networks, with every shape inferred analytically.

Importing netspec does not import torch; building a module does. The names below are
imported on first use, so `netspec --help` (and `import netspec`) costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "netspec.data": ("DataContext", "DataError", "DatasetParams", "DatasetType", "Splits"),
    "netspec.errors": ("NetspecError", "PluginError", "ShapeError", "SpecError"),
    "netspec.hookspecs": ("hookimpl",),
    "netspec.params": ("LayerParams",),
    "netspec.registry": (
        "LayerContext",
        "LayerRef",
        "LayerType",
        "ParamCount",
        "RefTarget",
        "Window",
        "check_declared",
        "macs_per_element",
        "no_macs",
        "no_parameters",
        "pointwise_window",
        "spatial_rank",
        "undefined_window",
    ),
    "netspec.spec": ("Spec", "load"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from torch import fx

    from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
    from netspec.errors import NetspecError, PluginError, ShapeError, SpecError
    from netspec.hookspecs import hookimpl
    from netspec.params import LayerParams
    from netspec.registry import (
        LayerContext,
        LayerRef,
        LayerType,
        ParamCount,
        RefTarget,
        Window,
        check_declared,
        macs_per_element,
        no_macs,
        no_parameters,
        pointwise_window,
        spatial_rank,
        undefined_window,
    )
    from netspec.spec import Spec, load


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'netspec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


def build(spec: Spec | str | dict) -> fx.GraphModule:
    """Build the network of a spec (a loaded :class:`Spec`, a path, YAML text or a dict)."""
    from netspec.spec import Spec, load

    return (spec if isinstance(spec, Spec) else load(spec)).build()


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
    "ParamCount",
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
    "no_parameters",
    "pointwise_window",
    "spatial_rank",
    "undefined_window",
]
