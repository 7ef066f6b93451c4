"""Tasks beyond classification: heads picked from shapes and data, every wrong pairing a located
error, and short real runs of reconstruction, regression and several outputs that beat the
trivial baseline (predicting the mean, or the majority class)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import netspec
from netspec.cli import main
from netspec.data import Splits
from netspec.datasets._common import NamedTargets
from netspec.errors import SpecError
from netspec.training.run import prepare
from netspec.training.tasks import INPUT, resolve_heads

QUIET = ["train.progress=none"]


def _spec(layers, input_shape=(1, 8, 8), outputs=None, train=None):
    doc = {"name": "net", "input": list(input_shape), "layers": layers}
    if outputs:
        doc["outputs"] = outputs
    if train:
        doc["train"] = train
    spec, cfg = prepare(doc)
    return spec, cfg


def _splits(x, y, num_classes=None, **extra):
    ds = NamedTargets(x, y) if isinstance(y, dict) else TensorDataset(x, y)
    return Splits(ds, ds, None, num_classes, tuple(x.shape[1:]), **extra)


CLASSIFIER = [{"type": "flatten"}, {"type": "linear", "name": "logits", "out_features": 3}]
DENSE = [{"type": "conv", "name": "mask", "out_channels": 3, "kernel_size": 3, "padding": 1}]
SAME = [{"type": "conv", "name": "recon", "out_channels": 1, "kernel_size": 3, "padding": 1}]


def test_auto_picks_each_task_from_the_output_shape_and_the_data():
    x = torch.randn(4, 1, 8, 8)
    classes = _splits(x, torch.tensor([0, 1, 2, 0]), 3)
    masks = _splits(x, torch.randint(0, 3, (4, 8, 8)), 3, ignore_index=255)
    floats = _splits(x, torch.randn(4, 3))
    cases = [
        (CLASSIFIER, classes, ("classification", "cross_entropy", ("accuracy",), None)),
        (DENSE, masks, ("segmentation", "cross_entropy", ("miou", "pixel_accuracy"), None)),
        (SAME, classes, ("reconstruction", "mse", ("psnr",), INPUT)),  # an autoencoder on labelled data
        (CLASSIFIER, floats, ("regression", "mse", ("mae", "r2"), None)),
    ]
    for layers, splits, (task, loss, metrics, target) in cases:
        spec, cfg = _spec(layers)
        (head,) = resolve_heads(spec, cfg, splits)
        assert (head.task, head.loss, head.metrics, head.target) == (task, loss, metrics, target)
        assert head.chosen == ("task", "loss", "metrics")
    spec, cfg = _spec(DENSE)
    (head,) = resolve_heads(spec, cfg, masks)
    assert (head.num_classes, head.ignore_index) == (3, 255)  # the dataset's ignore label


def _refused(layers, splits, train=None, outputs=None) -> str:
    spec, cfg = _spec(layers, outputs=outputs, train=train)
    with pytest.raises(SpecError) as info:
        resolve_heads(spec, cfg, splits)
    return str(info.value)


def test_every_wrong_pairing_names_the_output_the_target_and_the_loss():
    x = torch.randn(4, 1, 8, 8)
    classes = _splits(x, torch.tensor([0, 1, 2, 0]), 3)
    masks = _splits(x, torch.randint(0, 3, (4, 8, 8)), 3)
    floats = _splits(x, torch.randn(4, 5))
    # a classification loss on a dense output, per-sample labels
    dense_on_labels = [{"type": "conv", "name": "mask", "out_channels": 3, "kernel_size": 3}]
    message = _refused(dense_on_labels, classes, train={"loss": "cross_entropy"})
    assert (
        "output 'mask' [3, 6, 6] does not fit the data's class labels (3 classes, one per sample)" in message
    )
    assert "(loss cross_entropy)" in message
    # a loss of the wrong task
    message = _refused(CLASSIFIER, classes, train={"loss": "dice"})
    assert "loss dice does not fit output 'logits' [3]: it is trained for classification" in message
    assert "classification takes loss cross_entropy" in message
    # an explicit task the shapes cannot serve
    message = _refused(CLASSIFIER, masks, train={"task": "classification"})
    assert (
        "task classification: output 'logits' [3] needs one label per sample, but the data gives " in message
    )
    assert "class masks of shape [8, 8] (3 classes)" in message
    message = _refused(CLASSIFIER, floats, train={"task": "segmentation"})
    assert "needs class labels, but the data gives float targets of shape [5]" in message
    message = _refused(CLASSIFIER, classes, train={"task": "reconstruction"})
    assert "should have the input's shape [1, 8, 8]" in message
    assert "hint: leave task: out (classification fits this output and data)" in message
    message = _refused(DENSE, masks, train={"task": "classification"})
    assert "hint: leave task: out (segmentation fits this output and data)" in message
    # metrics of another task, class weights of the wrong length, the wrong class count
    assert "metric r2 does not fit classification" in _refused(CLASSIFIER, classes, train={"metrics": ["r2"]})
    # settings the head's loss would ignore (they were accepted and did nothing)
    regressor = [{"type": "flatten"}, {"type": "linear", "name": "logits", "out_features": 5}]
    message = _refused(regressor, floats, train={"label_smoothing": 0.1})
    assert (
        "label_smoothing does nothing for output 'logits' [5]: it is trained for regression with loss mse"
        in message
    )
    message = _refused(DENSE, masks, train={"loss": "dice", "class_weights": [1, 2, 3]})
    assert "class_weights does nothing for output" in message and "or use a cross_entropy loss" in message
    assert "huber_delta does nothing" in _refused(CLASSIFIER, classes, train={"huber_delta": 2.0})
    assert "ignore_index does nothing" in _refused(regressor, floats, train={"ignore_index": 3})
    message = _refused(DENSE, masks, train={"class_weights": [1.0, 2.0]})
    assert "class_weights has 2 weights but output 'mask' [3, 8, 8] scores 3 classes" in message
    four = [{"type": "flatten"}, {"type": "linear", "name": "logits", "out_features": 4}]
    assert "the dataset has 3 classes but the network outputs 4" in _refused(four, classes)
    assert "num_classes" not in _refused(four, classes)  # not synthetic data: nothing to draw
    synthetic = {"data": {"name": "synthetic"}}
    assert "or draw 4 classes: --set train.data.num_classes=4" in _refused(four, classes, train=synthetic)


def test_several_outputs_take_their_own_loss_weight_and_target():
    layers = [
        {"type": "conv", "name": "features", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "conv", "name": "mask", "out_channels": 3, "kernel_size": 1},
        {"type": "flatten", "from": "features"},
        {"type": "linear", "name": "box", "out_features": 4},
    ]
    x = torch.randn(4, 1, 8, 8)
    data = _splits(
        x,
        {"mask": torch.randint(0, 3, (4, 8, 8)), "box": torch.rand(4, 4)},
        3,
        targets={"mask": 3, "box": None},
    )
    train = {"outputs": {"mask": {"loss": "cross_entropy_dice"}, "box": {"loss": "huber", "weight": 0.5}}}
    spec, cfg = _spec(layers, outputs=["mask", "box"], train=train)
    mask, box = resolve_heads(spec, cfg, data)
    assert (mask.task, mask.loss, mask.target, mask.index, mask.prefix) == (
        "segmentation",
        "cross_entropy_dice",
        "mask",
        0,
        "mask_",
    )
    assert (box.task, box.loss, box.target, box.weight, box.logged("val", "mae")) == (
        "regression",
        "huber",
        "box",
        0.5,
        "val_box_mae",
    )
    # a name that is not an output, and a target the data does not have
    message = _refused(layers, data, outputs=["mask", "box"], train={"outputs": {"bx": {"weight": 1.0}}})
    assert "train.outputs names 'bx', which is not an output of the network" in message
    assert "did you mean 'box'?" in message
    bad = {"outputs": {"box": {"target": "boxes"}}}
    message = _refused(layers, data, outputs=["mask", "box"], train=bad)
    assert "target 'boxes' is not in the data (it has mask, box" in message


def _fit(doc, tmp_path, *overrides):
    from netspec.training import fit

    return fit(doc, overrides=[*QUIET, f"train.run_dir={tmp_path / 'run'}", *overrides])


def test_an_autoencoder_reconstructs_digits_better_than_their_mean(tmp_path, capsys):
    doc = {
        "name": "ae",
        "input": [1, 8, 8],
        "layers": [
            {"type": "conv", "out_channels": 8, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "conv", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "relu"},
            {"type": "tconv", "out_channels": 8, "kernel_size": 2, "stride": 2},
            {"type": "relu"},
            {"type": "conv", "name": "recon", "out_channels": 1, "kernel_size": 3, "padding": 1},
        ],
        "train": {"max_epochs": 4, "metrics": ["psnr", "mse"], "optimizer": {"lr": 0.01}},
    }
    result = _fit(doc, tmp_path)
    err = capsys.readouterr().err
    print(f"autoencoder: {result.metrics}")
    assert (
        "output 'recon': reconstruction, loss mse, metrics psnr, mse; trained on digits inputs as targets"
        in err
    )
    # standardised digits: predicting the mean scores an MSE of 1 (their variance)
    assert result.metrics["test_mse"] < 0.5, result.metrics
    assert result.metrics["test_psnr"] > 0


def test_regression_on_float_arrays_beats_predicting_the_mean(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 6, generator=gen)
    w = torch.randn(6, 2, generator=gen)
    y = x @ w + 0.1 * torch.randn(512, 2, generator=gen)
    torch.save({"x": x, "y": y}, tmp_path / "reg.pt")
    doc = {
        "name": "reg",
        "input": [6],
        "layers": [
            {"type": "linear", "out_features": 16},
            {"type": "relu"},
            {"type": "linear", "out_features": 2},
        ],
        "train": {
            "data": {
                "name": "arrays",
                "path": str(tmp_path / "reg.pt"),
                "test_fraction": 0.2,
                "batch_size": 32,
            },
            "loss": "huber",
            "max_epochs": 15,
            "optimizer": {"lr": 0.01},
        },
    }
    result = _fit(doc, tmp_path)
    baseline_mae = float((y - y.mean(0)).abs().mean())
    print(f"regression: {result.metrics}, baseline MAE {baseline_mae:.4f}")
    assert result.metrics["test_r2"] > 0.9, result.metrics
    assert result.metrics["test_mae"] < 0.3 * baseline_mae


def test_deep_supervision_trains_both_outputs_and_logs_each(tmp_path):
    doc = {
        "name": "deep",
        "input": [1, 8, 8],
        "layers": [
            {"type": "conv", "name": "c1", "out_channels": 8, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "flatten", "name": "f1"},
            {"type": "linear", "name": "aux", "out_features": 10},
            {"type": "conv", "from": "c1", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "global_avgpool"},
            {"type": "linear", "name": "logits", "out_features": 10},
        ],
        "outputs": ["logits", "aux"],
        "train": {
            "max_epochs": 3,
            "optimizer": {"lr": 0.01},
            "outputs": {"logits": {}, "aux": {"weight": 0.4, "metrics": ["accuracy", "top3_accuracy"]}},
            "early_stopping": {"monitor": "val_aux_acc", "mode": "max"},
        },
    }
    result = _fit(doc, tmp_path)
    for name in ("test_logits_acc", "test_aux_acc", "test_aux_top3_acc", "val_logits_loss", "val_aux_loss"):
        assert name in result.metrics, sorted(result.metrics)
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    # each head's training loss is logged (early stopping may monitor it: tasks.logged_metrics)
    assert {"train_logits_loss", "train_aux_loss", "train_loss_epoch"} <= set(header)
    assert result.metrics["test_aux_acc"] > 0.5 and result.metrics["test_logits_acc"] > 0.3
    # the total is the weighted sum of the parts
    total = result.metrics["val_logits_loss"] + 0.4 * result.metrics["val_aux_loss"]
    assert result.metrics["val_loss"] == pytest.approx(total, rel=1e-4)
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert [h["output"] for h in saved["netspec_heads"]] == ["logits", "aux"]
    assert len(saved["netspec_normalization"][0]) == 1  # digits are standardised: predict needs it


def test_a_class_loss_on_a_dense_output_exits_2_naming_both(capsys):
    from conftest import REPO

    args = [
        "--set",
        "train.data={name: digits}",
        "--set",
        "train.loss=cross_entropy",
        "--set",
        "train.progress=none",
    ]
    code = main(["train", str(REPO / "specs/unet.yaml"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "--set train.loss=cross_entropy: output 'logits' [2, 60, 60] does not fit the data's class labels"
        in err
    )
    assert "(loss cross_entropy)" in err and "Traceback" not in err


README_EXAMPLE = """\
netspec: 1
name: lenet5
input: [1, 28, 28]
layers:
  - {type: conv, name: c1, out_channels: 6, kernel_size: 5, padding: 2}
  - {type: sigmoid}
  - {type: avgpool, kernel_size: 2}
  - {type: flatten}
  - {type: linear, out_features: 10}
