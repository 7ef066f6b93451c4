"""The pieces of a training run: device-resident batches, augmentation, schedules, early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from netspec.training.config import SchedulerSpec
from netspec.training.data import TensorBatches, make_augment
from netspec.training.module import lr_lambda


def test_tensor_batches_cover_the_data_once_per_epoch_and_reshuffle():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    epoch = {"n": 0}
    batches = TensorBatches(x, y, 3, shuffle=True, seed=1, epoch=lambda: epoch["n"])
    assert len(batches) == 4
    first = torch.cat([b for _, b in batches])
    assert sorted(first.tolist()) == list(range(10))
    again = torch.cat([b for _, b in batches])
    assert torch.equal(first, again)  # same epoch, same order
    epoch["n"] = 1
    assert not torch.equal(first, torch.cat([b for _, b in batches]))


def test_tensor_batches_shard_across_ranks_without_overlap():
    x, y = torch.arange(12.0)[:, None], torch.arange(12)
    shards = [
        torch.cat([b for _, b in TensorBatches(x, y, 2, shuffle=True, rank=r, world=3)]) for r in range(3)
    ]
    seen = torch.cat(shards).tolist()
    assert sorted(seen) == list(range(12)) and all(len(s) == 4 for s in shards)


def test_tensor_batches_resume_mid_epoch():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    done = {"n": 2}
    batches = TensorBatches(x, y, 3, shuffle=True, progress=lambda: done["n"])
    full = [b.tolist() for _, b in batches]
    state = batches.state_dict()
    assert state == {"position": 2}
    resumed = TensorBatches(x, y, 3, shuffle=True)
    resumed.load_state_dict(state)
    assert [b.tolist() for _, b in resumed] == full[2:]
    assert [b.tolist() for _, b in resumed] == full  # the skip applies once


def test_augment_crops_and_flips_per_sample_keeping_the_shape():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    labels = torch.tensor([3, 7])
    augment = make_augment(random_crop=1, hflip=True)
    out, y = augment(x, labels, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(y, labels)  # a label per sample does not move
    assert make_augment(0, False) is None
    flipped, _ = make_augment(0, True)(x, labels, torch.Generator().manual_seed(3))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_dense_targets_move_with_their_inputs():
    """Masks and reconstruction targets get the same crop and flip as the inputs (they were left
    in place: the network learnt from misaligned labels, exit 0); the padding of a mask is its
    ignore index, of a float target zero, like the input."""
    n, size = 64, 6
    cols = torch.arange(size).repeat(n, 1, size, 1)  # [n, 1, 6, 6]: pixel value = column + 1
    x = (cols + 1).float()
    mask = cols[:, 0] + 1  # [n, 6, 6], aligned with x
    targets = {"mask": mask, "image": x.clone(), "label": torch.arange(n)}
    out, y = make_augment(random_crop=2, hflip=True, mask_fill=-100)(
        x, targets, torch.Generator().manual_seed(5)
    )
    assert torch.equal(y["label"], torch.arange(n))
    padded = out[:, 0] == 0
    assert torch.equal(y["mask"][~padded], out[:, 0][~padded].long()) and bool(
        (y["mask"][padded] == -100).all()
    )
    assert torch.equal(y["image"], out)
    assert bool(padded.any()) and not torch.equal(out, x)  # something was cropped and flipped
    batches = TensorBatches(x, mask, 16, shuffle=True, augment=make_augment(0, True), seed=1)
    for xb, yb in batches:
        assert torch.equal(xb[:, 0].long(), yb)


def test_random_crop_with_masks_needs_an_ignore_index(tmp_path, capsys):
    from conftest import REPO

    from netspec.cli import main

    sets = ["train.max_steps=1", "train.progress=none", f"train.run_dir={tmp_path / 'r'}"]
    data = "train.data={name: shapes, num_samples: 40, random_crop: 2}"
    args = ["train", str(REPO / "specs/unet.yaml"), *(a for s in [*sets, data] for a in ("--set", s))]
    assert main(args) == 2
    assert "random_crop pads the inputs, and their masks would need a label" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("sched", "checks"),
    [
        ({"name": "step", "step_size": 10, "gamma": 0.5}, [(0, 1.0), (9, 1.0), (10, 0.5), (25, 0.25)]),
        ({"name": "cosine"}, [(0, 1.0), (50, 0.5), (100, 0.0)]),
        ({"name": "cosine", "warmup_steps": 10}, [(0, 0.1), (9, 1.0), (10, 1.0)]),
        ({"name": "onecycle", "max_lr": 0.01}, [(0, 0.4), (30, 10.0), (100, 0.0)]),
    ],
)
def test_schedules(sched, checks):
    factor = lr_lambda(SchedulerSpec(**sched), 1e-3, 100)
    for step, expected in checks:
        assert math.isclose(factor(step), expected, abs_tol=1e-9), (step, factor(step))


def test_no_schedule_is_constant():
    assert lr_lambda(SchedulerSpec(), 1e-3, 100) is None


def test_early_stopping_stops_a_run(tmp_path):
    from conftest import REPO

    from netspec.training import fit

    result = fit(
        REPO / "specs/lenet.yaml",
        overrides=[
            "train.max_epochs=30",
            "train.optimizer.lr=1.0e-9",
            "train.progress=none",
            "train.early_stopping={monitor: val_loss, patience: 1, min_delta: 0.5}",
            f"train.run_dir={tmp_path}",
        ],
    )
    assert result.epochs < 30


@pytest.mark.parametrize("max_steps", [3, 25])  # digits: 21 steps an epoch
def test_a_run_that_stops_at_max_steps_mid_epoch_validates_and_checkpoints_its_last_steps(
    tmp_path, max_steps
):
    import csv

    from conftest import REPO

    from netspec.training import fit
    from netspec.training.checkpoint import read_checkpoint

    result = fit(
        REPO / "specs/lenet.yaml",
        overrides=[f"train.max_steps={max_steps}", "train.progress=none", f"train.run_dir={tmp_path}"],
    )
    assert result.steps == max_steps and "val_loss" in result.metrics
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    assert read_checkpoint(result.last_checkpoint)["global_step"] == max_steps
    with (tmp_path / "metrics.csv").open() as file:
        validated = [int(row["step"]) for row in csv.DictReader(file) if row.get("val_loss")]
    assert validated[-1] == max_steps - 1  # Lightning's row step: the last optimizer step's index
    assert len(validated) == 1 + max_steps // 21


def test_the_determinism_table_names_each_layer_without_a_deterministic_kernel():
    import netspec
    from netspec.training.determinism import nondeterministic_layers

    spec = netspec.load(
        {
            "input": [2, 8, 8, 8],
            "layers": [
                {
                    "type": "conv",
                    "name": "refl",
                    "out_channels": 2,
                    "kernel_size": 3,
                    "padding": 1,
                    "padding_mode": "reflect",
                },
                {"type": "conv", "name": "zeros", "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"type": "maxpool", "name": "pool", "kernel_size": 2},
                {"type": "unpool", "name": "unpool", "indices": "pool"},
                {"type": "avgpool", "name": "avg3d", "kernel_size": 2},
                {"type": "upsample", "name": "up", "scale_factor": 2, "mode": "trilinear"},
                {"type": "adaptive_avgpool", "name": "adapt2", "output_size": 2},
                {"type": "adaptive_maxpool", "name": "adapt1", "output_size": 1},
                {"type": "upsample", "name": "near", "scale_factor": 2},
            ],
        }
    )
    cuda = "\n".join(nondeterministic_layers(spec, "cuda"))
    for name in ("refl", "unpool", "avg3d", "up", "adapt2"):
        assert f"'{name}'" in cuda, name
    for name in ("zeros", "pool", "adapt1", "near"):
        assert f"'{name}'" not in cuda, name
    assert nondeterministic_layers(spec, "cpu") == [
        "layer 3 'unpool' (unpool): max unpooling (MaxUnpool) scatters into its output"
    ]
    from netspec.training.tasks import Head

    dense = Head("near", 0, "segmentation", "cross_entropy_dice", ("miou",), None, num_classes=2)
    assert nondeterministic_layers(spec, "cuda", [dense])[-1] == (
        "loss cross_entropy_dice on the dense output 'near': nll_loss2d on CUDA"
    )
    assert "loss" not in nondeterministic_layers(spec, "cpu", [dense])[-1]


def test_metrics_history_reads_complete_rows_and_merges_a_replay(tmp_path):
    from netspec.training.history import merge, read_history

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,loss\n0,9,2.5\n0,19,2.25\n1,29,2.")  # killed while writing step 29
    history = read_history(path)
    assert history == [{"epoch": "0", "step": 9, "loss": "2.5"}, {"epoch": "0", "step": 19, "loss": "2.25"}]
    replayed = [{"epoch": 0, "step": 19, "loss": 2.25}, {"epoch": 1, "step": 29, "loss": 2.0}]
    assert merge(history, replayed) == [history[0], *replayed]
    path.write_text("step,x\n" + "1," + "a" * 200_000 + "\n")  # beyond csv's field limit
    assert read_history(path) == []
    assert read_history(tmp_path / "missing.csv") == []


@pytest.mark.filterwarnings("ignore:Experiment logs directory")  # the run's own metrics.csv, as in a run
def test_a_resumed_history_is_written_as_the_merge_with_each_earlier_row_made_text_once(tmp_path):
    import csv

    from netspec.training.history import EarlierRows, HistoryCSVLogger, merge, read_history

    path = tmp_path / "metrics.csv"
    earlier = [f"0,{step},{1 / (step + 1)!r}" for step in range(0, 60, 3)]
    path.write_text("epoch,step,train_loss_step\n" + "\n".join(earlier) + "\n")
    history = read_history(path)
    logger = HistoryCSVLogger(tmp_path, history)
    logged = []
    replayed = [
        (30, {"epoch": 0, "train_loss_step": 0.5}),  # replaces the earlier row of step 30
        (31, {"epoch": 0, "val_loss": 0.25}),  # a new column: the earlier rows are made text again
        (33, {"epoch": 0, "train_loss_step": 0.4}),
    ]
    for step, metrics in replayed:
        logger.log_metrics(metrics, step)
        logged.append({**metrics, "step": step})
        logger.write()
        rows = [{k: str(v) for k, v in row.items()} for row in merge(history, logged)]
        with open(path, newline="", encoding="utf-8") as file:
            written = list(csv.DictReader(file))
        assert written == [{k: row.get(k, "") for k in written[0]} for row in rows]
    steps = [row["step"] for row in read_history(path)]
    assert steps == [s for s in range(0, 60, 3) if s not in (30, 33)] + [30, 31, 33]
    made = EarlierRows(history)
    made.replace([{"epoch": 1, "step": 3, "train_loss_step": 9.0}, {"step": 6, "x": 1}])  # same columns only
    assert [row["step"] for row in made.kept()][:3] == [0, 6, 9]
    assert made.text(["epoch", "step", "train_loss_step"]).startswith("0,0,1.0\r\n0,6,")


def test_curves_give_each_split_one_colour_and_show_the_learning_rate(tmp_path):
    from PIL import Image

    from netspec.training.plot import SPLIT_COLOURS, curve_series, plot_curves, split_of

    csv_text = (
        "epoch,step,lr,test_acc,test_loss,train_acc,train_loss_epoch,train_loss_step,val_acc,val_loss\n"
        "0,9,0.01,,,,,2.0,,\n"
        "0,19,,,,,,,0.5,1.5\n"
        "0,19,,,,0.4,1.8,,,\n"
        "1,29,0.005,,,,,1.0,,\n"
        "1,39,,,,,,,0.7,1.1\n"
        "1,39,,,,0.6,1.2,,,\n"
        "2,40,,0.68,1.15,,,,,\n"
    )
    (tmp_path / "metrics.csv").write_text(csv_text)
    series = curve_series([{"step": "3", "val_loss": "x"}, {"step": "1", "val_loss": "2.0"}])
    assert series == {"val_loss": [(1.0, 2.0)]}  # unreadable cells are left out, steps in order
    assert [split_of(k) for k in ("train_acc", "val_loss", "test_acc", "lr")] == [
        "train",
        "val",
        "test",
        None,
    ]
    assert len(set(SPLIT_COLOURS.values())) == 3
    out = plot_curves(tmp_path / "metrics.csv", tmp_path / "curves.png", title="t")
    with Image.open(out) as image:
        width, height = image.size
    assert width > 3 * height  # three panels side by side: loss, acc, learning rate
    assert plot_curves(tmp_path / "missing.csv", tmp_path / "none.png") is None


def test_epoch_means_weigh_batches_by_size_and_survive_a_checkpoint():
    from netspec.training.fast import EpochMeans

    means = EpochMeans()
    means.add({"a": torch.tensor(1.0), "b": torch.tensor(4.0)}, 3)
    means.add({"a": torch.tensor(2.0), "b": torch.tensor(0.0)}, 1)
    state = means.state()  # taken mid-epoch: the sums go on
    assert state == {"a": [pytest.approx(1.25), 4], "b": [pytest.approx(3.0), 4]}
    resumed = EpochMeans()
    resumed.load(state)
    for running in (means, resumed):
        running.add({"a": torch.tensor(5.0), "b": torch.tensor(3.0)}, 4)
        got = {name: float(value) for name, value in running.means().items()}
        assert got == {"a": pytest.approx(3.125), "b": pytest.approx(3.0)}
        assert running.means() == {}  # and the next epoch starts empty


def test_step_losses_sum_the_epoch_and_name_the_first_non_finite_step():
    from netspec.training.fast import StepLosses

    losses = StepLosses()
    assert losses.first_bad() is None
    for step, (value, size) in enumerate([(1.0, 4), (2.0, 4), (3.0, 2)]):
        losses.add(torch.tensor(value), size, step)
    assert losses.first_bad() is None
    assert losses.state() == (1.0 * 4 + 2.0 * 4 + 3.0 * 2, 10)
    losses.add(torch.tensor(float("nan")), 4, 3)
    losses.add(torch.tensor(float("inf")), 4, 4)
    assert losses.first_bad() == 3
    losses.reset()
    losses.add(torch.tensor(1.0), 4, 5)
    assert losses.first_bad() == 3  # the first bad step stays known after the epoch
    assert losses.state() == (4.0, 4)


def test_evaluation_batches_of_a_compiled_model_are_padded_to_one_size_and_cut_back():
    from netspec.training.fast import forward

    seen = []

    class Net(torch.nn.Module):
        def forward(self, x):
            seen.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)))
            return x.flatten(1).sum(1)

    net = Net().eval()
    x = torch.randn(3, 2, 4, 4)
    out = forward(net, x, static_batch=8, channels_last=True)
    torch.testing.assert_close(out, x.flatten(1).sum(1))
    assert seen == [((8, 2, 4, 4), True)]
    net.train()  # training batches are never padded (the data drops the short one)
    assert forward(net, x, static_batch=8, channels_last=False).shape == (3,)
    assert seen[-1] == ((3, 2, 4, 4), False)


def test_drop_last_gives_one_batch_size_unless_there_is_only_one_batch():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    sizes = [len(b) for _, b in TensorBatches(x, y, 4, shuffle=True, drop_last=True)]
    assert sizes == [4, 4] and len(TensorBatches(x, y, 4, shuffle=True, drop_last=True)) == 2
    assert [len(b) for _, b in TensorBatches(x, y, 16, shuffle=True, drop_last=True)] == [10]


def test_the_test_pass_uses_the_best_weights_in_memory_when_no_step_followed_them(tmp_path, monkeypatch):
    """Reading best.ckpt back (134 MB for ResNet-18 with Adam) is skipped when it holds the weights
    in memory; the test metrics are still those of best.ckpt."""
    import pytorch_lightning as pl
    from conftest import REPO

    from netspec.training import evaluate, fit

    paths = []
    test = pl.Trainer.test

    def spy(self, *args, **kwargs):
        paths.append(kwargs.get("ckpt_path"))
        return test(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "test", spy)
    sets = ["train.max_epochs=2", "train.progress=none", f"train.run_dir={tmp_path}"]
    result = fit(REPO / "specs/lenet.yaml", overrides=sets)
    assert torch.load(result.best_checkpoint, weights_only=True)["global_step"] == result.steps == 42
    assert paths == [None]  # the last epoch was the best: nothing read back
    read_back = evaluate(REPO / "specs/lenet.yaml", result.best_checkpoint, overrides=sets)
    assert {k: v for k, v in result.metrics.items() if k.startswith("test_")} == read_back


def test_an_epochs_rows_are_on_disk_once_the_next_epoch_trains(tmp_path, monkeypatch):
    """metrics.csv is written in batches, but a resume from the epoch-end checkpoint starts with the
    next epoch: the rows before it (the training row comes after the checkpoint) must be on disk
    by then, or a kill would lose them for good."""
    import csv

    import pytorch_lightning as pl
    from conftest import REPO

    from netspec.training import fit, run

    seen: list[set] = []

    class Look(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1 and not seen:
                with (tmp_path / "metrics.csv").open() as file:
                    seen.append({k for row in csv.DictReader(file) for k, v in row.items() if v})

    made = run._callbacks
    monkeypatch.setattr(run, "_callbacks", lambda *a, **k: ([*made(*a, **k)[0], Look()], made(*a, **k)[1]))
    fit(
        REPO / "specs/lenet.yaml",
        overrides=["train.max_epochs=2", "train.progress=none", f"train.run_dir={tmp_path}"],
    )
    assert {"train_loss_epoch", "train_acc", "val_loss", "val_acc", "train_loss_step"} <= seen[0]


def test_the_rich_bar_shows_batches_per_second_from_few_redraws():
    """A bar redrawn a few times an epoch gives rich too few samples for its own speed estimate
    (it read 0.00it/s): the column divides the batches done by the time since the bar started."""
    from pytorch_lightning.callbacks import RichProgressBar
    from rich.progress import Task, TaskID

    from netspec.training.run import _with_step_metrics

    columns = _with_step_metrics(RichProgressBar)().configure_columns(None)
    (speed,) = [column for column in columns if type(column).__name__ == "AverageSpeed"]
    task = Task(TaskID(0), "Epoch 0", 21.0, 14.0, _get_time=lambda: 2.0)
    task.start_time = 0.0
    assert task.speed is None  # rich's own estimate, from no samples
    assert speed.render(task).plain == "7.00it/s"


def test_augmentation_of_a_streamed_dataset_is_refused_rather_than_skipped():
    """Only batches held in memory are augmented; a dataset served by a DataLoader skipped
    random_crop and hflip without a word."""
    import netspec
    from netspec.data import Splits
    from netspec.errors import SpecError
    from netspec.training.run import check_splits_for_training

    class Streamed(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(1, 8, 8), 0

    spec = netspec.load(
        {
            "input": [1, 8, 8],
            "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}],
            "train": {"data": {"name": "synthetic", "hflip": True}},
        }
    )
    splits = Splits(Streamed(), Streamed(), None, 2, (1, 8, 8))
    with pytest.raises(SpecError, match="streams its samples, so they would do nothing"):
        check_splits_for_training(spec, splits)
