"""The built-in dataset plugins: digits, synthetic, shapes, arrays and the standard vision sets.

Nothing here touches the network: the vision sets are read from tiny fake files in their real
formats, and downloads go through a stubbed ``urllib.request.urlopen``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import math
import os
import pickle
import re
import subprocess
import sys
import tarfile
import types
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from torch.utils.data import TensorDataset

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.datasets import BUILTIN_DATASET_PLUGINS, digits, shapes, vision
from netspec.datasets._common import NamedTargets
from netspec.errors import PluginError
from netspec.hookspecs import hookimpl
from netspec.plugins import collect_registry, make_plugin_manager

IDX_NAMES = vision.IDX_FILES


@pytest.fixture(scope="module")
def registry():
    return collect_registry(with_builtin_datasets(make_plugin_manager(entry_points=False)))


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(vision.ENV_DATA, raising=False)


@pytest.fixture
def load(registry, tmp_path):
    """load(name, input_shape, seed=0, data_dir=tmp_path, **params) → Splits."""

    def _load(
        name: str, input_shape=(1, 28, 28), seed: int = 0, data_dir: Path | None = None, **params
    ) -> Splits:
        record = registry.datasets[name]
        ctx = DataContext(input_shape=tuple(input_shape), seed=seed, data_dir=data_dir or tmp_path)
        return record.load(record.params(**params), ctx)

    return _load


def tensors(split):
    return split.tensors


def fit_linear(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 200) -> torch.nn.Module:
    """Full-batch multinomial logistic regression."""
    torch.manual_seed(0)
    model = torch.nn.Linear(x[0].numel(), classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    flat = x.flatten(1)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(flat), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x.flatten(1)).argmax(1) == y).float().mean().item()


# ---- the plugins themselves ------------------------------------------------------------------


def test_every_builtin_dataset_is_registered(registry):
    assert set(registry.datasets) >= {
        "digits",
        "synthetic",
        "shapes",
        "arrays",
        "mnist",
        "fashion_mnist",
        "cifar10",
    }
    for name, record in registry.datasets.items():
        assert isinstance(record, DatasetType)
        assert record.name == name
        assert issubclass(record.params, DatasetParams)
        assert record.summary


def test_importing_the_plugins_imports_neither_torch_nor_numpy():
    code = (
        "import sys, importlib\n"
        f"for m in {BUILTIN_DATASET_PLUGINS!r}: importlib.import_module(m)\n"
        "heavy = [m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def dataset_plugin(name: str, records: list[DatasetType]) -> types.ModuleType:
    """A module implementing netspec_register_datasets, as a third-party plugin would."""
    module = types.ModuleType(name)

    def netspec_register_datasets():
        return records

    module.netspec_register_datasets = hookimpl(netspec_register_datasets)
    return module


def with_builtin_datasets(pm):
    for name in BUILTIN_DATASET_PLUGINS:
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    return pm


def test_third_party_datasets_register_through_the_same_hook(tmp_path):
    def load_ones(p, ctx):
        x = torch.ones(4, *ctx.input_shape)
        return Splits(TensorDataset(x, torch.zeros(4)), TensorDataset(x, torch.zeros(4)), None, None, (2,))

    ones = DatasetType("ones", DatasetParams, load_ones, summary="Ones.")
    pm = with_builtin_datasets(
        make_plugin_manager(entry_points=False, extra=(dataset_plugin("ones", [ones]),))
    )
    registry = collect_registry(pm)
    assert registry.datasets["ones"] is ones and "digits" in registry.datasets
    assert registry.datasets["ones"].load(DatasetParams(), DataContext((2,), 0, tmp_path)).num_classes is None
    clash = DatasetType("digits", DatasetParams, load_ones)
    pm = with_builtin_datasets(make_plugin_manager(entry_points=False, extra=(dataset_plugin("x", [clash]),)))
    with pytest.raises(PluginError, match="dataset type 'digits' is registered by both"):
        collect_registry(pm)


# ---- digits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_digits_shapes_dtypes_and_sizes(load, shape):
    splits = load("digits", shape)
    (xt, yt), (xv, _), (xs, _) = tensors(splits.train), tensors(splits.val), tensors(splits.test)
    assert (len(xt), len(xv), len(xs)) == (1294, 144, 359)  # 1797: 20 % test, then 10 % of the rest
    assert xt.shape[1:] == xv.shape[1:] == xs.shape[1:] == shape
    assert splits.sample_shape == shape
    assert splits.num_classes == 10
    assert xt.dtype == torch.float32 and yt.dtype == torch.int64
    assert set(yt.tolist()) == set(range(10))
    if shape[0] == 3:
        assert torch.equal(xt[:, 0], xt[:, 1]) and torch.equal(xt[:, 0], xt[:, 2])


def test_digits_classes_are_roughly_balanced(load):
    splits = load("digits", (1, 8, 8))
    for split in (splits.train, splits.val, splits.test):
        share = torch.bincount(split.tensors[1], minlength=10).float() / len(split)
        assert share.min() > 0.04 and share.max() < 0.17


def test_digits_split_is_seeded(load):
    a, b, c = (load("digits", (1, 8, 8), seed=s) for s in (0, 0, 1))
    for split in ("train", "val", "test"):
        for ta, tb in zip(getattr(a, split).tensors, getattr(b, split).tensors, strict=True):
            assert torch.equal(ta, tb)
    assert not torch.equal(a.test.tensors[0], c.test.tensors[0])
    assert len(c.test) == len(a.test)


def test_digits_values_and_normalisation_use_train_stats(load):
    raw = load("digits", (1, 8, 8), normalize=False)
    assert raw.train.tensors[0].min() >= 0 and raw.train.tensors[0].max() <= 1
    images = torch.from_numpy(digits.digits_arrays()[0]).float() / 16
    all_x = torch.cat([raw.train.tensors[0], raw.val.tensors[0], raw.test.tensors[0]]).flatten(1).numpy()
    images = images.flatten(1).numpy()
    np.testing.assert_array_equal(all_x[np.lexsort(all_x.T)], images[np.lexsort(images.T)])

    norm = load("digits", (1, 8, 8))
    mean, std = raw.train.tensors[0].mean(), raw.train.tensors[0].std()
    assert norm.train.tensors[0].mean().abs() < 1e-5
    assert norm.train.tensors[0].std() == pytest.approx(1, abs=1e-4)
    torch.testing.assert_close(norm.val.tensors[0], (raw.val.tensors[0] - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.test.tensors[0], (raw.test.tensors[0] - mean) / std, atol=1e-5, rtol=0)
    assert norm.val.tensors[0].mean().abs() > 1e-4  # val is not standardised with its own stats


DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"  # images + labels, uint8


def test_the_bundled_digits_are_the_uci_set_scikit_learn_ships(monkeypatch, tmp_path):
    images, labels = digits.digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float64 and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw = images.astype(np.uint8).tobytes() + labels.astype(np.uint8).tobytes()
    assert hashlib.sha256(raw).hexdigest() == DIGITS_SHA256
    bad = tmp_path / "digits.npz"
    for content in (b"", b"not a zip", b"PK\x03\x04torn"):
        bad.write_bytes(content)
        monkeypatch.setattr(digits, "DIGITS_FILE", bad)
        with pytest.raises(DataError, match="reinstall netspec"):
            digits.digits_arrays()
    np.savez(bad, images=np.zeros((2, 8, 8), np.uint8))  # no labels
    with pytest.raises(DataError, match="reinstall netspec"):
        digits.digits_arrays()
    monkeypatch.setattr(digits, "DIGITS_FILE", tmp_path / "missing.npz")
    with pytest.raises(DataError, match="reinstall netspec"):
        digits.digits_arrays()


def test_the_bundled_digits_equal_scikit_learns_where_it_is_installed():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    images, labels = digits.digits_arrays()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


def test_digits_no_test_split_and_params_checked(load, registry):
    splits = load("digits", (1, 8, 8), test_fraction=0.0, val_fraction=0.0)
    assert splits.test is None and len(splits.val) == 0 and len(splits.train) == 1797
    params = registry.datasets["digits"].params
    for bad in ({"test_fraction": 1.0}, {"val_fraction": -0.1}, {"normalise": True}, {"normalize": "yes"}):
        with pytest.raises(pydantic.ValidationError):
            params(**bad)


@pytest.mark.parametrize(
    ("shape", "advice"),
    [
        ((1, 28), "--set train.data.name=synthetic"),  # a 1-D network: other data, not another network
        ((2, 28, 28), "[1, H, W] (grey) or [3, H, W]"),
        ((28, 28, 1), "[1, H, W] (grey) or [3, H, W]"),
        ((1, 1, 28, 28), "--set train.data.name=synthetic"),
        ((784,), "[1, H, W] (grey) or [3, H, W] (RGB) and start the layers with `{type: flatten}`"),
    ],
)
def test_digits_bad_input_shapes(load, shape, advice):
    with pytest.raises(DataError) as info:
        load("digits", shape)
    assert advice in str(info.value)
    assert str(list(shape)).replace(",)", ")") in str(info.value)


def test_digits_are_learnable(load):
    splits = load("digits", (1, 8, 8))
    model = fit_linear(*splits.train.tensors, classes=10, steps=150)
    assert accuracy(model, *splits.test.tensors) > 0.88


# ---- synthetic -------------------------------------------------------------------------------


def test_synthetic_shapes_and_defaults(load):
    splits = load("synthetic", (3, 8, 8))
    assert splits.sample_shape == (3, 8, 8) and splits.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (737, 82, 205)  # 1024
    x, y = splits.train.tensors
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    other = load("synthetic", (3, 8, 8), num_samples=50, num_classes=3, shape=[7], test_fraction=0)
    assert other.sample_shape == (7,) and other.num_classes == 3 and other.test is None
    assert len(other.train) + len(other.val) == 50
    all_y = torch.cat([other.train.tensors[1], other.val.tensors[1]])
    assert torch.bincount(all_y).tolist() == [17, 17, 16]


def test_synthetic_is_seeded_and_noise_free_samples_are_prototypes(load):
    a, b, c = (load("synthetic", (4,), seed=s, num_samples=64) for s in (0, 0, 1))
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    clean = load("synthetic", (4,), num_samples=40, num_classes=4, noise=0.0)
    x, y = clean.train.tensors
    for k in range(4):
        assert len(torch.unique(x[y == k], dim=0)) == 1


def test_synthetic_is_learnable(load):
    splits = load("synthetic", (16,), num_samples=600, num_classes=5, noise=1.0)
    model = fit_linear(*splits.train.tensors, classes=5, steps=100)
    assert accuracy(model, *splits.test.tensors) > 0.8  # chance: 0.2


def test_synthetic_params_checked(registry, load):
    params = registry.datasets["synthetic"].params
    for bad in ({"num_samples": 0}, {"num_classes": 0}, {"shape": []}, {"shape": [0]}, {"noise": -1}):
        with pytest.raises(pydantic.ValidationError):
            params(**bad)
    with pytest.raises(DataError, match="no training data"):
        load("synthetic", (2,), num_samples=2, test_fraction=0.9)


# ---- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 17, 23), (1, 8, 8)])
def test_shapes_shapes_dtypes_and_sizes(load, shape):
    splits = load("shapes", shape, num_samples=100)
    assert splits.sample_shape == shape and splits.num_classes == 4 and splits.ignore_index is None
    assert (len(splits.train), len(splits.val), len(splits.test)) == (72, 8, 20)
    for split in (splits.train, splits.val, splits.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and x.shape[1:] == shape
        assert y.dtype == torch.int64 and y.shape[1:] == shape[1:]
        assert int(y.min()) >= 0 and int(y.max()) < 4
    mean, std = splits.normalization
    assert len(mean) == len(std) == shape[0]
    x = splits.train.tensors[0]
    assert x.mean().abs() < 1e-4 and x.std() == pytest.approx(1, abs=1e-3)


def test_shapes_are_seeded(load):
    a, b, c = (load("shapes", (3, 16, 16), seed=s, num_samples=40) for s in (0, 0, 1))
    for ta, tb in zip(a.train.tensors, b.train.tensors, strict=True):
        assert torch.equal(ta, tb)
    assert not torch.equal(a.train.tensors[1], c.train.tensors[1])


def test_shapes_classes_present_and_balanced(load):
    splits = load("shapes", (1, 32, 32), num_samples=300, num_classes=6, test_fraction=0.0)
    y = torch.cat([splits.train.tensors[1], splits.val.tensors[1]])
    share = torch.bincount(y.flatten(), minlength=6).float() / y.numel()
    assert 0.6 < share[0] < 0.92  # mostly background, as in real segmentation
    kinds = share[1:] / share[1:].mean()  # the kinds cover about the same area
    assert kinds.min() > 0.7 and kinds.max() < 1.3
    per_image = torch.stack([torch.bincount(m.flatten(), minlength=6) > 0 for m in y])
    assert per_image[:, 1:].sum(1).float().mean() > 1.5  # several shapes per image


def test_shapes_colour_does_not_give_the_class(load):
    """Shapes are drawn in colours independent of their kind: only the geometry tells them apart."""
    splits = load("shapes", (3, 24, 24), num_samples=400, normalize=False, test_fraction=0.0)
    x, y = splits.train.tensors
    assert splits.normalization is None and x.min() >= 0 and x.max() <= 1
    pixels = x.permute(0, 2, 3, 1)  # [N, H, W, 3]
    means = torch.stack([pixels[y == k].mean(0) for k in range(1, 4)])  # each kind's mean colour
    assert (means - means.mean(0)).abs().max() < 0.05
    spread = torch.stack([pixels[y == k].std(0) for k in range(1, 4)])
    assert spread.min() > 0.2  # each kind comes in all sorts of colours


def test_shapes_masks_match_the_drawn_shapes(load):
    """Without noise, a lone shape is one flat colour, set off from the background, where the mask says."""
    splits = load("shapes", (3, 32, 32), num_samples=40, max_shapes=1, noise=0.0, normalize=False)
    x, y = splits.train.tensors
    for image, mask in zip(x, y, strict=True):
        inside = image[:, mask > 0]
        assert inside.shape[1] > 0 and (inside - inside[:, :1]).abs().max() < 1e-6
        outside = image[:, mask == 0]
        assert ((outside.mean(1) - inside[:, 0]).abs() > 0.15).all()
        assert len(torch.unique(mask)) == 2


def test_shapes_geometry(load):
    """Each kind has its own outline: how much of its bounding box it fills tells them apart."""
    splits = load("shapes", (1, 64, 64), num_samples=200, max_shapes=1, num_classes=4, test_fraction=0.0)
    fill = {1: [], 2: [], 3: []}
    for mask in splits.train.tensors[1]:
        kind = int(mask.max())
        rows, cols = (mask > 0).any(1).nonzero(), (mask > 0).any(0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        touches = rows.min() == 0 or cols.min() == 0 or rows.max() == 63 or cols.max() == 63
        if not touches:
            fill[kind].append(float((mask > 0).sum() / box))
    disc, square, triangle = (torch.tensor(fill[k]) for k in (1, 2, 3))
    assert (disc - math.pi / 4).abs().max() < 0.08
    assert triangle.max() < 0.6 and triangle.median() < 0.53  # at most half, pixels aside
    assert square.min() > 0.45 and square.max() > 0.85  # 1/2 at 45°, 1 when upright


def test_shapes_params_and_input_checked(load, registry):
    params = registry.datasets["shapes"].params
    bads = ({"num_classes": 1}, {"num_classes": 7}, {"num_classes": "4"}, {"max_shapes": 0}, {"noise": -1})
    for bad in bads:
        with pytest.raises(pydantic.ValidationError):
            params(**bad)
    with pytest.raises(DataError, match=r"at least 8×8 pixels, but the spec's input is \[1, 7, 64\]"):
        load("shapes", (1, 7, 64))
    with pytest.raises(
        DataError, match=r"dataset 'shapes' gives images \[C, H, W\], but the spec's input \[784\]"
    ):
        load("shapes", (784,))
    small = load("shapes", (1, 8, 8), num_samples=10, test_fraction=0.0, val_fraction=0.0, num_classes=2)
    assert small.test is None and len(small.train) == 10 and int(small.train.tensors[1].max()) == 1


def test_shapes_draws_in_chunks_alike(monkeypatch):
    """Memory is bounded by drawing a few images at a time; the result does not depend on it."""
    whole = shapes.draw(10, (3, 16, 16), 3, 4, 0.05, torch.Generator().manual_seed(3))
    monkeypatch.setattr(shapes, "PIXELS", 4 * 16 * 16 * 3)  # 3 images a chunk
    chunked = shapes.draw(10, (3, 16, 16), 3, 4, 0.05, torch.Generator().manual_seed(3))
    assert whole[0].shape == chunked[0].shape == (10, 3, 16, 16) and chunked[1].shape == (10, 16, 16)
    assert int(chunked[1].max()) <= 3 and (chunked[1] > 0).any(dim=(1, 2)).all()
    again = shapes.draw(10, (3, 16, 16), 3, 4, 0.05, torch.Generator().manual_seed(3))
    assert torch.equal(chunked[1], again[1])


# ---- arrays ----------------------------------------------------------------------------------


def sample_arrays(n=40, shape=(1, 4, 4), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, classes, n) % classes


@pytest.mark.parametrize("keys", [("x", "y"), ("inputs", "labels"), ("X", "y")])
def test_arrays_npz_key_conventions(load, tmp_path, keys):
    x, y = sample_arrays()
    y[0] = 2
    np.savez(tmp_path / "d.npz", **{keys[0]: x, keys[1]: y})
    splits = load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"))
    assert splits.num_classes == 3 and splits.test is None
    assert (len(splits.train), len(splits.val)) == (36, 4)
    xt, yt = splits.train.tensors
    assert xt.dtype == torch.float32 and yt.dtype == torch.int64
    got = sorted(map(tuple, torch.cat([xt, splits.val.tensors[0]]).flatten(1).tolist()))
    assert got == sorted(map(tuple, x.reshape(40, -1).tolist()))


def _header_only_npz(path, members: dict) -> None:
    """An .npz whose members are .npy headers claiming ``shape``s, with no data after them."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for key, (shape, descr) in members.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": descr, "fortran_order": False, "shape": shape}
            )
            archive.writestr(f"{key}.npy", header.getvalue())


