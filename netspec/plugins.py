"""Plugin loading: built-in layer families and third-party entry points, through one manager."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

import pluggy

from netspec import hookspecs
from netspec.errors import PluginError
from netspec.registry import LayerType

# Built-in layer families: each module is a plugin with @hookimpl functions, registered
# exactly like a third-party one.
BUILTIN_PLUGINS = (
    "netspec.layers.conv",
    "netspec.layers.tconv",
    "netspec.layers.pool",
    "netspec.layers.unpool",
    "netspec.layers.upsample",
    "netspec.layers.activation",
    "netspec.layers.norm",
    "netspec.layers.basic",
    "netspec.layers.merge",
)
ENTRY_POINT_GROUP = "netspec"


def make_plugin_manager(*, entry_points: bool = True, extra: tuple[object, ...] = ()) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, optionally entry points, and ``extra`` plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


@dataclass(frozen=True)
class Registry:
    """Every registered layer type, and which plugin registered it."""

    layers: dict[str, LayerType]
    owners: dict[str, str]

    @functools.cached_property
    def language(self):
        """(spec model, per-type layer models), built once: a union must not change under us."""
        from netspec.language import build_spec_model

        return build_spec_model(self.layers)

    def __contains__(self, name: str) -> bool:
        return name in self.layers

    def __getitem__(self, name: str) -> LayerType:
        return self.layers[name]


def collect_registry(pm: pluggy.PluginManager) -> Registry:
    """Call each plugin's ``netspec_register_layers`` and merge, rejecting duplicates."""
    layers: dict[str, LayerType] = {}
    owners: dict[str, str] = {}
    for impl in pm.hook.netspec_register_layers.get_hookimpls():
        plugin = impl.plugin_name
        try:
            records = impl.function()
        except Exception as exc:
            raise PluginError(f"plugin {plugin!r} failed in netspec_register_layers: {exc!r}") from exc
        for record in records or ():
            if not isinstance(record, LayerType):
                raise PluginError(
                    f"plugin {plugin!r} returned {type(record).__name__} from "
                    "netspec_register_layers; expected netspec.LayerType records"
                )
            if record.name in layers:
                raise PluginError(
                    f"layer type {record.name!r} is registered by both {owners[record.name]!r} and {plugin!r}"
                )
            layers[record.name] = record
            owners[record.name] = plugin
    return Registry(layers, owners)


@functools.cache
def default_registry() -> Registry:
    """The registry of this process: built-ins plus installed entry-point plugins."""
    return collect_registry(make_plugin_manager())
