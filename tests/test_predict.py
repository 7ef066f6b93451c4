"""``netspec predict``: a trained network on image files, arrays and dataset splits.

A tiny linear classifier is trained on the digits for real (one run for the module); its
predictions on PNG files must equal the network applied by hand to the same pixels standardised
with the training data's statistics. Segmentation, reconstruction and several outputs use small
networks with weights set by hand, written as checkpoints the way training writes them (with and
without the recorded tasks), so that every expected mask and value is known exactly.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import netspec
from netspec.cli import main
from netspec.training.checkpoint import read_checkpoint

LINEAR = """
netspec: 1
name: digits_linear
input: [1, 8, 8]
layers:
  - {type: flatten}
  - {type: linear, name: scores, out_features: 10}
train:
  data: {name: digits, batch_size: 128}
  optimizer: {name: adam, lr: 0.05}
  max_steps: 60
  progress: none
"""

SEGMENT = """
netspec: 1
name: colours
input: [3, 12, 12]
layers:
  - {type: conv, name: seg, out_channels: 3, kernel_size: 1}
"""

IDENTITY = """
netspec: 1
name: identity
input: [1, 8, 8]
layers:
  - {type: conv, name: recon, out_channels: 1, kernel_size: 1}
"""

TWO_HEADS = """
netspec: 1
name: two_heads
input: [4]
layers:
  - {type: linear, name: cls, out_features: 3}
  - {type: linear, name: reg, from: input, out_features: 2}
outputs: [cls, reg]
train:
  outputs: {cls: {loss: cross_entropy}, reg: {loss: mse}}
"""


def _write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(spec path, best checkpoint) of a real training run on the digits."""
    from netspec.training.run import fit

    root = tmp_path_factory.mktemp("trained")
    spec = _write(root / "linear.yaml", LINEAR)
    result = fit(spec, overrides=[f"train.run_dir={root / 'run'}"])
    return spec, result.best_checkpoint or result.last_checkpoint


def _digit_pngs(directory, count=40, scale=1):
    """The digits (values 0..16) as 8-bit grey PNGs; returns (paths, labels, pixels in [0, 1])."""
    from netspec.datasets.digits import digits_arrays

    images, targets = digits_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    paths, pixels = [], []
    for i in range(count):
        values = np.round(images[i] * 255 / 16).astype(np.uint8)
        pixels.append(values.astype(np.float32) / 255)
        big = np.kron(values, np.ones((scale, scale), dtype=np.uint8))
        path = directory / f"digit{i:02d}.png"
        Image.fromarray(big).save(path)
        paths.append(path)
    return paths, targets[:count], np.stack(pixels)[:, None]


def _by_hand(spec_path, ckpt, x):
    """Softmax of the network with the checkpoint's weights on x (already in network units)."""
    spec = netspec.load(spec_path)
    model = spec.build().eval()
    state = read_checkpoint(ckpt)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    with torch.no_grad():
        return model(torch.as_tensor(x)).softmax(1).numpy()


def _picture(path) -> Image.Image:
    """An image file, read and closed."""
    with Image.open(path) as image:
        image.load()
        return image


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run(capsys, *args):
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_png_files_are_standardised_like_the_training_data(trained, tmp_path, capsys):
    spec, ckpt = trained
    normalization = read_checkpoint(ckpt)["netspec_normalization"]
    assert normalization is not None  # digits are standardised: predict must do the same
    mean, std = (np.array(v, dtype=np.float32).reshape(-1, 1, 1) for v in normalization)
    paths, labels, pixels = _digit_pngs(tmp_path / "pngs")
    # files and a directory, options before and after the inputs
    code, out, err = _run(
        capsys,
        spec,
        paths[0],
        "--checkpoint",
        ckpt,
        tmp_path / "pngs",
        "--out",
        tmp_path / "out",
        "--top-k",
        3,
    )
    assert code == 0, err
    rows = _rows(tmp_path / "out" / "predictions.csv")
    assert [r["input"] for r in rows] == [str(paths[0])] + [str(p) for p in paths]
    expected = _by_hand(spec, ckpt, (pixels - mean) / std)
    got = np.array([float(r["probability"]) for r in rows[1:]])
    classes = np.array([int(r["class"]) for r in rows[1:]])
    np.testing.assert_array_equal(classes, expected.argmax(1))
    np.testing.assert_allclose(got, expected.max(1), rtol=1e-4)
    assert (classes == labels).mean() > 0.8  # it learnt the digits, and predict reads them right
    top = rows[1]["top3"].split()
    assert len(top) == 3 and top[0].startswith(f"{classes[0]}:")
    records = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["class"] for r in records[1:]] == classes.tolist()
    assert len(records[1]["top_k"]) == 3
    # stdout: a short table, then where the files are
    lines = out.splitlines()
    assert lines[0].startswith("scores [10]: classification (10 classes")
    assert lines[1].split() == ["input", "class", "probability", "top3"]
    assert f"... {len(rows) - 20} more" in out
    assert out.rstrip().endswith(f"predictions for {len(rows)} inputs written to {tmp_path / 'out'}")


