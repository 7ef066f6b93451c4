"""The plugin framework: built-ins and third parties register through the same hooks."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import json
import os
import re
import sys
import types

import pluggy
import pytest
import torch
from conftest import REPO
from pydantic import Field

import netspec
from netspec import hookspecs
from netspec.params import LayerParams, PositiveInt
from netspec.plugins import BUILTIN_PLUGINS, collect_registry, default_registry, make_plugin_manager
from netspec.registry import LayerType, check_layer_type, macs_per_element, pointwise_window


class ScaleParams(LayerParams):
    """Multiply by a constant factor."""

    factor: PositiveInt = 2


def _scale_rule(p, ctx):
    return ctx.input


def _scale_build(p, ctx):
    from torch import nn

    class Scale(nn.Module):
        def forward(self, x):
            return x * p.factor

    return Scale()


SCALE = LayerType(
    "scale",
    ScaleParams,
    _scale_rule,
    _scale_build,
    summary="Multiply by a constant.",
    macs=macs_per_element,
    window=pointwise_window,
    examples=({"input": [3], "layers": [{"type": "scale"}]},),
)


def plugin_module(name: str, records=(SCALE,), *, hook=None) -> types.ModuleType:
    """A module implementing netspec_register_layers, as an entry point would load it."""
    module = types.ModuleType(name)

    def netspec_register_layers():
        return list(records)

    module.netspec_register_layers = netspec.hookimpl(hook or netspec_register_layers)
    return module


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake distributions: {entry point name: module, exception to raise on load, or a
    function run on load (a module's import-time code) that returns the module}."""

    def install(plugins: dict[str, object], dist: str = "netspec-fake") -> None:
        class EntryPoint:
            group = "netspec"

            def __init__(self, name, target):
                self.name, self.target, self.value = name, target, f"{name}_module"

            def load(self):
                if isinstance(self.target, BaseException):
                    raise self.target
                if callable(self.target):  # the code a module runs at import, then the module
                    return self.target()
                return self.target

        class Distribution:
            name = dist
            version = "1.2.3"

        found = []
        for n, t in plugins.items():
            found.append(EntryPoint(n, t))
            found[-1].dist = Distribution()

        def entry_points(*, group):
            return [ep for ep in found if ep.group == group]

        monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    return install


def registry_with(**kw):
    return collect_registry(make_plugin_manager(**kw))


def test_hookimpl_is_exported_from_the_package_root():
    assert netspec.hookimpl is hookspecs.hookimpl


def test_every_builtin_plugin_is_registered_through_the_hooks():
    registry = registry_with(entry_points=False)
    assert set(registry.owners.values()) | set(registry.dataset_owners.values()) == set(BUILTIN_PLUGINS)
    for name in BUILTIN_PLUGINS:
        info = registry.plugins[name]
        assert info.origin == "built-in" and info.distribution == "netspec"
        assert info.hooks in (("netspec_register_layers",), ("netspec_register_datasets",))
        assert info.layer_types or info.dataset_types


def test_the_default_registry_has_the_whole_catalogue():
    expected = {
        "conv", "depthwise", "separable", "tconv", "maxpool", "avgpool", "adaptive_maxpool",
        "adaptive_avgpool", "global_avgpool", "global_maxpool", "unpool", "upsample", "relu",
        "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "softmax", "batchnorm", "groupnorm",
        "layernorm", "instancenorm", "dropout", "flatten", "linear", "reshape", "identity",
        "pixel_shuffle", "pixel_unshuffle", "add", "mul", "concat",
    }  # fmt: skip
    assert expected <= set(default_registry().layers)


def test_a_plugin_registered_in_code_adds_a_usable_layer_type():
    class ScalePlugin:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [SCALE]

    registry = registry_with(entry_points=False, extra=(ScalePlugin(),))
    spec = netspec.load({"input": [3], "layers": [{"type": "scale", "factor": 3}]}, registry=registry)
    assert spec.build()(torch.ones(1, 3)).tolist() == [[3.0, 3.0, 3.0]]


