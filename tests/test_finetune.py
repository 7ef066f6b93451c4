"""Using a trained model: continue a finished run, start from other weights, freeze, find a rate."""

from __future__ import annotations

import csv
import math
import random
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

import netspec
from netspec.cli import main

LENET = str(REPO / "specs/lenet.yaml")
QUIET = "train.progress=none"
STEPS_PER_EPOCH = 21  # digits: 1,347 training samples in batches of 64

TINY = """
netspec: 1
name: tiny
input: [1, 28, 28]
layers:
  - {type: conv, name: conv, out_channels: 4, kernel_size: 3, stride: 2}
  - {type: batchnorm, name: bn}
  - {type: relu}
  - {type: global_avgpool}
  - {type: linear, name: fc, out_features: 10}
train:
  init: weights/start.pt          # relative to this file
  freeze: [conv, bn]
  optimizer: {name: sgd, lr: 0.5}
  max_epochs: 1
  progress: none
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch LeNet run (cosine schedule, as lenet.yaml says)."""
    from netspec.training import fit

    run = tmp_path_factory.mktemp("finished") / "run"
    return fit(LENET, overrides=["train.max_epochs=1", QUIET, f"train.run_dir={run}"])


def _rows(path: Path) -> list[dict]:
    with path.open() as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def test_a_finished_run_continues_with_more_epochs_and_keeps_its_history(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished.run_dir, run)
    before = _rows(run / "metrics.csv")
    # the run was started with --set train.run_dir=…: the run directory is --resume's, not a change
    assert main(["train", LENET, "--set", QUIET, "--set", "train.max_epochs=2", "--resume", str(run)]) == 0
    out = capsys.readouterr()
    assert "done: 2 epochs, 42 steps" in out.out
    assert f"best checkpoint: {run / 'checkpoints/best.ckpt'}" in out.out  # the copy's, not the original's
    assert f"continuing {run} after 1 epoch (21 steps) up to max_epochs 2" in out.err
    assert (
        "the cosine schedule is recomputed for 42 steps (was 21): at step 21 the learning rate goes from 0"
        in (out.err)
    )
    after = _rows(run / "metrics.csv")
    assert [r for r in after if int(r["step"]) < STEPS_PER_EPOCH] == [
        r for r in before if int(r["step"]) < STEPS_PER_EPOCH
    ]  # the first epoch's history is kept as it was
    assert {r["epoch"] for r in after if "val_loss" in r} == {"0", "1"}
    lrs = [float(r["lr"]) for r in after if "lr" in r and int(r["step"]) > STEPS_PER_EPOCH]
    assert lrs and max(lrs) > 1e-3  # the longer schedule, not the finished one's zero
    assert yaml.safe_load((run / "spec.yaml").read_text())["train"]["max_epochs"] == 2
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 2 * STEPS_PER_EPOCH


def test_a_continued_run_keeps_the_specs_early_stopping_patience():
    """Lightning restores patience from the checkpoint; raising it must let a stopped run go on."""
    from netspec.training.config import EarlyStoppingSpec
    from netspec.training.finetune import early_stopping_callback

    stopped = early_stopping_callback(EarlyStoppingSpec(patience=1))
    stopped.wait_count = 1
    state = stopped.state_dict()
    resumed = early_stopping_callback(EarlyStoppingSpec(patience=4))
    resumed.load_state_dict(state)
    assert (resumed.patience, resumed.wait_count) == (4, 1)
    assert resumed.state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"  # Lightning's key


def test_any_other_change_is_refused_naming_each_path_with_both_values(finished, capsys):
    args = ["train", LENET, "--set", QUIET, "--resume", str(finished.run_dir)]
    changes = ["train.optimizer.lr=0.02", "layers.3.out_channels=32", "expect=null", "train.max_epochs=3"]
    assert main([*args, *(a for c in changes for a in ("--set", c))]) == 2
    err = capsys.readouterr().err
    assert "the spec differs from the one this run was started with" in err and "in 2 values" in err
    assert [line for line in err.splitlines() if "→" in line] == [  # not the limit, not `expect:`
        "  layers.3.out_channels (layer 'c3'): 16 → 32",
        "  train.optimizer.lr: 0.01 → 0.02",
    ]
    assert "Traceback" not in err
    # a limit below what the run has done, and --init with --resume, are errors too
    assert main([*args, "--set", "train.max_steps=5"]) == 2
    err = capsys.readouterr().err
    assert "--set train.max_steps=5: max_steps 5 is fewer than the 21 steps the run has already done" in err
    assert main([*args, "--init", str(finished.best_checkpoint)]) == 2
    assert "--init and --resume" in capsys.readouterr().err


