"""The ``train:`` section of a spec: pydantic models, validated like the layers (file:line errors)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    create_model,
    model_validator,
)

from netspec.data import DatasetType
from netspec.params import NonNegativeInt, PositiveInt, StrictBool

_STRICT = ConfigDict(extra="forbid", frozen=True)
DEFAULT_DATASET = "digits"  # ships with the install: training works offline


class OptimizerSpec(BaseModel):
    """SGD (momentum, nesterov), Adam or AdamW."""

    model_config = _STRICT
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = Field(0.0, description="SGD only.")
    nesterov: StrictBool = Field(False, description="SGD only; needs momentum > 0.")
    betas: tuple[float, float] | None = Field(None, description="Adam/AdamW only.")

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
    warmup_steps: NonNegativeInt = 0
    step_size: PositiveInt = Field(1000, description="step: decay every step_size optimizer steps.")
    gamma: PositiveFloat = Field(0.1, description="step: decay factor.")
    min_lr: NonNegativeFloat = Field(0.0, description="cosine: final learning rate.")
    max_lr: PositiveFloat | None = Field(None, description="onecycle: peak (default: optimizer lr).")


class EarlyStoppingSpec(BaseModel):
    model_config = _STRICT
    monitor: str = "val_loss"
    patience: PositiveInt = 5
    mode: Literal["min", "max"] = "min"
    min_delta: NonNegativeFloat = 0.0


Metric = Literal["accuracy", "top3_accuracy", "top5_accuracy", "mae", "mse"]


class _DataCommon(BaseModel):
    batch_size: PositiveInt = 64
    num_workers: NonNegativeInt = Field(0, description="DataLoader workers for datasets not held in memory.")
    random_crop: NonNegativeInt = Field(0, description="Pad by this many pixels and crop back at random.")
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


class TrainBase(BaseModel):
    """Everything optional; ``data`` defaults to the offline ``digits`` set."""

    model_config = _STRICT
    loss: Literal["cross_entropy", "mse", "bce_with_logits"] = "cross_entropy"
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    metrics: list[Metric] | None = Field(
        None, description="Default: accuracy for classification, mae otherwise."
    )
    optimizer: OptimizerSpec = OptimizerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    max_epochs: PositiveInt | None = 10
    max_steps: PositiveInt | None = None
    precision: Literal["32", "32-true", "bf16-mixed", "16-mixed"] | Literal[32] = "32"
    compile: StrictBool = False
    seed: NonNegativeInt = 0
    deterministic: StrictBool = Field(True, description="Deterministic algorithms (exact resume on CPU).")
    accelerator: str = "auto"
    devices: PositiveInt | Literal["auto"] | list[NonNegativeInt] = "auto"
    strategy: str = "auto"
    num_nodes: PositiveInt = 1
    gradient_clip_val: PositiveFloat | None = None
    accumulate_grad_batches: PositiveInt = 1
    early_stopping: EarlyStoppingSpec | None = None
    checkpoint_every_n_steps: PositiveInt | None = Field(
        None, description="Also checkpoint every N steps (last.ckpt), so a killed run resumes mid-epoch."
    )
    run_dir: str | None = Field(None, description="Default: runs/<name>-<timestamp>.")
    progress: Literal["rich", "tqdm", "none"] = "rich"