def test_entry_point_plugins_are_loaded_with_their_distribution(entry_points):
    entry_points({"scale": plugin_module("scale_mod")})
    registry = registry_with()
    assert registry.owners["scale"] == "scale"
    info = registry.plugins["scale"]
    assert (info.origin, info.distribution, info.version) == ("entry point", "netspec-fake", "1.2.3")
    assert info.layer_types == ("scale",) and info.hooks == ("netspec_register_layers",)
    assert not registry.failures


def _only_failure(registry):
    (failure,) = registry.failures
    assert failure.label == "'bad' (netspec-fake 1.2.3)"
    return failure


def test_a_plugin_that_fails_to_import_is_named_and_the_rest_still_work(entry_points):
    entry_points({"bad": ImportError("No module named 'missing_dep'"), "scale": plugin_module("scale_mod")})
    registry = registry_with()
    assert "missing_dep" in _only_failure(registry).error
    assert "scale" in registry and "conv" in registry
    netspec.load(
        {"input": [3, 8, 8], "layers": [{"type": "conv", "out_channels": 2, "kernel_size": 3}]},
        registry=registry,
    )


def test_a_plugin_whose_hook_raises_is_named(entry_points):
    def boom():
        raise RuntimeError("boom")

    entry_points({"bad": plugin_module("bad_mod", hook=boom)})
    failure = _only_failure(registry_with())
    assert "failed in netspec_register_layers" in failure.error and "boom" in failure.error


def test_a_plugin_returning_something_malformed_is_named(entry_points):
    entry_points({"bad": plugin_module("bad_mod", records=({"name": "dict"},))})
    assert "returned dict" in _only_failure(registry_with()).error


def test_a_plugin_with_a_misspelled_hook_is_named(entry_points):
    module = types.ModuleType("typo_mod")
    module.netspec_register_layer = netspec.hookimpl(lambda: [])
    entry_points({"bad": module})
    assert "unknown hook 'netspec_register_layer'" in _only_failure(registry_with()).error


def test_a_duplicate_type_from_an_entry_point_names_both_plugins_and_is_left_out(entry_points):
    impostor = LayerType("conv", ScaleParams, _scale_rule, _scale_build)
    entry_points({"bad": plugin_module("bad_mod", records=(impostor, SCALE))})
    registry = registry_with()
    failure = _only_failure(registry)
    assert failure.error == (
        "layer type 'conv' is registered by both 'netspec.layers.conv' "
        f"(netspec {netspec.__version__}) and 'bad' (netspec-fake 1.2.3)"
    )
    assert registry.owners["conv"] == "netspec.layers.conv" and "scale" not in registry
    # a spec that needs a type of the broken plugin says which plugin would provide it
    with pytest.raises(netspec.SpecError) as info:
        netspec.load({"input": [3], "layers": [{"type": "scale"}]}, registry=registry)
    assert "plugin 'bad' (netspec-fake 1.2.3) provides 'scale' but is broken" in str(info.value)


def test_unknown_type_with_a_plugin_that_failed_to_import_mentions_it(entry_points):
    entry_points({"bad": ImportError("no torchvision")})
    with pytest.raises(netspec.SpecError) as info:
        netspec.load({"input": [3], "layers": [{"type": "fancy"}]}, registry=registry_with())
    assert "plugin 'bad' (netspec-fake 1.2.3) is broken and may provide it" in str(info.value)