def test_larger_and_rgb_images_are_resized_and_made_grey(trained, tmp_path, capsys):
    spec, ckpt = trained
    paths, labels, _ = _digit_pngs(tmp_path / "big", count=30, scale=4)  # 32×32: shrunk to 8×8
    _picture(paths[0]).convert("RGB").save(tmp_path / "big" / "rgb.png")
    _picture(paths[1]).save(tmp_path / "big" / "photo.jpg", quality=95)
    code, _, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "big", "--out", tmp_path / "out")
    assert code == 0, err
    rows = {r["input"]: int(r["class"]) for r in _rows(tmp_path / "out" / "predictions.csv")}
    assert len(rows) == 32
    assert np.mean([rows[str(p)] == y for p, y in zip(paths, labels, strict=True)]) > 0.7
    assert rows[str(tmp_path / "big" / "rgb.png")] == rows[str(paths[0])]
    assert rows[str(tmp_path / "big" / "photo.jpg")] == rows[str(paths[1])]


def test_arrays_of_samples_go_in_as_they_are(trained, tmp_path, capsys):
    spec, ckpt = trained
    x = np.random.default_rng(0).normal(size=(5, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "stack.npy", x)
    np.save(tmp_path / "one.npy", x[2])  # one sample [*input]
    np.savez(tmp_path / "stack.npz", inputs=x, labels=np.zeros(5))
    torch.save({"x": torch.from_numpy(x).double()}, tmp_path / "stack.pt")
    files = ["stack.npy", "one.npy", "stack.npz", "stack.pt"]
    code, _, err = _run(
        capsys,
        spec,
        "--checkpoint",
        ckpt,
        *(tmp_path / f for f in files),
        "--out",
        tmp_path / "o",
        "--batch-size",
        2,
    )
    assert code == 0, err
    assert "arrays go to the network as they are" in err
    rows = _rows(tmp_path / "o" / "predictions.csv")
    assert [r["input"] for r in rows[:2]] == [f"{tmp_path / 'stack.npy'}[0]", f"{tmp_path / 'stack.npy'}[1]"]
    assert rows[5]["input"] == str(tmp_path / "one.npy")
    expected = _by_hand(spec, ckpt, x)
    got = np.array([float(r["probability"]) for r in rows])
    want = np.concatenate([expected.max(1), expected.max(1)[2:3], expected.max(1), expected.max(1)])
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_a_split_of_the_dataset(trained, tmp_path, capsys):
    from netspec.training.run import _splits, prepare

    spec, ckpt = trained
    code, _, err = _run(capsys, spec, "--checkpoint", ckpt, "--split", "val", "--out", tmp_path / "o")
    assert code == 0, err
    rows = _rows(tmp_path / "o" / "predictions.csv")
    spec_obj, cfg = prepare(spec)
    val = _splits(spec_obj, cfg, None).val
    assert [r["input"] for r in rows[:2]] == ["digits:val[0]", "digits:val[1]"]
    x, y = val.tensors
    expected = _by_hand(spec, ckpt, x).argmax(1)
    np.testing.assert_array_equal([int(r["class"]) for r in rows], expected)
    assert (expected == y.numpy()).mean() > 0.8


def _checkpoint(path, spec_text, tmp_path, weights, heads=None, normalization=None, plain=False):
    """A spec file and a checkpoint of it with the given weights, as training writes one."""
    spec_path = _write(tmp_path / f"{path}.yaml", spec_text)
    model = netspec.load(spec_path).build()
    state = model.state_dict()
    for name, value in weights.items():
        state[name] = torch.as_tensor(value, dtype=torch.float32).reshape(state[name].shape)
    ckpt = tmp_path / f"{path}.ckpt"
    if plain:
        torch.save(state, ckpt)
    else:
        content = {"state_dict": {f"model.{k}": v for k, v in state.items()}}
        if heads is not None:
            content["netspec_heads"] = heads
            content["netspec_normalization"] = normalization
        torch.save(content, ckpt)
    return spec_path, ckpt


def test_segmentation_writes_class_masks(tmp_path, capsys):
    heads = [
        {
            "output": "seg",
            "task": "segmentation",
            "loss": "cross_entropy",
            "num_classes": 3,
            "ignore_index": 255,
        }
    ]
    # a 1×1 conv that scores class c by colour channel c: the mask is the brightest channel
    spec, ckpt = _checkpoint(
        "seg", SEGMENT, tmp_path, {"seg.weight": torch.eye(3) * 4, "seg.bias": torch.zeros(3)}, heads
    )
    expected = []
    for i in range(3):
        rgb = np.zeros((12, 12, 3), dtype=np.uint8)
        rgb[:, :4, 0] = rgb[:, 4:8, 1] = rgb[:, 8:, 2] = 200  # red, green, blue stripes
        rgb[i * 4 : i * 4 + 4] = 0  # a black band (all equal: class 0)
        rgb[i * 4 : i * 4 + 4, :, 2] = 255  # ... made blue: class 2
        Image.fromarray(rgb).save(tmp_path / f"stripes{i}.png")
        expected.append(rgb.argmax(-1))
    code, out, err = _run(
        capsys,
        spec,
        "--checkpoint",
        ckpt,
        *(tmp_path / f"stripes{i}.png" for i in range(3)),
        "--out",
        tmp_path / "o",
    )
    assert code == 0, err
    assert "normaliz" not in err  # recorded as None: no standardisation, nothing to warn about
    masks = np.load(tmp_path / "o" / "masks.npy")
    np.testing.assert_array_equal(masks, np.stack(expected))
    rows = _rows(tmp_path / "o" / "predictions.csv")
    for i, row in enumerate(rows):
        png = _picture(tmp_path / "o" / row["mask"])
        assert png.mode == "P" and png.size == (12, 12)
        np.testing.assert_array_equal(np.array(png), expected[i])
    shares = dict(item.split(":") for item in rows[0]["classes"].split())
    assert float(shares["2"]) == pytest.approx((4 * 12 + 8 * 4) / 144, abs=1e-3)
    overview = _picture(tmp_path / "o" / "overview.png")
    assert overview.size[0] > 2 * 12 and overview.size[1] >= 12
    assert "segmentation" in out and "masks.npy" in out


def test_reconstructions_as_arrays_and_pngs(tmp_path, capsys):
    heads = [
        {
            "output": "recon",
            "task": "reconstruction",
            "loss": "mse",
            "num_classes": None,
            "ignore_index": None,
        }
    ]
    spec, ckpt = _checkpoint(
        "recon", IDENTITY, tmp_path, {"recon.weight": [1.0], "recon.bias": [0.0]}, heads, [[0.5], [0.25]]
    )
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(pixels).save(tmp_path / "ramp.png")
    code, _, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "ramp.png", "--out", tmp_path / "o")
    assert code == 0, err
    values = np.load(tmp_path / "o" / "recon.npy")
    assert values.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(values[0, 0], (pixels / 255 - 0.5) / 0.25, atol=1e-5)  # standardised input
    row = _rows(tmp_path / "o" / "predictions.csv")[0]
    assert float(row["mse"]) < 1e-10
    back = np.array(_picture(tmp_path / "o" / row["image"]))
    np.testing.assert_array_equal(back, pixels)  # un-standardised to the input's pixels
    assert (tmp_path / "o" / "overview.png").is_file()
    # the reconstructions fed back in, written where they are: recon.npy was cut while being read
    before = (tmp_path / "o" / "recon.npy").read_bytes()
    err = _fails(capsys, spec, "--checkpoint", ckpt, tmp_path / "o" / "recon.npy", "--out", tmp_path / "o")
    assert (
        "recon.npy is inside the output directory" in err and "hint: write the predictions to another" in err
    )
    assert (tmp_path / "o" / "recon.npy").read_bytes() == before


