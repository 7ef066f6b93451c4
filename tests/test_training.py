"""Training: a real run on the offline digits, exact resume after SIGKILL, DDP on CPU, clean errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from netspec.cli import main
from netspec.errors import SpecError

LENET = str(REPO / "specs/lenet.yaml")
NETSPEC = [sys.executable, "-m", "netspec"]
QUIET = ["--set", "train.progress=none"]
# The accuracy a short run must clearly beat: chance is 0.10 on ten digit classes.
ACCURACY_THRESHOLD = 0.80


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*NETSPEC, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_lenet_learns_the_offline_digits(tmp_path):
    from netspec.training import fit

    result = fit(
        LENET, overrides=["train.max_epochs=6", f"train.run_dir={tmp_path / 'run'}", "train.progress=none"]
    )
    print(f"digits after 6 epochs: {result.metrics}")  # the note quotes this figure
    assert result.metrics["test_acc"] >= ACCURACY_THRESHOLD
    run = tmp_path / "run"
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "spec.yaml", "curves.png"):
        assert (run / name).is_file(), name
    assert result.epochs == 6
    # the resolved spec reloads to the same network and training setup
    import netspec

    again = netspec.load(run / "spec.yaml")
    assert again.model.train.max_epochs == 6 and again.shapes() == netspec.load(LENET).shapes()
    # eval and ONNX export of the best checkpoint
    assert main(["eval", LENET, "--checkpoint", str(result.best_checkpoint)]) == 0
    onnx_path = tmp_path / "lenet.onnx"
    assert main(["export", LENET, "--checkpoint", str(result.best_checkpoint), "--onnx", str(onnx_path)]) == 0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path))
    x = torch.randn(5, 1, 28, 28)
    model = netspec.build(LENET).eval()
    state = torch.load(result.best_checkpoint, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), model(x).detach(), rtol=1e-4, atol=1e-5)


def _metrics(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("done:"))


def test_resume_after_sigkill_ends_exactly_where_an_uninterrupted_run_ends(tmp_path):
    common = [
        "--set",
        "train.max_epochs=3",
        "--set",
        "train.checkpoint_every_n_steps=4",
        "--set",
        "train.optimizer.lr=0.005",
        *QUIET,
    ]
    straight = run_cli("train", LENET, *common, "--set", f"train.run_dir={tmp_path / 'a'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    run_b = tmp_path / "b"
    args = [*common, "--set", f"train.run_dir={run_b}"]
    proc = subprocess.Popen(
        [*NETSPEC, "train", LENET, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run_b / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["global_step"] >= 30:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < 63  # mid-run (21 steps per epoch)
    resumed = run_cli("train", LENET, *args, "--resume", str(run_b), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"note: resuming {run_b} after " in resumed.stderr and "up to max_epochs 3" in resumed.stderr
    assert _metrics(resumed.stdout) == _metrics(straight.stdout)
    # nothing is lost: metrics.csv holds the whole history, the killed part's rows included, and
    # the epoch train metrics of the epoch the kill interrupted equal the uninterrupted run's
    assert _rows(run_b / "metrics.csv") == _rows(tmp_path / "a" / "metrics.csv")
    assert (run_b / "curves.png").is_file()


def _rows(path: Path) -> list[dict]:
    """metrics.csv rows without empty cells, sorted by step and columns (the order within a step varies)."""
    with path.open() as file:
        rows = [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]
    return sorted(rows, key=lambda row: (int(row["step"]), sorted(row)))


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    out = run_cli("train", LENET, *QUIET, "--resume", str(tmp_path / "nothing"), cwd=tmp_path)
    assert out.returncode == 2
    assert "no checkpoint to resume from" in out.stderr and "Traceback" not in out.stderr


def test_ddp_on_cpu_with_two_processes(tmp_path):
    out = run_cli(
        "train",
        LENET,
        "--set",
        "train.strategy=ddp",
        "--set",
        "train.devices=2",
        "--set",
        "train.accelerator=cpu",
        "--set",
        "train.max_epochs=1",
        *QUIET,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done: 1 epoch,") == 1, out.stdout  # rank 1 does not report
    (run,) = (tmp_path / "runs").iterdir()  # rank 1 made no run directory of its own
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert run.name.startswith("lenet5-")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.optimizer.name=adamm"], "--set train.optimizer.name=adamm: train.optimizer.name"),
        (["--set", "train.max_epochs=0"], "train.max_epochs: Input should be greater than 0"),
        (["--set", "train.data.name=mnist", "--set", "train.data.root=nowhere"], "train-images-idx3-ubyte"),
        (
            ["--set", "train.data.name=synthetic", "--set", "train.data.num_classes=7"],
            "the dataset has 7 classes but the network outputs 10",
        ),
        (
            ["--set", "train.data.name=synthetic", "--set", "train.data.shape=[1, 8, 8]"],
            "the dataset gives samples of shape [1, 8, 8] but the network's input is [1, 28, 28]",
        ),
        (["--set", "input=[2, 28, 28]"], "digits"),
        # values that trained to NaN, overflowed or failed inside Lightning (exit 1) before
        (
            ["--set", "train.optimizer.lr=1e308"],
            "train.optimizer.lr: Input should be less than or equal to 1000",
        ),
        (["--set", "train.optimizer.lr=.inf"], "train.optimizer.lr: Input should be a finite number"),
        (["--set", "train.optimizer.lr=true"], "optimizer.lr: Input should be a valid number, got bool"),
        (["--set", "train.data.val_fraction=yes"], "val_fraction: Input should be a valid number, got bool"),
        (
            ["--set", "train.optimizer.weight_decay=.inf"],
            "train.optimizer.weight_decay: Input should be a finite",
        ),
        (["--set", "train.scheduler.gamma=.inf"], "train.scheduler.gamma: Input should be a finite number"),
        (["--set", "train.seed=4294967296"], "train.seed: Input should be less than or equal to 4294967295"),
        (["--set", "train.accelerator=tpu9000"], "train.accelerator: Input should be 'auto', 'cpu', 'gpu'"),
        (["--set", "train.strategy=nope"], "strategy 'nope' is not a Lightning strategy"),
        # exit 1 (a PicklingError), a fork bomb and a wait for ever, before
        (["--set", "train.strategy=ddp_spawn"], "strategy 'ddp_spawn' starts its processes by pickling"),
        (["--set", "train.devices=1000"], "devices 1000 on the CPU starts 1000 training processes"),
        (["--set", "train.num_nodes=2"], "num_nodes 2: nothing says where the other nodes are"),
        (
            ["--set", "train.optimizer.betas=[1.0, 0.9]"],
            "train.optimizer.betas.0: Input should be less than 1",
        ),
        (
            ["--set", "train.accumulate_grad_batches=1e20"],
            "train.accumulate_grad_batches: Input should be a valid",
        ),
        (
            ["--set", f"train.accumulate_grad_batches={10**20}"],
            "train.accumulate_grad_batches: Input should be less",
        ),
        (["--set", "train.max_epochs=null"], "lenet.yaml:20:3: train: give max_epochs or max_steps"),
        (
            ["--set", "train.early_stopping={monitor: val_accuracy}"],
            "early_stopping.monitor 'val_accuracy' is not a logged metric",
        ),
        (
            ["--set", "train.loss=mse"],
            "loss mse does not fit output 'output' [10]: it is trained for classification on the data's "
            "class labels (10 classes, one per sample)",
        ),
        (["--set", "train.metrics=[mae]"], "metric mae does not fit classification (output 'output' [10])"),
        (
            ["--set", "train.devices=[0, 1]", "--set", "train.accelerator=cpu"],
            "lenet.yaml:20:3: Lightning refuses this training setup: `devices` selected with",
        ),
    ],
)
def test_bad_training_configs_exit_2_with_a_message(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", LENET, *QUIET, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_accelerator_gpu_without_one_is_a_located_error(capsys):
    assert main(["train", LENET, *QUIET, "--set", "train.accelerator=gpu"]) == 2
    assert "accelerator 'gpu': none is available on this machine" in capsys.readouterr().err


def test_a_dense_output_with_per_sample_classes_names_output_and_loss(capsys):
    code = main(
        [
            "train",
            str(REPO / "specs/unet.yaml"),
            *QUIET,
            "--set",
            "train.data={name: synthetic, num_classes: 2}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "unet.yaml:" in err
    assert (
        "output 'logits' [2, 60, 60] does not fit the data's class labels (2 classes, one per sample)" in err
    )
    assert "end the network with a layer giving one score per class" in err


def _arrays(path: Path, x: torch.Tensor, y: torch.Tensor) -> str:
    torch.save({"x": x, "y": y}, path)
    return f"train.data={{name: arrays, path: {path}, batch_size: 8}}"


def test_float_targets_with_cross_entropy_is_a_located_error(tmp_path, capsys):
    data = _arrays(tmp_path / "d.pt", torch.randn(20, 1, 28, 28), torch.randn(20, 10))
    assert main(["train", LENET, *QUIET, "--set", data, "--set", "train.loss=cross_entropy"]) == 2
    assert (
        "loss cross_entropy does not fit output 'output' [10]: it is trained for regression on the "
        "data's float targets of shape [10]" in capsys.readouterr().err
    )


def test_a_loss_that_becomes_infinite_stops_the_run_naming_the_step(tmp_path, capsys):
    data = _arrays(
        tmp_path / "d.pt", torch.randn(20, 1, 28, 28), torch.full((20, 10), 1e30)
    )  # finite, squares to inf
    run = tmp_path / "run"
    code = main(
        ["train", LENET, *QUIET, "--set", data, "--set", "train.loss=mse", "--set", f"train.run_dir={run}"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "the training loss became NaN or infinite at step 0 (epoch 0); the run stopped" in err
    assert "Traceback" not in err
    assert not (run / "checkpoints" / "last.ckpt").exists()  # no checkpoint of NaN weights


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", "a\\b", ".hidden"])
def test_network_names_cannot_leave_the_runs_directory(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", LENET, *QUIET, "--set", f"name={name}"]) == 2
    err = capsys.readouterr().err
    assert f"--set name={name}: name: network names start with a letter" in err
    assert list(tmp_path.iterdir()) == []


def test_a_name_in_the_file_that_climbs_out_is_located(write_spec, capsys):
    spec = write_spec((REPO / "specs/lenet.yaml").read_text().replace("name: lenet5", "name: ../../x"))
    assert main(["train", str(spec), *QUIET]) == 2
    assert f"{spec}:4:7: name: network names start with a letter" in capsys.readouterr().err


def test_run_dir_parents_are_created_and_an_unwritable_one_is_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = main(["train", LENET, *QUIET, "--set", f"train.run_dir={tmp_path / 'file' / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"cannot create the run directory {tmp_path / 'file' / 'run'}" in err and "Traceback" not in err


def test_a_new_run_never_overwrites_a_run_directory(tmp_path, capsys, monkeypatch):
    """train.run_dir given twice (--resume forgotten) is refused before anything is written; two
    default directories of one spec in the same second get a suffix instead of being shared."""
    from netspec.training import run

    target = tmp_path / "run"
    sets = [*QUIET, "--set", "train.max_steps=2", "--set", f"train.run_dir={target}"]
    assert main(["train", LENET, *sets]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in target.rglob("*")}
    capsys.readouterr()
    assert main(["train", LENET, *sets]) == 2
    err = capsys.readouterr().err
    assert f"train.run_dir={target}: the run directory {target} already holds a run" in err
    assert f"hint: continue it with --resume {target}" in err
    assert {p.name: p.stat().st_mtime_ns for p in target.rglob("*")} == before
    (tmp_path / "file").write_text("")  # was an internal error (FileExistsError), after the data loaded
    assert main(["train", LENET, *QUIET, "--set", f"train.run_dir={tmp_path / 'file'}"]) == 2
    assert "cannot create the run directory" in capsys.readouterr().err
    import datetime
    import types

    now = datetime.datetime(2026, 12, 1, 4, 30, 5)
    monkeypatch.setattr(
        run, "datetime", types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda: now))
    )
    monkeypatch.setattr(run, "RUNS_ROOT", tmp_path / "runs")
    spec, cfg = run.prepare(LENET)
    first = run._run_dir(spec, cfg)
    assert first == tmp_path / "runs" / "lenet5-20261201-043005"
    first.mkdir(parents=True)
    second = run._run_dir(spec, cfg)
    assert second.name == "lenet5-20261201-043005-2"
    second.mkdir()
    assert run._run_dir(spec, cfg).name == "lenet5-20261201-043005-3"
    run._make_run_dir(spec, first, new=True)
    with pytest.raises(SpecError, match="another run has just started in the run directory"):  # two at once
        run._make_run_dir(spec, first, new=True)


def test_segnet_trains_with_the_default_determinism_and_names_the_unpooling(tmp_path, capsys):
    """Max unpooling has no deterministic kernel (on CPU too): the default runs it and says so."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = _arrays(tmp_path / "d.pt", torch.randn(16, 3, 45, 60), torch.randn(16, 5, 45, 60))
    code = main(
        [
            "train",
            str(REPO / "specs/segnet.yaml"),
            *QUIET,
            "--set",
            data,
            "--set",
            "train.loss=mse",
            "--set",
            "train.max_epochs=1",
            "--set",
            f"train.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
            "--set",
            f"train.run_dir={tmp_path / 'run'}",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"no deterministic kernel on {device} for" in out.err
    assert "'unpool2' (unpool): max unpooling" in out.err
    assert "done: 1 epoch, 2 steps" in out.out
    # Lightning's global flags are put back: later work in this process is not made deterministic
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_true_with_unpooling_is_refused_before_the_start(tmp_path, capsys):
    data = _arrays(tmp_path / "d.pt", torch.randn(16, 3, 45, 60), torch.randn(16, 5, 45, 60))
    run = tmp_path / "run"
    args = ["--set", data, "--set", "train.loss=mse", "--set", f"train.run_dir={run}"]
    code = main(
        ["train", str(REPO / "specs/segnet.yaml"), *QUIET, *args, "--set", "train.deterministic=true"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "deterministic: true, but these have no deterministic kernel on" in err
    assert "hint: use deterministic: warn" in err and not run.exists()


# importing inductor warns that torch.jit.script_method is deprecated (torch's own code)
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")
def test_compiled_training_builds_one_graph_for_training_and_one_for_evaluation(tmp_path):
    """No recompiles: the last partial training batch is dropped, short evaluation batches padded."""
    from torch._dynamo.utils import counters

    from netspec.training import fit
    from netspec.training.fast import compile_counts

    torch._dynamo.reset()
    counters.clear()
    # 150 samples: 96 train (3 batches of 32), 24 val, 30 test: every split ends with a short batch
    result = fit(
        LENET,
        overrides=[
            "train.data={name: synthetic, num_samples: 150, batch_size: 32}",
            "train.compile=true",
            "train.max_epochs=2",
            "train.progress=none",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    counts = compile_counts()
    assert counts["graphs"] == 2, counts  # the training step's graph and the evaluation one
    assert counts["frames"] == 2, counts  # each compiled once
    assert "test_acc" in result.metrics and "val_acc" in result.metrics
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert result.steps == 2 * (96 // 32)  # one epoch is floor(96 / 32) optimizer steps
    assert any(row.get("test_acc") for row in rows)


def test_channels_last_trains_an_image_network_and_is_refused_for_other_inputs(tmp_path, capsys):
    from netspec.training import fit

    result = fit(
        LENET,
        overrides=[
            "train.data={name: synthetic, num_samples: 100, batch_size: 16}",
            "train.memory_format=channels_last",
            "train.max_epochs=1",
            "train.progress=none",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    assert result.steps > 0 and "test_acc" in result.metrics
    capsys.readouterr()  # the first run's notices
    code = main(
        [
            "train",
            str(REPO / "specs/conv1d.yaml"),
            *QUIET,
            "--set",
            "train.memory_format=channels_last",
            "--set",
            "train.data={name: synthetic, num_samples: 20, num_classes: 35}",
            "--set",
            f"train.run_dir={tmp_path / 'run1d'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("--set train.memory_format=channels_last:") and "Traceback" not in err
    assert "channels_last needs image inputs [C, H, W], but the network's input is [1, 16000]" in err


@pytest.mark.parametrize(
    "data", ["{name: synthetic, num_samples: 64, val_fraction: 0.0}", "{name: synthetic, num_samples: 1}"]
)
def test_an_empty_training_or_validation_split_is_refused_before_training(tmp_path, capsys, data):
    """It trained with raw Lightning warnings, exit 0 and 'best checkpoint: None'."""
    args = ["train", LENET, *QUIET, "--set", f"train.data={data}", "--set", f"train.run_dir={tmp_path / 'r'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "split is empty" in err and "Warning" not in err and not (tmp_path / "r").exists()


def test_no_raw_library_warning_for_choices_netspec_already_checks(write_spec, tmp_path, capsys):
    """16-mixed on a CPU is refused, located (Lightning warned and trained in bf16 instead);
    padding: same with an even kernel trains without PyTorch's note on its cost."""
    assert (
        main(["train", LENET, *QUIET, "--set", "train.precision=16-mixed", "--set", "train.accelerator=cpu"])
        == 2
    )
    assert "precision 16-mixed (float16 with a gradient scaler) needs a GPU" in capsys.readouterr().err
    spec = write_spec(
        "netspec: 1\nname: evenk\ninput: [1, 8, 8]\nlayers:\n"
        "  - {type: conv, out_channels: 4, kernel_size: 4, padding: same}\n"
        "  - {type: global_avgpool}\n  - {type: linear, out_features: 10}\n"
    )
    sets = [
        "train.data={name: synthetic, num_samples: 64}",
        "train.max_steps=2",
        f"train.run_dir={tmp_path / 'r'}",
    ]
    assert (
        main(["train", str(spec), *QUIET, *(a for s in sets for a in ("--set", s))]) == 0
    )  # warnings are errors here


SYNTHETIC = "train.data={name: synthetic, num_samples: 64}"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.data={name: synthetic, num_samples: 64, noise: .inf}"], "noise: Input should be a finite"),
        ([SYNTHETIC, f"train.class_weights={[0] * 10}"], "class_weights are all 0"),
        (["train.data={name: digits, random_crop: 4096}"], "random_crop pads by 4096 pixels, more than"),
        (["train.data={name: synthetic, num_samples: 64, random_crop: 2, shape: [16]}", "input=[16]",
          "layers=[{type: linear, out_features: 10}]"], "random_crop crops images [C, H, W], not"),
    ],
)  # fmt: skip
def test_settings_that_cannot_train_as_meant_are_refused_before_training(tmp_path, capsys, sets, message):
    """Each trained before: to a NaN loss mid-run blamed on the learning rate, for 23 s on a
    4096-pixel padding, or with an augmentation that did nothing."""
    args = ["train", LENET, *QUIET, "--set", f"train.run_dir={tmp_path / 'r'}"]
    assert main([*args, *(a for s in sets for a in ("--set", s))]) == 2
    assert message in capsys.readouterr().err


BATCHNORM_AFTER_LINEAR = """
netspec: 1
name: bn1d
input: [1, 8, 8]
layers:
  - {type: conv, out_channels: 4, kernel_size: 3}
  - {type: flatten}
  - {type: linear, out_features: 16}
  - {type: batchnorm, name: bn}
  - {type: relu}
  - {type: linear, out_features: 10}
train:
  data: {name: synthetic, num_samples: 100, batch_size: 71}
  max_epochs: 2
  progress: none
"""


def test_a_last_batch_of_one_sample_is_left_out_where_batch_norm_cannot_train_on_it(tmp_path, capsys):
    """72 training samples in batches of 71: PyTorch's BatchNorm1d raised on the last batch of one
    (exit 1, after the first epoch's work); it is now left out, and a split of one is refused."""
    from netspec.training import fit

    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_AFTER_LINEAR)
    result = fit(spec, overrides=[f"train.run_dir={tmp_path / 'run'}"])
    assert (result.epochs, result.steps) == (2, 2)  # one batch of 71 an epoch
    err = capsys.readouterr().err
    assert "the last training batch of each epoch would hold 1 sample (72 = 1 × 71 + 1)" in err
    assert "batch norm ('bn') cannot train on a batch of one: it is left out" in err
    result = fit(spec, overrides=["train.data.batch_size=70", f"train.run_dir={tmp_path / 'run2'}"])
    assert result.steps == 4 and "left out" not in capsys.readouterr().err  # a last batch of 2 trains
    one = [*QUIET, "--set", "train.data.num_samples=2", "--set", "train.data.val_fraction=0.5"]
    code = main(["train", str(spec), *one, "--set", "train.data.test_fraction=0", "--set", "train.run_dir=x"])
    err = capsys.readouterr().err
    assert code == 2 and "the training split has 1 sample, and batch norm ('bn') cannot train" in err
    size_1 = [*QUIET, "--set", "train.data.batch_size=1", "--set", f"train.run_dir={tmp_path / 'one'}"]
    assert main(["train", str(spec), *size_1]) == 2  # every batch of one: was exit 1 at the first step
    err = capsys.readouterr().err
    assert "train.data.batch_size is 1, and batch norm ('bn') cannot train on a batch of one" in err
    frozen = [*size_1[:-1], f"train.run_dir={tmp_path / 'frozen'}", "--set", "train.freeze=[bn]"]
    assert main(["train", str(spec), *frozen, "--set", "train.max_steps=3"]) == 0  # eval mode: it can


def test_a_run_directory_left_by_a_run_that_never_saved_starts_over_for_the_same_spec(tmp_path, capsys):
    """A run that failed before its first checkpoint left only spec.yaml: a new run was refused
    ("--resume it") and --resume found no checkpoint. The same run starts over; another spec's, or
    a file of the user's, is still never overwritten."""
    from netspec.training import run

    target = tmp_path / "run"
    sets = [*QUIET, "--set", "train.max_steps=2", "--set", f"train.run_dir={target}"]
    spec, _ = run.prepare(LENET, ["train.progress=none", "train.max_steps=2", f"train.run_dir={target}"])
    target.mkdir()
    (target / "spec.yaml").write_text(run._resolved_yaml(spec))
    assert main(["train", LENET, *sets]) == 0
    err = capsys.readouterr().err
    assert f"note: {target} holds only the spec.yaml of this run, stopped before its first checkpoint" in err
    assert (target / "checkpoints" / "last.ckpt").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "spec.yaml").write_text("name: mine\n")
    assert (
        main(["train", LENET, *QUIET, "--set", "train.max_steps=2", "--set", f"train.run_dir={other}"]) == 2
    )
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"remove {other / 'spec.yaml'} to start there" in err
    assert (other / "spec.yaml").read_text() == "name: mine\n"


def test_every_output_weighted_0_is_refused(tmp_path, capsys):
    """The loss was 0 at every step and best.ckpt chosen by it, with exit 0 and no word."""
    args = ["--set", "train.outputs={output: {weight: 0}}", "--set", f"train.run_dir={tmp_path / 'r'}"]
    assert main(["train", LENET, *QUIET, *args]) == 2
    err = capsys.readouterr().err
    assert "every trained output has weight 0: the loss would be 0 at every step" in err
    assert not (tmp_path / "r").exists()


def test_the_progress_bar_of_a_run_limited_by_steps_names_no_last_epoch():
    """With max_steps, Lightning's rich bar read "Epoch 0/-2" (max_epochs is -1 there)."""
    import types

    from pytorch_lightning.callbacks import RichProgressBar

    from netspec.training.run import _with_step_metrics

    bar = _with_step_metrics(RichProgressBar)()
    bar._trainer = types.SimpleNamespace(max_epochs=-1)
    assert bar._get_train_description(3).strip() == "Epoch 3"
    bar._trainer = types.SimpleNamespace(max_epochs=5)
    assert bar._get_train_description(3).strip() == "Epoch 3/4"


def test_a_run_limited_by_steps_resumes_after_its_steps_not_an_epoch_it_never_finished(tmp_path, capsys):
    """Stopped at step 5 of epoch 0, Lightning counts the epoch as done: the note said "after 1 epoch"."""
    target = tmp_path / "run"
    assert (
        main(["train", LENET, *QUIET, "--set", "train.max_steps=5", "--set", f"train.run_dir={target}"]) == 0
    )
    capsys.readouterr()
    assert main(["train", LENET, *QUIET, "--set", "train.max_steps=12", "--resume", str(target)]) == 0
    err = capsys.readouterr().err
    assert f"continuing {target} after 5 steps up to max_steps 12" in err


def test_a_precision_netspec_does_not_know_gets_one_message(capsys):
    """precision was a union of two Literals: pydantic answered once per member."""
    assert main(["train", LENET, *QUIET, "--set", "train.precision=64"]) == 2
    err = capsys.readouterr().err
    assert err.count("Input should be") == 1 and "'bf16-mixed', '16-mixed' or 32" in err


def test_a_run_records_its_array_files_absolute_so_a_resume_elsewhere_keeps_its_data(
    tmp_path, monkeypatch, capsys
):
    """spec.yaml kept `path: d.npz`: resumed from another directory holding another d.npz, the run
    trained on that file in silence."""
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for folder in (tmp_path, tmp_path / "sub"):
        np.savez(folder / "d.npz", x=rng.normal(size=(40, 4)).astype(np.float32), y=rng.integers(0, 3, 40))
    (tmp_path / "mlp.yaml").write_text(
        "input: [4]\nlayers:\n  - {type: linear, out_features: 3}\n"
        "train: {data: {name: arrays, path: d.npz, batch_size: 8}, max_epochs: 1, progress: none}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["train", "mlp.yaml", "--set", "train.run_dir=run"]) == 0
    assert f"path: {tmp_path / 'd.npz'}" in (tmp_path / "run" / "spec.yaml").read_text()
    monkeypatch.chdir(tmp_path / "sub")
    capsys.readouterr()
    assert main(["train", "../mlp.yaml", "--resume", "../run", "--set", "train.max_epochs=2"]) == 2
    err = capsys.readouterr().err
    assert f"train.data.path: {tmp_path / 'd.npz'} → {tmp_path / 'sub' / 'd.npz'}" in err
    assert main(["train", "../run/spec.yaml", "--resume", "../run", "--set", "train.max_epochs=2"]) == 0
