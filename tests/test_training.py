"""Training: a real run on the offline digits, exact resume after SIGKILL, DDP on CPU, clean errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

from netspec.cli import main

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
    state = torch.load(result.best_checkpoint, weights_only=False)["state_dict"]
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
        if last.exists() and torch.load(last, weights_only=False)["global_step"] >= 30:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert 0 < killed_at < 63  # mid-run (21 steps per epoch)
    resumed = run_cli("train", LENET, *args, "--resume", str(run_b), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(resumed.stdout) == _metrics(straight.stdout)


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
        "--set",
        f"train.run_dir={tmp_path / 'ddp'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "done: 1 epochs" in out.stdout
    assert (tmp_path / "ddp" / "checkpoints" / "last.ckpt").is_file()


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
    ],
)
def test_bad_training_configs_exit_2_with_a_message(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", LENET, *QUIET, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