def test_arrays_npz_keys_are_checked_before_any_member_is_decompressed(load, tmp_path, monkeypatch):
    """A 5.6 MB .npz of zeros declaring 6 GiB took 6.2 GB and 33 s to say it had no labels."""
    from netspec import npzfiles

    def never(self, key):
        raise AssertionError(f"{key!r} was decompressed")

    _header_only_npz(tmp_path / "x.npz", {"x": ((60, 3, 2048, 2048), "<f8")})
    monkeypatch.setattr(npzfiles.NpzArrays, "_load", never)
    with pytest.raises(DataError, match=r"has keys 'x'; expected one of the pairs"):
        load("arrays", (3, 2048, 2048), path=str(tmp_path / "x.npz"))


def test_arrays_npz_members_larger_than_memory_are_refused(load, tmp_path, monkeypatch):
    _header_only_npz(tmp_path / "b.npz", {"x": ((900_000, 1, 8, 8), "<f8"), "y": ((900_000,), "<i8")})
    monkeypatch.setattr("netspec.npzfiles.memory_available", lambda: 100 << 20)
    with pytest.raises(DataError) as info:
        load("arrays", (1, 8, 8), path=str(tmp_path / "b.npz"))
    assert str(info.value) == (
        f"dataset 'arrays': array 'x' of {tmp_path / 'b.npz'} is 439.45 MiB when decompressed "
        "([900000, 1, 8, 8] float64), more than the 100.00 MiB of memory available"
    )
    monkeypatch.setattr("netspec.npzfiles.memory_available", lambda: 1 << 40)  # room: the torn data says so
    with pytest.raises(DataError, match=r"cannot read 'x' in .*b\.npz as \.npz"):
        load("arrays", (1, 8, 8), path=str(tmp_path / "b.npz"))