def test_old_checkpoints_and_plain_state_dicts_get_inferred_tasks(tmp_path, capsys):
    weights = {"cls.weight": torch.eye(3, 4), "cls.bias": torch.zeros(3), "reg.weight": torch.ones(2, 4)}
    weights["reg.bias"] = torch.tensor([0.0, 1.0])
    x = np.array([[0, 0, 5, 0], [1, 0, 0, 0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for plain in (False, True):
        spec, ckpt = _checkpoint(f"two{plain}", TWO_HEADS, tmp_path, weights, plain=plain)
        out_dir = tmp_path / f"o{plain}"
        code, out, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "x.npy", "--out", out_dir)
        assert code == 0, err
        assert ("plain state_dict" if plain else "records no tasks") in err
        assert "cls [3]: classification; reg [2]: regression" in err
        assert [int(r["class"]) for r in _rows(out_dir / "cls" / "predictions.csv")] == [2, 0]
        np.testing.assert_allclose(np.load(out_dir / "reg" / "reg.npy"), [[5, 6], [1, 2]])
        assert [r["v1"] for r in _rows(out_dir / "reg" / "predictions.csv")] == ["6", "2"]
        assert "cls [3]: classification" in out and "reg [2]: regression" in out


def _fails(capsys, *args):
    code, out, err = _run(capsys, *args)
    assert code == 2, err
    assert out == "" and "Traceback" not in err and "internal error" not in err
    return err


def test_bad_inputs_are_located_errors(trained, tmp_path, capsys):
    spec, ckpt = trained
    base = (spec, "--checkpoint", ckpt, "--out", tmp_path / "o")
    np.save(tmp_path / "flat.npy", np.zeros((3, 64), dtype=np.float32))
    err = _fails(capsys, *base, tmp_path / "flat.npy")
    assert (
        "shape [3, 64]" in err
        and "[N, 1, 8, 8] or [1, 8, 8]" in err
        and "reshape the array to [3, 1, 8, 8]" in err
    )
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 3, 8, 8)))
    assert "'x' in" in _fails(capsys, *base, tmp_path / "wrong.npz")
    np.savez(tmp_path / "keys.npz", a=np.zeros(1), b=np.zeros(1))
    assert "'x', 'inputs', 'X'" in _fails(capsys, *base, tmp_path / "keys.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "cannot read" in _fails(capsys, *base, tmp_path / "objects.npy")  # never unpickled
    np.save(tmp_path / "nan.npy", np.full((2, 1, 8, 8), np.nan, dtype=np.float32))
    assert "nan.npy[0] holds NaN" in _fails(capsys, *base, tmp_path / "nan.npy")
    np.save(tmp_path / "huge.npy", np.full((2, 1, 8, 8), 1e300))  # float64 beyond float32: no numpy warning
    assert "huge.npy[0] holds NaN or infinite values" in _fails(capsys, *base, tmp_path / "huge.npy")
    torch.save(torch.zeros(2, 1, 8, 8).to_sparse(), tmp_path / "sparse.pt")  # were internal errors
    assert "sparse.pt holds a sparse_coo tensor; save t.to_dense()" in _fails(
        capsys, *base, tmp_path / "sparse.pt"
    )
    torch.save({"x": torch.zeros(2, 1, 8, 8, device="meta")}, tmp_path / "meta.pt")
    assert "meta.pt holds a tensor on the meta device" in _fails(capsys, *base, tmp_path / "meta.pt")
    (tmp_path / "notes.txt").write_text("hi")
    assert "suffix '.txt'" in _fails(capsys, *base, tmp_path / "notes.txt")
    assert "does not exist" in _fails(capsys, *base, tmp_path / "missing.png")
    os.mkfifo(tmp_path / "fifo.png")  # opening it to read waited for a writer for ever
    assert "fifo.png is not a regular file" in _fails(capsys, *base, tmp_path / "fifo.png")
    (tmp_path / "empty").mkdir()
    assert "holds no images" in _fails(capsys, *base, tmp_path / "empty")
    assert "no inputs" in _fails(capsys, *base)
    (tmp_path / "file").write_text("")
    assert "cannot write to the output directory" in _fails(
        capsys, spec, "--checkpoint", ckpt, "--split", "val", "--out", tmp_path / "file" / "o"
    )


def test_random_bytes_are_refused(trained, tmp_path, capsys):
    spec, ckpt = trained
    rng = np.random.default_rng(14)
    for i in range(8):
        for suffix in (".png", ".jpg", ".npy", ".npz", ".pt"):
            path = tmp_path / f"junk{i}{suffix}"
            head = {".png": b"\x89PNG\r\n\x1a\n", ".npy": b"\x93NUMPY\x01\x00", ".npz": b"PK\x03\x04"}
            path.write_bytes((head.get(suffix, b"") if i % 2 else b"") + rng.bytes(int(rng.integers(0, 300))))
            err = _fails(capsys, spec, "--checkpoint", ckpt, path, "--out", tmp_path / "o")
            assert str(path) in err


def test_checkpoints_that_do_not_fit_are_refused(trained, tmp_path, capsys):
    spec, ckpt = trained
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), dtype=np.float32))
    _, other_ckpt = _checkpoint("other", IDENTITY, tmp_path, {})
    err = _fails(capsys, spec, "--checkpoint", other_ckpt, tmp_path / "x.npy")
    assert "does not fit the network" in err
    err = _fails(capsys, spec, "--checkpoint", tmp_path / "x.npy", tmp_path / "x.npy")
    assert "not a netspec checkpoint" in err
    content = torch.load(ckpt, weights_only=True)
    content["netspec_heads"] = [{"output": "elsewhere", "task": "regression"}]
    torch.save(content, tmp_path / "renamed.ckpt")
    assert "outputs elsewhere" in _fails(
        capsys, spec, "--checkpoint", tmp_path / "renamed.ckpt", tmp_path / "x.npy"
    )
    content["netspec_heads"] = [{"output": ["scores"], "task": "classification"}]  # malformed: inferred
    torch.save(content, tmp_path / "listed.ckpt")
    code, _, err = _run(
        capsys, spec, "--checkpoint", tmp_path / "listed.ckpt", tmp_path / "x.npy", "--out", tmp_path / "o"
    )
    assert code == 0 and "records no tasks" in err, err  # was an internal error (unhashable list)
    content["netspec_heads"] = [{"output": "scores", "task": "classification", "num_classes": 7}]
    torch.save(content, tmp_path / "classes.ckpt")
    assert "with 7 classes" in _fails(
        capsys, spec, "--checkpoint", tmp_path / "classes.ckpt", tmp_path / "x.npy"
    )