outputs: [c1, linear_4]
"""


def test_an_output_the_data_cannot_train_is_located_in_outputs_and_the_others_are_offered(
    tmp_path, monkeypatch, capsys
):
    """The README's first spec lists a feature map as an output to look at: training it said
    `spec.yaml:1:1` and never mentioned train.outputs."""
    (tmp_path / "spec.yaml").write_text(README_EXAMPLE)
    monkeypatch.chdir(tmp_path)
    run = ["--set", "train.max_epochs=1", "--set", "train.progress=none", "--set", "train.run_dir=run"]
    assert main(["train", "spec.yaml", *run]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spec.yaml:10:11: output 'c1' [6, 28, 28] does not fit the data's class labels")
    assert "or train only 'linear_4': --set 'train.outputs={linear_4: {}}'" in err
    assert main(["train", "spec.yaml", *run, "--set", "train.outputs={linear_4: {}}"]) == 0


def test_the_task_options_are_in_the_schema_and_netspec_loads_them():
    spec = netspec.load(
        {
            "input": [1, 8, 8],
            "layers": DENSE,
            "train": {
                "task": "segmentation",
                "loss": "dice",
                "ignore_index": 255,
                "class_weights": [1, 2, 3],
            },
        }
    )
    assert spec.model.train.loss == "dice" and spec.model.train.class_weights == [1.0, 2.0, 3.0]


def test_a_small_unet_segments_the_shapes_better_than_the_majority_class(tmp_path, capsys):
    from conftest import REPO

    result = _fit(
        str(REPO / "specs/unet.yaml"),
        tmp_path,
        "input=[1, 32, 32]",
        "params.base=4",
        "expect=null",
        "train.data={name: shapes, num_classes: 2, num_samples: 400, batch_size: 16}",
        "train.loss=cross_entropy_dice",
        "train.metrics=[miou, pixel_accuracy, dice]",
        "train.max_epochs=4",
        "train.optimizer.lr=0.01",
    )
    err = capsys.readouterr().err
    print(f"unet on shapes: {result.metrics}")  # the note quotes these figures
    assert "output 'logits': segmentation, loss cross_entropy_dice, metrics miou, pixel_accuracy, dice" in err
    # the majority class (background) everywhere: IoU = its share for one class, 0 for the other
    import netspec.datasets.shapes as shapes
    from netspec.data import DataContext

    splits = shapes.load_shapes(
        shapes.ShapesParams(num_classes=2, num_samples=400), DataContext((1, 32, 32), seed=0)
    )
    masks = splits.test.tensors[1]
    background = float((masks == 0).float().mean())
    assert result.metrics["test_pixel_acc"] > background + 0.03, (result.metrics, background)
    assert result.metrics["test_miou"] > background / 2 + 0.2, (result.metrics, background)
    assert (tmp_path / "run" / "predictions.png").is_file()
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert saved["netspec_heads"] == [
        {
            "output": "logits",
            "task": "segmentation",
            "loss": "cross_entropy_dice",
            "num_classes": 2,
            "ignore_index": None,
        }
    ]


def test_a_class_head_and_a_box_head_train_on_their_own_targets(tmp_path):
    import numpy as np

    gen = np.random.default_rng(0)
    n = 400
    centres = gen.uniform(2, 6, size=(n, 2))
    ys, xs = np.mgrid[0:8, 0:8]
    kind = gen.integers(0, 2, size=n)
    radius = np.where(kind == 0, 1.2, 2.2)
    dist = np.hypot(ys[None] - centres[:, 0, None, None], xs[None] - centres[:, 1, None, None])
    x = (dist <= radius[:, None, None]).astype(np.float32)[:, None] + 0.05 * gen.normal(size=(n, 1, 8, 8))
    box = np.stack([centres[:, 0], centres[:, 1], radius, radius], axis=1).astype(np.float32) / 8
    np.savez(tmp_path / "boxes.npz", x=x.astype(np.float32), kind=kind, box=box)
    doc = {
        "name": "detector",
        "input": [1, 8, 8],
        "layers": [
            {"type": "conv", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "flatten", "name": "features"},
            {"type": "linear", "name": "kind", "out_features": 2},
            {"type": "linear", "name": "box", "from": "features", "out_features": 4},
        ],
        "outputs": ["kind", "box"],
        "train": {
            "data": {
                "name": "arrays",
                "path": str(tmp_path / "boxes.npz"),
                "targets": ["kind", "box"],
                "test_fraction": 0.25,
                "batch_size": 32,
            },
            "outputs": {"kind": {}, "box": {"loss": "l1", "weight": 2.0}},
            "max_epochs": 12,
            "optimizer": {"lr": 0.003},
        },
    }
    result = _fit(doc, tmp_path)
    baseline_mae = float(np.abs(box - box.mean(0)).mean())
    print(f"class + box heads: {result.metrics}, baseline box MAE {baseline_mae:.4f}")
    assert result.metrics["test_kind_acc"] > 0.9, result.metrics
    assert result.metrics["test_box_mae"] < 0.5 * baseline_mae, (result.metrics, baseline_mae)
    assert result.metrics["test_box_r2"] > 0.5


def test_masks_from_arrays_with_an_ignore_label_train_and_leave_it_out(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=gen)
    y = (x[:, 0] > 0.5).long()  # the class is the pixel's brightness: a 1×1 conv can learn it
    y[:, :2, :] = 255  # the top two rows are unlabelled, and their labels would be wrong anyway
    np_file = tmp_path / "masks.npz"
    import numpy as np

    np.savez(np_file, x=x.numpy(), y=y.numpy())
    doc = {
        "name": "pixels",
        "input": [1, 8, 8],
        "layers": [{"type": "conv", "name": "mask", "out_channels": 2, "kernel_size": 1}],
        "train": {
            "data": {"name": "arrays", "path": str(np_file), "ignore_index": 255, "batch_size": 4},
            "class_weights": [1.0, 1.0],
            "max_epochs": 5,
            "optimizer": {"lr": 0.1},
        },
    }
    result = _fit(doc, tmp_path)
    assert result.metrics["val_pixel_acc"] > 0.95, result.metrics
    assert not result.test_split  # arrays without test_fraction: test_* were measured on validation
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert saved["netspec_heads"][0]["ignore_index"] == 255


def test_fuzzed_task_settings_give_located_errors_or_heads_never_a_crash():
    """Random train: sections (tasks, losses, metrics, weights, per-output settings, targets)
    against every kind of data: the only failure allowed is a netspec error."""
    import random

    from netspec.errors import NetspecError

    rng = random.Random(0)
    pools = {
        "task": [None, "auto", "classification", "segmentation", "reconstruction", "regression", "x", 3, {}],
        "loss": [
            None,
            "auto",
            "cross_entropy",
            "dice",
            "cross_entropy_dice",
            "mse",
            "l1",
            "huber",
            "nope",
            1,
        ],
        "metrics": [None, [], ["miou"], ["accuracy", "r2"], ["psnr"], "accuracy", [1], ["top5_accuracy"]],
        "class_weights": [None, [1.0], [1, 2, 3], "x", []],
        "ignore_index": [None, 255, -1, "a", 2**40],
        "label_smoothing": [None, 0.1, 2.0],
    }
    layers = [
        {"type": "conv", "name": "a", "out_channels": 3, "kernel_size": 3, "padding": 1},
        {"type": "flatten", "name": "f"},
        {"type": "linear", "name": "b", "out_features": 3},
    ]
    x = torch.randn(4, 1, 8, 8)
    datas = [
        _splits(x, torch.tensor([0, 1, 2, 0]), 3),
        _splits(x, torch.randint(0, 3, (4, 8, 8)), 3, ignore_index=255),
        _splits(x, torch.randn(4, 3)),
        _splits(
            x, {"a": torch.randint(0, 3, (4, 8, 8)), "b": torch.rand(4, 3)}, 3, targets={"a": 3, "b": None}
        ),
    ]

    def options() -> dict:
        return {key: rng.choice(pool) for key, pool in pools.items() if rng.random() < 0.4}

    resolved = 0
    for _ in range(1000):
        train = options()
        if rng.random() < 0.5:
            per_output = {}
            for name in rng.sample(["a", "b", "c", "f"], rng.randint(0, 3)):
                per_output[name] = options()
                if rng.random() < 0.3:
                    per_output[name]["target"] = rng.choice(["a", "b", "input", "zz", "", 3])
                if rng.random() < 0.3:
                    per_output[name]["weight"] = rng.choice([0.5, -1, "x", 1e9])
            train["outputs"] = rng.choice([per_output, [], "x", None])
        doc = {"name": "n", "input": [1, 8, 8], "layers": layers, "train": train}
        outputs = rng.choice([None, ["a", "b"], ["b"], ["a"], ["f", "b"]])
        if outputs:
            doc["outputs"] = outputs
        try:
            spec, cfg = prepare(doc)
            resolved += len(resolve_heads(spec, cfg, rng.choice(datas))) > 0
        except NetspecError:
            pass
    assert resolved > 20  # the fuzz reaches valid setups too, not only refusals


def test_data_options_without_a_name_tune_the_default_digits():
    from conftest import REPO

    _, cfg = prepare(str(REPO / "specs/lenet.yaml"), ["train.data={batch_size: 32}"])
    assert (cfg.data.name, cfg.data.batch_size) == ("digits", 32)
    _, cfg = prepare({"input": [1, 8, 8], "layers": CLASSIFIER}, ["train.data.batch_size=16"])
    assert (cfg.data.name, cfg.data.batch_size) == ("digits", 16)


def test_dice_loss_is_zero_for_a_perfect_mask_and_ignores_unlabelled_pixels():
    from netspec.training.losses import dice_loss

    target = torch.randint(0, 3, (2, 5, 5))
    perfect = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 50  # softmax ≈ one-hot
    assert float(dice_loss(perfect, target, None)) == pytest.approx(0.0, abs=1e-4)
    wrong = torch.roll(perfect, 1, dims=1)  # every pixel scored as the next class
    assert float(dice_loss(wrong, target, None)) > 0.9
    # an ignored pixel counts nowhere: whatever is predicted there, the loss stays the same
    marked = target.clone()
    marked[:, 0, :] = 255
    noisy = perfect.clone()
    noisy[:, :, 0, :] = torch.randn(2, 3, 5) * 50
    assert float(dice_loss(noisy, marked, 255)) == pytest.approx(
        float(dice_loss(perfect, marked, 255)), abs=1e-5
    )


def test_cross_entropy_with_ignored_labels_is_torchs_mean_and_0_for_a_batch_of_none():
    """A batch whose labels were all ignore_index made the loss NaN (0/0 in PyTorch's mean): a
    NaN val_loss with exit 0, or a training stop telling the user to lower the learning rate."""
    from netspec.training.losses import _mean_over_labelled

    g = torch.Generator().manual_seed(0)
    for trial in range(300):
        classes, n = int(torch.randint(2, 6, (1,), generator=g)), int(torch.randint(1, 9, (1,), generator=g))
        spatial = [] if trial % 2 else [3, 2]  # classes per sample, or masks
        out = torch.randn(n, classes, *spatial, generator=g, dtype=torch.float64)
        target = torch.randint(0, classes, (n, *spatial), generator=g)
        target = torch.where(torch.rand(target.shape, generator=g) < 0.4, 255, target)
        weight = torch.rand(classes, generator=g, dtype=torch.float64) + 0.1 if trial % 3 == 0 else None
        smoothing = [0.0, 0.1, 0.3][trial % 3]
        ours = _mean_over_labelled(out, target, weight, 255, smoothing)
        if (target != 255).any():
            theirs = torch.nn.functional.cross_entropy(
                out, target, weight=weight, ignore_index=255, label_smoothing=smoothing
            )
            torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        else:
            assert float(ours) == 0.0
    none = torch.full((4,), 255)
    assert float(_mean_over_labelled(torch.randn(4, 3), none, None, 255, 0.0)) == 0.0


def test_a_classifiers_accuracy_is_the_share_of_samples_right():
    """It was torchmetrics' MulticlassAccuracy default, the mean over classes, where a class with
    no sample scores 0: 4 of 10 right (class 2 absent) read 0.2667."""
    from netspec.training.losses import build_metrics
    from netspec.training.tasks import Head

    head = Head("out", 0, "classification", "cross_entropy", ("accuracy",), None, num_classes=3)
    metrics = build_metrics(head)
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 0, 0, 2, 2, 0, 0, 0]), 3).float()
    labels = torch.tensor([0, 1] * 5)
    metrics["acc"].update(logits, labels)
    assert float(metrics["acc"].compute()) == pytest.approx(0.4)


def test_one_float_per_sample_is_fitted_by_an_output_of_one_value():
    """The hint said "make the output []", which no layer gives; [1] is what trains."""
    x = torch.randn(4, 1, 8, 8)
    values = _splits(x, torch.randn(4))
    assert "make the output [1]" in _refused(CLASSIFIER, values)
    one = [{"type": "flatten"}, {"type": "linear", "name": "value", "out_features": 1}]
    spec, cfg = _spec(one)
    (head,) = resolve_heads(spec, cfg, values)
    assert head.task == "regression"
