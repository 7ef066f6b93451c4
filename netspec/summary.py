"""The model summary, computed from shape rules alone: no parameters, no forward pass.

Parameters, MACs, receptive fields and memory come from each layer type's analysis rules, so
a summary never imports torch; only a plugin layer type without a parameter rule is built
(alone, on the meta device) to be counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

from netspec.contracts import check_cost_contracts
from netspec.errors import Problem, SpecError
from netspec.graph import Layer, ref_target
from netspec.memory import MemoryEstimate, estimate, training_of
from netspec.registry import LayerContext, Window
from netspec.spec import Spec

FLOAT_BYTES = 4  # float32 parameters and activations
MAX_LAYER_ELEMENTS = 2**61  # float64 weights of this many elements would need 2^64 bytes
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
    memory: MemoryEstimate

    @property
    def training_bytes(self) -> int:
        """The training step's estimated peak (see :mod:`netspec.memory`)."""
        return self.memory.total

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
    built_to_count: tuple[str, ...] = ()  # layer types without a parameter rule, counted by building


def summarize(
    spec: Spec, batch_size: int = 1, *, precision: str | None = None, optimizer: str | None = None
) -> Summary:
    """Every number of the summary table for ``spec`` at ``batch_size``.

    The training-memory estimate assumes the spec's ``train:`` precision and optimizer
    (float32 and Adam without one); ``precision`` ("32", "bf16-mixed", "16-mixed") and
    ``optimizer`` ("sgd", "sgd:0.9" for momentum 0.9, "adam", "adamw") override them.
    """
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
    summary = Summary(
        spec.name,
        spec.source,
        spec.input_shape,
        batch_size,
        rows,
        [(name, spec.layer(name).output_shape) for name in spec.outputs],
        _totals(spec, rows, buffers, batch_size, counts, training_of(spec, precision, optimizer)),
        tuple(dict.fromkeys(spec.layer(n).type for n in counted_by_building(spec))),
    )
    totals = summary.totals
    check_cost_contracts(spec, totals.params, totals.macs if totals.macs_complete else None)
    return summary


def fold(summary: Summary, depth: int, blocks: dict[str, str], lines: dict[str, int] | None = None):
    """The rows with every block instance deeper than ``depth`` name parts shown as one row.

    A folded row sums parameters and MACs, shows the block's last layer's output and
    receptive field, takes its inputs from outside the block, and the line where the block was
    used (``lines``; else its first layer's). Totals do not change.
    """
    groups: dict[str, list[LayerRow]] = {}
    for row in summary.rows:
        parts = row.name.split(".")
        # the block instance or repeat `depth` parts deep, or the first one below it when that
        # prefix is no block (`m` of `m.0`, `m.1` named by an expression): only whole blocks fold
        owners = (".".join(parts[:n]) for n in range(depth, len(parts)))
        groups.setdefault(next((o for o in owners if o in blocks), row.name), []).append(row)
    folded = {m.name: key for key, members in groups.items() for m in members}
    rows = []
    for key, members in groups.items():
        if len(members) == 1 and members[0].name == key:
            rows.append(replace(members[0], inputs=tuple(folded.get(i, i) for i in members[0].inputs)))
            continue
        inside = {m.name for m in members}
        last = members[-1]
        macs = [m.macs for m in members]
        rows.append(
            LayerRow(
                members[0].index,
                key,
                blocks.get(key, "block"),
                tuple(dict.fromkeys(folded.get(i, i) for m in members for i in m.inputs if i not in inside)),
                last.output,
                sum(m.params for m in members),
                sum(m.trainable for m in members),
                UNKNOWN if any(m is UNKNOWN for m in macs) else sum(macs),
                last.field,
                (lines or {}).get(key, members[0].line),
                tuple(line for m in members for line in m.explain),
            )
        )
    return Summary(
        summary.name, summary.source, summary.input, summary.batch_size, rows, summary.outputs, summary.totals
    )


def parameter_counts(spec: Spec) -> tuple[dict[str, tuple[int, int]], int]:
    """(all, trainable) parameters per layer, and the buffer count: exact, nothing allocated.

    Each layer type's ``parameters`` rule counts without torch; a layer whose type has no
    rule (a plugin's) is built alone on the meta device (see :func:`counted_by_building`).
    """
    counts: dict[str, tuple[int, int]] = {}
    buffers = 0
    by_name = {layer.name: layer for layer in spec.layers}
    for layer in spec.layers:
        ctx = layer.context({f: ref_target(by_name[t]) for f, t in layer.refs.items()}, layer.output_shape)
        if layer.record.parameters is not None:
            count = layer.record.parameters(layer.params, ctx)
            if count.total + count.buffers > MAX_LAYER_ELEMENTS:
                raise SpecError([_too_many_parameters(spec, layer, count.total + count.buffers)])
            counts[layer.name] = (count.total, count.trained)
            buffers += count.buffers
        else:
            counts[layer.name], extra = _count_by_building(spec, layer, ctx)
            buffers += extra
    return counts, buffers


def _too_many_parameters(spec: Spec, layer: Layer, elements: int) -> Problem:
    return spec.document.problem(
        f"this layer would hold {elements:,} parameter and buffer elements, more than tensors can "
        "hold (their size in bytes must fit in 64 bits)",
        ("layers", layer.index),
        layer=layer.label,
        hint="use fewer channels or features",
    )


def counted_by_building(spec: Spec) -> list[str]:
    """Layers whose type gives no parameter rule: the summary says they were built to count."""
    return [layer.name for layer in spec.layers if layer.record.parameters is None]


def _count_by_building(spec: Spec, layer: Layer, ctx: LayerContext) -> tuple[tuple[int, int], int]:
    """Build the layer alone on the meta device to count it — and, since it is built, check it."""
    import torch

    from netspec.builder import build_module
    from netspec.verify import verify_module

    with torch.device("meta"):
        module = build_module(spec, layer, ctx)
    verify_module(spec, layer, module)
    params = list(module.parameters())
    counts = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
    return counts, sum(b.numel() for b in module.buffers())


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


def _totals(spec: Spec, rows: list[LayerRow], buffers: int, batch: int, counts, training) -> Totals:
    params = sum(r.params for r in rows)
    trainable = sum(r.trainable for r in rows)
    known = [r.macs for r in rows if not isinstance(r.macs, _Unknown)]
    activations = sum(math.prod(r.output) for r in rows) * FLOAT_BYTES
    activations += sum(
        math.prod(layer.output_shape) * INDEX_BYTES for layer in spec.layers if "indices" in layer.aux_outputs
    )
    activation_bytes = batch * (activations + math.prod(spec.input_shape) * FLOAT_BYTES)
    param_bytes = (params + buffers) * FLOAT_BYTES
    return Totals(
        params,
        trainable,
        buffers,
        sum(known),
        len(known) == len(rows),
        param_bytes,
        activation_bytes,
        estimate(spec, counts, buffers, batch, training),
    )