def test_images_need_an_image_input(tmp_path, capsys):
    spec, ckpt = _checkpoint("vec", TWO_HEADS, tmp_path, {})
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    err = _fails(capsys, spec, "--checkpoint", ckpt, tmp_path / "a.png")
    assert "images give [1 or 3, H, W], but the network's input is [4]" in err


def test_the_command_line_stays_torch_free_until_it_predicts():
    code = "import sys, netspec.cli, netspec.predict; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "False"


def test_partly_recorded_checkpoints(tmp_path, capsys):
    """An output no loss trained is written raw; images without a recorded normalization get a note."""
    heads = [{"output": "cls", "task": "classification", "loss": "cross_entropy", "num_classes": 3}]
    spec, ckpt = _checkpoint("two", TWO_HEADS, tmp_path, {}, heads)
    np.save(tmp_path / "x.npy", np.ones((3, 4), dtype=np.float32))
    code, out, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "x.npy", "--out", tmp_path / "o")
    assert code == 0, err
    assert "trained no loss on reg" in err and "reg [2]: regression (not trained by this checkpoint)" in out
    assert np.load(tmp_path / "o" / "reg" / "reg.npy").shape == (3, 2)
    spec, ckpt = _checkpoint("identity", IDENTITY, tmp_path, {"recon.weight": [1.0], "recon.bias": [0.0]})
    content = torch.load(ckpt, weights_only=True)
    content["netspec_heads"] = [{"output": "recon", "task": "reconstruction", "loss": "mse"}]
    torch.save(content, ckpt)  # heads, but no netspec_normalization
    Image.fromarray(np.full((8, 8), 51, dtype=np.uint8)).save(tmp_path / "grey.png")
    code, _, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "grey.png", "--out", tmp_path / "o2")
    assert code == 0, err
    assert "does not record how the training inputs were normalized" in err
    np.testing.assert_allclose(np.load(tmp_path / "o2" / "recon.npy"), 0.2, atol=1e-6)  # [0, 1] pixels