@pytest.mark.parametrize("layout", ["dict", "tuple", "list", "inputs/labels"])
def test_arrays_pt_files(load, tmp_path, layout):
    x, y = (torch.from_numpy(a) for a in sample_arrays())
    contents = {
        "dict": {"x": x, "y": y},
        "tuple": (x, y),
        "list": [x, y],
        "inputs/labels": {"inputs": x, "labels": y},
    }
    torch.save(contents[layout], tmp_path / "d.pt")
    splits = load("arrays", (1, 4, 4), path=str(tmp_path / "d.pt"))
    assert len(splits.train) + len(splits.val) == 40
    assert splits.num_classes == int(y.max()) + 1


class NotATensor:
    pass


def test_arrays_pt_is_loaded_with_weights_only(load, tmp_path):
    torch.save({"x": NotATensor(), "y": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="weights_only=True") as info:
        load("arrays", (1,), path=str(tmp_path / "bad.pt"))
    assert "weights_only` set to `False`" not in str(info.value)  # torch's advice would run the file's code
    torch.save(torch.zeros(3), tmp_path / "one.pt")
    with pytest.raises(DataError, match="holds a Tensor"):
        load("arrays", (1,), path=str(tmp_path / "one.pt"))


def test_arrays_files_found_by_a_fuzz_round(load, tmp_path):
    """Each was exit 0 with wrong numbers, or exit 1."""
    x, y = sample_arrays()
    # a test file's float labels turned the training file's classes into regression
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.savez(tmp_path / "t.npz", x=x[:10], y=y[:10].astype(np.float32))
    with pytest.raises(DataError, match=r"t\.npz are floats but those in .*d\.npz are integers"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"), test_path=str(tmp_path / "t.npz"))
    # finite in float64, infinite in the float32 training computes in
    big = x.astype(np.float64)
    big[2, 0, 0, 0] = 1e300
    np.savez(tmp_path / "big.npz", x=big, y=y)
    with pytest.raises(
        DataError, match=r"the inputs in .*big\.npz hold 1 value\(s\) beyond float32's range .* sample 2"
    ):
        load("arrays", (1, 4, 4), path=str(tmp_path / "big.npz"))
    # a tensor saved with requires_grad (exit 1: every batch shared one autograd graph)
    xt = torch.from_numpy(x).requires_grad_()
    torch.save({"x": xt, "y": torch.from_numpy(y)}, tmp_path / "grad.pt")
    train = load("arrays", (1, 4, 4), path=str(tmp_path / "grad.pt")).train.tensors[0]
    assert not train.requires_grad
    # big-endian arrays are the same numbers ("not a numeric array", before)
    np.savez(tmp_path / "be.npz", x=x.astype(">f4"), y=y.astype(">i8"))
    got = load("arrays", (1, 4, 4), path=str(tmp_path / "be.npz"), val_fraction=0.0).train.tensors
    assert sorted(got[0].flatten().tolist()) == sorted(x.flatten().tolist())
    # a whole-number float label of 1e20 read as -9223372036854775808, with a hint no option takes
    huge = y.astype(np.float64)
    huge[5] = 1e20
    np.savez(tmp_path / "huge.npz", x=x, y=huge)
    with pytest.raises(DataError, match=r"hold 1e\+20, which is no class label \(num_classes is 3\)"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "huge.npz"), num_classes=3)
    # float8 inputs (exit 1: isfinite is not implemented for them)
    torch.save(
        {"x": torch.from_numpy(x).to(torch.float8_e4m3fn), "y": torch.from_numpy(y)}, tmp_path / "f8.pt"
    )
    assert load("arrays", (1, 4, 4), path=str(tmp_path / "f8.pt")).train.tensors[0].dtype == torch.float32


@pytest.mark.parametrize(
    ("what", "bad"), [("inputs", float("nan")), ("inputs", float("inf")), ("labels", float("nan"))]
)
def test_arrays_with_nan_or_inf_are_refused_naming_the_file(load, tmp_path, what, bad):
    x, y = sample_arrays()
    y = y.astype(np.float32)  # float targets: regression, where a NaN label trains silently too
    (x if what == "inputs" else y)[3] = bad
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    with pytest.raises(DataError, match=rf"the {what} in .*nan\.npz hold .* NaN/inf value.*sample 3"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "nan.npz"))