def test_switches_disable_block_and_allow(entry_points, monkeypatch):
    entry_points({"scale": plugin_module("scale_mod"), "other": plugin_module("other_mod", records=())})
    monkeypatch.setenv("NETSPEC_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = registry_with()
    assert "scale" not in registry
    # the installed plugins are listed as left out, so nothing is missing without a word
    assert {i.name: i.error for i in registry.skipped} == {
        "scale": "NETSPEC_DISABLE_PLUGIN_AUTOLOAD is set",
        "other": "NETSPEC_DISABLE_PLUGIN_AUTOLOAD is set",
    }
    with pytest.raises(netspec.SpecError, match=r"not loaded \(NETSPEC_DISABLE_PLUGIN_AUTOLOAD is set\)"):
        netspec.load({"input": [3], "layers": [{"type": "scale"}]}, registry=registry)
    assert not registry_with(entry_points=False).skipped  # switched off in code: nothing to say
    monkeypatch.delenv("NETSPEC_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("NETSPEC_BLOCK_PLUGINS", "scale, netspec.layers.merge")
    registry = registry_with()
    assert "scale" not in registry and "concat" not in registry and "other" in registry.plugins
    monkeypatch.delenv("NETSPEC_BLOCK_PLUGINS")
    monkeypatch.setenv("NETSPEC_PLUGINS", "other")
    registry = registry_with()
    assert "scale" not in registry and "other" in registry.plugins and "conv" in registry
    # a spec that needs a type of a plugin left out says which plugins were left out, and why
    with pytest.raises(netspec.SpecError) as info:
        netspec.load({"input": [3], "layers": [{"type": "scale"}]}, registry=registry)
    assert "plugin 'scale' (netspec-fake 1.2.3) is not loaded (not in NETSPEC_PLUGINS)" in str(info.value)
    # the distribution's name works as well as the entry point's (it was silently ignored)
    monkeypatch.delenv("NETSPEC_PLUGINS")
    monkeypatch.setenv("NETSPEC_BLOCK_PLUGINS", "netspec-fake")
    registry = registry_with()
    assert not {"scale", "other"} & set(registry.plugins) and not registry.failures
    assert {i.name: i.error for i in registry.skipped} == {
        "scale": "blocked by NETSPEC_BLOCK_PLUGINS",
        "other": "blocked by NETSPEC_BLOCK_PLUGINS",
    }
    # a name no installed plugin has is a warning (a typo did nothing)
    monkeypatch.setenv("NETSPEC_BLOCK_PLUGINS", "scael")
    (failure,) = registry_with().failures
    assert (
        failure.name == "scael" and "NETSPEC_BLOCK_PLUGINS names it, but no installed plugin" in failure.error
    )
    assert "(installed: netspec-fake, other, scale)" in failure.error


def test_trusted_plugins_fail_loudly():
    class Impostor:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [LayerType("conv", ScaleParams, _scale_rule, _scale_build)]

    pm = make_plugin_manager(entry_points=False)
    pm.register(Impostor(), name="impostor")
    with pytest.raises(netspec.PluginError, match="'conv' is registered by both 'netspec.layers.conv'"):
        collect_registry(pm)


def test_a_misspelled_hook_in_code_fails_at_startup():
    class Typo:
        @netspec.hookimpl
        def netspec_register_layer(self):
            return []

    with pytest.raises(pluggy.PluginValidationError, match="netspec_register_layer"):
        make_plugin_manager(entry_points=False, extra=(Typo(),))


def test_a_crashing_shape_rule_is_a_plugin_error_not_a_spec_error():
    def broken(p, ctx):
        raise ZeroDivisionError("oops")

    class Broken:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [LayerType("broken", ScaleParams, broken, _scale_build)]

    registry = registry_with(entry_points=False, extra=(Broken(),))
    with pytest.raises(netspec.PluginError, match="shape rule of layer type 'broken'"):
        netspec.load({"input": [3], "layers": [{"type": "broken"}]}, registry=registry)


def test_netspec_register_layers_contract_via_the_kit():
    """The hook's records pass the same contract as the built-ins (netspec.testing)."""
    from netspec.testing import check_layer_type

    class ScalePlugin:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [SCALE]

    check_layer_type("scale", registry=registry_with(entry_points=False, extra=(ScalePlugin(),)))


def test_entry_point_name_clashes_are_reported(entry_points):
    entry_points({"netspec.layers.conv": plugin_module("clash_mod")})
    registry = registry_with()
    (failure,) = registry.failures
    assert "already taken by 'netspec.layers.conv' (netspec" in failure.error
    assert registry.owners["conv"] == "netspec.layers.conv"


def test_netspec_register_datasets_adds_a_dataset_type_and_rejects_duplicates(entry_points):
    from netspec.data import DatasetParams, DatasetType

    def load(params, ctx):
        raise AssertionError("not loaded at registration")

    tiny = DatasetType("tiny", DatasetParams, load, summary="a test dataset")
    module = types.ModuleType("ds_mod")
    module.netspec_register_datasets = netspec.hookimpl(lambda: [tiny])
    clash = types.ModuleType("ds_clash")
    clash.netspec_register_datasets = netspec.hookimpl(lambda: [DatasetType("digits", DatasetParams, load)])
    entry_points({"tiny": module, "bad": clash})
    registry = registry_with()
    assert registry.datasets["tiny"] is tiny and registry.plugins["tiny"].dataset_types == ("tiny",)
    assert (
        "dataset type 'digits' is registered by both 'netspec.datasets.digits'"
        in _only_failure(registry).error
    )
    spec = netspec.load(
        {"input": [3], "layers": [{"type": "relu"}], "train": {"data": {"name": "tiny"}}}, registry=registry
    )
    assert spec.model.train.data.name == "tiny"


def test_sys_modules_untouched():
    assert "scale_mod" not in sys.modules


# Plugins cannot break other commands: each kind of misbehaviour is named in `netspec plugins`
# and left out, while `netspec schema` and `netspec build --format json` keep exit 0 and JSON.


@pytest.fixture
def cli_with(entry_points, capsys):
    """Install one broken plugin 'bad' next to a good one; run the CLI in-process against them."""
    from netspec.cli import main

    def check(bad) -> str:
        entry_points({"bad": bad, "scale": plugin_module("scale_mod")})
        default_registry.cache_clear()
        capsys.readouterr()
        try:
            assert main(["plugins"]) == 1
            listing = capsys.readouterr().out
            assert "broken plugins (not loaded):\n  'bad' (netspec-fake 1.2.3) [entry point]:" in listing
            assert re.search(r"^scale +entry point +netspec-fake 1.2.3", listing, re.M)  # the good one loads
            for argv in (["schema"], ["build", str(REPO / "specs/lenet.yaml"), "--format", "json"]):
                assert main(argv) == 0
                out = capsys.readouterr()
                json.loads(out.out)  # stdout stays machine-readable
                assert "plugin 'bad' (netspec-fake 1.2.3) is not loaded" in out.err
            return listing.split("[entry point]: ", 1)[1]
        finally:
            default_registry.cache_clear()

    return check


class WrongParams:
    """Not a LayerParams subclass."""


class Opaque:
    """A type pydantic has no JSON Schema for."""


class OpaqueParams(LayerParams):
    model_config = {"arbitrary_types_allowed": True}
    thing: Opaque | None = None


def _scale_with(**changes) -> LayerType:
    return dataclasses.replace(SCALE, **changes)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_scale_with(shape="not a function"), "shape is 'not a function', not a function"),
        (_scale_with(build=None), "build is None, not a function"),
        (_scale_with(macs=3), "macs is 3, not a function or None"),
        (_scale_with(params=WrongParams), "not a netspec.LayerParams subclass"),
        (_scale_with(params=dict), "not a netspec.LayerParams subclass"),
        (_scale_with(inputs=1), "inputs is 1; expected a pair (min, max)"),
        (_scale_with(inputs=(2, 1)), "inputs is (2, 1)"),
        (_scale_with(inputs=(0, None)), "inputs is (0, None)"),
        (_scale_with(examples=({"layers": "scale"},)), "examples must be a tuple of small specs"),
        (_scale_with(examples="scale"), "examples must be a tuple of small specs"),
        (_scale_with(name=42), "its name must be a string"),
        (_scale_with(name="../x"), "its name must be a string"),
        (_scale_with(refs=("indices",)), "refs is ('indices',), not a tuple of netspec LayerRef"),
        (_scale_with(summary=None), "summary is None, not a string"),
        (_scale_with(params=OpaqueParams), "its params model has no JSON Schema"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_malformed_record_is_named_and_other_commands_keep_working(cli_with, record, message):
    error = cli_with(plugin_module("bad_mod", records=(record,)))
    assert message in error and "plugin 'bad' (netspec-fake 1.2.3): layer type" in error


def test_a_malformed_dataset_record_is_named(cli_with):
    from netspec.data import DatasetParams, DatasetType

    class Batched(DatasetParams):
        batch_size: int = 3

    module = types.ModuleType("ds_mod")
    module.netspec_register_datasets = netspec.hookimpl(
        lambda: [DatasetType("tiny", Batched, lambda p, ctx: None)]
    )
    assert "defines ['batch_size'], which the trainer adds" in cli_with(module)


class TypedParams(LayerParams):
    type: str = "x"


class IntName(LayerParams):
    name: int | None = None


class OtherFrom(LayerParams):
    from_: list[int] | None = Field(None, alias="from")


class AliasedType(LayerParams):
    kind: str = Field("a", alias="type")


@pytest.mark.parametrize(
    ("params", "key"), [(TypedParams, "type"), (IntName, "name"), (OtherFrom, "from"), (AliasedType, "type")]
)
def test_a_params_model_redefining_a_reserved_key_is_named(cli_with, params, key):
    error = cli_with(plugin_module("bad_mod", records=(_scale_with(params=params),)))
    assert f"redefines the reserved key {key!r}" in error


def test_well_formed_records_pass_the_check():
    check_layer_type(SCALE)  # inherits name and from unchanged
    tuples = ({"input": (3,), "layers": ({"type": "scale"},)},)
    check_layer_type(_scale_with(examples=tuples, inputs=[1, None]))


def _exits():
    sys.exit(3)


class Doom(BaseException):
    """Not an Exception: escapes `except Exception`."""


def _dooms():
    raise Doom("at import")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_exits, "failed to load: it called sys.exit(3)"),
        (SystemExit("bye"), "failed to load: it called sys.exit('bye')"),
        (_dooms, "failed to load: Doom('at import')"),
        (lambda: plugin_module("m", hook=_exits), "failed in netspec_register_layers: it called sys.exit(3)"),
        (lambda: plugin_module("m", hook=_dooms), "failed in netspec_register_layers: Doom('at import')"),
    ],
)
def test_a_plugin_exiting_or_raising_base_exception_is_named(cli_with, bad, message):
    assert message in cli_with(bad)


