"""The README stays true: every built-in layer type is documented, its commands are the CI's."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from netspec.plugins import collect_registry, make_plugin_manager

README = (REPO / "README.md").read_text()
BUILTINS = collect_registry(make_plugin_manager(entry_points=False))


@pytest.mark.parametrize("name", sorted(BUILTINS.layers))
def test_every_builtin_layer_type_is_in_the_readme(name):
    assert f"`{name}`" in README


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (REPO / ".ci/run").read_text()
    test_command = re.search(
        r"pip install (torch==[\d.]+ -e '\.\[test\]' -e plugins/[\w-]+) && (\w+)", README
    )
    assert test_command, "README lost its one-line test command"
    install, runner = test_command.groups()
    assert f"pip install --quiet {install}" in ci
    assert re.search(rf"^{runner}$", ci, re.M)


def test_the_readme_error_example_is_what_netspec_prints(tmp_path, monkeypatch):
    import netspec

    broken = (REPO / "specs/unet.yaml").read_text().replace(", output_size: =spatial(skip)", "")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/unet.yaml").write_text(broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(netspec.SpecError) as info:
        netspec.load("specs/unet.yaml")
    assert str(info.value) in README
