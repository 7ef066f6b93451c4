"""Plugin loading: built-in layer families and third-party entry points, through one manager.

A third-party plugin that fails to import (``sys.exit`` and other ``BaseException``s
included), raises in a hook, returns something malformed, registers a type name that exists
already or writes to stdout while loading is recorded as broken — named with its
distribution — and left out; the other plugins load and netspec stays usable, with a
machine-readable stdout.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import io
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pluggy

from netspec import hookspecs
from netspec.data import DatasetParams, DatasetType
from netspec.datasets import BUILTIN_DATASET_PLUGINS
from netspec.errors import PluginError
from netspec.registry import TYPE_NAME_RE, LayerType, check_layer_type

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
    "netspec.layers.channels",
    "netspec.layers.merge",
    *BUILTIN_DATASET_PLUGINS,  # one list of the built-in datasets, kept with them
)
ENTRY_POINT_GROUP = "netspec"

# Switches, after pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD and datasette's allow-list.
ENV_DISABLE_AUTOLOAD = "NETSPEC_DISABLE_PLUGIN_AUTOLOAD"  # any non-empty value
ENV_BLOCK = "NETSPEC_BLOCK_PLUGINS"  # comma-separated plugin names never to load
ENV_ALLOW = "NETSPEC_PLUGINS"  # comma-separated allow-list of entry-point plugins

# Never swallowed from a plugin: the user pressed Ctrl-C. Every other BaseException
# (SystemExit from sys.exit, GeneratorExit, a custom BaseException) marks the plugin broken.
_USER_INTERRUPTS = (KeyboardInterrupt,)
MAX_RECORDS = 1000  # per hook call: a generator that never ends must not hang netspec
# Keys the trainer adds to every dataset's parameters (see netspec.data.DatasetParams).
RESERVED_DATASET_KEYS = ("name", "batch_size", "num_workers", "random_crop", "hflip")


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from, what it implements, and why it is broken (if it is)."""

    name: str
    origin: str  # "built-in", "entry point" or "registered in code"
    distribution: str | None = None
    version: str | None = None
    hooks: tuple[str, ...] = ()
    layer_types: tuple[str, ...] = ()
    dataset_types: tuple[str, ...] = ()
    error: str | None = None

    @property
    def label(self) -> str:
        """``'blocks' (netspec-blocks 0.1.0)``: how messages name a plugin."""
        dist = f" ({self.distribution} {self.version or ''})".replace(" )", ")") if self.distribution else ""
        return f"{self.name!r}{dist}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering each plugin's provenance and every plugin that failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.provenance: dict[str, PluginInfo] = {}
        self.failures: list[PluginInfo] = []
        self.skipped: list[PluginInfo] = []  # installed, left out by NETSPEC_BLOCK_PLUGINS / NETSPEC_PLUGINS

    def register_plugin(self, plugin: object, name: str | None, info: PluginInfo) -> None:
        name = self.register(plugin, name=name)
        if name is not None:
            self.provenance[name] = PluginInfo(
                info.name if info.name else name, info.origin, info.distribution, info.version
            )


def _names(variable: str) -> set[str]:
    return {n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()}