def test_ctrl_c_while_loading_a_plugin_is_not_swallowed(entry_points):
    entry_points({"bad": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        registry_with()


def _prints():
    print("hello from the plugin")
    return plugin_module("m")


def _writes_fd1():
    os.write(1, b"raw bytes on fd 1\n")
    return plugin_module("m")


def _writes_dunder_stdout():
    sys.__stdout__.write("via sys.__stdout__\n")
    return plugin_module("m")


def _prints_in_hook():
    print("registering!")
    return [SCALE]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_prints, "it wrote to stdout while it was imported: 'hello from the plugin\\n'"),
        (_writes_fd1, "it wrote to stdout while it was imported: 'raw bytes on fd 1\\n'"),
        (_writes_dunder_stdout, "it wrote to stdout while it was imported: 'via sys.__stdout__\\n'"),
        (
            lambda: plugin_module("m", hook=_prints_in_hook),
            "it wrote to stdout in netspec_register_layers: 'registering!\\n'",
        ),
    ],
)
def test_a_plugin_that_prints_is_named_and_stdout_stays_clean(cli_with, bad, message):
    error = cli_with(bad)
    assert message in error and "a plugin must not print" in error


def test_a_hook_returning_an_endless_generator_is_refused(cli_with):
    def endless():
        return itertools.repeat(SCALE)

    assert "returned more than 1000 records" in cli_with(plugin_module("m", hook=endless))


