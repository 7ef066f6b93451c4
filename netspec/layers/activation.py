"""Element-wise activations (and softmax): shape-preserving, one table of torch modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, StrictInt, model_validator

from netspec.errors import ShapeError
from netspec.hookspecs import hookimpl
from netspec.params import Coefficient, LayerParams, NoParams, PositiveCoefficient, StrictBool
from netspec.registry import (
    LayerContext,
    LayerType,
    ParamCount,
    macs_per_element,
    no_parameters,
    pointwise_window,
)
from netspec.shapes import Shape, describe


class LeakyReluParams(LayerParams):
    negative_slope: Coefficient = 0.01


class EluParams(LayerParams):
    alpha: Coefficient = 1.0


class CeluParams(LayerParams):
    alpha: PositiveCoefficient = Field(1.0, description="CELU divides by alpha: it must be > 0.")


class GeluParams(LayerParams):
    approximate: Literal["none", "tanh"] = "none"


class HardtanhParams(LayerParams):
    min_val: Coefficient = -1.0
    max_val: Coefficient = 1.0

    @model_validator(mode="after")
    def _check_order(self):
        if self.min_val >= self.max_val:  # torch asserts it inside Hardtanh()
            raise ValueError(f"min_val {self.min_val} must be less than max_val {self.max_val}")
        return self


class SoftplusParams(LayerParams):
    beta: PositiveCoefficient = Field(1.0, description="Softplus divides by beta: it must be > 0.")
    threshold: Coefficient = 20.0


class PreluParams(LayerParams):
    per_channel: StrictBool = Field(
        False, description="One learnable slope per channel instead of one in all."
    )
    init: Coefficient = 0.25


class SoftmaxParams(LayerParams):
    dim: StrictInt = Field(
        0, description="Per-sample dimension (0 = channels); negative counts from the end."
    )


def _same(p: LayerParams, ctx: LayerContext) -> Shape:
    return ctx.input


def _softmax_rule(p: SoftmaxParams, ctx: LayerContext) -> Shape:
    rank = len(ctx.input)
    if not -rank <= p.dim < rank:
        raise ShapeError(
            f"dim {p.dim} is out of range for input {describe(ctx.input)}",
            hint=f"use a dim in {-rank}..{rank - 1} (per-sample; the batch is not counted)",
            field="dim",
        )
    return ctx.input


def _batch_dim(dim: int) -> int:
    """A per-sample dim as a batched-tensor dim."""
    return dim + 1 if dim >= 0 else dim


_SIMPLE = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "selu": "SELU",
    "silu": "SiLU",
    "mish": "Mish",
    "sigmoid": "Sigmoid",
    "hardsigmoid": "Hardsigmoid",
    "hardswish": "Hardswish",
    "tanh": "Tanh",
    "softsign": "Softsign",
}

# name → (params model, torch.nn class name, keyword arguments from params and context)
_WITH_PARAMS: dict[str, tuple[type[LayerParams], str, Callable[[LayerParams, LayerContext], dict]]] = {
    "leaky_relu": (LeakyReluParams, "LeakyReLU", lambda p, ctx: {"negative_slope": p.negative_slope}),
    "elu": (EluParams, "ELU", lambda p, ctx: {"alpha": p.alpha}),
    "celu": (CeluParams, "CELU", lambda p, ctx: {"alpha": p.alpha}),
    "gelu": (GeluParams, "GELU", lambda p, ctx: {"approximate": p.approximate}),
    "hardtanh": (HardtanhParams, "Hardtanh", lambda p, ctx: {"min_val": p.min_val, "max_val": p.max_val}),
    "softplus": (SoftplusParams, "Softplus", lambda p, ctx: {"beta": p.beta, "threshold": p.threshold}),
    "prelu": (
        PreluParams,
        "PReLU",
        lambda p, ctx: {"num_parameters": ctx.input[0] if p.per_channel else 1, "init": p.init},
    ),
    "softmax": (SoftmaxParams, "Softmax", lambda p, ctx: {"dim": _batch_dim(p.dim)}),
    "log_softmax": (SoftmaxParams, "LogSoftmax", lambda p, ctx: {"dim": _batch_dim(p.dim)}),
}


def _builder(class_name: str, kwargs: Callable[[LayerParams, LayerContext], dict]):
    def build(p: LayerParams, ctx: LayerContext):
        from torch import nn

        return getattr(nn, class_name)(**kwargs(p, ctx))

    return build


def _prelu_parameters(p: LayerParams, ctx: LayerContext) -> ParamCount:
    return ParamCount(ctx.input[0] if p.per_channel else 1)


def _record(name: str, params: type[LayerParams], class_name: str, kwargs) -> LayerType:
    rule = _softmax_rule if params is SoftmaxParams else _same
    return LayerType(
        name,
        params,
        rule,
        _builder(class_name, kwargs),
        macs=macs_per_element,
        window=pointwise_window,
        parameters=_prelu_parameters if name == "prelu" else no_parameters,
        summary=f"torch.nn.{class_name}, element-wise; keeps the shape."
        if params is not SoftmaxParams
        else f"torch.nn.{class_name} over a per-sample dim (default: channels).",
        examples=({"input": [3, 4, 5], "layers": [{"type": name}]},),
    )


@hookimpl
def netspec_register_layers() -> list[LayerType]:
    records = [_record(name, NoParams, cls, lambda p, ctx: {}) for name, cls in _SIMPLE.items()]
    records += [_record(name, *entry) for name, entry in _WITH_PARAMS.items()]
    return records
