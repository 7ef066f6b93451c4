"""Every hook a netspec plugin can implement. Built-in layers use these same hooks."""

from __future__ import annotations

import pluggy

from netspec.data import DatasetType
from netspec.registry import LayerType

PROJECT = "netspec"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def netspec_register_layers() -> list[LayerType]:
    """Return the layer types this plugin provides.

    Called once per process, when the registry is first needed. Each record's ``name``
    must be unique across all plugins: a duplicate is an error naming both plugins.
    """


@hookspec
def netspec_register_datasets() -> list[DatasetType]:
    """Return the dataset types this plugin provides (``train.data.name`` in a spec).

    Called once per process, when the dataset registry is first needed (not for building or
    summarising a network). Names must be unique across plugins.
    """
