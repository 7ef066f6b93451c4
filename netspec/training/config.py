"""The ``train:`` section of a spec: pydantic models, validated like the layers (file:line errors)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, create_model, model_validator

from netspec.data import DatasetType
from netspec.errors import SpecError
from netspec.params import NonNegativeInt, PositiveInt, StrictBool

_STRICT = ConfigDict(extra="forbid", frozen=True)
DEFAULT_DATASET = "digits"  # ships with the install: training works offline

# Ranges: finite always (inf/nan train to NaN), and bounded where a larger value is a typo or an
# overflow waiting to happen (an lr of 1e308 overflows Adam's update; counts beyond these sizes
# overflow C integers inside Lightning or torch).
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range
LearningRate = Annotated[StrictFloat, Field(gt=0.0, le=1e3, allow_inf_nan=False)]
Coefficient = Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]  # weight decay
Decay = Annotated[StrictFloat, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]  # momentum, Adam's betas
Finite = Annotated[StrictFloat, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
Count = Annotated[StrictInt, Field(gt=0, le=MAX_COUNT)]
# Lightning's accelerator names (checked against what is available on this machine at run start)
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"]


class OptimizerSpec(BaseModel):
    """SGD (momentum, nesterov), Adam or AdamW."""

    model_config = _STRICT
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: LearningRate = 1e-3
    weight_decay: Coefficient = 0.0
    momentum: Decay = Field(0.0, description="SGD only.")
    nesterov: StrictBool = Field(False, description="SGD only; needs momentum > 0.")
    betas: tuple[Decay, Decay] | None = Field(None, description="Adam/AdamW only; each in [0, 1).")

    @model_validator(mode="after")
    def _check(self):
        if self.name != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(f"momentum/nesterov apply to sgd only, not {self.name}")
        if self.name == "sgd" and self.betas is not None:
            raise ValueError("betas apply to adam/adamw only")
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class SchedulerSpec(BaseModel):
    """Learning-rate schedule, stepped per optimizer step; optional linear warmup first."""

    model_config = _STRICT
    name: Literal["none", "step", "cosine", "onecycle"] = "none"
    warmup_steps: Annotated[NonNegativeInt, Field(le=MAX_COUNT)] = 0
    step_size: Count = Field(1000, description="step: decay every step_size optimizer steps.")
    gamma: Annotated[StrictFloat, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = Field(
        0.1, description="step: decay factor, in (0, 1]."
    )
    min_lr: Annotated[StrictFloat, Field(ge=0.0, le=1e3, allow_inf_nan=False)] = Field(
        0.0, description="cosine: final learning rate."
    )
    max_lr: LearningRate | None = Field(None, description="onecycle: peak (default: optimizer lr).")


class EarlyStoppingSpec(BaseModel):
    model_config = _STRICT
    monitor: str = Field("val_loss", description="A logged metric: val_loss, val_acc, train_loss_epoch, …")
    patience: Count = 5
    mode: Literal["min", "max"] = "min"
    min_delta: Finite = 0.0


Task = Literal["auto", "classification", "segmentation", "reconstruction", "regression"]
Loss = Literal["auto", "cross_entropy", "dice", "cross_entropy_dice", "mse", "l1", "huber", "bce_with_logits"]
Metric = Literal[
    "accuracy", "top3_accuracy", "top5_accuracy", "miou", "pixel_accuracy", "dice", "psnr", "mae", "mse", "r2"
]
Weight = Annotated[StrictFloat, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
LabelIndex = Annotated[StrictInt, Field(ge=-(2**31), le=MAX_COUNT)]


class _LossOptions(BaseModel):
    """What a loss is trained on and how; the same fields serve the whole run and each output."""

    model_config = _STRICT
    task: Task | None = Field(
        None,
        description="classification, segmentation, reconstruction (target = input) or regression; "
        "auto (the default) picks it from the output's shape and the data.",
    )
    loss: Loss | None = Field(None, description="Default: cross_entropy for classes, mse for float targets.")
    metrics: list[Metric] | None = Field(
        None,
        description="Default: accuracy (classification), miou + pixel_accuracy (segmentation), "
        "psnr (reconstruction), mae + r2 (regression).",
    )
    label_smoothing: Annotated[StrictFloat, Field(ge=0.0, lt=1.0)] | None = None
    ignore_index: LabelIndex | None = Field(
        None,
        description="A label that is no class (unlabelled pixels): no loss, not counted by metrics. "
        "Default: the dataset's.",
    )
    class_weights: list[Annotated[StrictFloat, Field(ge=0.0, le=1e6, allow_inf_nan=False)]] | None = Field(
        None, min_length=1, max_length=100_000, description="cross_entropy: one weight per class."
    )
    huber_delta: Annotated[StrictFloat, Field(gt=0.0, le=1e6, allow_inf_nan=False)] | None = None


class OutputSpec(_LossOptions):
    """One output of a network with several: its loss, weight in the total, target and metrics."""

    weight: Weight = Field(1.0, description="Factor of this output's loss in the total loss.")
    target: str | None = Field(
        None,
        min_length=1,
        description="The dataset's target for this output (named targets); `input` reconstructs the "
        "input. Default: the target named like the output, else the only one.",
    )


class _DataCommon(BaseModel):
    batch_size: Count = Field(64, description="Samples per batch.")
    num_workers: Annotated[NonNegativeInt, Field(le=1024)] = Field(
        0, description="DataLoader workers for datasets not held in memory."
    )
    random_crop: Annotated[NonNegativeInt, Field(le=4096)] = Field(
        0, description="Pad by this many pixels and crop back at random."
    )
    hflip: StrictBool = Field(False, description="Random horizontal flips.")


def data_model(record: DatasetType) -> type[BaseModel]:
    """The dataset's own params + batching/augmentation + its ``name`` literal."""
    title = "".join(part.capitalize() for part in record.name.split("_"))
    fields = {n: (f.annotation, f) for n, f in _DataCommon.model_fields.items()}
    return create_model(
        f"{title}Data",
        __base__=record.params,
        __doc__=record.summary or record.params.__doc__,
        name=(Literal[record.name], Field(description=record.summary or record.name)),
        **fields,
    )