def make_plugin_manager(*, entry_points: bool | None = None, extra: tuple[object, ...] = ()) -> PluginManager:
    """The built-ins, the ``netspec`` entry points (unless switched off) and ``extra`` plugins.

    ``entry_points=None`` follows ``NETSPEC_DISABLE_PLUGIN_AUTOLOAD``. Built-in and ``extra``
    plugins are trusted: a mistake there raises. Entry-point plugins are isolated.
    """
    pm = PluginManager()
    for name in _names(ENV_BLOCK):
        pm.set_blocked(name)
    version = _version("netspec")  # once: each lookup reads the distribution's metadata
    for module_name in BUILTIN_PLUGINS:
        if pm.is_blocked(module_name):  # named where a type it provides is missing
            info = PluginInfo(module_name, "built-in", "netspec", version)
            pm.skipped.append(_failed(info, f"blocked by {ENV_BLOCK}"))
        else:
            pm.register_plugin(
                importlib.import_module(module_name),
                module_name,
                PluginInfo(module_name, "built-in", "netspec", version),
            )
    if entry_points is None:
        entry_points = not os.environ.get(ENV_DISABLE_AUTOLOAD)
        if not entry_points:
            _note_autoload_off(pm)
    if entry_points:
        _load_entry_points(pm)
    for plugin in extra:
        pm.register_plugin(plugin, None, PluginInfo("", "registered in code"))
    pm.check_pending()
    return pm


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _note_autoload_off(pm: PluginManager) -> None:
    """The installed entry-point plugins, as left out by the environment: `netspec plugins` and an
    unknown layer type then say why a plugin the user installed is not there."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, "entry point", dist.name if dist else None, dist.version if dist else None)
        pm.skipped.append(_failed(info, f"{ENV_DISABLE_AUTOLOAD} is set"))


def _load_entry_points(pm: PluginManager) -> None:
    """Each plugin of the ``netspec`` entry-point group, unless the environment leaves it out:
    ``NETSPEC_BLOCK_PLUGINS`` and ``NETSPEC_PLUGINS`` take entry-point or distribution names, and
    a name that matches no installed plugin is a warning (a typo would otherwise do nothing)."""
    allow, block = _names(ENV_ALLOW), _names(ENV_BLOCK)
    seen: set[str] = set()
    # entry_points(group=…) reads each distribution's entry_points.txt only; the metadata (name,
    # version) is read for the distributions that have a netspec entry point, not for all of them
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else None
        version = dist.version if dist is not None else None
        info = PluginInfo(ep.name, "entry point", dist_name, version)
        names = {ep.name, dist_name} - {None}
        seen |= names
        if pm.is_blocked(ep.name) or names & block:
            pm.skipped.append(_failed(info, f"blocked by {ENV_BLOCK}"))
            continue
        if allow and not names & allow:
            pm.skipped.append(_failed(info, f"not in {ENV_ALLOW}"))
            continue
        if pm.has_plugin(ep.name):
            taken = pm.provenance.get(ep.name, PluginInfo(ep.name, "?"))
            if taken.distribution == dist_name:
                continue  # one distribution seen twice on sys.path (an editable install)
            pm.failures.append(
                _failed(
                    info,
                    f"its plugin name {ep.name!r} is already taken by {taken.label}; rename the entry point",
                )
            )
            continue
        try:
            with captured_stdout() as printed:
                plugin = ep.load()
                pm.register_plugin(plugin, ep.name, info)
                _check_hooks(pm, ep.name)
            _check_silent(printed, "while it was imported")
        except _USER_INTERRUPTS:
            raise
        except BaseException as exc:  # a broken plugin must not take netspec down
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            pm.provenance.pop(ep.name, None)
            pm.failures.append(_failed(info, f"failed to load: {describe_exception(exc)}"))
    for variable, names in ((ENV_BLOCK, block - set(BUILTIN_PLUGINS)), (ENV_ALLOW, allow)):
        for name in sorted(names - seen):
            installed = ", ".join(sorted(seen)) or "none"
            pm.failures.append(
                PluginInfo(
                    name,
                    "environment",
                    error=f"{variable} names it, but no installed plugin has "
                    f"that entry-point or distribution name (installed: {installed})",
                )
            )


def _check_hooks(pm: PluginManager, name: str) -> None:
    """pluggy's check_pending, for one plugin: a misspelled hook name is an error now."""
    known = {spec for spec in dir(hookspecs) if spec.startswith(f"{hookspecs.PROJECT}_")}
    plugin = pm.get_plugin(name)
    for attr in dir(plugin):
        if attr.startswith(f"{hookspecs.PROJECT}_") and attr not in known:
            raise PluginError(f"it implements unknown hook {attr!r} (known: {', '.join(sorted(known))})")


def _failed(info: PluginInfo, error: str) -> PluginInfo:
    return PluginInfo(info.name, info.origin, info.distribution, info.version, error=error)


