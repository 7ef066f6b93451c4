"""``netspec train`` / ``eval`` / ``export``: a spec's ``train:`` section turned into a Lightning run.

A run directory holds ``checkpoints/`` (``best.ckpt``, ``last.ckpt``), ``metrics.csv``,
TensorBoard logs when tensorboard is installed, ``spec.yaml`` (the resolved spec as it was
trained) and ``curves.png``.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml

import netspec
from netspec.data import DataError, Splits
from netspec.errors import NetspecError, Problem, SpecError
from netspec.shapes import describe
from netspec.spec import Spec


@dataclass
class RunResult:
    """What a training run left behind."""

    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    epochs: int = 0
    steps: int = 0


def prepare(source: Any, overrides: Sequence[str] = ()) -> tuple[Spec, Any]:
    """Load the spec with ``--set`` overrides; an absent ``train:`` gets every default."""
    spec = netspec.load(source, overrides=overrides)
    if spec.model.train is None:
        train_field = type(spec.model).model_fields["train"].annotation
        train_cls = next(arg for arg in get_args(train_field) if arg is not type(None))
        spec.model = spec.model.model_copy(update={"train": train_cls.model_validate({})})
    cfg = spec.model.train
    if cfg.data is None:
        raise SpecError(
            [
                spec.document.problem(
                    "no dataset given and the default 'digits' is not loaded",
                    ("train",),
                    hint="set train.data.name",
                )
            ]
        )
    if len(spec.outputs) != 1:
        raise SpecError(
            [
                spec.document.problem(
                    f"training needs a single output; this network has {len(spec.outputs)}: "
                    + ", ".join(spec.outputs),
                    ("outputs",),
                    hint="list one layer in `outputs:` for training",
                )
            ]
        )
    return spec, cfg


def _splits(spec: Spec, cfg, data_dir) -> Splits:
    """Load the dataset; its errors point at the spec's ``train.data`` line."""
    from netspec.training.data import load_splits

    try:
        return load_splits(spec.registry, cfg.data, spec.input_shape, cfg.seed, Path(data_dir or "data"))
    except DataError as exc:
        raise SpecError(
            [spec.document.problem(f"dataset {cfg.data.name!r}: {exc}", ("train", "data"))]
        ) from None


def check_data(spec: Spec, splits: Splits) -> None:
    """The dataset must fit the network: input shape and class count, before anything trains."""
    problems = []
    if tuple(splits.sample_shape) != tuple(spec.input_shape):
        problems.append(
            spec.document.problem(
                f"the dataset gives samples of shape {describe(splits.sample_shape)} but the network's "
                f"input is {describe(spec.input_shape)}",
                ("input",),
                hint=f"set `input: {list(splits.sample_shape)}`, or choose/resize the data",
            )
        )
    out = spec.output_shapes()[0]
    loss = spec.model.train.loss
    if splits.num_classes is not None and loss == "cross_entropy" and out[0] != splits.num_classes:
        last = spec.layer(spec.outputs[0])
        problems.append(
            spec.document.problem(
                f"the dataset has {splits.num_classes} classes but the network outputs {out[0]} "
                f"(layer '{last.name}' gives {describe(out)})",
                ("layers", last.index),
                layer=last.label,
                hint=f"make '{last.name}' output {splits.num_classes} channels/features",
            )
        )
    if problems:
        raise SpecError(problems)


def _run_dir(spec: Spec, cfg) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{spec.name}-{stamp}"


def _resolved_yaml(spec: Spec) -> str:
    return yaml.safe_dump(
        spec.model.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False
    )


