"""``--explain`` that teaches, on valid and invalid specs; ``netspec explain TYPE``; valid input sizes."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

import netspec
from netspec.cli import main


def test_explain_shows_symbols_numbers_channels_weights_and_receptive_field(capsys, write_spec):
    path = write_spec(
        """
        input: [4, 7, 16]
        layers:
          - {type: conv, out_channels: 6, kernel_size: [3, 2], stride: 2, groups: 2}
          - {type: maxpool, kernel_size: 2, ceil_mode: true}
          - {type: tconv, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
        """
    )
    assert main(["build", str(path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert (
        "H_out = ⌊(H_in + 2·padding − dilation·(kernel_size − 1) − 1) / stride⌋ + 1   (likewise for W)" in out
    )
    assert "H_out = ⌊(7 + 2·0 − 1·(3 − 1) − 1) / 2⌋ + 1 = ⌊4 / 2⌋ + 1 = 3" in out
    assert "W_out = ⌊(16 + 2·0 − 1·(2 − 1) − 1) / 2⌋ + 1 = ⌊14 / 2⌋ + 1 = 8" in out
    assert "weight [out_channels, in_channels/groups, kH, kW] = [6, 4/2, 3, 2] = [6, 2, 3, 2]" in out
    assert "parameters = out_channels·(in_channels/groups)·kH·kW + out_channels = 6·2·3·2 + 6 = 78" in out
    assert "ceil_mode: ⌈⌉ adds a last, partial window; the 2nd window starts at (2 − 1)·2 = 2 < 3 + 0" in out
    assert "channels: kept, C_out = C_in = 6" in out
    assert "output_padding ∈ [0, 1] (< stride or < dilation) reaches output_size ∈ [3, 4]" in out
    assert "weight [in_channels, out_channels/groups, kH, kW] = [6, 4/1, 3, 3]" in out
    conv = torch.nn.Conv2d(4, 6, (3, 2), 2, groups=2)
    assert tuple(conv.weight.shape) == (6, 2, 3, 2) and sum(p.numel() for p in conv.parameters()) == 78
    y = torch.nn.MaxPool2d(2, ceil_mode=True)(conv(torch.zeros(1, 4, 7, 16)))
    assert tuple(y.shape) == (1, 6, 2, 4)
    for op in (0, 1):
        t = torch.nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=op)
        assert t(y).shape[-2] == 3 + op


def test_explain_on_an_invalid_spec_explains_the_failing_layer_and_the_fix(capsys, write_spec):
    text = """
        input: [3, 8, 8]
        layers:
          - {type: conv, out_channels: 4, kernel_size: 3, stride: 2}
          - {type: conv, out_channels: 4, kernel_size: 5}
        """
    path = write_spec(text)
    assert main(["build", str(path), "--explain"]) == 2
    captured = capsys.readouterr()
    assert "kernel spans 5 in H" in captured.err
    out = captured.out
    assert "why layer 1 'conv_1' (conv) fails" in out
    assert "H_out = W_out = ⌊(3 + 2·0 − 1·(5 − 1) − 1) / 1⌋ + 1 = ⌊-2 / 1⌋ + 1 = -1" in out
    assert "conv_1' (conv): padding: 1 (now 0) → [4, 1, 1]; the whole spec then builds" in out
    assert "conv_1' (conv): kernel_size: 3 (now 5) → [4, 1, 1]" in out
    fixed = netspec.load(path.read_text().replace("kernel_size: 5", "kernel_size: 3"))
    model = fixed.build()
    assert tuple(model(torch.zeros(1, 3, 8, 8)).shape) == (1, 4, 1, 1)


def test_explain_on_the_unet_without_size_references_names_the_tconv_term(capsys, tmp_path):
    broken = (REPO / "specs/unet.yaml").read_text().replace(", output_size: =spatial(skip)", "")
    path = tmp_path / "unet.yaml"
    path.write_text(broken)
    assert main(["build", str(path), "--explain"]) == 2
    out = capsys.readouterr().out
    assert "why layer 20 'dec3.cat' (concat) fails" in out
    assert "H_out = W_out = (7 − 1)·2 − 2·0 + 1·(2 − 1) + 0 + 1 = 14" in out
    assert "its size set by layer 9 'enc3.pool' (maxpool)" in out
    assert "'dec3.up' (tconv): output_padding: 1 (now null) → [64, 15, 15]" in out
    t = torch.nn.ConvTranspose2d(2, 2, 2, 2, output_padding=1)
    assert t(torch.zeros(1, 2, 7, 7)).shape[-1] == 15


def test_explain_one_layer_without_a_spec(capsys):
    assert main(["explain", "conv", "--input", "3,32,32", "out_channels=6", "kernel_size=3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("conv on [3, 32, 32] → [6, 30, 30]\noutput shape: [6, 30, 30]\nparameters: 168\n")
    assert "MACs: 151,200" in out and "⌊29 / 1⌋ + 1 = 30" in out
    conv = torch.nn.Conv2d(3, 6, 3)
    assert tuple(conv(torch.zeros(1, 3, 32, 32)).shape) == (1, 6, 30, 30)
    assert sum(p.numel() for p in conv.parameters()) == 168

    # values read like --set values; options and parameters in any order
    assert main(["explain", "maxpool", "kernel_size=[2,3]", "--input", "1,4,16", "padding=[0,1]"]) == 0
    assert "maxpool on [1, 4, 16] → [1, 2, 6]" in capsys.readouterr().out
    assert tuple(torch.nn.MaxPool2d((2, 3), padding=(0, 1))(torch.zeros(1, 1, 4, 16)).shape) == (1, 1, 2, 6)

    # merges take one --input per input; plugin types work too
    assert main(["explain", "conv", "--input", "3x12×12", "out_channels=2", "kernel_size=3"]) == 0
    assert "conv on [3, 12, 12] → [2, 10, 10]" in capsys.readouterr().out
    assert main(["explain", "concat", "--input", "16,8,8", "--input", "8,8,8"]) == 0
    assert "C_out = 16 + 8 = 24" in capsys.readouterr().out
    assert main(["explain", "squeeze_excite", "--input", "8,4,4", "reduction=2"]) == 0
    assert "squeeze_excite on [8, 4, 4] → [8, 4, 4]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        # no "layer 0 'layer' (conv)": the user wrote no spec and named no layer
        (["conv", "--input", "3,32,32", "out_channels=0", "kernel_size=3"], "out_channels=0: out_channels:"),
        (["conv", "--input", "3,8,8", "out_channels=2", "kernel_size=40"], "kernel_size=40: kernel spans 40"),
        (["add", "--input", "3,8,8", "--input", "4,8,8"], "netspec explain add: add inputs disagree"),
        (["conx", "--input", "3,8,8"], "did you mean 'conv'?"),
        # a stack's shape with one copy's parameters and formula, before
        (
            ["conv", "--input", "3,8,8", "out_channels=4", "kernel_size=3", "repeat=3"],
            "repeat= is spec language",
        ),
        (["conv", "--input", "3,8,8", "out_channels=4", "kernel_size=3", "if=false"], "if= is spec language"),
        (["relu", "--input", "3", "first={}"], "first= is spec language for several layers"),
        (["conv", "out_channels=2", "kernel_size=3"], "give the input shape"),
        (["conv", "--input", "3,8,8", "kernel_size"], "expected KEY=VALUE"),
        (["conv", "--input", "3,a"], "--input: expected positive integers"),
        # the missing key was blamed on the first KEY=VALUE given ("kernel_size=3: … missing … out_channels")
        (
            ["conv", "--input", "3,8,8", "kernel_size=3"],
            "netspec explain conv: missing required key 'out_channels'",
        ),
        (["conv", "--input", "3,8,8"], "missing required keys 'kernel_size', 'out_channels'"),
        (["conv", "--input", "3,8,8", "out_chanels=6", "kernel_size=3"], "(did you mean out_channels?)"),
        (["conv", "--input", "3,x,32", "out_channels=2", "kernel_size=3"], "got '3,x,32'"),  # not [3, 32]
        (["conv", "--input", "3,,32", "out_channels=2", "kernel_size=3"], "got '3,,32'"),
        (["conv", "--input", "3,32,", "out_channels=2", "kernel_size=3"], "got '3,32,'"),
    ],
)
def test_explain_one_layer_errors_are_located_with_exit_2(argv, message, capsys):
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_explain_one_layer_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom netspec.cli import main\n"
        "status = main(['explain', 'tconv', '--input', '16,7,7', 'out_channels=6', "
        "'kernel_size=2', 'stride=2'])\n"
        "print('STATUS', status, 'TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert "STATUS 0 TORCH False" in out.stdout
    assert "output_size ∈ [14, 15]" in out.stdout


def test_sizes_states_the_rule_for_a_unet_without_size_references(capsys, tmp_path):
    plain = tmp_path / "unet.yaml"
    plain.write_text((REPO / "specs/unet.yaml").read_text().replace(", output_size: =spatial(skip)", ""))
    assert main(["build", str(plain), "--sizes", "8:40"]) == 0
    out = capsys.readouterr().out
    assert "builds for 5 of 33: n ≡ 0 (mod 8) (8, 16, 24, 32, 40)" in out
    assert "output keeps the input size (round-trips) for 5: all of them" in out
    assert "e.g. n = 9 fails:" in out
    spec = netspec.load(str(plain), input_shape=[1, 24, 24])
    assert tuple(spec.build()(torch.zeros(1, 1, 24, 24)).shape) == (1, 2, 24, 24)
    with pytest.raises(netspec.SpecError):
        netspec.load(str(plain), input_shape=[1, 20, 20])


def test_sizes_of_the_unet_with_size_references_and_of_one_dim(capsys):
    assert main(["build", str(REPO / "specs/unet.yaml"), "--sizes", "8:19"]) == 0
    assert "builds for 12 of 12: every n in the range (8–19)" in capsys.readouterr().out
    spec = netspec.load(str(REPO / "specs/unet.yaml"), input_shape=[1, 13, 13])
    assert tuple(spec.build()(torch.zeros(1, 1, 13, 13)).shape) == (1, 2, 13, 13)
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--sizes", "W=1:16"]) == 0
    out = capsys.readouterr().out
    assert "input [1, 28, n]" in out and "builds for 5 of 16: n ≥ 12" in out
    for n in (11, 12):
        ok = n >= 12
        try:
            netspec.load(str(REPO / "specs/lenet.yaml"), input_shape=[1, 28, n])
        except netspec.SpecError:
            assert not ok
        else:
            assert ok


@pytest.mark.parametrize("value", ["8", "W=9:8", "Q=1:4"])
def test_bad_sizes_are_usage_errors(value, capsys):
    if value.startswith("Q"):
        assert main(["build", str(REPO / "specs/lenet.yaml"), "--sizes", value]) == 2
        return
    with pytest.raises(SystemExit) as info:
        main(["build", str(REPO / "specs/lenet.yaml"), "--sizes", value])
    assert info.value.code == 2


def test_sizes_are_bounded_by_the_layers_they_load(capsys):
    """Each size loads the whole spec again: 4,096 sizes of a 10,000-layer spec would take an hour."""
    assert main(["build", str(REPO / "specs/resnet50.yaml"), "--sizes", "1:4096"]) == 2
    err = capsys.readouterr().err
    assert "--sizes 1:4096 loads the spec's 174 layers 4,096 times" in err
    assert "over the 200,000 layer loads --sizes allows" in err
    assert "hint: try at most 1,149 sizes at a time (e.g. --sizes 1:1149)" in err