def describe_exception(exc: BaseException) -> str:
    """``sys.exit(3)`` reads better than ``SystemExit(3)``; PluginErrors are already sentences."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, PluginError):
        return str(exc)
    return repr(exc)


@dataclass
class Printed:
    """What a plugin wrote to stdout inside :func:`captured_stdout` (set when the block ends)."""

    text: str = ""


@contextlib.contextmanager
def captured_stdout() -> Iterator[Printed]:
    """Capture everything written to stdout inside the block: ``sys.stdout`` and file descriptor 1.

    netspec's stdout is machine-readable (``netspec schema``, ``--format json``), so plugin
    code must never reach it. Redirecting ``sys.stdout`` catches ``print``; redirecting the
    descriptor too catches ``sys.__stdout__``, C extensions and subprocesses.
    """
    printed = Printed()
    buffer = io.StringIO()
    with tempfile.TemporaryFile() as spool:
        _flush_stdout()
        saved = _redirect_fd1(spool)
        try:
            with contextlib.redirect_stdout(buffer):
                yield printed
        finally:
            _flush_stdout()
            printed.text = buffer.getvalue() + _restore_fd1(saved, spool)


def _flush_stdout() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.__stdout__) if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()


def _redirect_fd1(spool) -> int | None:
    """Point descriptor 1 at ``spool``; the saved descriptor, or None when there is no fd 1."""
    try:
        saved = os.dup(1)
    except OSError:
        return None
    os.dup2(spool.fileno(), 1)
    return saved


def _restore_fd1(saved: int | None, spool) -> str:
    if saved is None:
        return ""
    os.dup2(saved, 1)
    os.close(saved)
    spool.seek(0)
    return spool.read().decode("utf-8", errors="replace")


def _check_silent(printed: Printed, when: str) -> None:
    """A plugin that prints would corrupt machine-readable output: it is broken, say what it wrote."""
    if printed.text:
        shown = printed.text if len(printed.text) <= 120 else printed.text[:120] + "…"
        raise PluginError(
            f"it wrote to stdout {when}: {shown!r}; netspec's stdout is machine-readable, so a "
            "plugin must not print (use warnings or logging, which go to stderr)"
        )


@dataclass(frozen=True)
class Registry:
    """Every registered layer type, which plugin registered it, and the plugins that failed."""

    layers: dict[str, LayerType]
    owners: dict[str, str]
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    failures: tuple[PluginInfo, ...] = ()
    datasets: dict[str, DatasetType] = field(default_factory=dict)
    dataset_owners: dict[str, str] = field(default_factory=dict)
    skipped: tuple[PluginInfo, ...] = ()  # installed plugins the environment left out

    @functools.cached_property
    def language(self):
        """(spec model, per-type layer models), built once: a union must not change under us."""
        from netspec.language import build_spec_model

        return build_spec_model(self.layers, self.datasets)

    def __contains__(self, name: str) -> bool:
        return name in self.layers

    def __getitem__(self, name: str) -> LayerType:
        return self.layers[name]

    def is_builtin(self, layer_type: str) -> bool:
        """Whether netspec itself provides the layer type (a spec's block may shadow any other)."""
        info = self.plugins.get(self.owners.get(layer_type, ""))
        return info is not None and info.origin == "built-in"

    def owner_label(self, layer_type: str) -> str:
        name = self.owners.get(layer_type, "?")
        info = self.plugins.get(name)
        return info.label if info else repr(name)


def collect_registry(pm: pluggy.PluginManager) -> Registry:
    """Call each plugin's registration hooks and merge the records, rejecting duplicates.

    A trusted plugin (built-in or registered in code) that misbehaves raises
    :class:`PluginError`; an entry-point plugin is recorded in ``failures`` instead.
    """
    provenance = getattr(pm, "provenance", {})
    failures = list(getattr(pm, "failures", []))
    layers, owners, layer_taken = _merge(
        pm, "netspec_register_layers", LayerType, "layer type", provenance, failures
    )
    datasets, dataset_owners, dataset_taken = _merge(
        pm, "netspec_register_datasets", DatasetType, "dataset type", provenance, failures
    )
    plugins = {}
    broken = {f.name for f in failures}
    for plugin_obj in pm.get_plugins():
        name = pm.get_name(plugin_obj)
        if name in broken:
            continue
        info = provenance.get(name, PluginInfo(name, "registered in code"))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin_obj) or ()))
        plugins[name] = PluginInfo(
            info.name,
            info.origin,
            info.distribution,
            info.version,
            hooks,
            tuple(layer_taken.get(name, ())),
            tuple(dataset_taken.get(name, ())),
        )
    skipped = tuple(getattr(pm, "skipped", ()))
    return Registry(layers, owners, plugins, tuple(failures), datasets, dataset_owners, skipped)


