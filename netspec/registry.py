"""The record a plugin registers for a layer type, and the context its rules receive."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from netspec.errors import ShapeError
from netspec.params import LayerParams
from netspec.shapes import Shape

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class RefTarget:
    """A layer that another layer refers to by name (an unpool's max pool)."""

    name: str
    type: str
    params: LayerParams
    inputs: tuple[Shape, ...]
    output: Shape


@dataclass(frozen=True)
class LayerContext:
    """What a shape rule or builder knows about a layer's surroundings.

    ``inputs`` are per-sample shapes, one per input. ``refs`` maps each reference field
    (e.g. unpool's ``indices``) to the layer it names. ``aux_outputs`` lists the extra
    outputs (e.g. ``indices``) some later layer consumes, so a builder returns them too.
    ``output`` is the inferred output shape (set for builders only).
    """

    inputs: tuple[Shape, ...]
    refs: Mapping[str, RefTarget] = field(default_factory=dict)
    aux_outputs: frozenset[str] = frozenset()
    output: Shape | None = None

    @property
    def input(self) -> Shape:
        """The single input of a one-input layer."""
        return self.inputs[0]


@dataclass(frozen=True)
class LayerRef:
    """A parameter that names another layer whose auxiliary output this layer consumes."""

    field: str  # parameter holding the layer name, e.g. "indices"
    output: str  # auxiliary output consumed, e.g. "indices"
    types: tuple[str, ...]  # layer types that provide it


@dataclass(frozen=True)
class Window:
    """How a layer's output positions see its input, per spatial dim, for receptive fields.

    Each output position depends on ``span`` consecutive input positions, and one step in
    the output moves ``stride`` input positions (a fraction for upsampling layers).
    """

    span: tuple[int, ...]
    stride: tuple[Fraction, ...]

    @classmethod
    def pointwise(cls, rank: int) -> Window:
        """Output position i sees exactly input position i (activations, norms, merges)."""
        return cls((1,) * rank, (Fraction(1),) * rank)


@dataclass(frozen=True)
class ParamCount:
    """A layer's parameters (all, and how many train) and buffer elements, as its module holds them."""

    total: int = 0
    trainable: int | None = None  # None: all of them
    buffers: int = 0

    @property
    def trained(self) -> int:
        return self.total if self.trainable is None else self.trainable


ShapeRule = Callable[[Any, LayerContext], Shape]
Builder = Callable[[Any, LayerContext], "nn.Module"]
MacsRule = Callable[[Any, LayerContext], int]
WindowRule = Callable[[Any, LayerContext], "Window | None"]
ExplainRule = Callable[[Any, LayerContext], list[str]]
ParamsRule = Callable[[Any, LayerContext], ParamCount]


@dataclass(frozen=True)
class LayerType:
    """One layer type: everything netspec needs to validate, infer, build and test it.

    Args:
        name: the ``type:`` value in a spec.
        params: pydantic model (a :class:`LayerParams` subclass) of its parameters.
        shape: pure rule ``(params, ctx) -> output shape``; raises :class:`ShapeError`.
        build: ``(params, ctx) -> nn.Module``; called only after ``shape`` accepted.
            One-input layers' modules take a tensor; multi-input layers' take a list.
        inputs: (min, max) number of inputs; ``max=None`` means any number.
        refs: parameters naming other layers (see :class:`LayerRef`).
        aux_outputs: extra outputs others may consume; the module returns
            ``(output, *requested aux outputs)`` when any is requested.
        examples: small specs (``input`` + ``layers``) whose last layer is of this type;
            the registry contract tests build and run every one of them.
        summary: one line for listings and the JSON schema.
        macs: ``(params, ctx) -> int``: multiply-accumulates per sample (``ctx.output``
            is set). None means unknown: summaries show it as unknown, never as 0.
        window: ``(params, ctx) -> Window | None`` for receptive fields; a rule that
            returns None marks the receptive field undefined after this layer (flatten,
            linear); no rule at all makes it unknown.
        explain: ``(params, ctx) -> lines``: the shape formula with the numbers filled in.
        parameters: ``(params, ctx) -> ParamCount``: what the built module holds, counted
            without building it (so summaries never import torch). None: netspec builds the
            module on the meta device to count, and the summary says so.
    """

    name: str
    params: type[LayerParams]
    shape: ShapeRule
    build: Builder
    inputs: tuple[int, int | None] = (1, 1)
    refs: tuple[LayerRef, ...] = ()
    aux_outputs: tuple[str, ...] = ()
    examples: tuple[Mapping[str, Any], ...] = ()
    summary: str = ""
    macs: MacsRule | None = None
    window: WindowRule | None = None
    explain: ExplainRule | None = None
    parameters: ParamsRule | None = None

    @property
    def multi_input(self) -> bool:
        return self.inputs[1] != 1


def spatial_rank(shape: Shape, layer: str, ranks: tuple[int, ...] = (1, 2, 3)) -> int:
    """Number of spatial dims of a ``[C, *spatial]`` input, checked against what the layer supports."""
    rank = len(shape) - 1
    if rank not in ranks:
        wanted = " or ".join(_RANK_FORMS[r] for r in ranks)
        raise ShapeError(
            f"{layer} needs a {wanted} input, got {list(shape)}",
            hint="check the layers before it (a flatten or linear too early?)",
        )
    return rank


_RANK_FORMS = {0: "[C]", 1: "[C, L]", 2: "[C, H, W]", 3: "[C, D, H, W]"}


def check_declared(declared: int | None, actual: int, field: str) -> None:
    """``in_channels``/``in_features`` are optional; when written, they must be right."""
    if declared is not None and declared != actual:
        raise ShapeError(
            f"{field} is {declared} but the input has {actual}",
            hint=f"remove {field} (netspec infers it) or set it to {actual}",
            field=field,
        )


# Ready-made analysis rules for the common cases, for built-ins and plugins alike.


def no_macs(params: Any, ctx: LayerContext) -> int:
    """Copies and views (flatten, reshape, concat, unpool): no arithmetic."""
    return 0


def macs_per_element(params: Any, ctx: LayerContext) -> int:
    """Element-wise layers (activations, norms): one operation per output element."""
    return math.prod(ctx.output or ())


def no_parameters(params: Any, ctx: LayerContext) -> ParamCount:
    """Layers without weights or buffers (activations, pools, merges, reshapes)."""
    return ParamCount()


def pointwise_window(params: Any, ctx: LayerContext) -> Window | None:
    """Output position i sees input position i; undefined once there is no spatial dim."""
    rank = len(ctx.inputs[0]) - 1
    return Window.pointwise(rank) if rank >= 1 else None


def undefined_window(params: Any, ctx: LayerContext) -> None:
    """Every output sees the whole input (flatten, linear, global pooling)."""
    return None