def test_a_lying_entry_point_plugin_is_named_with_its_distribution_by_build(entry_points, tmp_path, capsys):
    from netspec.cli import main

    def build_double(p, ctx):
        from torch import nn

        return nn.Upsample(scale_factor=2.0)  # the rule says the shape stays the same

    entry_points(
        {"liar": plugin_module("liar_mod", records=(dataclasses.replace(SCALE, build=build_double),))}
    )
    default_registry.cache_clear()
    path = tmp_path / "spec.yaml"
    path.write_text(
        "input: [3, 8]\nlayers:\n  - {type: conv, out_channels: 2, kernel_size: 1}\n  - {type: scale}\n"
    )
    try:
        assert main(["build", str(path)]) == 1
    finally:
        default_registry.cache_clear()
    err = capsys.readouterr().err
    assert (
        f"{path}:4: layer 1 'scale_1' (scale): layer type 'scale' of plugin 'liar' (netspec-fake 1.2.3)"
        in err
    )
    assert "its shape rule says [2, 8] but its module outputs [2, 16]" in err


def test_plugin_code_printing_during_a_build_cannot_corrupt_json_output(entry_points, tmp_path, capsys):
    from netspec.cli import main

    def chatty_rule(p, ctx):
        print("computing a shape")
        return ctx.input

    def chatty_build(p, ctx):
        print("building a module")
        return _scale_build(p, ctx)

    chatty = dataclasses.replace(SCALE, shape=chatty_rule, build=chatty_build)
    entry_points({"chatty": plugin_module("chatty_mod", records=(chatty,))})
    default_registry.cache_clear()
    path = tmp_path / "spec.yaml"
    path.write_text("input: [3]\nlayers:\n  - {type: scale}\n")
    try:
        assert main(["build", str(path), "--format", "json"]) == 0
    finally:
        default_registry.cache_clear()
    out = capsys.readouterr()
    assert json.loads(out.out)["layers"][0]["type"] == "scale"
    assert "computing a shape" in out.err and "building a module" in out.err


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["train"], "set train.data.name"),
        (["show", "--out", "pictures"], "set train.data.name, or pass --image"),
    ],
)
def test_without_the_digits_plugin_a_spec_without_data_is_refused_at_its_train_line(
    command, hint, monkeypatch, tmp_path, capsys
):
    from netspec.cli import main

    monkeypatch.setenv("NETSPEC_BLOCK_PLUGINS", "netspec.datasets.digits")
    default_registry.cache_clear()
    path = tmp_path / "spec.yaml"
    path.write_text(
        "input: [1, 8, 8]\nlayers:\n  - {type: conv, out_channels: 2, kernel_size: 3}\n  - {type: flatten}\n"
        "  - {type: linear, out_features: 2}\n"
    )
    try:
        monkeypatch.chdir(tmp_path)
        code = main([*command, str(path), "--set", "train.run_dir=run"])
    finally:
        monkeypatch.delenv("NETSPEC_BLOCK_PLUGINS")
        default_registry.cache_clear()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no dataset given and the default 'digits' is not loaded" in err
    assert f"hint: {hint}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no run dir, no pictures


