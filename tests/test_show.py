"""``netspec show``: feature-map pictures of chosen layers for one input."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from conftest import REPO
from PIL import Image

from netspec.cli import main

LENET = str(REPO / "specs" / "lenet.yaml")

BLOCKS = """
netspec: 1
name: tinyres
input: [3, 24, 32]
blocks:
  basic:
    params: {planes: int}
    layers:
      - {type: conv, name: conv1, out_channels: =planes, kernel_size: 3, padding: 1}
      - {type: relu, name: relu}
      - {type: conv, name: conv2, out_channels: =planes, kernel_size: 3, padding: 1}
layers:
  - {type: conv, name: stem, out_channels: 80, kernel_size: 3, stride: 2, padding: 1}
  - {type: basic, name: layer1.0, planes: 8}
  - {type: global_avgpool, name: pool}
  - {type: linear, name: fc, out_features: 10}
"""


def _png(path, min_side=150):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side and max(image.size) < 3000
        return image.size


def test_lenet_default_layers_write_one_png_each(tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["show", LENET, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c1.png", "c3.png", "input.png", "s2.png", "s4.png"]
    for path in out.iterdir():
        _png(path)
    captured = capsys.readouterr()
    assert "random initialisation" in captured.err
    assert str(out / "c1.png") in captured.out
    assert not (out / "tensorboard").exists()  # tensorboard is not installed here


def test_dotted_block_layer_and_more_than_64_channels(write_spec, tmp_path):
    from netspec.show import show

    path = write_spec(BLOCKS)
    image = tmp_path / "photo.jpg"
    Image.new("RGB", (50, 40), "red").save(image)
    notes = []
    result = show(
        path, tmp_path / "out", image=image, layers=["layer1.0.conv2", "stem", "fc"], log=notes.append
    )
    assert list(result.pictures) == ["layer1.0.conv2", "stem"]
    assert result.skipped == {"fc": "output [10] has no spatial dims"}
    assert any("skipped fc" in n for n in notes)
    width, height = _png(result.pictures["stem"])
    assert width > 600 and height > 600  # an 8×8 grid: 64 of the 80 channels
    _png(result.input_png)


def test_a_checkpoint_is_loaded_and_changes_the_pictures(tmp_path):
    import netspec

    model = netspec.load(LENET).build()
    ckpt = tmp_path / "w.ckpt"
    state = {f"model.{k}": torch.full_like(v, 0.01) for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, ckpt)
    out = tmp_path / "out"
    assert main(["show", LENET, "--checkpoint", str(ckpt), "--layers", "c1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c1.png", "input.png"]


def test_one_and_three_dimensional_outputs(write_spec, tmp_path):
    from netspec.show import show

    spec = """
    netspec: 1
    name: n{rank}
    input: {shape}
    layers:
      - {{type: conv, name: c, out_channels: 4, kernel_size: 3}}
      - {{type: maxpool, name: p, kernel_size: 2}}
      - {{type: flatten}}
      - {{type: linear, out_features: 3}}
    train: {{data: {{name: synthetic, num_classes: 3, num_samples: 60}}}}
    """
    for rank, shape in ((1, "[2, 40]"), (3, "[1, 6, 10, 10]")):
        path = write_spec(spec.format(rank=rank, shape=shape), f"n{rank}.yaml")
        result = show(path, tmp_path / f"out{rank}", sample=1, log=lambda _: None)
        assert list(result.pictures) == ["c", "p"]
        for png in [result.input_png, *result.pictures.values()]:
            _png(png)


def test_tensorboard_gets_the_same_images_when_installed(tmp_path, monkeypatch):
    from netspec.show import show

    written = []

    class Writer:
        def __init__(self, log_dir):
            written.append(log_dir)

        def add_image(self, tag, pixels, step, dataformats):
            assert dataformats == "HWC" and pixels.shape[2] == 3
            written.append(tag)

        def close(self):
            written.append("closed")

    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    result = show(LENET, tmp_path / "out", layers=["c1"], log=lambda _: None)
    assert result.tensorboard == tmp_path / "out" / "tensorboard"
    assert written == [str(result.tensorboard), "feature_maps/input", "feature_maps/c1", "closed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "c2"], "did you mean"),
        (["--sample", "100000"], "out of range"),
        (["--image", "{bad}"], "cannot read the image"),
        (["--image", "{tmp}/missing.png"], "cannot read the image"),
        (["--checkpoint", "{tmp}/missing.ckpt"], "does not exist"),
        (["--checkpoint", "{other}"], "does not fit the network"),
        (["--image", "{bad}", "--sample", "1"], "not allowed with"),
    ],
)
def test_errors_exit_2_with_a_message(args, message, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.x.weight": torch.zeros(3)}}, other)
    args = [a.format(bad=bad, tmp=tmp_path, other=other) for a in args]
    with pytest.raises(SystemExit) if "not allowed" in message else _nothing() as caught:
        code = main(["show", LENET, "--out", str(tmp_path / "out"), *args])
    code = caught.value.code if caught is not None else code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_block_instance_name_lists_its_layers(write_spec, tmp_path, capsys):
    path = write_spec(BLOCKS)
    assert main(["show", str(path), "--layers", "layer1.0", "--out", str(tmp_path / "o")]) == 2
    assert "name one of its layers: layer1.0.conv1" in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_a_network_without_conv_or_pool_gets_a_hint_it_can_follow(write_spec, tmp_path, capsys):
    """The hint named the first two layers, which show then skipped (no spatial dims)."""
    flat = write_spec(
        "netspec: 1\nname: mlp\ninput: [1, 8, 8]\nlayers:\n  - {type: flatten}\n"
        "  - {type: linear, out_features: 3}\n"
    )
    assert main(["show", str(flat), "--out", str(tmp_path / "a")]) == 2
    assert "its layers' outputs have no spatial dims" in capsys.readouterr().err
    spatial = write_spec(
        "netspec: 1\nname: act\ninput: [1, 8, 8]\nlayers:\n  - {type: relu}\n  - {type: flatten}\n"
        "  - {type: linear, out_features: 3}\n"
    )
    assert main(["show", str(spatial), "--out", str(tmp_path / "b")]) == 2
    assert "hint: name the layers to show with --layers, e.g. --layers relu_0\n" in capsys.readouterr().err
    assert main(["show", str(spatial), "--out", str(tmp_path / "b"), "--layers", "relu_0"]) == 0
    assert (tmp_path / "b" / "relu_0.png").is_file()


def test_outputs_show_cannot_draw_are_skipped_with_the_reason(write_spec, tmp_path):
    """A 5-D output was an internal error (exit 1); [C, 1, 1] drew 64 tiles of one colour each."""
    from netspec.show import show

    spec = """
    netspec: 1
    name: odd
    input: [2, 8, 8]
    layers:
      - {type: conv, name: c, out_channels: 4, kernel_size: 3, padding: 1}
      - {type: reshape, name: r5, shape: [2, 2, 1, 8, 8]}
      - {type: flatten}
      - {type: linear, out_features: 8}
      - {type: reshape, name: dots, shape: [8, 1, 1]}
    train: {data: {name: synthetic, num_classes: 3, num_samples: 30}}
    """
    path = write_spec(spec, "odd.yaml")
    result = show(path, tmp_path / "o", layers=["c", "r5", "dots"], log=lambda _: None)
    assert list(result.pictures) == ["c"]
    assert "has 4 spatial dims" in result.skipped["r5"]
    assert "one value per channel" in result.skipped["dots"]
    _png(result.input_png)  # two channels: the first is drawn, and the title says so


def test_an_image_reaches_a_trained_network_standardised_as_its_training_inputs(tmp_path, monkeypatch):
    """--image went in as [0, 1] while the network trained on standardised inputs (--sample was
    standardised): the pictures showed what the network never sees."""
    import netspec
    from netspec import show as show_module

    model = netspec.load(LENET).build()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": state, "netspec_normalization": [[0.25], [0.5]]}, ckpt)
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(image)
    seen = []
    real = show_module._capture
    monkeypatch.setattr(show_module, "_capture", lambda m, names, x: seen.append(x) or real(m, names, x))
    show_module.show(LENET, tmp_path / "o", image=image, checkpoint=ckpt, layers=["c1"], log=lambda _: None)
    assert torch.allclose(seen[0], torch.full((1, 1, 28, 28), (1.0 - 0.25) / 0.5))
    notes = []
    torch.save({"state_dict": state}, ckpt)  # no record of the normalization: said, not guessed
    show_module.show(LENET, tmp_path / "o2", image=image, checkpoint=ckpt, layers=["c1"], log=notes.append)
    assert torch.allclose(seen[1], torch.ones(1, 1, 28, 28))
    assert any("does not record how the training inputs were normalized" in n for n in notes)


def test_show_with_no_sample_to_show_or_an_empty_out_says_so(tmp_path, capsys):
    empty = ["--set", "train.data.test_fraction=0", "--set", "train.data.val_fraction=0"]
    assert main(["show", LENET, "--out", str(tmp_path / "o"), *empty]) == 2
    err = capsys.readouterr().err
    assert "has no test or validation sample to show" in err and "give --sample 0 to -1" not in err
    with pytest.raises(SystemExit) as info:
        main(["show", LENET, "--out", ""])
    assert info.value.code == 2 and "expected a directory" in capsys.readouterr().err


def test_named_layers_none_of_which_can_be_drawn_are_an_error_not_an_empty_success(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["show", LENET, "--out", str(out), "--layers", "f5,output"]) == 2
    err = capsys.readouterr().err
    assert "none of the layers named can be pictured: f5: output [120] has no spatial dims" in err
    assert not out.exists()
    for bad in ("", "c1,", ",c1"):  # "" meant every default layer; the others were read as "c1"
        with pytest.raises(SystemExit) as info:
            main(["show", LENET, "--out", str(out), "--layers", bad])
        assert info.value.code == 2 and "expected layer names separated by commas" in capsys.readouterr().err


def test_activations_that_are_not_finite_are_drawn_not_a_crash(tmp_path):
    """A diverged network's NaN or infinite outputs: matplotlib drew them; Pillow's drawing and
    numpy's casts must not fail (or warn) on them either."""
    from netspec.show import _save, feature_picture, input_picture

    maps = torch.randn(4, 10, 10)
    maps[0, 0, 0], maps[1, 1, 1], maps[2] = float("inf"), float("nan"), float("-inf")
    lines = torch.randn(3, 20)
    lines[0, 3], lines[1, 5] = float("nan"), float("inf")
    signal = torch.randn(1, 2, 20)
    signal[0, 0, 2], signal[0, 1, 4] = float("inf"), float("nan")
    image = torch.randn(1, 3, 8, 8)
    image[0, 0, 2, 2] = float("nan")
    pictures = [feature_picture(maps, "m"), feature_picture(lines, "l"), input_picture(signal, "s")]
    pictures.append(input_picture(image, "i"))
    for i, picture in enumerate(pictures):
        assert _save(picture, tmp_path / f"{i}.png").shape[2] == 3


@pytest.mark.parametrize("command", ["show", "train"])
def test_a_1d_spec_on_default_images_is_told_at_its_input_to_use_other_data(command, tmp_path, capsys):
    """It pointed at `netspec: 1` and said "train it" to a `show`."""
    spec = REPO / "specs/conv1d.yaml"
    args = [command, str(spec), "--out", str(tmp_path / "out")] if command == "show" else [command, str(spec)]
    assert main(args) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if text.startswith("input:"))
    assert err.startswith(f"{spec}:{line}:8: dataset 'digits' gives images [C, H, W]")
    assert "give it data of that shape" in err and "--set train.data.name=synthetic" in err