def _merge(pm, hook: str, record_type: type, kind: str, provenance: dict, failures: list):
    """Records of one registration hook by name, their owners, and what each plugin added."""
    records: dict = {}
    owners: dict[str, str] = {}
    taken: dict[str, list[str]] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        plugin = impl.plugin_name
        info = provenance.get(plugin, PluginInfo(plugin, "registered in code"))
        try:
            new = _records(impl, info, hook, record_type)
            for record in new:
                if record.name in records:
                    first = provenance.get(owners[record.name], PluginInfo(owners[record.name], "?"))
                    raise PluginError(
                        f"{kind} {record.name!r} is registered by both {first.label} and {info.label}",
                        provides=tuple(r.name for r in new if r.name not in records),
                    )
        except PluginError as exc:
            if info.origin != "entry point":
                raise
            failures.append(
                PluginInfo(
                    info.name,
                    info.origin,
                    info.distribution,
                    info.version,
                    layer_types=exc.provides,
                    error=str(exc),
                )
            )
            continue
        for record in new:
            records[record.name] = record
            owners[record.name] = plugin
        taken[plugin] = [r.name for r in new]
    return records, owners, taken


def _records(impl, info: PluginInfo, hook: str, record_type: type) -> list:
    """Call one plugin's hook (stdout captured for entry points) and check every record it returns."""
    isolated = info.origin == "entry point"
    try:
        with captured_stdout() if isolated else contextlib.nullcontext(Printed()) as printed:
            records = list(itertools.islice(impl.function() or (), MAX_RECORDS + 1))
    except _USER_INTERRUPTS:
        raise
    except BaseException as exc:
        raise PluginError(f"plugin {info.label} failed in {hook}: {describe_exception(exc)}") from None
    try:
        _check_silent(printed, f"in {hook}")
    except PluginError as exc:
        raise PluginError(f"plugin {info.label}: {exc}") from None
    if len(records) > MAX_RECORDS:
        raise PluginError(f"plugin {info.label} returned more than {MAX_RECORDS} records from {hook}")
    for record in records:
        if not isinstance(record, record_type):
            raise PluginError(
                f"plugin {info.label} returned {type(record).__name__} from {hook}; "
                f"expected netspec.{record_type.__name__} records"
            )
        try:
            _check_record(record, deep=info.origin != "built-in")
        except PluginError as exc:
            raise PluginError(f"plugin {info.label}: {exc}") from None
    return records


def _check_record(record: LayerType | DatasetType, *, deep: bool) -> None:
    """Field types of a record; ``deep`` also builds its spec-language model and JSON Schema.

    The deep check catches a params model that pydantic cannot turn into a schema before it
    breaks ``netspec schema`` and every spec load; built-ins skip it (the test suite runs it).
    """
    if isinstance(record, LayerType):
        check_layer_type(record)
        if deep:
            from netspec.language import layer_model

            _schema_of(lambda: layer_model(record), f"layer type {record.name!r}")
    else:
        _check_dataset_type(record)


def _schema_of(make_model, where: str) -> None:
    try:
        make_model().model_json_schema(by_alias=True)
    except Exception as exc:
        raise PluginError(f"{where}: its params model has no JSON Schema ({exc!r})") from None


def _check_dataset_type(record: DatasetType) -> None:
    where = f"dataset type {getattr(record, 'name', '?')!r}"
    if not isinstance(record.name, str) or not TYPE_NAME_RE.match(record.name):
        raise PluginError(f"{where}: its name must be a string of letters, digits, '_' or '-'")
    if not (isinstance(record.params, type) and issubclass(record.params, DatasetParams)):
        raise PluginError(f"{where}: params is {record.params!r}, not a netspec DatasetParams subclass")
    clash = sorted(set(record.params.model_fields) & set(RESERVED_DATASET_KEYS))
    if clash:
        raise PluginError(
            f"{where}: its params model defines {clash}, which the trainer adds to every dataset"
        )
    if not callable(record.load):
        raise PluginError(f"{where}: load is {record.load!r}, not a function")
    if not isinstance(record.summary, str):
        raise PluginError(f"{where}: summary is {record.summary!r}, not a string")
    if not isinstance(record.files, str):
        raise PluginError(f"{where}: files is {record.files!r}, not a string")


@functools.cache
def default_registry() -> Registry:
    """The registry of this process: built-ins plus installed entry-point plugins."""
    return collect_registry(make_plugin_manager())
