"""The JSON Schema covers every spec; every hook is tested and documented; every module imports cleanly."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import jsonschema
import pytest
from conftest import REPO, SPECS

import netspec
from netspec import hookspecs
from netspec.cli import main
from netspec.schema import spec_json_schema
from netspec.yamlio import read_spec_file

SCHEMA = spec_json_schema()
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("netspec_"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_validates_against_the_generated_schema(path):
    jsonschema.validate(read_spec_file(path).data, SCHEMA)


def test_the_schema_rejects_typos_and_completes_types():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"input": [1, 8], "layers": [{"type": "conv", "kernal_size": 3}]}, SCHEMA)
    layer_defs = SCHEMA["$defs"]["LayerItem"]["anyOf"][0]
    assert set(layer_defs["discriminator"]["mapping"]) == set(netspec.plugins.default_registry().layers)


def test_schema_command_writes_the_schema(tmp_path, capsys, monkeypatch):
    target = tmp_path / "netspec.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == SCHEMA
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["schema", "-o", "-"]) == 0  # stdout, as for most tools: it wrote a file named "-"
    assert json.loads(capsys.readouterr().out) == SCHEMA and not (tmp_path / "-").exists()
    with pytest.raises(SystemExit) as info:
        main(["schema", "-o", ""])
    assert info.value.code == 2 and "got an empty name" in capsys.readouterr().err


def test_plugins_command_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "netspec.layers.conv" in out and "built-in" in out and "conv, depthwise, separable" in out
    assert main(["plugins", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    conv = next(r for r in rows if r["name"] == "netspec.layers.conv")
    assert conv["origin"] == "built-in" and conv["hooks"] == ["netspec_register_layers"]


def test_plugins_command_reports_broken_plugins(monkeypatch, capsys):
    from netspec.plugins import PluginInfo, Registry, default_registry

    broken = PluginInfo("bad", "entry point", "netspec-bad", "0.1", error="failed to load: ImportError('x')")
    real = default_registry()
    registry = Registry(real.layers, real.owners, real.plugins, (broken,))
    monkeypatch.setattr("netspec.plugins.default_registry", lambda: registry)
    assert main(["plugins"]) == 1
    captured = capsys.readouterr()
    assert "'bad' (netspec-bad 0.1) [entry point]: failed to load" in captured.out
    assert "warning: plugin 'bad' (netspec-bad 0.1) is not loaded" in captured.err


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = [p for p in (REPO / "tests").glob("test_*.py") if p.name != "test_schema_and_meta.py"]
    assert any(hook in p.read_text() for p in tests), f"no test mentions {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"
    assert hook in (REPO / "plugins" / "README.md").read_text(), f"{hook} is not in the plugin guide"


MODULES = sorted(
    m.name for m in pkgutil.walk_packages(netspec.__path__, "netspec.") if m.name != "netspec.__main__"
)


def test_every_module_imports_with_warnings_as_errors():
    code = f"import importlib\nfor name in {MODULES!r}:\n    importlib.import_module(name)\n"
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert len(MODULES) > 20