def test_arrays_test_path_test_fraction_and_num_classes(load, tmp_path, registry):
    x, y = sample_arrays(classes=3)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:7], y=np.full(7, 4))
    splits = load("arrays", (1, 4, 4), path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    assert len(splits.test) == 7 and splits.num_classes == 5  # max label over train and test
    fixed = load("arrays", (1, 4, 4), path=str(tmp_path / "train.npz"), num_classes=10, test_fraction=0.25)
    assert fixed.num_classes == 10 and len(fixed.test) == 10 and len(fixed.train) + len(fixed.val) == 30
    with pytest.raises(DataError, match="does not fit num_classes 2"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "train.npz"), num_classes=2)
    with pytest.raises(pydantic.ValidationError, match="not both"):
        registry.datasets["arrays"].params(path="a.npz", test_path="b.npz", test_fraction=0.1)


def test_arrays_regression_targets(load, tmp_path):
    x, _ = sample_arrays(shape=(3,))
    targets = np.random.default_rng(1).normal(size=(40, 2))
    np.savez(tmp_path / "r.npz", inputs=x, labels=targets)
    splits = load("arrays", (3,), path=str(tmp_path / "r.npz"))
    assert splits.num_classes is None
    assert splits.train.tensors[1].dtype == torch.float32 and splits.train.tensors[1].shape[1:] == (2,)
    # Whole-number float labels with num_classes are classes; fractional ones cannot be.
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(40) % 4 * 1.0)
    whole = load("arrays", (3,), path=str(tmp_path / "f.npz"), num_classes=4)
    assert whole.train.tensors[1].dtype == torch.int64
    with pytest.raises(DataError, match="fractional"):
        load("arrays", (3,), path=str(tmp_path / "r.npz"), num_classes=4)


