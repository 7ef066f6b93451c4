"""Checkpoints are data, never code: weights-only loading, and a clear exit 2 for anything else."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import REPO

import netspec
from netspec.cli import main
from netspec.errors import SpecError
from netspec.training.checkpoint import read_checkpoint

LENET = str(REPO / "specs/lenet.yaml")
UNET = str(REPO / "specs/unet.yaml")


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real netspec run with every checkpointed feature: schedule, early stopping, step checkpoints."""
    from netspec.training import fit

    run = tmp_path_factory.mktemp("run")
    return fit(LENET, overrides=[*TRAINED, "train.max_epochs=1", f"train.run_dir={run}"])


TRAINED = [
    "train.progress=none",
    "train.scheduler={name: cosine, warmup_steps: 2}",
    "train.early_stopping={monitor: val_loss}",
    "train.checkpoint_every_n_steps=5",
    "train.optimizer={name: sgd, lr: 0.01, momentum: 0.9}",
]


def test_netspec_checkpoints_load_weights_only(trained):
    for path in (trained.best_checkpoint, trained.last_checkpoint):
        content = torch.load(path, map_location="cpu", weights_only=True)  # no allow-list needed
        assert read_checkpoint(path)["state_dict"].keys() == content["state_dict"].keys()
        assert content["state_dict"]._metadata[""] == {"version": 1}  # modules' versions, as torch saves them
    assert main(["eval", LENET, "--checkpoint", str(trained.best_checkpoint)]) == 0


def test_a_relative_run_directory_gives_every_path_in_the_same_form(tmp_path, monkeypatch, capsys):
    """best_checkpoint came back absolute (Lightning's), run_dir and last_checkpoint relative."""
    from netspec.training import fit

    monkeypatch.chdir(tmp_path)
    result = fit(LENET, overrides=["train.progress=none", "train.max_steps=2", "train.run_dir=run"])
    assert result.run_dir == Path("run")
    assert result.best_checkpoint == Path("run/checkpoints/best.ckpt") and result.best_checkpoint.is_file()
    assert result.last_checkpoint == Path("run/checkpoints/last.ckpt")


def _one_step(tmp_path) -> list[str]:
    """--set options for a run of one step into tmp_path/r."""
    return [
        part
        for value in ("train.max_steps=1", "train.progress=none", f"train.run_dir={tmp_path}/r")
        for part in ("--set", value)
    ]