def test_init_from_a_netspec_checkpoint_with_frozen_layers(finished, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            LENET,
            "--init",
            str(finished.best_checkpoint),
            *("--set", QUIET, "--set", "train.max_epochs=1", "--set", f"train.run_dir={run}"),
            *("--set", "train.freeze=[c1, c3, f5]"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"initial weights from {finished.best_checkpoint}: 10 of 10 tensors loaded" in err
    assert "frozen: c1, c3, f5 (50,692 of 61,706 parameters)" in err
    start = torch.load(finished.best_checkpoint, weights_only=True)["state_dict"]
    end = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    for name in ("c1.weight", "c3.bias", "f5.weight"):
        torch.testing.assert_close(end[f"model.{name}"], start[f"model.{name}"], rtol=0, atol=0)
    assert not torch.equal(end["model.f6.weight"], start["model.f6.weight"])  # trained
    saved = yaml.safe_load((run / "spec.yaml").read_text())["train"]
    assert saved["init"] == str(finished.best_checkpoint) and saved["freeze"] == ["c1", "c3", "f5"]


def test_init_from_a_state_dict_reports_mismatches_and_frozen_batchnorm_keeps_its_statistics(
    write_spec, tmp_path, capsys, monkeypatch
):
    spec = write_spec(TINY)
    model = netspec.build(spec)
    state = model.state_dict()
    state["bn.running_mean"] = torch.full((4,), 0.5)
    state["bn.running_var"] = torch.full((4,), 2.0)
    state["fc.weight"] = torch.zeros(5, 4)  # another head: skipped
    state["head.weight"] = torch.zeros(1)  # not in the network: ignored
    del state["fc.bias"]
    (tmp_path / "weights").mkdir()
    torch.save(state, tmp_path / "weights/start.pt")  # a plain state_dict, like torchvision's .pth
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # train.init is relative to the spec file, not to here
    assert main(["train", str(spec), "--set", f"train.run_dir={tmp_path / 'run'}"]) == 0
    err = capsys.readouterr().err
    assert f"initial weights from {tmp_path / 'weights/start.pt'}: 7 of 9 tensors loaded" in err
    assert "not in the file, left as initialised (1): fc.bias" in err
    assert "shape differs, left as initialised (1): fc.weight: file [5, 4], network [10, 4]" in err
    assert "in the file, not in the network, ignored (1): head.weight" in err
    assert "1 batch-norm layer in eval mode" in err
    end = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    for name in ("conv.weight", "conv.bias", "bn.weight", "bn.running_mean", "bn.running_var"):
        torch.testing.assert_close(end[f"model.{name}"], state[name], rtol=0, atol=0)
    assert int(end["model.bn.num_batches_tracked"]) == 0  # the batch norm never ran in training mode
    assert end["model.fc.weight"].shape == (10, 4)


def test_weights_of_which_nothing_fits_are_exit_2(tmp_path, capsys):
    torch.save({"features.0.weight": torch.zeros(6, 1, 5, 5)}, tmp_path / "other.pt")
    args = ["train", LENET, "--set", QUIET, "--set", f"train.run_dir={tmp_path / 'run'}"]
    assert main([*args, "--init", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'other.pt'}: no tensor of {tmp_path / 'other.pt'} fits the network of" in err
    assert "in the file, not in the network (1): features.0.weight" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("init: missing.pt", "spec.yaml:20:9: initial weights {tmp}/missing.pt does not exist"),
        ("freeze: [c1, c33]", "spec.yaml:20:16: freeze: no layer or parameter 'c33' in the network"),
        ("freeze: [s2]", "spec.yaml:20:12: freeze: 's2' has no parameters to freeze"),
    ],
)
def test_bad_init_and_freeze_in_the_spec_are_located(write_spec, tmp_path, capsys, line, message):
    spec = write_spec((REPO / "specs/lenet.yaml").read_text().replace("train:\n", f"train:\n  {line}\n"))
    assert main(["train", str(spec), "--set", QUIET, "--set", f"train.run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    if "c33" in line:
        assert "hint: did you mean 'c3'" in err
    assert "Traceback" not in err


def test_tune_writes_the_plot_and_suggests_a_rate(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["--out", str(out), "--steps", "60", "--min-lr", "1e-4"]  # enough for a fall of 2 % and more
    assert main(["tune", LENET, "--set", QUIET, *args]) == 0
    stdout = capsys.readouterr().out
    text = re.search(r"suggested learning rate: (\S+)", stdout).group(1)
    assert 1e-3 <= float(text) <= 1.0
    assert f"train with: --set train.optimizer.lr={text}\n" in stdout
    png = (out / "lr_find.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    rows = _rows(out / "lr_find.csv")
    assert len(rows) == 60 and set(rows[0]) == {"lr", "loss", "smoothed_loss"}
    assert float(rows[0]["lr"]) == pytest.approx(1e-4) and float(rows[-1]["lr"]) == pytest.approx(1.0)
    smooth = [float(row["smoothed_loss"]) for row in rows]
    assert min(smooth[10:]) < 0.98 * smooth[10]  # a real fall, not noise on a flat curve
    # the suggestion is what netspec train accepts
    assert netspec.load(LENET, overrides=[f"train.optimizer.lr={text}"]).model.train.optimizer.lr == float(
        text
    )


def test_tune_without_enough_steps_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", LENET, "--set", QUIET, "--out", str(out), "--steps", "12"]) == 2
    err = capsys.readouterr().err
    assert "--steps 12: the finder needs at least 13" in err and "Traceback" not in err
    assert not out.exists()  # nothing trained (it used to train, then refuse)


def test_the_suggestion_is_where_the_smoothed_loss_falls_fastest_per_decade():
    from netspec.training.tune import smoothed, suggest

    lrs = [10 ** (-7 + 7 * i / 99) for i in range(100)]
    falls_at_1e_3 = [2.3 - 1 / (1 + math.exp(-3 * (math.log10(lr) + 3))) for lr in lrs]
    assert suggest(lrs, falls_at_1e_3) == pytest.approx(1e-3, rel=0.1)
    rng = random.Random(0)
    noisy = [loss + rng.gauss(0, 0.05) for loss in falls_at_1e_3]  # noise at tiny rates does not win
    assert 1e-3 <= suggest(lrs, smoothed(noisy)) <= 1e-2  # the smoothing lags a little behind
    assert suggest(lrs, smoothed([2.3 + 0.001 * i for i in range(100)])) is None  # never falls
    assert suggest(lrs, smoothed([2.34 - 0.00005 * i for i in range(100)])) is None  # falls by 0.2 %: noise
    assert suggest(lrs[:12], smoothed(falls_at_1e_3[:12])) is None  # too few points
    assert smoothed([1.0, math.nan, 3.0])[0] == 1.0 and math.isnan(smoothed([1.0, math.nan])[1])


def test_tune_refuses_a_range_test_of_absurd_length(capsys):
    with pytest.raises(SystemExit) as info:
        main(["tune", LENET, "--steps", "1000000000000"])
    assert info.value.code == 2
    assert "expected at most 100,000 steps" in capsys.readouterr().err


def test_tune_records_a_point_per_optimizer_step_when_batches_are_accumulated(tmp_path, capsys):
    """A point was recorded when (batch_idx + 1) % accumulate == 0, and batch_idx restarts every
    epoch: the step an epoch's last, shorter group makes was lost (accumulate 4: no point at all)."""
    out = tmp_path / "tune"
    data = ["--set", "train.data.name=synthetic", "--set", "train.data.num_samples=200"]
    args = ["--out", str(out), "--steps", "20", *data, "--set", "train.accumulate_grad_batches=4"]
    main(["tune", LENET, "--set", QUIET, *args])  # a suggestion or not: the points are what count
    rows = _rows(out / "lr_find.csv")
    assert len(rows) == 20
    lrs = [float(row["lr"]) for row in rows]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    assert all(math.isfinite(float(row["loss"])) for row in rows)
    capsys.readouterr()


def test_tune_keeps_a_spec_yaml_it_did_not_write_and_checks_determinism_like_a_run(tmp_path, capsys):
    own = tmp_path / "spec.yaml"
    own.write_text(Path(LENET).read_text())
    assert main(["tune", str(own), "--set", QUIET, "--out", str(tmp_path), "--steps", "13"]) == 2
    err = capsys.readouterr().err
    assert "holds a spec.yaml that no tune wrote" in err and own.read_text() == Path(LENET).read_text()
    again = tmp_path / "again"
    for _ in range(2):  # a tune's own directory may be tuned again
        main(["tune", LENET, "--set", QUIET, "--out", str(again), "--steps", "13"])
        assert "no tune wrote" not in capsys.readouterr().err
    unpool = """
    netspec: 1
    name: unpooling
    input: [1, 8, 8]
    layers:
      - {type: conv, name: c, out_channels: 2, kernel_size: 3, padding: 1}
      - {type: maxpool, name: p, kernel_size: 2}
      - {type: unpool, name: u, indices: p}
      - {type: flatten}
      - {type: linear, out_features: 3}
    train: {data: {name: synthetic, num_classes: 3, num_samples: 64}, deterministic: true}
    """
    path = tmp_path / "unpool.yaml"
    path.write_text(textwrap.dedent(unpool))
    assert main(["tune", str(path), "--set", QUIET, "--out", str(tmp_path / "u"), "--steps", "13"]) == 2
    err = capsys.readouterr().err
    assert "deterministic: true, but these have no deterministic kernel on" in err and "'u'" in err
    with pytest.raises(SystemExit) as info:  # an empty name meant the working directory
        main(["tune", LENET, "--out", ""])
    assert info.value.code == 2 and "expected a directory; got an empty name" in capsys.readouterr().err


def test_tune_needs_no_validation_split(tmp_path, capsys):
    tiny = ["--set", "train.data.name=synthetic", "--set", "train.data.num_samples=40"]
    args = [*tiny, "--set", "train.data.val_fraction=0", "--steps", "13", "--out", str(tmp_path / "v")]
    main(["tune", LENET, "--set", QUIET, *args])  # a suggestion or not
    err = capsys.readouterr().err  # Lightning warned "Total length of `TensorBatches` … is zero"
    assert "internal error" not in err and "Total length" not in err
    assert len(_rows(tmp_path / "v" / "lr_find.csv")) == 13
