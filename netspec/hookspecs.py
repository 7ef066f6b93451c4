"""Every hook a netspec plugin can implement. Built-in layers use these same hooks."""

from __future__ import annotations

import pluggy

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