def train_model(datasets: dict[str, DatasetType]) -> type[BaseModel]:
    """TrainSpec with ``data`` as the discriminated union of every registered dataset."""
    models = [data_model(r) for r in datasets.values()]
    data_type = (
        Annotated[Union[tuple(models)], Field(discriminator="name")] if models else dict  # noqa: UP007
    )
    if DEFAULT_DATASET in datasets:  # the offline default, validated like a written one
        data = (data_type, Field(default={"name": DEFAULT_DATASET}, validate_default=True))
    else:
        data = (data_type | None, None)
    return create_model("TrainSpec", __base__=TrainBase, data=data)


class TrainBase(_LossOptions):
    """Everything optional; ``data`` defaults to the offline ``digits`` set.

    ``task``/``loss``/``metrics``/… apply to every output; ``outputs`` overrides them per output.
    """

    model_config = _STRICT
    outputs: dict[str, OutputSpec] | None = Field(
        None,
        min_length=1,
        description="Per-output losses for a network with several outputs (deep supervision, auxiliary "
        "heads, a class and a box head): output name → task, loss, weight, target, metrics. Outputs "
        "not listed get no loss. Default: every output with the settings above.",
    )
    optimizer: OptimizerSpec = OptimizerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    max_epochs: Count | None = Field(10, description="null: train for max_steps instead.")
    max_steps: Count | None = None
    precision: Literal["32", "32-true", "bf16-mixed", "16-mixed", 32] = "32"  # one Literal: one message
    compile: StrictBool = Field(
        False,
        description="torch.compile the network: one graph for training, one for evaluation (the last "
        "partial training batch of each epoch is dropped; a short evaluation batch is padded).",
    )
    memory_format: Literal["contiguous", "channels_last"] = Field(
        "contiguous",
        description="channels_last: the network's weights and image batches in NHWC (inputs [C, H, W] "
        "only); mostly a GPU speed-up, with bf16-mixed.",
    )
    seed: Annotated[NonNegativeInt, Field(le=MAX_SEED)] = 0
    deterministic: StrictBool | Literal["warn"] = Field(
        "warn",
        description="Deterministic algorithms (exact resume on CPU). warn: layers without a deterministic "
        "kernel run anyway and are named at the start; true: they are errors.",
    )
    accelerator: Accelerator = "auto"
    devices: (
        Annotated[PositiveInt, Field(le=4096)]
        | Literal["auto"]
        | list[Annotated[NonNegativeInt, Field(le=4096)]]
    ) = "auto"
    strategy: str = Field("auto", description="A Lightning strategy: auto, ddp, fsdp, … (not a spawn one)")
    num_nodes: Annotated[PositiveInt, Field(le=4096)] = 1
    gradient_clip_val: Annotated[StrictFloat, Field(gt=0.0, le=1e6, allow_inf_nan=False)] | None = None
    accumulate_grad_batches: Annotated[PositiveInt, Field(le=1_000_000)] = 1
    early_stopping: EarlyStoppingSpec | None = None
    checkpoint_every_n_steps: PositiveInt | None = Field(
        None, description="Also checkpoint every N steps (last.ckpt), so a killed run resumes mid-epoch."
    )
    run_dir: str | None = Field(None, min_length=1, description="Default: runs/<name>-<timestamp>.")
    progress: Literal["rich", "tqdm", "none"] = "rich"
    loop: Literal["fast", "lightning"] = Field(
        "fast",
        description="fast: on one device, several optimizer steps per pass through Lightning's batch loop "
        "(same steps and results, less overhead); lightning: Lightning's automatic optimization at every "
        "step. Several processes or devices always use lightning.",
    )
    init: str | None = Field(
        None,
        min_length=1,
        description="Start from these weights: a netspec .ckpt or a state_dict .pt/.pth (relative to the "
        "spec file); tensors of matching name and shape are loaded, the rest reported.",
    )
    freeze: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Layers, block instances or parameters not to train (name or prefix: conv1, layer1, "
        "fc.weight); their batch-norm layers stay in eval mode.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_dataset(cls, data):
        """``--set train.data.batch_size=32`` on a spec without ``train.data`` tunes the default data."""
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "name" not in data["data"]:
            data = {**data, "data": {"name": DEFAULT_DATASET, **data["data"]}}
        return data

    @model_validator(mode="after")
    def _check(self):
        if self.max_epochs is None and self.max_steps is None:
            raise ValueError("give max_epochs or max_steps: without either the run would never end")
        if self.scheduler.min_lr > self.optimizer.lr:
            raise ValueError(
                f"scheduler.min_lr {self.scheduler.min_lr} is above optimizer.lr {self.optimizer.lr}"
            )
        for key in ("run_dir", "init"):
            if "\0" in (getattr(self, key) or ""):
                raise ValueError(f"{key} contains a NUL character")
        return self


def data_problem(spec, exc) -> Any:
    """A dataset's refusal, at the spec's ``train.data`` line, or at ``input:`` where the data is
    netspec's default (the input is what does not fit it)."""
    from netspec.data import about_dataset

    train = spec.document.data.get("train") if isinstance(spec.document.data, dict) else None
    path = ("train", "data") if isinstance(train, dict) and "data" in train else ("input",)
    cfg = train_settings(spec)
    return spec.document.problem(about_dataset(cfg.data.name, exc), path)


def train_settings(spec, hint: str = "set train.data.name"):
    """The spec's ``train:`` section, an absent one with every default (as ``netspec train`` reads
    it), and a dataset to train on: what training, tuning and showing a dataset sample start from."""
    cfg = spec.model.train
    if cfg is None:
        train_field = type(spec.model).model_fields["train"].annotation
        cfg = next(arg for arg in get_args(train_field) if arg is not type(None)).model_validate({})
    if cfg.data is None:
        message = "no dataset given and the default 'digits' is not loaded"
        raise SpecError([spec.document.problem(message, ("train",), hint=hint)])
    return cfg
