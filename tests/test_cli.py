"""The command line: output, exit codes, and never a traceback for a bad spec."""

from __future__ import annotations

import os
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


def test_a_directory_or_fifo_as_spec_exits_2_without_reading_it(tmp_path, capsys):
    """A directory was parsed as YAML text (its path), and a FIFO hung the command forever."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for path, message in ((tmp_path, "cannot read spec: a directory"), (fifo, "not a regular file")):
        assert main(["build", str(path)]) == 2
        assert message in capsys.readouterr().err


def test_hostile_yaml_exits_2_with_a_located_message(write_spec, capsys):
    for text in ("a: &a [*a]\n", "a: !!bool maybe\n", "a: " + "9" * 5000 + "\n", "a: b\x00\n"):
        path = write_spec(text)
        assert main(["build", str(path)]) == 2
        assert capsys.readouterr().err.startswith(f"{path}:1:")


def test_internal_failure_exits_1_without_traceback(monkeypatch, capsys, write_spec):
    import netspec.summary

    def explode(spec, batch_size=1):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(netspec.summary, "summarize", explode)
    assert main(["build", str(REPO / "specs/lenet.yaml")]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "kaboom" in err and "NETSPEC_DEBUG" in err and "Traceback" not in err


def test_a_broken_plugin_shows_its_traceback_under_netspec_debug(monkeypatch, capsys):
    """A NetspecError of exit 1 (a builder that fails) printed one line even with NETSPEC_DEBUG=1."""
    import netspec.summary
    from netspec.errors import PluginError

    def broken(spec, batch_size=1):
        raise PluginError("builder of layer type 'x' failed") from ValueError("the cause")

    monkeypatch.setattr(netspec.summary, "summarize", broken)
    monkeypatch.setenv("NETSPEC_DEBUG", "1")
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--summary"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: the cause" in err
    assert err.rstrip().endswith("netspec: builder of layer type 'x' failed")


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


def test_summary_formats(capsys):
    import json

    lenet = str(REPO / "specs/lenet.yaml")
    assert main(["build", lenet, "--summary"]) == 0
    table = capsys.readouterr().out
    assert "receptive field" in table and "MACs per sample: 435,850" in table
    assert main(["build", lenet, "--format", "json", "--batch-size", "8"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["batch_size"] == 8 and doc["totals"]["params"] == 61_706
    assert main(["build", lenet, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("### lenet5\n\n| # | name |")


@pytest.mark.parametrize(
    "args", [["train"], ["eval", "--checkpoint", "x.ckpt"], ["export", "--onnx", "x.onnx"], ["tune"]]
)
def test_an_unknown_option_shows_the_command_usage_and_input_says_how(args, capsys):
    """`train --input` printed netspec's top-level usage, with no word of --set input=."""
    spec = str(REPO / "specs/lenet.yaml")
    with pytest.raises(SystemExit) as exited:
        main([*args, spec, "--input", "1,32,32"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: netspec {args[0]} ")
    assert (
        "unrecognized arguments: --input 1,32,32 (this command reads the input shape from the spec: "
        "--set 'input=[1, 32, 32]' changes it)"
    ) in " ".join(err.split())
    with pytest.raises(SystemExit):  # no shape to repeat
        main([*args, spec, "--input", "--bogus"])
    assert "--set 'input=[C, H, W]' changes it" in " ".join(capsys.readouterr().err.split())


def test_options_are_spelled_out(capsys):
    """`train --in 3` was read as `--init 3`; an unknown option shows its command's usage."""
    with pytest.raises(SystemExit):
        main(["train", str(REPO / "specs/lenet.yaml"), "--in", "3"])
    assert "unrecognized arguments: --in 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", str(REPO / "specs/lenet.yaml"), "--bogus"])
    err = capsys.readouterr().err
    assert err.startswith("usage: netspec build ")
    assert err.rstrip().endswith("unrecognized arguments: --bogus")