@pytest.mark.parametrize(
    ("x_shape", "y", "message"),
    [
        ((40, 1, 4, 5), None, r"samples in .* have shape \[1, 4, 5\], but the spec's input is \[1, 4, 4\]"),
        ((40, 16), None, r"change the spec's `input:` to \[16\] or the arrays \(same number of values"),
        ((40, 1, 4, 4), np.zeros(39, dtype=np.int64), "has 40 inputs but 39 labels"),
        (
            (40, 1, 4, 4),
            np.full(40, -1),
            r"must be ≥ 0; found -1 in the labels of sample 0 .*ignore_index: -1",
        ),
        ((40, 1, 4, 4), np.array(["a"] * 40), "labels .* are not a numeric array"),
        (
            (40, 1, 4, 4),
            np.full(40, 2**63, dtype=np.uint64),
            r"uint64 values of 2\*\*63 or more",
        ),  # read -2**63
    ],
)
def test_arrays_bad_contents(load, tmp_path, x_shape, y, message):
    x = np.zeros(x_shape, dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(x_shape[0], dtype=np.int64) if y is None else y)
    with pytest.raises(DataError, match=message):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"))


def masks_file(path, n=30, size=6, classes=3, seed=0, **extra):
    """x [n, 1, size, size] whose first pixel is the sample's index; masks [n, size, size] uint8."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, size, size)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    masks = rng.integers(0, classes, (n, size, size)).astype(np.uint8)
    np.savez(path, x=x, y=masks, **extra)
    return x, masks


def test_arrays_integer_masks_are_segmentation_labels(load, tmp_path):
    _, masks = masks_file(tmp_path / "m.npz")
    splits = load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"), test_fraction=0.2)
    assert splits.num_classes == 3 and splits.ignore_index is None and splits.targets is None
    for split in (splits.train, splits.val, splits.test):
        xs, ys = split.tensors
        assert ys.dtype == torch.int64 and ys.shape[1:] == (6, 6)
        for sample, mask in zip(xs[:, 0, 0, 0].long(), ys, strict=True):  # each input keeps its mask
            assert mask.tolist() == masks[sample].tolist()
    with pytest.raises(DataError, match=r"label 2 \(sample 0 of .*m\.npz\) does not fit num_classes 2"):
        load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"), num_classes=2)


def test_arrays_ignore_index_is_no_class(load, tmp_path):
    x, masks = masks_file(tmp_path / "m.npz")
    masks[3, :2] = 255  # unlabelled pixels
    masks[7] = 255
    np.savez(tmp_path / "m.npz", x=x, y=masks)
    unaware = load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"))
    assert unaware.num_classes == 256  # without ignore_index, 255 is a class like any other
    splits = load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"), ignore_index=255)
    assert splits.num_classes == 3 and splits.ignore_index == 255
    all_y = torch.cat([splits.train.tensors[1], splits.val.tensors[1]])
    assert int((all_y == 255).sum()) == 12 + 36  # kept as they are, for the loss to skip
    assert load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"), ignore_index=255, num_classes=3)
    with pytest.raises(DataError, match=r"label 2 .* num_classes 2 \(labels are 0..1 and ignore_index 255\)"):
        load("arrays", (1, 6, 6), path=str(tmp_path / "m.npz"), ignore_index=255, num_classes=2)
    # A negative "unlabelled" value works the same way (and is named when it is not declared).
    np.savez(tmp_path / "n.npz", x=x, y=np.where(masks == 255, -1, masks.astype(np.int64)))
    with pytest.raises(
        DataError, match=r"must be ≥ 0; found -1 in the labels of sample 3 .*ignore_index: -1"
    ):
        load("arrays", (1, 6, 6), path=str(tmp_path / "n.npz"))
    assert load("arrays", (1, 6, 6), path=str(tmp_path / "n.npz"), ignore_index=-1).num_classes == 3
    np.savez(tmp_path / "all.npz", x=x, y=np.full(masks.shape, 255, dtype=np.uint8))
    with pytest.raises(DataError, match="every one of the labels is ignore_index 255"):
        load("arrays", (1, 6, 6), path=str(tmp_path / "all.npz"), ignore_index=255)
    np.savez(tmp_path / "r.npz", x=x, y=np.random.default_rng(0).normal(size=(30, 2)))
    with pytest.raises(
        DataError, match="ignore_index 255 is a class label to skip, but the labels are float"
    ):
        load("arrays", (1, 6, 6), path=str(tmp_path / "r.npz"), ignore_index=255)


def test_arrays_column_of_class_labels_is_one_label_per_sample(load, tmp_path):
    x, y = sample_arrays()
    np.savez(tmp_path / "c.npz", x=x, y=y[:, None])
    splits = load("arrays", (1, 4, 4), path=str(tmp_path / "c.npz"))
    assert splits.train.tensors[1].shape == (36,) and splits.num_classes == 3


def test_arrays_test_file_labels_must_match_the_train_file(load, tmp_path):
    masks_file(tmp_path / "train.npz")
    x, _ = sample_arrays(n=5, shape=(1, 6, 6))
    np.savez(tmp_path / "test.npz", x=x, y=np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match=r"labels in .*test\.npz have shape \[\] per sample, but those in .*"):
        load("arrays", (1, 6, 6), path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    np.savez(tmp_path / "test.npz", x=x, y=np.full((5, 6, 6), 4, dtype=np.uint8))
    splits = load("arrays", (1, 6, 6), path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    assert splits.num_classes == 5 and splits.test.tensors[1].shape == (5, 6, 6)


def test_arrays_named_targets(load, tmp_path):
    n = 40
    boxes = np.stack([np.arange(n), np.zeros(n), np.ones(n), np.ones(n)], 1).astype(np.float32)
    x, masks = masks_file(tmp_path / "t.npz", n=n, kind=np.arange(n) % 4, box=boxes)
    splits = load(
        "arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["kind", "box", "y"], test_fraction=0.2
    )
    assert splits.targets == {"kind": 4, "box": None, "y": 3}
    assert splits.num_classes == 4  # the first target's
    assert isinstance(splits.train, NamedTargets) and (
        len(splits.train),
        len(splits.val),
        len(splits.test),
    ) == (29, 3, 8)
    for split in (splits.train, splits.val, splits.test):
        sample = split.x[:, 0, 0, 0].long()  # each input keeps its own targets
        assert torch.equal(split.targets["kind"], sample % 4) and split.targets["kind"].dtype == torch.int64
        assert (
            torch.equal(split.targets["box"][:, 0], sample.float())
            and split.targets["box"].dtype == torch.float32
        )
        assert torch.equal(split.targets["y"], torch.from_numpy(masks).long()[sample])
    x0, y0 = splits.train[0]
    assert set(y0) == {"kind", "box", "y"} and y0["y"].shape == (6, 6) and x0.shape == (1, 6, 6)
    # num_classes per target; one number for a single target; ignore_index for the class targets.
    fixed = load(
        "arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["kind", "box"], num_classes={"kind": 6}
    )
    assert fixed.targets == {"kind": 6, "box": None} and fixed.num_classes == 6
    one = load(
        "arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["y"], num_classes=5, ignore_index=255
    )
    assert one.targets == {"y": 5} and one.ignore_index == 255 and isinstance(one.train[0][1], dict)
    boxes_only = load("arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["box"])
    assert boxes_only.targets == {"box": None} and boxes_only.num_classes is None
    with pytest.raises(
        DataError, match="ignore_index 0 is a class label to skip, but the 'box' labels are float"
    ):
        load("arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["box"], ignore_index=0)
    with pytest.raises(DataError, match=r"num_classes is 3 but the 'box' labels in .* are fractional"):
        boxes[0, 0] = 0.5
        np.savez(tmp_path / "t.npz", x=x, box=boxes)
        load("arrays", (1, 6, 6), path=str(tmp_path / "t.npz"), targets=["box"], num_classes=3)


def test_arrays_named_targets_errors(load, tmp_path, registry):
    params = registry.datasets["arrays"].params
    for bad, message in [
        (
            {"targets": ["y", "box"], "num_classes": 3},
            r"give it per class target, e.g. num_classes: \{y: 3\}",
        ),
        (
            {"targets": ["y"], "num_classes": {"z": 3}},
            r"num_classes names 'z', which `targets` does not list",
        ),
        ({"num_classes": {"y": 3}}, "which `targets` does not list"),
        ({"targets": ["y", "y"]}, "targets lists 'y' more than once"),
        ({"targets": []}, "at least 1 item"),
        ({"ignore_index": 1.5}, "integer"),
    ]:
        with pytest.raises(pydantic.ValidationError, match=message):
            params(path="d.npz", **bad)
    x, y = sample_arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y, box=np.zeros((39, 4)), bad=np.full((40, 2), np.nan))
    with pytest.raises(
        DataError,
        match=r"`targets:` names 'size', 'z', which .*d\.npz does not hold; its keys: 'x', 'y', 'box', 'bad'",
    ):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"), targets=["y", "size", "z"])
    with pytest.raises(DataError, match="has 40 inputs but 39 'box' labels"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"), targets=["y", "box"])
    with pytest.raises(
        DataError, match=r"the 'bad' labels in .* hold 80 NaN/inf value\(s\), the first in sample 0"
    ):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"), targets=["bad"])
    with pytest.raises(
        DataError, match=r"the inputs must be one of 'x', 'inputs', 'X' \(not listed in `targets:`\)"
    ):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.npz"), targets=["x"])
    torch.save((torch.from_numpy(x), torch.from_numpy(y)), tmp_path / "pair.pt")
    with pytest.raises(DataError, match=r"holds a tuple; save a dict"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "pair.pt"), targets=["y"])
    torch.save({"inputs": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    assert load("arrays", (1, 4, 4), path=str(tmp_path / "d.pt"), targets=["y"]).targets == {"y": 3}


def test_arrays_unknown_keys_and_formats(load, tmp_path):
    np.savez(tmp_path / "k.npz", data=np.zeros((2, 1)), target=np.zeros(2))
    with pytest.raises(DataError, match=r"has keys 'data', 'target'; expected one of the pairs 'x'/'y'"):
        load("arrays", (1,), path=str(tmp_path / "k.npz"))
    np.savez(tmp_path / "o.npz", x=np.array([object(), object()]), y=np.zeros(2))
    with pytest.raises(DataError, match="cannot read .* as .npz"):
        load("arrays", (1,), path=str(tmp_path / "o.npz"))
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"suffix '.csv'; supported: .npz, .pt, .pth"):
        load("arrays", (1,), path=str(tmp_path / "d.csv"))
    (tmp_path / "empty.npz").write_bytes(b"")  # np.load raises EOFError: was an internal error
    with pytest.raises(DataError, match="empty.npz is not a .npz file .*: it is empty"):
        load("arrays", (1,), path=str(tmp_path / "empty.npz"))
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")  # numpy said "contains pickled data … allow_pickle"
    with pytest.raises(DataError, match="text.npz is not a .npz file .*does not start as a zip archive does"):
        load("arrays", (1,), path=str(tmp_path / "text.npz"))
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DataError, match="cannot read .*torn.npz as .npz"):
        load("arrays", (1,), path=str(tmp_path / "torn.npz"))


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(4, 1, 4, 4, device="meta"), "are a tensor on the meta device, which holds no values"),
        (torch.zeros(4, 1, 4, 4).to_sparse(), "are a sparse_coo tensor; save t.to_dense()"),
    ],
)
def test_arrays_of_a_layout_netspec_cannot_compute_with_are_refused(load, tmp_path, tensor, message):
    """weights_only loading accepts tensors of any layout and device; the first operation on a
    meta or sparse one was an internal error."""
    torch.save({"x": tensor, "y": torch.zeros(4, dtype=torch.long)}, tmp_path / "d.pt")
    with pytest.raises(DataError, match=re.escape(message)):
        load("arrays", (1, 4, 4), path=str(tmp_path / "d.pt"))


def test_arrays_paths_resolve_against_cwd_then_data_dir(load, tmp_path, monkeypatch):
    cwd, data_dir = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    data_dir.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(DataError) as info:
        load("arrays", (1, 4, 4), data_dir=data_dir, path="sub/d.npz")
    message = str(info.value)
    assert str(cwd / "sub" / "d.npz") in message and str(data_dir / "sub" / "d.npz") in message
    x, y = sample_arrays()
    (data_dir / "sub").mkdir()
    np.savez(data_dir / "sub" / "d.npz", x=x, y=y)
    assert len(load("arrays", (1, 4, 4), data_dir=data_dir, path="sub/d.npz").train) == 36
    (cwd / "sub").mkdir()
    np.savez(cwd / "sub" / "d.npz", x=x[:10], y=y[:10])  # the working directory comes first
    assert len(load("arrays", (1, 4, 4), data_dir=data_dir, path="sub/d.npz").train) == 9
    with pytest.raises(DataError, match=f"looked for {tmp_path / 'nope.npz'}$"):
        load("arrays", (1, 4, 4), path=str(tmp_path / "nope.npz"))


# ---- mnist / fashion_mnist / cifar10 ---------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_idx_set(seed: int = 0, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }


def write_idx_set(directory: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("mnist", "MNIST/raw"),
        ("mnist", "mnist"),
        ("mnist", ""),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("fashion_mnist", "fashion_mnist"),
        ("fashion_mnist", ""),
    ],
)
def test_idx_sets_in_each_layout(load, tmp_path, name, folder, gz):
    arrays = fake_idx_set()
    write_idx_set(tmp_path / folder, arrays, gz)
    splits = load(name, (1, 28, 28), normalize=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 10)
    assert splits.num_classes == 10 and splits.sample_shape == (1, 28, 28)
    xs, ys = splits.test.tensors
    assert xs.dtype == torch.float32 and ys.dtype == torch.int64
    torch.testing.assert_close(xs[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255)
    assert ys.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    train_x = torch.cat([splits.train.tensors[0], splits.val.tensors[0]])[:, 0] * 255
    train_y = torch.cat([splits.train.tensors[1], splits.val.tensors[1]])
    images = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float()
    for x, y in zip(train_x.round(), train_y, strict=True):  # each sample keeps its own label
        (match,) = [i for i in range(20) if torch.equal(images[i], x)]
        assert arrays["train-labels-idx1-ubyte"][match] == y


def test_idx_resized_to_rgb_and_normalised(load, tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", fake_idx_set(), gz=True)
    splits = load("mnist", (3, 32, 32))
    x = splits.train.tensors[0]
    assert x.shape == (18, 3, 32, 32) and splits.test.tensors[0].shape == (10, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 2])
    assert x.mean().abs() < 1e-5 and x.std() == pytest.approx(1, abs=1e-3)
    raw = load("mnist", (1, 32, 32), normalize=False).test.tensors[0]
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(fake_idx_set()["t10k-images-idx3-ubyte"]).float()[:, None] / 255,
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )
    torch.testing.assert_close(raw, expected)


def test_idx_roots_param_env_and_data_dir(load, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    write_idx_set(elsewhere / "mnist", fake_idx_set(), gz=False)
    assert len(load("mnist", root=str(elsewhere)).test) == 10
    with pytest.raises(DataError):
        load("mnist")  # data_dir (tmp_path) holds nothing
    monkeypatch.setenv(vision.ENV_DATA, str(elsewhere))
    assert len(load("mnist").test) == 10
    afile = tmp_path / "afile"  # "put them in afile/MNIST/raw"; with download: NotADirectoryError, exit 1
    afile.write_text("x")
    for download in (False, True):
        with pytest.raises(
            DataError, match=f"{afile} \\(root:\\) is a file; it must be the directory that holds"
        ):
            load("mnist", root=str(afile), download=download)


def test_idx_missing_files_say_what_and_where(load, tmp_path):
    partial = fake_idx_set()
    del partial["t10k-images-idx3-ubyte"], partial["t10k-labels-idx1-ubyte"]
    write_idx_set(tmp_path / "mnist", partial, gz=True)
    with pytest.raises(DataError) as info:
        load("mnist")
    message = str(info.value)
    for name in IDX_NAMES:
        assert name in message
    for folder in ("MNIST/raw", "mnist"):
        assert str(tmp_path / folder) in message
    missing = "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    assert f"{tmp_path / 'mnist'} (has 2 of 4; missing {missing})" in message
    assert message.startswith("dataset 'mnist': files not found together in one folder: ")  # not "not found"
    assert f"put them in {tmp_path / 'MNIST' / 'raw'}" in message
    assert "download: true" in message and "internet" in message
    with pytest.raises(DataError, match=str(tmp_path / "FashionMNIST" / "raw")):
        load("fashion_mnist")


def test_idx_corrupt_files(load, tmp_path):
    directory = tmp_path / "mnist"
    write_idx_set(directory, fake_idx_set(), gz=False)
    good = (directory / "t10k-images-idx3-ubyte").read_bytes()
    (directory / "t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b" + good[2:])
    with pytest.raises(DataError, match="not an idx file"):
        load("mnist")
    (directory / "t10k-images-idx3-ubyte").write_bytes(b"")  # said "bad magic number none"
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is empty \(an idx file was expected"):
        load("mnist")
    (directory / "t10k-images-idx3-ubyte").write_bytes(good[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load("mnist")
    (directory / "t10k-images-idx3-ubyte").write_bytes(good)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(9, dtype=np.uint8)))
    with pytest.raises(DataError, match="do not match"):
        load("mnist")
    (directory / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(10, 11, dtype=np.uint8)))
    with pytest.raises(DataError, match="labels outside 0..9"):
        load("mnist")
    (directory / "t10k-labels-idx1-ubyte").unlink()
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        load("mnist")


def fake_cifar(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def write_cifar(directory: Path, protocol: int | str = 2, n: int = 4) -> dict[str, dict]:
    directory.mkdir(parents=True, exist_ok=True)
    batches = {name: fake_cifar(n, i) for i, name in enumerate(vision.CIFAR_FILES)}
    for name, batch in batches.items():
        data = numpy1_pickle(batch) if protocol == "numpy1" else pickle.dumps(batch, protocol=protocol)
        (directory / name).write_bytes(data)
    return batches


def numpy1_pickle(batch: dict) -> bytes:
    """A protocol-2 pickle naming numpy 1's modules, as the real (Python 2 era) batches do."""
    return pickle.dumps(batch, protocol=2).replace(b"cnumpy._core.", b"cnumpy.core.")


