"""``train.loop: fast`` (several optimizer steps per Lightning batch) against Lightning's own loop:
the same weights bit for bit, the same metrics.csv and counters, and each resumes the other."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

from netspec.training import fit

LENET = REPO / "specs/lenet.yaml"
CONSTANT_LR = ["train.scheduler.name=none", "train.scheduler.warmup_steps=0"]


def _fit(source, run_dir, loop: str, sets=()):
    return fit(
        source, overrides=["train.progress=none", f"train.loop={loop}", f"train.run_dir={run_dir}", *sets]
    )


def _checkpoint(result) -> dict:
    return torch.load(result.last_checkpoint, weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def _assert_same_runs(fast, lightning) -> None:
    a, b = _checkpoint(fast), _checkpoint(lightning)
    _assert_same_weights(a["state_dict"], b["state_dict"])
    assert a["global_step"] == b["global_step"] == fast.steps == lightning.steps
    for key in (
        "epoch_loop.batch_progress",
        "epoch_loop.state_dict",
        "state_dict",
    ):  # batches, logger step, position
        assert a["loops"]["fit_loop"][key] == b["loops"]["fit_loop"][key], key
    assert (fast.run_dir / "metrics.csv").read_text() == (lightning.run_dir / "metrics.csv").read_text()
    assert fast.metrics == lightning.metrics


CASES = {
    "defaults (Adam, cosine with warm-up)": ["train.max_epochs=2"],
    "sgd, clipping, accumulation with a remainder": [
        "train.max_epochs=2",
        "train.optimizer={name: sgd, lr: 0.05, momentum: 0.9}",
        "train.gradient_clip_val=0.5",
        "train.accumulate_grad_batches=4",  # 21 batches an epoch: the last step has one
    ],
    "bf16-mixed with clipping (the unfused optimizer)": [
        "train.max_steps=30",
        "train.precision=bf16-mixed",
        "train.gradient_clip_val=1.0",
    ],
    "max_steps mid-epoch; step checkpoints": ["train.max_steps=25", "train.checkpoint_every_n_steps=5"],
}


@pytest.mark.parametrize("sets", CASES.values(), ids=CASES.keys())
def test_the_fast_loop_trains_exactly_what_lightnings_loop_trains(tmp_path, sets):
    fast = _fit(LENET, tmp_path / "fast", "fast", sets)
    lightning = _fit(LENET, tmp_path / "lightning", "lightning", sets)
    _assert_same_runs(fast, lightning)


@pytest.mark.parametrize("clip", [None, 1.0], ids=["fused step unscales", "unscale, clip, unfused step"])
def test_float16_with_a_grad_scaler_trains_the_same_in_both_loops(tmp_path, monkeypatch, clip):
    """16-mixed as on a GPU (a GradScaler: scaled backward, unscale before clipping, skipped steps
    on overflow, scale updates), on the CPU: Lightning turns ``precision: 16-mixed`` into bf16 here,
    so the test hands the Trainer a float16 plugin with a CPU scaler."""
    import pytorch_lightning as pl
    from pytorch_lightning.plugins.precision import MixedPrecision

    init = pl.Trainer.__init__

    def float16(self, *args, **kwargs):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**30)  # float16 gradients overflow at first
        plugins = [*(kwargs.get("plugins") or []), MixedPrecision("16-mixed", "cpu", scaler=scaler)]
        init(self, *args, **{**kwargs, "precision": None, "plugins": plugins})

    monkeypatch.setattr(pl.Trainer, "__init__", float16)
    sets = ["train.max_steps=30", *([f"train.gradient_clip_val={clip}"] if clip else [])]
    fast = _fit(LENET, tmp_path / "fast", "fast", sets)
    lightning = _fit(LENET, tmp_path / "lightning", "lightning", sets)
    _assert_same_runs(fast, lightning)
    scale = _checkpoint(fast)["MixedPrecision"]["scale"]
    assert (
        scale == _checkpoint(lightning)["MixedPrecision"]["scale"] and scale < 2.0**30
    )  # steps were skipped


def test_several_heads_train_the_same_in_both_loops(tmp_path):
    doc = {
        "name": "deep",
        "input": [1, 28, 28],
        "layers": [
            {"type": "conv", "name": "c1", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "linear", "name": "aux", "out_features": 10},
            {"type": "conv", "from": "c1", "out_channels": 8, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "global_avgpool"},
            {"type": "linear", "name": "logits", "out_features": 10},
        ],
        "outputs": ["logits", "aux"],
        "train": {
            "max_epochs": 2,
            "outputs": {"logits": {}, "aux": {"weight": 0.4, "metrics": ["accuracy", "top3_accuracy"]}},
        },
    }
    _assert_same_runs(_fit(doc, tmp_path / "fast", "fast"), _fit(doc, tmp_path / "lightning", "lightning"))


@pytest.mark.parametrize("first, then", [("fast", "lightning"), ("lightning", "fast")])
def test_each_loop_resumes_the_others_checkpoint_mid_epoch(tmp_path, first, then):
    common = [*CONSTANT_LR, "train.checkpoint_every_n_steps=5"]
    straight = _fit(LENET, tmp_path / "straight", then, [*common, "train.max_steps=42"])
    stopped = _fit(LENET, tmp_path / "resumed", first, [*common, "train.max_steps=25"])  # 21 steps an epoch
    if first == "lightning":  # as written before the fast loop existed: no manual step count
        path = stopped.last_checkpoint
        saved = torch.load(path, weights_only=True)
        manual = saved["loops"]["fit_loop"]["epoch_loop.manual_optimization.optim_step_progress"]["total"]
        manual["ready"] = manual["completed"] = 0
        torch.save(saved, path)
    resumed = fit(
        LENET,
        overrides=[
            "train.progress=none",
            f"train.loop={then}",
            f"train.run_dir={stopped.run_dir}",
            *common,
            "train.max_steps=42",
        ],
        resume=stopped.run_dir,
    )
    assert resumed.steps == straight.steps == 42
    _assert_same_weights(_checkpoint(resumed)["state_dict"], _checkpoint(straight)["state_dict"])


def test_lightning_acts_between_chunks_where_it_must(tmp_path, monkeypatch, capfd):
    """Checkpoints at every multiple of checkpoint_every_n_steps, max_steps exactly, a bar that
    counts batches, and fewer Lightning batches than optimizer steps."""
    import pytorch_lightning as pl

    from netspec.training import run

    seen: list[int] = []

    class Steps(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append(trainer.global_step)

    made = run._callbacks
    monkeypatch.setattr(run, "_callbacks", lambda *a, **k: ([*made(*a, **k)[0], Steps()], made(*a, **k)[1]))
    result = fit(
        LENET,
        overrides=[
            "train.progress=tqdm",
            f"train.run_dir={tmp_path}",
            "train.checkpoint_every_n_steps=7",
            "train.max_steps=40",
        ],
    )
    assert result.steps == 40 and seen[-1] == 40
    assert len(seen) < 40  # several optimizer steps per Lightning batch
    assert {7, 14, 21, 28, 35} <= set(seen)  # where ModelCheckpoint looks: a chunk ends there
    assert "21/21" in capfd.readouterr().out  # the bar counts batches, not Lightning's calls


def test_the_fast_loop_applies_to_one_device_only():
    import pytorch_lightning as pl

    from netspec.training.chunks import fast_loop_applies

    assert fast_loop_applies(pl.Trainer(accelerator="cpu", devices=1, logger=False))
    ddp = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    assert not fast_loop_applies(ddp)


def test_pooled_metric_updates_count_what_separate_updates_count():
    from torch.nn import ModuleDict
    from torch.nn.functional import one_hot
    from torchmetrics.classification import MulticlassAccuracy
    from torchmetrics.regression import MeanSquaredError

    from netspec.training.fast import POOLED_BATCHES, POOLED_ELEMENTS, PooledUpdates

    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(16, 5, generator=gen), torch.randint(0, 5, (16,), generator=gen)) for _ in range(11)
    ]
    separate = ModuleDict({"acc": MulticlassAccuracy(5)}), ModuleDict({"mse": MeanSquaredError()})
    pooled = ModuleDict({"acc": MulticlassAccuracy(5)}), ModuleDict({"mse": MeanSquaredError()})
    updates = PooledUpdates()
    for pred, target in batches:
        separate[0]["acc"].update(pred, target)
        separate[1]["mse"].update(pred, one_hot(target, 5).float())
        updates.update(pooled[0], pred, target)
        updates.update(pooled[1], pred, one_hot(target, 5).float())
    assert pooled[0]["acc"]._update_count == 11 // POOLED_BATCHES  # the last 3 batches are pending
    updates.flush()
    assert torch.equal(pooled[0]["acc"].compute(), separate[0]["acc"].compute())
    torch.testing.assert_close(pooled[1]["mse"].compute(), separate[1]["mse"].compute())
    large = torch.randn(POOLED_ELEMENTS + 1, 1)
    updates.update(pooled[1], large, large)
    assert pooled[1]["mse"]._update_count == 11 // POOLED_BATCHES + 2  # not held back


def _fuzzed_config(seed: int) -> list[str]:
    """A random but valid training setup (LeNet on the digits: 1,294 training samples)."""
    import random

    rng = random.Random(seed)
    optimizer = rng.choice(
        [
            "{name: adam, lr: 0.003}",
            "{name: adamw, lr: 0.01, weight_decay: 0.01}",
            "{name: sgd, lr: 0.05}",
            "{name: sgd, lr: 0.05, momentum: 0.9, nesterov: true}",
        ]
    )
    scheduler = rng.choice(
        [
            "{name: none, warmup_steps: 0}",
            f"{{name: cosine, warmup_steps: {rng.randint(0, 10)}}}",
            f"{{name: step, step_size: {rng.randint(1, 15)}, gamma: 0.5, warmup_steps: 0}}",
            "{name: onecycle, warmup_steps: 0}",
        ]
    )
    sets = [
        f"train.optimizer={optimizer}",
        f"train.scheduler={scheduler}",
        f"train.data.batch_size={rng.choice([16, 50, 64, 300])}",
        f"train.accumulate_grad_batches={rng.choice([1, 1, 2, 3, 5])}",
        f"train.precision={rng.choice(['32', '32', 'bf16-mixed'])}",
        f"train.seed={rng.randint(0, 1000)}",
    ]
    if rng.random() < 0.5:
        sets.append(f"train.gradient_clip_val={rng.choice([0.05, 0.5, 3.0])}")
    if rng.random() < 0.5:
        sets.append(f"train.checkpoint_every_n_steps={rng.randint(1, 9)}")
    if rng.random() < 0.5:
        sets.append(f"train.max_steps={rng.randint(1, 40)}")
    else:
        sets.append(f"train.max_epochs={rng.randint(1, 2)}")
    return sets


def _fuzz(tmp_path, seed: int) -> None:
    sets = _fuzzed_config(seed)
    fast = _fit(LENET, tmp_path / "fast", "fast", sets)
    lightning = _fit(LENET, tmp_path / "lightning", "lightning", sets)
    try:
        _assert_same_runs(fast, lightning)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}: {sets}") from exc


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_setups_train_the_same_in_both_loops(tmp_path, seed):
    """Random optimizers, schedules, batch sizes, accumulation, clipping, precision, step
    checkpoints and limits: both loops give the same weights, counters, metrics and metrics.csv."""
    _fuzz(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 43))
def test_fuzzed_setups_train_the_same_in_both_loops_long(tmp_path, seed):
    _fuzz(tmp_path, seed)