def test_the_listing_says_what_each_plugin_provides(capsys):
    from netspec.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^netspec\.datasets\.vision .* 3 datasets: mnist, fashion_mnist, cifar10$", out, re.M)
    assert re.search(r"^netspec\.layers\.tconv .* 1 layer type: tconv$", out, re.M)  # was "0:" for datasets
    assert re.search(r"^\d+ layer types and 7 datasets from \d+ plugins$", out, re.M)


def test_a_blocked_built_in_plugin_is_named_where_its_types_are_missed(monkeypatch, capsys):
    from netspec.cli import main

    monkeypatch.setenv("NETSPEC_BLOCK_PLUGINS", "netspec.layers.conv")
    registry = registry_with(entry_points=False)
    assert "conv" not in registry
    assert [(i.name, i.error) for i in registry.skipped] == [
        ("netspec.layers.conv", "blocked by NETSPEC_BLOCK_PLUGINS")
    ]
    with pytest.raises(
        netspec.SpecError, match=r"plugin 'netspec.layers.conv' \(netspec [^)]*\) is not loaded"
    ):
        netspec.load({"input": [3, 8, 8], "layers": [{"type": "conv"}]}, registry=registry)
    default_registry.cache_clear()
    try:
        assert main(["explain", "conv", "--input", "3,8,8", "out_channels=2", "kernel_size=1"]) == 2
    finally:
        monkeypatch.delenv("NETSPEC_BLOCK_PLUGINS")
        default_registry.cache_clear()
    assert "note: plugin 'netspec.layers.conv'" in capsys.readouterr().err