def test_input_override(capsys):
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--input", "1,32,32"]) == 0
    out = capsys.readouterr().out
    assert "[6, 32, 32]" in out and "[16, 6, 6]" in out


def test_input_override_that_breaks_the_network_is_a_located_error(capsys):
    assert main(["build", str(REPO / "specs/unet.yaml"), "--input", "1,4,4"]) == 2
    err = capsys.readouterr().err
    assert "layer 14 'mid.pool' (maxpool): pooling window spans 2 in H" in err and "unet.yaml:23:" in err
    assert "in block 'down' used at" in err and "as 'mid' with channels=128" in err


@pytest.mark.parametrize("bad", ["0,28,28", "a,b", ""])
def test_bad_input_option_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["build", str(REPO / "specs/lenet.yaml"), "--input", bad])
    assert info.value.code == 2


def test_explain_one_layer_and_the_ceil_mode_rule(capsys, write_spec):
    path = write_spec(
        "input: [1, 5, 5]\nlayers:\n"
        "  - {type: maxpool, kernel_size: 2, stride: 3, padding: 1, ceil_mode: true}\n"
    )
    assert main(["build", str(path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "H_out = W_out = ⌈(5 + 2·1 − 1·(2 − 1) − 1) / 3⌉ + 1 = ⌈5 / 3⌉ + 1 = 3" in out
    assert "a 3rd window would start at (3 − 1)·3 = 6 ≥ 5 + 1 (input + padding)" in out
    assert "dropped → 2" in out
    import torch

    assert torch.nn.MaxPool2d(2, 3, 1, ceil_mode=True)(torch.zeros(1, 1, 5, 5)).shape[-1] == 2
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--explain", "c1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "0 c1 (conv): input [1, 28, 28] → [6, 28, 28]",
        "    H_out = ⌊(H_in + 2·padding − dilation·(kernel_size − 1) − 1) / stride⌋ + 1   (likewise for W)",
        "    H_out = W_out = ⌊(28 + 2·2 − 1·(5 − 1) − 1) / 1⌋ + 1 = ⌊27 / 1⌋ + 1 = 28",
    ]
    assert (
        "    parameters = out_channels·(in_channels/groups)·kH·kW + out_channels = 6·1·5·5 + 6 = 156" in out
    )
    assert "H = W: r = r_in + (span − 1)·j_in = 1 + (5 − 1)·1 = 5;  j = j_in·stride = 1·1 = 1" in out
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--explain", "nope"]) == 2


def test_graph_is_written_as_dot(tmp_path, capsys):
    target = tmp_path / "segnet.dot"
    assert main(["build", str(REPO / "specs/segnet.yaml"), "--graph", str(target)]) == 0
    dot = target.read_text()
    assert dot.startswith('digraph "segnet" {')
    assert '"enc1.pool" -> "unpool1" [style=dashed, label="indices"];' in dot
    assert '"enc1.block.conv" -> "enc1.block.bn" [label="[16, 45, 60]"];' in dot
    assert 'subgraph "cluster_enc1" {' in dot and 'subgraph "cluster_enc1.block" {' in dot


def test_graph_as_svg_without_graphviz_uses_the_own_layout_and_png_needs_graphviz(
    tmp_path, capsys, monkeypatch
):
    import shutil

    target = tmp_path / "lenet.svg"
    if shutil.which("dot"):
        assert main(["build", str(REPO / "specs/lenet.yaml"), "--graph", str(target)]) == 0
        assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
        target.unlink()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--graph", str(target)]) == 0
    svg = target.read_text()
    assert svg.startswith("<svg") and 'data-name="c1"' in svg and "conv 5 pad 2 →6" in svg
    target.unlink()
    png = tmp_path / "lenet.png"
    with pytest.raises(SystemExit) as info:
        main(["build", str(REPO / "specs/lenet.yaml"), "--graph", str(png)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        "needs Graphviz's `dot` program, which is not on PATH: install Graphviz (apt install graphviz" in err
    )
    assert "or write " + str(tmp_path / "lenet.dot") in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def _fake_dot(tmp_path, monkeypatch):
    """A `dot` on PATH that records its arguments and writes its -o file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\nshift 2\ncat > "$1"\n')
    dot.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "args"


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".png", ".pdf"])
def test_graph_images_are_rendered_by_dot_in_their_format(tmp_path, monkeypatch, capsys, suffix):
    args = _fake_dot(tmp_path, monkeypatch)
    target = tmp_path / f"lenet{suffix}"
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--graph", str(target)]) == 0
    fmt = "jpg" if suffix == ".jpeg" else suffix[1:]
    assert args.read_text().split() == [f"-T{fmt}", "-o", str(target)]
    assert target.read_text().startswith('digraph "lenet5" {')  # what dot was given to render


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/dir/net.dot", "directory {tmp}/missing/dir does not exist; create it first"),
        ("missing/net.png", "directory {tmp}/missing does not exist; create it first"),
        (
            "net.txt",
            "cannot write .txt; netspec writes DOT text (.dot, .gv), .svg or, with Graphviz installed",
        ),
        ("net", "cannot write a file without suffix"),
        ("adir.dot", "is a directory; give a file name such as"),
    ],
)
def test_graph_paths_that_cannot_be_written_are_usage_errors(tmp_path, target, message):
    (tmp_path / "adir.dot").mkdir()
    out = run("build", "specs/lenet.yaml", "--graph", str(tmp_path / target))
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert "netspec build: error: --graph " in out.stderr
    assert message.format(tmp=tmp_path) in out.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["build", "specs/lenet.yaml", "--html", "{tmp}/missing/r.html"],
            "directory {tmp}/missing does not exist",
        ),
        (
            ["build", "specs/lenet.yaml", "--html", "{tmp}"],
            "--html {tmp} is a directory; give a file name such as",
        ),
        (["build", "specs/lenet.yaml", "--html", "/proc/r.html"], "/proc/r.html: cannot write --html file"),
        # the spec itself (or any file of another kind) is not overwritten with a report
        (["build", "specs/lenet.yaml", "--html", "specs/lenet.yaml"], "expected a file name ending in .html"),
        (["export", "specs/lenet.yaml", "--onnx", "specs/lenet.yaml"], "a file name ending in .onnx"),
        (["build", "specs/lenet.yaml", "--graph", "/proc/r.dot"], "/proc/r.dot: cannot write --graph file"),
        (["schema", "-o", "{tmp}/missing/s.json"], "netspec schema: -o {tmp}/missing/s.json: directory"),
        (["schema", "-o", "{tmp}"], "netspec schema: -o {tmp} is a directory"),
        (["schema", "-o", "/proc/s.json"], "/proc/s.json: cannot write -o file"),
    ],
)
def test_every_file_netspec_is_told_to_write_is_checked_or_refused_as_a_user_error(
    tmp_path, command, message
):
    """A missing directory, a directory, or a path the system refuses (here under /proc): exit 2
    naming the option, never an internal error after the work is done."""
    out = run(*(part.format(tmp=tmp_path) for part in command))
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert "internal error" not in out.stderr and message.format(tmp=tmp_path) in out.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "8"], "--batch-size scales the memory estimates, which only --summary"),
        (["--explain", "--batch-size", "8"], "so --batch-size would do nothing"),
        (["--explain", "c1", "--format", "json"], "so --format would do nothing"),
        (["--explain", "--summary"], "so --summary would do nothing"),
        (["--summary", "--explain", "c1", "--format", "markdown"], "so --summary, --format would do nothing"),
        (["--depth", "0", "--format", "json"], "json lists every layer, so --depth would do nothing"),
        (["--depth", "1", "--explain", "c1"], "--explain prints formulas, so --depth would do nothing"),
    ],
)
def test_flags_that_would_do_nothing_are_usage_errors(capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        main(["build", str(REPO / "specs/lenet.yaml"), *flags])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags", [["--summary", "--batch-size", "8"], ["--format", "markdown", "--batch-size", "8"]]
)
def test_batch_size_scales_what_shows_memory(capsys, flags):
    assert main(["build", str(REPO / "specs/lenet.yaml"), *flags]) == 0
    assert "for a batch of 8" in capsys.readouterr().out


def test_help_documents_the_flag_combinations():
    out = run("build", "--help")
    assert "A flag that would do nothing is an error." in " ".join(out.stdout.split())


def test_input_override_may_not_change_the_rank(capsys):
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--input", "1,28"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{REPO / 'specs/lenet.yaml'}:5:")  # the spec's `input:` line
    assert "--input 1,28 has 2 dimension(s) but the spec's input [1, 28, 28] has 3" in err
    assert "hint: give 3 numbers" in err


def test_contracts_are_checked_by_every_build(write_spec, capsys):
    body = "input: [1, 8, 8]\nlayers:\n  - {type: conv, out_channels: 4, kernel_size: 3}\n"
    ok = write_spec(
        body + "expect: {output: [4, 6, 6], params: 40, params_max: 100, macs_max: 1440}\n", "ok.yaml"
    )
    assert main(["build", str(ok)]) == 0
    capsys.readouterr()
    broken = write_spec(body + "expect:\n  output: [4, 8, 8]\n", "shape.yaml")
    assert main(["build", str(broken)]) == 2
    assert f"{broken}:5:11: expect.output: the network outputs [4, 6, 6]" in capsys.readouterr().err
    budget = write_spec(body + "expect:\n  params_max: 10\n  macs_max: 100\n", "budget.yaml")
    assert main(["build", str(budget)]) == 2
    err = capsys.readouterr().err
    assert f"{budget}:5:15: expect.params_max: the network has 40 parameters, over params_max 10" in err
    assert f"{budget}:6:13: expect.macs_max: the network needs 1,440 MACs per sample" in err
    import netspec

    with pytest.raises(netspec.SpecError, match="params_max"):
        netspec.build(str(budget))


def test_input_override_leaves_the_contracts_of_the_spec_s_own_input_unchecked(capsys):
    """autoencoder.yaml's expect: holds at 28x28; at 30x30 its bottleneck (and output) differ."""
    assert main(["build", str(REPO / "specs/autoencoder.yaml"), "--input", "1,30,30"]) == 0
    captured = capsys.readouterr()
    assert "reconstruction [1, 30, 30]" in captured.out
    assert "expect: contracts describe the spec at its own input: not checked" in captured.err
    # at its own input the contracts hold and are checked (no note); a broken one is still caught
    assert main(["build", str(REPO / "specs/autoencoder.yaml"), "--input", "1,28,28"]) == 0
    assert "not checked" not in capsys.readouterr().err
    argv = ["build", str(REPO / "specs/autoencoder.yaml"), "--input", "1,28,28", "--set", "expect.params=5"]
    assert main(argv) == 2 and "expect.params" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "status"), [(["build", "/nonexistent.yaml"], 2), (["schema"], 0)])
def test_a_reader_that_went_away_does_not_change_the_exit_status(argv, status):
    """``netspec … 2>&1 | head`` closes our streams early: the status stays the command's (it
    was 1, from a BrokenPipeError while printing the message)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=60) == status


def test_explain_of_a_missing_layer_suggests_close_names(capsys):
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--explain", "c4"]) == 2
    assert "no layer 'c4' in" in (err := capsys.readouterr().err) and "did you mean 's4', 'c3'" in err
    # a block instance's name lists its layers, as `show --layers` does (it suggested three at random)
    assert main(["build", str(REPO / "specs/resnet18.yaml"), "--explain", "layer2.0"]) == 2
    err = capsys.readouterr().err
    assert "'layer2.0' is a block instance; name one of its layers: layer2.0.conv1, layer2.0.bn1," in err
