"""``netspec datasets`` (the listing, one type in detail, JSON) and the missing-file messages."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from netspec.cli import main
from netspec.data import DataContext, DataError, DatasetParams, DatasetType, about_dataset
from netspec.datasets import vision
from netspec.errors import PluginError
from netspec.hookspecs import hookimpl
from netspec.plugins import collect_registry, default_registry, make_plugin_manager

# The dataset types this file describes; others (new built-ins, plugins) may be listed too.
OWN = ("arrays", "cifar10", "digits", "fashion_mnist", "mnist", "synthetic")
COMMON = ["batch_size", "num_workers", "random_crop", "hflip"]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(vision.ENV_DATA, raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["datasets", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def with_plugin(monkeypatch, name: str, records: list[DatasetType]):
    """The built-ins plus a plugin module registering ``records``, as ``default_registry``."""
    module = types.ModuleType(name)
    module.netspec_register_datasets = hookimpl(lambda: records)
    registry = collect_registry(make_plugin_manager(entry_points=False, extra=(module,)))
    monkeypatch.setattr("netspec.plugins.default_registry", lambda: registry)
    return registry


def load_nothing(p, ctx):
    raise DataError("no files here")


# ---- the listing -----------------------------------------------------------------------------


def test_listing_names_summary_origin_options_and_files(capsys):
    status, out, err = run(capsys)
    assert status == 0 and err == ""
    for name in OWN:
        record = default_registry().datasets[name]
        assert f"{name}: {record.summary}" in out
        assert record.files.splitlines()[0] in out  # the first line of `files` is the short form
    assert "from:    built-in: netspec.datasets.vision (netspec" in out
    assert "options: val_fraction=0.1, path (required), test_path=null" in out  # arrays
    assert "options: val_fraction=0.1, root=null, download=false, normalize=true" in out  # vision
    # the trainer's batching/augmentation options are listed once, not per dataset
    assert out.count("batch_size") == 1
    assert "every dataset also takes: batch_size=64, num_workers=0, random_crop=0, hflip=false" in out
    assert "netspec datasets NAME" in out


def test_listing_says_where_each_builtin_looks_for_files(capsys):
    out = run(capsys)[1]
    assert "DATA_DIR/MNIST/raw, DATA_DIR being --data-dir (default data/)" in out
    assert "DATA_DIR/FashionMNIST/raw" in out and "DATA_DIR/cifar-10-batches-py" in out
    assert "netspec ships them" in out  # digits
    assert "none: generated in memory" in out  # synthetic
    assert "looked for in the working directory, then under --data-dir" in out  # arrays


def test_listing_as_json(capsys):
    status, out, _ = run(capsys, "--format", "json")
    assert status == 0
    doc = json.loads(out)
    rows = {row["name"]: row for row in doc["datasets"]}
    assert set(OWN) <= set(rows)
    assert [o["name"] for o in doc["common_options"]] == COMMON
    assert doc["common_options"][0] == {
        "name": "batch_size",
        "type": "int ≥ 1",
        "required": False,
        "default": 64,
        "description": "Samples per batch.",
    }
    for name in OWN:
        row = rows[name]
        assert row["origin"] == "built-in" and row["distribution"] == "netspec"
        assert row["plugin"].startswith("netspec.datasets.") and row["files"] and row["summary"]
        names = [o["name"] for o in row["options"]]
        assert not set(names) & {"name", *COMMON}
        for option in row["options"]:
            assert set(option) >= {"name", "type", "required", "description"}
            assert option["required"] or "default" in option
    path = next(o for o in rows["arrays"]["options"] if o["name"] == "path")
    assert path["required"] and "default" not in path and path["type"] == "str"
    shape = next(o for o in rows["synthetic"]["options"] if o["name"] == "shape")
    assert shape["type"] == "list[int ≥ 1] | null" and shape["default"] is None


# ---- one dataset in detail -------------------------------------------------------------------


def test_detail_of_arrays(capsys):
    status, out, err = run(capsys, "arrays")
    assert status == 0 and err == ""
    assert out.startswith("arrays: Your own arrays")
    lines = out.splitlines()
    path = next(line for line in lines if line.split()[:1] == ["path"])
    assert path.split()[1:3] == ["str", "required"] and "working directory" in path
    fraction = next(line for line in lines if line.split()[:1] == ["test_fraction"])
    assert "float in [0, 1)" in fraction and " 0.0 " in fraction
    assert "every dataset also takes:" in out and "Random horizontal flips." in out
    assert "numpy.savez(FILE, x=inputs, y=labels)" in out and "weights_only=True" in out
    assert "data: {name: arrays, path: ...}" in out


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_detail_of_a_vision_set_names_every_file_and_url(capsys, name):
    out = run(capsys, name)[1]
    source = vision.SOURCES[name]
    for file in source.files:
        assert file in out
    for folder in source.folders:
        assert f"DATA_DIR/{folder}" in out if folder else "DATA_DIR itself" in out
    for url in vision.file_urls(source):
        assert url in out
    assert "--data-dir" in out and "$NETSPEC_DATA" in out and "`root:`" in out
    assert "download: true" in out and f"data: {{name: {name}}}" in out
    assert "download" in out.split("options (train.data):")[1].split("every dataset")[0]


def test_detail_as_json(capsys):
    status, out, _ = run(capsys, "digits", "--format", "json")
    assert status == 0
    row = json.loads(out)
    assert row["name"] == "digits" and "digits.npz" in row["files"]
    assert [o["name"] for o in row["options"]] == ["val_fraction", "test_fraction", "normalize"]
    assert row["options"][2] == {
        "name": "normalize",
        "type": "bool",
        "required": False,
        "default": True,
        "description": "Standardise with the training split's mean and std.",
    }
    assert [o["name"] for o in row["common_options"]] == COMMON


@pytest.mark.parametrize(
    ("name", "hint"),
    [("mnsit", "did you mean 'mnist'?"), ("cifar", "did you mean 'cifar10'?"), ("zzz", "(known: arrays")],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_unknown_name_exits_2_with_a_hint(capsys, name, hint, fmt):
    status, out, err = run(capsys, name, "--format", fmt)
    assert status == 2 and out == ""
    assert f"no dataset type {name!r}" in err and hint in err and "Traceback" not in err


def test_datasets_does_not_import_torch():
    code = (
        "import io, sys, contextlib\nfrom netspec.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    status = [main(['datasets']), main(['datasets', 'mnist']), main(['datasets', '--format=json'])]"
        "\nheavy = ('torch', 'numpy', 'sklearn', 'pytorch_lightning')"
        "\nprint(status, sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0, 0, 0] []"


# ---- plugins and the `files` field -----------------------------------------------------------


def test_a_plugin_dataset_is_listed_with_its_plugin_and_files(monkeypatch, capsys):
    class CsvParams(DatasetParams):
        folder: str = "csv"

    record = DatasetType(
        "csv_rows", CsvParams, load_nothing, "Rows of CSV files.", files="DATA_DIR/csv/*.csv"
    )
    with_plugin(monkeypatch, "csvplugin", [record])
    out = run(capsys)[1]
    assert "csv_rows: Rows of CSV files.\n  from:    registered in code: " in out
    assert 'options: val_fraction=0.1, folder="csv"' in out and "files:   DATA_DIR/csv/*.csv" in out
    row = json.loads(run(capsys, "csv_rows", "--format", "json")[1])
    assert row["origin"] == "registered in code" and row["files"] == "DATA_DIR/csv/*.csv"


def test_files_is_optional_for_plugins(monkeypatch, capsys):
    old_style = DatasetType("legacy", DatasetParams, load_nothing, "Written before `files` existed.")
    assert old_style.files == ""
    with_plugin(monkeypatch, "legacyplugin", [old_style])
    out = run(capsys)[1]
    assert "legacy: Written before `files` existed." in out
    assert "options: val_fraction=0.1\n  files:   not described by its plugin" in out
    assert "files:\n  not described by its plugin" in run(capsys, "legacy")[1]


def test_options_of_a_model_without_a_json_schema_are_still_listed():
    from pydantic import ConfigDict

    from netspec.datasetinfo import options

    class Handle:
        pass

    class OddParams(DatasetParams):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        handle: Handle | None = None

    fraction, handle = options(OddParams)
    assert (fraction.name, fraction.type) == ("val_fraction", "float")
    assert handle.name == "handle" and handle.type.endswith("Handle | None") and handle.default is None


def test_files_must_be_a_string():
    module = types.ModuleType("badfiles")
    bad = DatasetType("badfiles", DatasetParams, load_nothing, "Bad.", files=["a.npz"])  # type: ignore[arg-type]
    module.netspec_register_datasets = hookimpl(lambda: [bad])
    with pytest.raises(PluginError, match=r"files is \['a.npz'\], not a string"):
        collect_registry(make_plugin_manager(entry_points=False, extra=(module,)))


# ---- missing files ---------------------------------------------------------------------------


def load(name: str, data_dir, input_shape=(1, 28, 28), **params):
    record = default_registry().datasets[name]
    return record.load(record.params(**params), DataContext(tuple(input_shape), 0, data_dir))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_missing_idx_files_say_which_where_and_how_to_get_them(tmp_path, name):
    source = vision.SOURCES[name]
    with pytest.raises(DataError) as info:
        load(name, tmp_path / "data")
    message = str(info.value)
    assert message.startswith(f"dataset {name!r}: files not found: {', '.join(source.files)}")
    for folder in source.folders:
        assert f"    {(tmp_path / 'data' / folder) if folder else tmp_path / 'data'}\n" in message
    for url in vision.file_urls(source):
        assert url.startswith("http") and url.endswith(".gz") and f"    {url}\n" in message
    assert f"put them in {tmp_path / 'data' / source.folders[0]}" in message
    assert "--set train.data.download=true" in message and "$NETSPEC_DATA" in message


def test_missing_cifar_files_say_which_where_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(vision.ENV_DATA, str(tmp_path / "shared"))
    with pytest.raises(DataError) as info:
        load("cifar10", tmp_path / "data", (3, 32, 32))
    message = str(info.value)
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" in message
    for root in ("shared", "data"):  # $NETSPEC_DATA first, then the data directory
        assert f"    {tmp_path / root / 'cifar-10-batches-py'}\n    {tmp_path / root}\n" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert f"tar xzf cifar-10-python.tar.gz -C {tmp_path / 'shared'}" in message


def test_a_relative_root_is_shown_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load("mnist", "ignored", root="elsewhere")
    assert f"    {tmp_path / 'elsewhere' / 'MNIST/raw'}\n" in str(info.value)
    assert "ignored" not in str(info.value)


def test_missing_arrays_file_says_where_and_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load("arrays", "data", path="mine.npz")
    message = str(info.value)
    assert message.startswith("dataset 'arrays': file 'mine.npz' not found\n")
    assert "numpy.savez(FILE, x=inputs, y=labels)" in message
    assert message.endswith(f"looked for {tmp_path / 'mine.npz'} and {tmp_path / 'data' / 'mine.npz'}")


def test_errors_name_the_dataset_once():
    assert (
        about_dataset("mnist", DataError("dataset 'mnist': files not found"))
        == "dataset 'mnist': files not found"
    )
    assert about_dataset("csv", DataError("no files here")) == "dataset 'csv': no files here"
    assert about_dataset("mnist", DataError("dataset 'mnist2': x")) == "dataset 'mnist': dataset 'mnist2': x"


@pytest.mark.parametrize(
    ("data", "shape", "expect"),
    [
        ("{name: mnist}", "[1, 28, 28]", "MNIST/raw"),
        ("{name: cifar10}", "[3, 32, 32]", "cifar-10-batches-py"),
        ("{name: arrays, path: mine.npz}", "[1, 28, 28]", "mine.npz"),
    ],
)
def test_train_with_missing_files_exits_2_at_the_data_line(
    write_spec, tmp_path, capsys, monkeypatch, data, shape, expect
):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(
        f"""
        input: {shape}
        layers:
          - {{type: flatten}}
          - {{type: linear, out_features: 10}}
        train:
          max_epochs: 1
          data: {data}
        """
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    status = main(["train", str(spec), "--data-dir", str(empty)])
    out, err = capsys.readouterr()
    name = data.split()[1].rstrip("},")
    assert status == 2 and out == ""
    assert err.startswith(f"{spec}:7:9: dataset {name!r}: ")  # the `data:` line, the dataset named once
    assert f"dataset {name!r}" not in err[len(f"{spec}:7:9: dataset {name!r}") :]
    assert str(empty / expect) in err and "Traceback" not in err
    assert "to get" in err
    assert not any(empty.iterdir()) and not (tmp_path / "runs").exists()  # nothing fetched or written
