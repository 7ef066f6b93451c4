"""The model summary, computed from shape rules alone: no parameters, no forward pass.

Parameters are counted on a module built on the meta device (exact, nothing allocated);
MACs, receptive fields and memory come from each layer type's analysis rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from netspec.graph import Layer, ref_target
from netspec.registry import LayerContext, Window
from netspec.spec import Spec

FLOAT_BYTES = 4  # float32 parameters and activations
INDEX_BYTES = 8  # int64 max-pool indices


class _Unknown:
    """A value a plugin gave no rule for: shown as unknown, never as 0."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field and jump (effective stride) per spatial dim, in input pixels."""

    size: tuple[Fraction, ...]
    jump: tuple[Fraction, ...]

    def through(self, window: Window) -> ReceptiveField:
        """r_out = r_in + (span − 1)·j_in;  j_out = j_in·stride."""
        return ReceptiveField(
            tuple(
                _bounded(r + (k - 1) * j) for r, k, j in zip(self.size, window.span, self.jump, strict=True)
            ),
            tuple(_bounded(j * s) for j, s in zip(self.jump, window.stride, strict=True)),
        )


MAX_DENOMINATOR = 2**32


def _bounded(x: Fraction) -> Fraction:
    """``x`` exactly, unless its denominator passed 2^32: then the nearest such fraction.

    Alternating resizes to coprime sizes (1009 → 997 → 1009 …) multiply denominators layer
    after layer; exact arithmetic then costs cubic time in the depth (3 s for 1,200 layers).
    Real networks (power-of-two strides) never reach the bound, so their fields stay exact.
    """
    return x if x.denominator <= MAX_DENOMINATOR else x.limit_denominator(MAX_DENOMINATOR)


@dataclass(frozen=True)
class LayerRow:
    index: int
    name: str
    type: str
    inputs: tuple[str, ...]
    output: tuple[int, ...]
    params: int
    trainable: int
    macs: int | _Unknown
    field: ReceptiveField | _Unknown | None  # None: undefined after this layer
    line: int | None
    explain: tuple[str, ...] = ()


@dataclass(frozen=True)
class Totals:
    params: int
    trainable: int
    buffers: int
    macs: int
    macs_complete: bool
    param_bytes: int
    activation_bytes: int
    training_bytes: int

    @property
    def non_trainable(self) -> int:
        return self.params - self.trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class Summary:
    name: str
    source: str
    input: tuple[int, ...]
    batch_size: int
    rows: list[LayerRow]
    outputs: list[tuple[str, tuple[int, ...]]]
    totals: Totals = field(repr=False)


def summarize(spec: Spec, batch_size: int = 1) -> Summary:
    """Every number of the summary table for ``spec`` at ``batch_size``."""
    counts, buffers = parameter_counts(spec)
    by_name = {layer.name: layer for layer in spec.layers}
    fields: dict[str, ReceptiveField | _Unknown | None] = {"input": _input_field(spec.input_shape)}
    rows = []
    for layer in spec.layers:
        ctx = layer.context({f: ref_target(by_name[t]) for f, t in layer.refs.items()}, layer.output_shape)
        fields[layer.name] = _field(layer, ctx, [fields[n] for n in layer.inputs])
        explain = layer.record.explain(layer.params, ctx) if layer.record.explain else []
        rows.append(
            LayerRow(
                layer.index,
                layer.name,
                layer.type,
                layer.inputs,
                layer.output_shape,
                counts[layer.name][0],
                counts[layer.name][1],
                _macs(layer, ctx),
                fields[layer.name],
                layer.line,
                tuple(explain),
            )
        )
    return Summary(
        spec.name,
        spec.source,
        spec.input_shape,
        batch_size,
        rows,
        [(name, spec.layer(name).output_shape) for name in spec.outputs],
        _totals(spec, rows, buffers, batch_size),
    )


def parameter_counts(spec: Spec) -> tuple[dict[str, tuple[int, int]], int]:
    """(all, trainable) parameters per layer, and the buffer count: exact, and nothing allocated."""
    import torch

    from netspec.builder import build

    with torch.device("meta"):
        model = build(spec)
    counts = {}
    for layer in spec.layers:
        params = list(model.get_submodule(layer.name).parameters())
        counts[layer.name] = (
            sum(p.numel() for p in params),
            sum(p.numel() for p in params if p.requires_grad),
        )
    return counts, sum(b.numel() for b in model.buffers())


def _macs(layer: Layer, ctx: LayerContext) -> int | _Unknown:
    return UNKNOWN if layer.record.macs is None else int(layer.record.macs(layer.params, ctx))


def total_macs(spec: Spec) -> int | None:
    """MACs per sample of the whole network, or None when some layer's cost is unknown."""
    by_name = {layer.name: layer for layer in spec.layers}
    total = 0
    for layer in spec.layers:
        ctx = layer.context({f: ref_target(by_name[t]) for f, t in layer.refs.items()}, layer.output_shape)
        macs = _macs(layer, ctx)
        if macs is UNKNOWN:
            return None
        total += macs
    return total


def _input_field(shape: tuple[int, ...]) -> ReceptiveField | None:
    rank = len(shape) - 1
    return ReceptiveField((Fraction(1),) * rank, (Fraction(1),) * rank) if rank >= 1 else None


def _field(layer: Layer, ctx: LayerContext, inputs: list) -> ReceptiveField | _Unknown | None:
    """Largest receptive field over the input paths, pushed through this layer's window."""
    if any(f is UNKNOWN for f in inputs) or layer.record.window is None:
        return UNKNOWN
    if any(f is None for f in inputs):
        return None
    window = layer.record.window(layer.params, ctx)
    if window is None or any(len(f.size) != len(window.span) for f in inputs):
        return None
    merged = ReceptiveField(
        tuple(max(sizes) for sizes in zip(*(f.size for f in inputs), strict=True)),
        tuple(max(jumps) for jumps in zip(*(f.jump for f in inputs), strict=True)),
    )
    return merged.through(window)


def _totals(spec: Spec, rows: list[LayerRow], buffers: int, batch: int) -> Totals:
    params = sum(r.params for r in rows)
    trainable = sum(r.trainable for r in rows)
    known = [r.macs for r in rows if not isinstance(r.macs, _Unknown)]
    activations = sum(math.prod(r.output) for r in rows) * FLOAT_BYTES
    activations += sum(
        math.prod(layer.output_shape) * INDEX_BYTES for layer in spec.layers if "indices" in layer.aux_outputs
    )
    activation_bytes = batch * (activations + math.prod(spec.input_shape) * FLOAT_BYTES)
    param_bytes = (params + buffers) * FLOAT_BYTES
    # weights + gradients + Adam's two moments for trainable ones + activations kept for backward
    training = param_bytes + 3 * trainable * FLOAT_BYTES + activation_bytes
    return Totals(
        params,
        trainable,
        buffers,
        sum(known),
        len(known) == len(rows),
        param_bytes,
        activation_bytes,
        training,
    )