@pytest.mark.parametrize(
    ("folder", "protocol"), [("cifar-10-batches-py", 2), ("", pickle.HIGHEST_PROTOCOL), ("", "numpy1")]
)
def test_cifar_batches(load, tmp_path, folder, protocol):
    batches = write_cifar(tmp_path / folder, protocol)
    splits = load("cifar10", (3, 32, 32), normalize=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 4)
    test = batches["test_batch"]
    expected = torch.from_numpy(test[b"data"].reshape(4, 3, 32, 32)).float() / 255
    torch.testing.assert_close(splits.test.tensors[0], expected)
    assert splits.test.tensors[1].tolist() == test[b"labels"]
    grey = load("cifar10", (1, 32, 32), normalize=False).test.tensors[0]
    luma = 0.299 * expected[:, 0] + 0.587 * expected[:, 1] + 0.114 * expected[:, 2]
    torch.testing.assert_close(grey[:, 0], luma)
    small = load("cifar10", (1, 28, 28))
    assert small.train.tensors[0].shape == (18, 1, 28, 28)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_unpickler_refuses_other_globals(load, tmp_path):
    directory = tmp_path / "cifar-10-batches-py"
    write_cifar(directory)
    (directory / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match=r"global (posix|nt)\.system is not allowed"):
        load("cifar10", (3, 32, 32))
    (directory / "test_batch").write_bytes(pickle.dumps({b"pixels": 1}))
    with pytest.raises(DataError, match="a CIFAR-10 batch has b'data' and b'labels'"):
        load("cifar10", (3, 32, 32))
    (directory / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load("cifar10", (3, 32, 32))
    assert "has 5 of 6; missing data_batch_3" in str(info.value)
    assert f"so that {directory} holds them" in str(info.value)


def test_vision_bad_input_shape(load, tmp_path):
    write_idx_set(tmp_path / "mnist", fake_idx_set(), gz=False)
    with pytest.raises(
        DataError, match=r"dataset 'mnist' gives images \[C, H, W\], but the spec's input \[784\] is flat"
    ):
        load("mnist", (784,))
    with pytest.raises(
        DataError, match=r"dataset 'mnist' gives images, but the spec's input is \[4, 28, 28\]"
    ):
        load("mnist", (4, 28, 28))
    # a 1-D or 3-D network is told to change its data, not to become a 2-D one
    with pytest.raises(DataError, match=r"input \[1, 16000\] has 1 spatial dimension\(s\); give it data"):
        load("mnist", (1, 16000))


# ---- downloads (stubbed: no network) ---------------------------------------------------------


class Response(io.BytesIO):
    """What urlopen returns, enough for the loader: read(n) and a context manager."""


def stub_urlopen(served: dict[str, bytes], calls: list):
    def urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        calls.append((url, timeout))
        name = url.rsplit("/", 1)[-1]
        if name not in served:
            raise urllib.error.URLError("no route to host")
        return Response(served[name])

    return urlopen


def test_download_idx_files(load, tmp_path, monkeypatch):
    served = {f"{n}.gz": gzip.compress(idx_bytes(a)) for n, a in fake_idx_set().items()}
    for name, data in served.items():
        monkeypatch.setitem(vision.MD5, ("fashion_mnist", name), hashlib.md5(data).hexdigest())
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", stub_urlopen(served, calls))
    splits = load("fashion_mnist", download=True)
    assert len(splits.test) == 10
    assert sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir()) == sorted(served)
    assert {t for _, t in calls} == {30} and len(calls) == 4
    assert all(url.startswith(vision.SOURCES["fashion_mnist"].mirrors[0]) for url, _ in calls)
    load("fashion_mnist", download=True)  # present now: nothing fetched again
    assert len(calls) == 4


