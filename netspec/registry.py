"""The record a plugin registers for a layer type, and the context its rules receive."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from netspec.errors import PluginError, ShapeError
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


@dataclass(frozen=True)
class Memory:
    """What a layer keeps for its backward pass, for training-memory estimates (per sample).

    ``saves_input``/``saves_output``: autograd keeps the layer's inputs or its output (the
    same storage as that tensor: it stays alive until this layer's backward). ``view``: the
    output shares the input's storage (flatten, reshape). ``passes_gradient``: the backward
    hands its output's gradient to every input without computing anything (add, concat,
    views). ``extra``: new tensors kept, as (elements per sample, kind) with kind
    ``"activation"`` (the layer's output type), ``"float32"``, ``"index"`` (int64) or
    ``"mask"`` (1 byte); ``fixed``: bytes kept whatever the batch. ``casts``: autocast runs it
    in half precision (convolutions, linear); ``float32``: autocast runs it in float32;
    ``promotes``: its output is float32 whatever its input (a float32 parameter times a half
    input), the input kept as it is. ``backward_temporary``: tensors its backward makes and
    drops, as ``extra`` (a parameter's gradient summed from a product the output's size).
    """

    saves_input: bool = False
    saves_output: bool = False
    view: bool = False
    passes_gradient: bool = False
    extra: tuple[tuple[int, str], ...] = ()
    fixed: int = 0
    casts: bool = False
    float32: bool = False
    promotes: bool = False
    backward_temporary: tuple[tuple[int, str], ...] = ()


ShapeRule = Callable[[Any, LayerContext], Shape]
Builder = Callable[[Any, LayerContext], "nn.Module"]
MacsRule = Callable[[Any, LayerContext], int]
WindowRule = Callable[[Any, LayerContext], "Window | None"]
ExplainRule = Callable[[Any, LayerContext], list[str]]
ParamsRule = Callable[[Any, LayerContext], ParamCount]
MemoryRule = Callable[[Any, LayerContext], Memory]


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
        memory: ``(params, ctx) -> Memory``: what the layer keeps for backward, for the
            training-memory estimate (``ctx.output`` is set). None: the built-in rule of a
            built-in type, else the estimate assumes it keeps its input and output, and says so.
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
    memory: MemoryRule | None = None

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


# What a plugin's records must look like. A record is a plain dataclass, so nothing stops a
# plugin from putting a string where a rule belongs; checking here turns a crash in some
# later command into one message naming the plugin, at load time.

TYPE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
RESERVED_LAYER_KEYS = ("type", "name", "from")


def check_layer_type(record: LayerType) -> None:
    """Raise :class:`PluginError` saying which field of ``record`` is malformed.

    ``name`` and ``from`` belong to every layer and ``type`` is added by netspec, so a params
    model may not define ``type`` at all, nor ``name``/``from`` with another type, alias or
    default than :class:`LayerParams` gives them.
    """
    where = f"layer type {getattr(record, 'name', '?')!r}"
    _check_type_name(record.name, where)
    if not (isinstance(record.params, type) and issubclass(record.params, LayerParams)):
        raise PluginError(f"{where}: params is {record.params!r}, not a netspec.LayerParams subclass")
    _check_reserved_keys(record.params, where)
    for attr in ("shape", "build"):
        if not callable(getattr(record, attr)):
            raise PluginError(f"{where}: {attr} is {getattr(record, attr)!r}, not a function")
    for attr in ("macs", "window", "explain", "memory"):
        value = getattr(record, attr)
        if value is not None and not callable(value):
            raise PluginError(f"{where}: {attr} is {value!r}, not a function or None")
    _check_inputs(record.inputs, where)
    _check_refs(record, where)
    if not _strings(record.aux_outputs):
        raise PluginError(f"{where}: aux_outputs is {record.aux_outputs!r}, not a tuple of names")
    if not isinstance(record.summary, str):
        raise PluginError(f"{where}: summary is {record.summary!r}, not a string")
    _check_examples(record.examples, where)


def _check_type_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not TYPE_NAME_RE.match(name):
        raise PluginError(
            f"{where}: its name must be a string of letters, digits, '_' or '-' starting with a "
            f"letter (at most 64 characters); got {name!r}"
        )


def _check_reserved_keys(params: type[LayerParams], where: str) -> None:
    base = LayerParams.model_fields
    for field_name, info in params.model_fields.items():
        keys = {field_name, info.alias, info.validation_alias} & set(RESERVED_LAYER_KEYS)
        if not keys:
            continue
        inherited = base.get(field_name)
        same = inherited is not None and all(
            getattr(info, attr) == getattr(inherited, attr)
            for attr in ("annotation", "alias", "validation_alias", "default")
        )
        if not same:
            raise PluginError(
                f"{where}: its params model {params.__name__} redefines the reserved key "
                f"{sorted(keys)[0]!r} (field {field_name!r}); 'type' is set by netspec and "
                "'name'/'from' are inherited from netspec.LayerParams: rename the field"
            )


def _check_inputs(inputs: Any, where: str) -> None:
    ok = isinstance(inputs, tuple | list) and len(inputs) == 2 and _is_count(inputs[0]) and inputs[0] >= 1
    if ok and inputs[1] is not None:
        ok = _is_count(inputs[1]) and inputs[1] >= inputs[0]
    if not ok:
        raise PluginError(
            f"{where}: inputs is {inputs!r}; expected a pair (min, max) with 1 <= min <= max, "
            "max an int or None (any number)"
        )


def _check_refs(record: LayerType, where: str) -> None:
    refs = record.refs
    if not isinstance(refs, tuple | list) or not all(isinstance(r, LayerRef) for r in refs):
        raise PluginError(f"{where}: refs is {refs!r}, not a tuple of netspec LayerRef records")
    for ref in refs:
        if not (isinstance(ref.field, str) and isinstance(ref.output, str) and _strings(ref.types)):
            raise PluginError(f"{where}: malformed LayerRef {ref!r}")
        if ref.field not in record.params.model_fields:
            raise PluginError(f"{where}: refs name the field {ref.field!r}, which its params model lacks")


def _check_examples(examples: Any, where: str) -> None:
    def valid(example: Any) -> bool:
        return (
            isinstance(example, Mapping)
            and isinstance(example.get("input"), list | tuple)
            and isinstance(example.get("layers"), list | tuple)
            and bool(example["layers"])
            and all(isinstance(layer, Mapping) for layer in example["layers"])
        )

    if not isinstance(examples, tuple | list) or not all(valid(e) for e in examples):
        raise PluginError(
            f"{where}: examples must be a tuple of small specs, each a mapping with an "
            f"'input' list and a non-empty 'layers' list of mappings; got {examples!r:.200}"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(values: Any) -> bool:
    return isinstance(values, tuple | list) and all(isinstance(v, str) for v in values)
