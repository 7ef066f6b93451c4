"""The command line: output, exit codes, and never a traceback for a bad spec."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, SPECS

from netspec.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netspec", *args], cwd=REPO, capture_output=True, text=True)


def test_build_lenet_prints_shapes_and_the_classic_parameter_count():
    out = run("build", "specs/lenet.yaml")
    assert out.returncode == 0, out.stderr
    assert "[6, 28, 28]" in out.stdout and "[16, 5, 5]" in out.stdout
    assert "total parameters: 61,706" in out.stdout  # LeNet-5 as published


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_builds(path, capsys):
    assert main(["build", str(path)]) == 0
    assert "total parameters" in capsys.readouterr().out


def test_invalid_spec_exits_2_with_a_located_message(write_spec):
    path = write_spec("input: [1, 8, 8]\nlayers:\n  - {type: conv, out_channels: 4, kernel_size: 9}\n")
    out = run("build", str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith(f"{path}:3:")
    assert "Traceback" not in out.stderr


def test_missing_file_exits_2():
    out = run("build", "no/such/spec.yaml")
    assert out.returncode == 2 and "cannot read spec" in out.stderr and "Traceback" not in out.stderr


def test_internal_failure_exits_1_without_traceback(monkeypatch, capsys, write_spec):
    import netspec.counting

    def explode(spec):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(netspec.counting, "parameter_counts", explode)
    assert main(["build", str(REPO / "specs/lenet.yaml")]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "kaboom" in err and "NETSPEC_DEBUG" in err and "Traceback" not in err


def test_help_does_not_import_torch():
    code = (
        "import sys; from netspec.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("netspec") or str(REPO / ".venv/bin/netspec")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("netspec ")