def _malicious(path, marker, *, zipped: bool):
    if zipped:  # what torch.save writes, with a code-running object inside
        torch.save({"state_dict": {}, "hook": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_malicious_checkpoint_runs_no_code_and_exits_2(tmp_path, capsys, zipped, command):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    _malicious(ckpt, marker, zipped=zipped)
    extra = ["--onnx", str(tmp_path / "m.onnx")] if command == "export" else []
    code = main([command, LENET, "--checkpoint", str(ckpt), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert f"{ckpt} is not a netspec checkpoint (refused by the weights-only loader)" in err
    assert "Traceback" not in err


def test_resume_from_a_malicious_last_ckpt_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    _malicious(tmp_path / "run" / "checkpoints" / "last.ckpt", marker, zipped=True)
    code = main(["train", LENET, "--set", "train.progress=none", "--resume", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert "is not a netspec checkpoint" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01random bytes" * 50, "is not a netspec checkpoint: it is not a file torch.save wrote"),
        (b"hello, not a checkpoint\n", "is not a file torch.save wrote"),  # was "…loader): 101"
        (b"PK\x03\x04" + b"\x00" * 60, "is not a netspec checkpoint (refused by the weights-only loader)"),
        ({"epoch": 3}, "is not a netspec checkpoint: it has no 'state_dict' of tensors"),
        ({"state_dict": {"w": "not a tensor"}}, "it has no 'state_dict' of tensors"),
        ([1, 2, 3], "it has no 'state_dict' of tensors"),
    ],
)
def test_files_that_are_not_checkpoints_exit_2(tmp_path, capsys, content, message):
    ckpt = tmp_path / "x.ckpt"
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    else:
        torch.save(content, ckpt)
    assert main(["eval", LENET, "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(ckpt) in err and "Traceback" not in err


def test_a_directory_or_missing_file_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["eval", LENET, "--checkpoint", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["export", LENET, "--checkpoint", str(tmp_path / "no.ckpt"), "--onnx", "m.onnx"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_checkpoint_of_another_spec_exits_2_naming_the_tensors(trained, tmp_path, capsys, command):
    extra = ["--onnx", str(tmp_path / "m.onnx")] if command == "export" else []
    wider = tmp_path / "wider.yaml"  # LeNet with 8 channels in c1
    wider.write_text((REPO / "specs/lenet.yaml").read_text().replace("out_channels: 6", "out_channels: 8"))
    spec = str(wider) if command == "eval" else UNET
    if command == "eval":
        extra = ["--set", "expect=null"]  # LeNet's contract is for 6 channels
    code = main([command, spec, "--checkpoint", str(trained.best_checkpoint), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"checkpoint {trained.best_checkpoint} does not fit the network of" in err
    assert "Traceback" not in err
    if command == "eval":
        assert "c1.weight: checkpoint [6, 1, 5, 5], network [8, 1, 5, 5]" in err
    else:
        assert "missing:" in err and "unexpected:" in err


def test_integer_weights_are_not_cast_in_silence(trained, tmp_path, capsys):
    """A checkpoint with every tensor cast to int64 (weights truncated to 0 and ±1) was scored,
    predicted with and used to initialise, with exit 0 and no word."""
    content = torch.load(trained.best_checkpoint, weights_only=True)
    content["state_dict"] = {k: v.to(torch.int64) for k, v in content["state_dict"].items()}
    torch.save(content, tmp_path / "int.ckpt")
    assert main(["eval", LENET, "--checkpoint", str(tmp_path / "int.ckpt")]) == 2
    assert "c1.weight: checkpoint int64 values, network float32" in capsys.readouterr().err
    run = _one_step(tmp_path)
    assert main(["train", LENET, "--init", str(tmp_path / "int.ckpt"), *run]) == 2
    err = capsys.readouterr().err
    assert "no tensor of" in err and "non-float values for float weights (10): c1.weight: file int64" in err


def test_a_run_directory_stands_for_its_best_checkpoint(tmp_path):
    from netspec.errors import SpecError

    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    torch.save({"state_dict": {"model.w": torch.ones(2)}}, best)
    assert torch.equal(read_checkpoint(tmp_path / "run")["state_dict"]["model.w"], torch.ones(2))
    with pytest.raises(SpecError, match="is not a file"):  # any other directory is still refused
        read_checkpoint(tmp_path / "run" / "checkpoints")


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
@pytest.mark.filterwarnings("ignore:.*does not have many workers.*")
@pytest.mark.filterwarnings("ignore:.*number of training batches.*")
def test_an_improving_epoch_writes_its_checkpoint_once_and_the_best_keeps_its_state(tmp_path):
    """best.ckpt and last.ckpt of the same state are one file (a hard link); writing last.ckpt
    again later takes it off the link, so best.ckpt still holds the best epoch's weights; and
    last.ckpt follows every epoch, improving or not (Lightning 2.6 alone leaves it at the best)."""
    import os

    import pytorch_lightning as pl

    from netspec.training.checkpoint_io import RunCheckpointIO, checkpoint_callback

    scores = [1.0, 0.5, 0.8]  # val_loss per epoch: best at epoch 1, epoch 2 is worse

    class Scripted(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", scores[self.current_epoch])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Record(pl.Callback):
        def __init__(self):
            self.shared, self.weights = [], []

        def on_validation_start(self, trainer, module):  # the epoch's weights, as checkpointed
            self.weights.append(module.layer.weight.detach().clone())

        def on_train_epoch_start(self, trainer, module):  # the previous epoch's checkpoints are written
            if trainer.current_epoch:
                self.look(trainer)

        def on_fit_end(self, trainer, module):
            self.look(trainer)

        def look(self, trainer):
            trainer.strategy.checkpoint_io.wait()  # written in the background
            folder = tmp_path / "checkpoints"
            self.shared.append(os.path.samefile(folder / "best.ckpt", folder / "last.ckpt"))

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)
    record = Record()
    checkpoint = checkpoint_callback(
        dirpath=tmp_path / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[checkpoint, record],
        plugins=[RunCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(Scripted(), train_dataloaders=data, val_dataloaders=data)
    best = read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (best["epoch"], last["epoch"]) == (1, 2)
    assert record.shared == [True, True, False]  # epochs 0 and 1 improved: one file each
    assert torch.equal(best["state_dict"]["layer.weight"], record.weights[1])
    assert torch.equal(last["state_dict"]["layer.weight"], record.weights[2])
    assert not torch.equal(record.weights[1], record.weights[2])


def test_the_background_writer_saves_a_snapshot_atomically_and_reports_a_failed_write(tmp_path):
    from netspec.training.checkpoint_io import RunCheckpointIO

    writer = RunCheckpointIO()
    weights = torch.arange(4.0)
    writer.save_checkpoint({"state_dict": {"w": weights}}, tmp_path / "a.ckpt")
    weights.add_(100)  # training goes on: the checkpoint keeps the state it was given
    assert torch.equal(writer.load_checkpoint(tmp_path / "a.ckpt")["state_dict"]["w"], torch.arange(4.0))
    writer.link(tmp_path / "a.ckpt", tmp_path / "b.ckpt")
    writer.save_checkpoint({"state_dict": {"w": weights}}, tmp_path / "a.ckpt")  # a.ckpt anew
    writer.wait()
    assert torch.equal(
        torch.load(tmp_path / "b.ckpt", weights_only=True)["state_dict"]["w"], torch.arange(4.0)
    )
    assert torch.equal(torch.load(tmp_path / "a.ckpt", weights_only=True)["state_dict"]["w"], weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "b.ckpt"]  # no temporary files left
    (tmp_path / "file").write_text("not a directory")
    writer.save_checkpoint({"x": torch.zeros(1)}, tmp_path / "file" / "c.ckpt")
    with pytest.raises(SpecError, match="cannot write the checkpoint .*c.ckpt"):
        writer.teardown()
    writer.teardown()  # each error is raised once


def test_a_snapshot_copies_every_tensor_and_keeps_each_container_as_it_was():
    import collections
    import dataclasses

    from netspec.training.checkpoint_io import snapshot_of

    @dataclasses.dataclass
    class Record:
        value: torch.Tensor
        name: str = "r"

    Pair = collections.namedtuple("Pair", "a b")
    state = torch.nn.BatchNorm1d(2).state_dict()  # an OrderedDict with the modules' _metadata
    counts = collections.defaultdict(list, {"seen": [torch.ones(1)]})
    other = object()
    checkpoint = {
        "state_dict": state,
        "loops": [(torch.zeros(2), Pair(torch.ones(1), 3))],
        "counts": counts,
        "record": Record(torch.full((1,), 5.0)),
        "other": other,
    }
    snapshot = snapshot_of(checkpoint)
    assert type(snapshot["state_dict"]) is type(state)
    assert snapshot["state_dict"]._metadata == state._metadata  # load_state_dict reads the versions
    assert isinstance(snapshot["loops"][0][1], Pair) and snapshot["loops"][0][1].b == 3
    assert snapshot["counts"].default_factory is list and snapshot["counts"]["new"] == []
    assert isinstance(snapshot["record"], Record) and snapshot["record"].name == "r"
    assert snapshot["other"] is other
    originals = [state["running_mean"], checkpoint["loops"][0][0], counts["seen"][0]]
    originals.append(checkpoint["record"].value)
    copies = [
        snapshot["state_dict"]["running_mean"],
        snapshot["loops"][0][0],
        snapshot["counts"]["seen"][0],
        snapshot["record"].value,
    ]
    for original, copied in zip(originals, copies, strict=True):
        assert torch.equal(original, copied) and original.data_ptr() != copied.data_ptr()
    before = copies[0].clone()
    state["running_mean"].add_(1)  # training goes on: the snapshot keeps the state it was given
    assert torch.equal(copies[0], before)


def test_a_disk_that_refuses_a_checkpoint_is_exit_2_naming_the_file(tmp_path, capsys, monkeypatch):
    import errno

    from netspec.training import checkpoint_io

    def full(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_io.torch, "save", full)
    run = tmp_path / "run"
    argv = ["train", LENET, "--set", "train.max_epochs=1", "--set", "train.progress=none"]
    assert main([*argv, "--set", f"train.run_dir={run}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the checkpoint {run / 'checkpoints'}" in err and "No space left on device" in err
    assert "internal error" not in err and "Traceback" not in err
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_the_background_writer_holds_at_most_two_snapshots(tmp_path, monkeypatch):
    """Saving faster than the disk writes makes the run wait, instead of piling copies of the state."""
    import threading

    from netspec.training import checkpoint_io

    gate, written = threading.Event(), []

    def slow(checkpoint, path):
        gate.wait(10)
        written.append(path)

    monkeypatch.setattr(checkpoint_io, "_write", slow)
    writer = checkpoint_io.RunCheckpointIO()
    writer.save_checkpoint({"w": torch.zeros(1)}, tmp_path / "1.ckpt")
    writer.save_checkpoint({"w": torch.zeros(1)}, tmp_path / "2.ckpt")  # queued behind the first
    third = threading.Thread(target=writer.save_checkpoint, args=({"w": torch.zeros(1)}, tmp_path / "3.ckpt"))
    third.start()
    third.join(0.3)
    assert third.is_alive() and not written  # waits for the first write
    gate.set()
    third.join(10)
    writer.teardown()
    assert [os.path.basename(p) for p in written] == ["1.ckpt", "2.ckpt", "3.ckpt"]


def _resume(run, capsys, *sets):
    sets = [part for value in [*TRAINED, "train.max_epochs=2", *sets] for part in ("--set", value)]
    code = main(["train", LENET, *sets, "--resume", str(run)])
    return code, capsys.readouterr().err


def _copy_run(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained.run_dir, run)
    return run


def _last_with(run, **fields):
    path = run / "checkpoints" / "last.ckpt"
    content = torch.load(path, weights_only=True)
    content.update(fields)
    torch.save(content, path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"global_step": "x"}, "global_step is 'x', not a step count"),
        ({"global_step": -3}, "global_step is -3, not a step count"),
        ({"loops": {"x": 1}}, "its loops hold no fit_loop state"),
        ({"netspec_epoch_loss": ("a",)}, "netspec_epoch_loss is not a (sum, count) pair"),
        ({"netspec_epoch_head_losses": [1]}, "netspec_epoch_head_losses is not a mapping"),
        ({"netspec_train_metrics": [1]}, "netspec_train_metrics is not a mapping"),
        ({"netspec_train_metrics": {"f1": {"state": {}, "updates": 0}}}, "a train metric 'f1' this network"),
        ({"netspec_rng": "x"}, "netspec_rng holds no CPU generator state"),
        ({"netspec_rng": {"cpu": torch.zeros(3)}}, "netspec_rng holds no CPU generator state"),
        ({"optimizer_states": "x"}, "Lightning could not restore its training state: AttributeError"),
        ({"callbacks": "x"}, "Lightning could not restore its training state: AttributeError"),
        ({"pytorch-lightning_version": "0.0.1"}, "Lightning could not restore its training state: KeyError"),
        ({"state_dict": {"model.c1.weight": torch.zeros(6, 1, 5, 5, device="meta")}}, "on the meta device"),
    ],
)
def test_a_damaged_checkpoint_resumes_as_exit_2_naming_the_file(trained, tmp_path, capsys, fields, message):
    """Weights-only loading keeps a checkpoint from running code; its training state is still
    data from a file: every field of it that is read is checked, or its restore's errors are the
    file's (each of these was an internal error, exit 1)."""
    run = _copy_run(trained, tmp_path)
    _last_with(run, **fields)
    code, err = _resume(run, capsys)
    assert code == 2, err
    assert message in err and "internal error" not in err and "Traceback" not in err
    assert "last.ckpt" in err


@pytest.mark.parametrize(
    ("spec_yaml", "message"),
    [(None, "has no spec.yaml"), ("", "holds no spec"), ("{{{", "invalid YAML"), ("- 1\n", "holds no spec")],
)
def test_a_run_whose_spec_yaml_is_missing_or_damaged_does_not_resume(
    trained, tmp_path, capsys, spec_yaml, message
):
    run = _copy_run(trained, tmp_path)
    if spec_yaml is None:
        (run / "spec.yaml").unlink()
    else:
        (run / "spec.yaml").write_text(spec_yaml)
    code, err = _resume(run, capsys)
    assert code == 2 and message in err and "internal error" not in err, err


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "huge"])
def test_a_run_whose_metrics_csv_is_no_history_does_not_resume(trained, tmp_path, capsys, kind, monkeypatch):
    """A FIFO hung the resume, /dev/zero filled the memory, a directory was exit 1."""
    from netspec.training import run as run_module

    run = _copy_run(trained, tmp_path)
    history = run / "metrics.csv"
    history.unlink()
    if kind == "fifo":
        os.mkfifo(history)
    elif kind == "directory":
        history.mkdir()
    elif kind == "device":
        history.symlink_to("/dev/zero")
    else:
        history.write_text("step\n" + "1\n" * 100)
        monkeypatch.setattr(run_module, "MAX_HISTORY_BYTES", 100)
    code, err = _resume(run, capsys)
    assert code == 2, err
    message = "more than a run's history (100)" if kind == "huge" else "metrics.csv is not a regular file"
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("layout", ["sparse", "meta"])
def test_init_from_sparse_or_meta_tensors_is_exit_2(tmp_path, capsys, layout):
    state = netspec.load(LENET).build().state_dict()
    change = (
        (lambda t: t.to_sparse()) if layout == "sparse" else (lambda t: torch.empty(t.shape, device="meta"))
    )
    torch.save({k: change(v) for k, v in state.items()}, tmp_path / "w.pt")
    run = _one_step(tmp_path)
    assert main(["train", LENET, "--init", str(tmp_path / "w.pt"), *run]) == 2
    err = capsys.readouterr().err
    assert f"w.pt holds a {'sparse_coo tensor' if layout == 'sparse' else 'tensor on the meta device'}" in err


def test_weights_with_nan_load_with_a_warning(tmp_path, capsys):
    """Training never saves them, so such a file is damaged or foreign: its outputs are NaN."""
    import netspec
    from netspec.training.checkpoint import load_network_weights

    model = netspec.load(LENET).build()
    state = model.state_dict()
    state["c1.weight"][0, 0, 0, 0] = float("nan")
    state["f6.bias"][0] = float("inf")
    torch.save(state, tmp_path / "w.pt")
    load_network_weights(model, tmp_path / "w.pt", LENET)
    assert (
        f"warning: {tmp_path / 'w.pt'}: c1.weight and 1 more hold NaN or infinite values"
        in capsys.readouterr().err
    )


def test_a_spec_yaml_edited_to_another_rate_does_not_resume_in_silence(trained, tmp_path, capsys):
    """The edit was accepted and not applied: the optimizer came back from last.ckpt, with its rate,
    while spec.yaml claimed the new one."""
    run = _copy_run(trained, tmp_path)
    saved = run / "spec.yaml"
    saved.write_text(saved.read_text().replace("lr: 0.01", "lr: 0.5"))
    sets = [part for value in [*TRAINED, "train.max_epochs=2"] for part in ("--set", value)]
    assert main(["train", str(saved), *sets, "--set", "train.optimizer.lr=0.5", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the run trained with another optimizer setting than the spec says" in err
    assert f"train.optimizer.lr: 0.5 in the spec, 0.01 in {run / 'checkpoints' / 'last.ckpt'}" in err