def test_download_cifar_archive(load, tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (*vision.CIFAR_FILES, "batches.meta", "readme.html"):
            data = pickle.dumps(fake_cifar(3, 0), protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    monkeypatch.setitem(vision.MD5, ("cifar10", vision.CIFAR_ARCHIVE), hashlib.md5(archive).hexdigest())
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", stub_urlopen({vision.CIFAR_ARCHIVE: archive}, calls))
    root = tmp_path / "root"
    splits = load("cifar10", (3, 32, 32), root=str(root), download=True)
    assert len(splits.train) + len(splits.val) == 15 and len(splits.test) == 3
    assert not (root / "cifar-10-batches-py" / "readme.html").exists()
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", 30)]


def test_download_failures_are_data_errors(load, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", stub_urlopen({}, calls))
    with pytest.raises(DataError) as info:
        load("mnist", download=True)
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    for mirror in vision.SOURCES["mnist"].mirrors:
        assert f"{mirror}train-images-idx3-ubyte.gz: <urlopen error no route to host>" in message
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in message
    # A mirror serving the wrong bytes is refused by checksum, and leaves nothing behind.
    served = {f"{n}.gz": gzip.compress(idx_bytes(a)) for n, a in fake_idx_set().items()}
    monkeypatch.setattr(urllib.request, "urlopen", stub_urlopen(served, calls))
    with pytest.raises(DataError, match="checksum mismatch"):
        load("mnist", download=True)
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        (
            "unet.yaml",
            "{name: shapes, num_samples: 100000000000}",
            "'shapes': 100,000,000,000 samples of shape [1, 60, 60]",
        ),
        (
            "lenet.yaml",
            "{name: synthetic, num_samples: 100000000000}",
            "'synthetic': 100,000,000,000 samples",
        ),
    ],
)
def test_a_generated_set_too_big_for_memory_is_refused_before_allocating(spec, data, message, capsys):
    from conftest import REPO

    from netspec.cli import main

    args = [
        "train",
        str(REPO / "specs" / spec),
        "--set",
        f"train.data={data}",
        "--set",
        "train.progress=none",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "lower num_samples" in err and "Traceback" not in err