def _quiet_lightning() -> None:
    """Lightning's advice about workers and logging intervals does not apply to tensor batches."""
    import logging

    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*The number of training batches.*")
    warnings.filterwarnings("ignore", ".*is an invalid generator.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # the run dir holds spec.yaml
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")


def fit(
    source: Any,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> RunResult:
    """Train the spec's network as its ``train:`` section says; returns metrics and checkpoints."""
    spec, cfg = prepare(source, overrides)
    run_dir = Path(resume) if resume is not None else _run_dir(spec, cfg)
    ckpt_path = None
    if resume is not None:
        ckpt_path = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt_path.is_file():
            raise SpecError(
                [
                    Problem(
                        f"no checkpoint to resume from: {ckpt_path} does not exist",
                        str(run_dir),
                        hint="check the run directory, or start a fresh run without --resume",
                    )
                ]
            )
        saved = run_dir / "spec.yaml"
        if saved.is_file() and yaml.safe_load(saved.read_text()) != yaml.safe_load(_resolved_yaml(spec)):
            raise SpecError(
                [
                    Problem(
                        f"the spec differs from the one this run was started with ({saved})",
                        spec.source,
                        hint=f"resume with `netspec train {saved} --resume {run_dir}`",
                    )
                ]
            )

    import pytorch_lightning as pl

    from netspec.training.data import SpecDataModule
    from netspec.training.module import LOG_EVERY, SpecModule

    _quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = _splits(spec, cfg, data_dir)
    check_data(spec, splits)
    metric_names = cfg.metrics or (["accuracy"] if splits.num_classes else ["mae"])
    module = SpecModule(spec, cfg, splits.num_classes, metric_names, _total_steps(cfg, splits))
    if cfg.compile:
        module.model.compile()  # in place: checkpoints keep plain state_dict keys
    datamodule = SpecDataModule(splits, cfg.data, cfg.seed)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.yaml").write_text(_resolved_yaml(spec))
    callbacks, checkpoint = _callbacks(cfg, run_dir, metric_names)
    trainer = pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.max_epochs if cfg.max_steps is None else -1,
        max_steps=cfg.max_steps or -1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        gradient_clip_val=cfg.gradient_clip_val,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        deterministic=cfg.deterministic,
        logger=_loggers(run_dir),
        callbacks=callbacks,
        enable_progress_bar=cfg.progress != "none",
        enable_model_summary=False,
        log_every_n_steps=LOG_EVERY,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    validated = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=str(best) if best else None, verbose=False)
    metrics = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    metrics.update(validated)
    if trainer.is_global_zero:
        from netspec.training.plot import plot_curves

        plot_curves(run_dir / "metrics.csv", run_dir / "curves.png", title=spec.name)
    last = run_dir / "checkpoints" / "last.ckpt"
    return RunResult(
        run_dir, metrics, best, last if last.exists() else None, trainer.current_epoch, trainer.global_step
    )


def _total_steps(cfg, splits: Splits) -> int:
    """Optimizer steps of the whole run (for learning-rate schedules)."""
    if cfg.max_steps:
        return cfg.max_steps
    world = (
        cfg.devices
        if isinstance(cfg.devices, int)
        else len(cfg.devices)
        if isinstance(cfg.devices, list)
        else 1
    )
    per_epoch = -(-len(splits.train) // (cfg.data.batch_size * world * cfg.num_nodes))
    return max(1, cfg.max_epochs * -(-per_epoch // cfg.accumulate_grad_batches))


def _callbacks(cfg, run_dir: Path, metric_names: list[str]):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, TQDMProgressBar

    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_last=True,
        enable_version_counter=False,
    )
    callbacks: list = [checkpoint]
    if cfg.checkpoint_every_n_steps:
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="last",
                every_n_train_steps=cfg.checkpoint_every_n_steps,
                enable_version_counter=False,
                save_top_k=1,
                monitor=None,
            )
        )
    if cfg.early_stopping is not None:
        es = cfg.early_stopping
        callbacks.append(
            EarlyStopping(monitor=es.monitor, patience=es.patience, mode=es.mode, min_delta=es.min_delta)
        )
    if cfg.progress == "rich":
        callbacks.append(RichProgressBar())
    elif cfg.progress == "tqdm":
        callbacks.append(TQDMProgressBar())
    return callbacks, checkpoint


def _loggers(run_dir: Path) -> list:
    from pytorch_lightning.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=run_dir, name="", version="")]
    try:
        import tensorboard  # noqa: F401
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def _module_from_checkpoint(spec: Spec, cfg, checkpoint: str | Path, splits: Splits):
    import torch

    from netspec.training.module import SpecModule

    path = Path(checkpoint)
    if not path.is_file():
        raise SpecError(
            [
                Problem(
                    f"checkpoint {path} does not exist",
                    str(path),
                    hint="pass a .ckpt from a run's checkpoints/ directory",
                )
            ]
        )
    metric_names = cfg.metrics or (["accuracy"] if splits.num_classes else ["mae"])
    module = SpecModule(spec, cfg, splits.num_classes, metric_names)
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise NetspecError(f"checkpoint {path} does not fit this spec's network: {exc}") from None
    return module


def evaluate(
    source: Any, checkpoint: str | Path, *, overrides: Sequence[str] = (), data_dir: str | Path | None = None
) -> dict[str, float]:
    """Metrics of a checkpoint on the test split (the validation split when there is none)."""
    import pytorch_lightning as pl

    from netspec.training.data import SpecDataModule

    _quiet_lightning()
    spec, cfg = prepare(source, overrides)
    splits = _splits(spec, cfg, data_dir)
    check_data(spec, splits)
    module = _module_from_checkpoint(spec, cfg, checkpoint, splits)
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    result = trainer.test(module, datamodule=SpecDataModule(splits, cfg.data, cfg.seed), verbose=False)
    return {k: float(v) for k, v in result[0].items()}


def export_onnx(
    source: Any, checkpoint: str | Path | None, path: str | Path, *, overrides: Sequence[str] = ()
) -> Path:
    """Write the network (with a checkpoint's weights, if given) as ONNX with a dynamic batch."""
    import torch

    spec = netspec.load(source, overrides=list(overrides))
    model = spec.build().eval()
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        )
    x = torch.randn(2, *spec.input_shape)
    path = Path(path)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=["input"],
            verbose=False,
        )
    return path