def test_sizes_are_checked_before_anything_is_decoded(trained, tmp_path, capsys, monkeypatch):
    import zipfile

    from netspec import predict

    spec, ckpt = trained
    header = tmp_path / "header.npy"  # an .npz member that claims 10¹² samples: only its header exists
    with header.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 1, 8, 8)}
        )
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.write(header, "x.npy")
    assert "holds 1000000000000 samples, more than 1000000" in _fails(
        capsys, spec, "--checkpoint", ckpt, tmp_path / "huge.npz"
    )
    # within the sample count but beyond the memory there is (5.6 MB of zeros made 14 GB of RSS)
    with header.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (900_000, 1, 8, 8)}
        )
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.write(header, "x.npy")
    monkeypatch.setattr("netspec.npzfiles.memory_available", lambda: 100 << 20)
    err = _fails(capsys, spec, "--checkpoint", ckpt, tmp_path / "bomb.npz")
    assert "is 439.45 MiB when decompressed ([900000, 1, 8, 8] float64), more than the 100.00 MiB" in err
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(predict, "MAX_IMAGE_PIXELS", 64 * 63)
    assert "has 64×64 pixels, more than 4032" in _fails(
        capsys, spec, "--checkpoint", ckpt, tmp_path / "big.png"
    )


def test_outputs_that_overflow_are_named_and_jsonl_stays_json(tmp_path, capsys):
    """Finite inputs near float32's limit gave NaN outputs without a word, and `"probability": NaN`."""
    weights = {"cls.weight": torch.ones(3, 4), "cls.bias": torch.zeros(3), "reg.weight": torch.ones(2, 4)}
    weights["reg.bias"] = torch.zeros(2)
    x = np.array([[3e38, 3e38, 0, 0], [1, 0, 0, 0]], dtype=np.float32)  # the first sums to inf
    np.save(tmp_path / "x.npy", x)
    spec, ckpt = _checkpoint("two", TWO_HEADS, tmp_path, weights)
    code, _, err = _run(capsys, spec, "--checkpoint", ckpt, tmp_path / "x.npy", "--out", tmp_path / "o")
    assert code == 0, err
    assert (
        f"warning: output 'cls' is NaN or infinite for 1 of 2 inputs (the first: {tmp_path / 'x.npy'}[0])"
        in err
    )
    assert "warning: output 'reg' is NaN or infinite for 1 of 2 inputs" in err
    lines = (tmp_path / "o/cls/predictions.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=pytest.fail) for line in lines]  # NaN is not JSON
    assert records[0]["probability"] is None and records[1]["probability"] == pytest.approx(1 / 3)
