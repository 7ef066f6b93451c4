"""Training-memory estimate: a torch-free replay of one training step's tensor lifetimes.

What one step holds at its peak (what ``torch.cuda.max_memory_allocated`` counts): the
weights, the optimizer's state, the tensors each layer keeps for its backward pass, the
gradients and the temporaries of the backward pass and the optimizer step. The estimate walks
the layers forward (which tensors stay alive: the ones some layer saved for backward), then
backward in reverse order (each layer's backward makes its inputs' gradients and its weights'
gradients, then frees what it saved and its output's gradient), then the optimizer step; the
largest total on the way is the estimate.

What a layer saves comes from its type's ``memory`` rule (:class:`netspec.registry.Memory`);
the built-in types' rules are in :data:`BUILTIN`, written from PyTorch's autograd formulas
(``derivatives.yaml``): ReLU and sigmoid keep their output, convolutions and most other
activations their input, batch norm its input (and per-channel mean and inverse std), dropout
a one-byte mask, max pooling its input and int64 indices. Under ``bf16-mixed`` (autocast)
convolutions and linear layers compute in bfloat16: their outputs are bfloat16, and they keep
bfloat16 copies of float32 inputs and of their weights; other layers keep their input's type;
softmax, layer norm and the loss run in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netspec.graph import ref_target
from netspec.layers.norm import normalised
from netspec.registry import LayerContext, Memory

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
OPTIMIZERS = ("sgd", "adam", "adamw")
INDEX_BYTES = 8  # int64 max-pool indices
MASK_BYTES = 1  # bool dropout masks
FP32 = 4


TRAIN_SECTION = "the spec's train: section"


@dataclass(frozen=True)
class Training:
    """How the network is trained, as far as memory goes."""

    precision: str = "32"  # "32", "bf16-mixed" or "16-mixed" (autocast; float32 weights)
    optimizer: str = "adam"  # "sgd", "adam" or "adamw"
    momentum: float = 0.0  # SGD only
    nesterov: bool = False
    weight_decay: float = 0.0
    source: str = "from netspec's defaults"  # where precision and optimizer came from

    @property
    def mixed(self) -> bool:
        return self.precision != "32"

    @property
    def state_per_weight(self) -> int:
        """Optimizer state tensors per trainable weight: Adam's two moments, SGD's momentum buffer."""
        if self.optimizer in ("adam", "adamw"):
            return 2
        return 1 if self.momentum else 0

    def describe(self) -> str:
        opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[self.optimizer]
        if self.optimizer == "sgd":
            nesterov = " Nesterov" if self.nesterov else ""
            opt += f" with{nesterov} momentum {self.momentum:g}" if self.momentum else " without momentum"
        if self.weight_decay:
            opt += f", weight decay {self.weight_decay:g}"
        prec = "float32" if not self.mixed else f"{self.precision} autocast (float32 weights)"
        return f"{prec}, {opt}"


def training_of(spec: Any, precision: str | None = None, optimizer: str | None = None) -> Training:
    """The spec's ``train:`` precision and optimizer (defaults: float32, Adam), with overrides."""
    train = getattr(spec.model, "train", None)
    found = Training()
    default = found.source.removeprefix("from ")
    sources = [default, default]  # of the precision, of the optimizer
    if train is not None:
        opt = train.optimizer
        found = Training(
            precision=_precision(train.precision),
            optimizer=opt.name,
            momentum=float(opt.momentum),
            nesterov=bool(opt.nesterov),
            weight_decay=float(opt.weight_decay),
        )
        # a train: section that leaves a value out trains with netspec's default: say that
        written = train.model_fields_set
        sources = [TRAIN_SECTION if key in written else default for key in ("precision", "optimizer")]
    if precision is not None:
        found = Training(**{**found.__dict__, "precision": _precision(precision)})
        sources[0] = "the options given"
    if optimizer is not None:  # replaces train.optimizer: momentum as given, no Nesterov, no decay
        name, _, momentum = optimizer.partition(":")
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected sgd, sgd:MOMENTUM, adam or adamw")
        changes = {
            "optimizer": name,
            "momentum": float(momentum or 0.0),
            "nesterov": False,
            "weight_decay": 0.0,
        }
        found = Training(**{**found.__dict__, **changes})
        sources[1] = "the options given"
    same = sources[0] == sources[1]
    source = f"from {sources[0]}" if same else f"precision from {sources[0]}, optimizer from {sources[1]}"
    return Training(**{**found.__dict__, "source": source})


def _precision(value: Any) -> str:
    text = str(value)
    if text in ("32", "32-true"):
        return "32"
    if text in PRECISIONS:
        return text
    raise ValueError(f"unknown precision {value!r}; expected 32, bf16-mixed or 16-mixed")


@dataclass(frozen=True)
class MemoryEstimate:
    """The training step's peak, in bytes, split into what is alive at that moment."""

    training: Training
    batch_size: int
    weights: int  # parameters and buffers, float32
    gradients: int  # weight gradients alive at the peak
    optimizer_state: int
    activations: int  # tensors saved for backward still alive at the peak, with the batch
    workspace: int  # activation gradients and temporaries at the peak
    peak_at: str  # "backward through LAYER" or "optimizer step"
    saved_for_backward: int  # everything the forward pass keeps, with the batch (end of forward)
    assumptions: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.workspace


# ---- the built-in layer types' rules


def _saves_input(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_input=True)


def _saves_output(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_output=True)


def _saves_nothing(p: Any, ctx: LayerContext) -> Memory:
    return Memory()


def _view(p: Any, ctx: LayerContext) -> Memory:
    return Memory(view=True, passes_gradient=True)


def _passes(p: Any, ctx: LayerContext) -> Memory:
    return Memory(passes_gradient=True)  # add; concat's input gradients are slices of its output's


def _conv(p: Any, ctx: LayerContext) -> Memory:
    # a padding mode other than zeros pads a copy of the input first: that copy is what is kept
    padded = getattr(p, "padding_mode", "zeros") != "zeros"
    extra = ((math.prod(ctx.input), "activation"),) if padded else ()
    return Memory(saves_input=not padded, extra=extra, casts=True)


def _separable(p: Any, ctx: LayerContext) -> Memory:
    # depthwise then pointwise: the depthwise output (C·multiplier channels) is kept too
    assert ctx.output is not None
    mid = ctx.input[0] * p.multiplier * math.prod(ctx.output[1:])
    return Memory(saves_input=True, extra=((mid, "activation"),), casts=True)


def _per_channel_stats(p: Any, ctx: LayerContext) -> Memory:
    # batch norm: its input, and the batch mean and inverse std per channel (float32)
    return Memory(saves_input=True, fixed=2 * ctx.input[0] * FP32)


def _instancenorm(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_input=True, extra=((2 * ctx.input[0], "float32"),))


def _groupnorm(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_input=True, extra=((2 * p.num_groups, "float32"),))


def _layernorm(p: Any, ctx: LayerContext) -> Memory:
    rows = math.prod(ctx.input) // math.prod(normalised(p, ctx.input))  # a mean and 1/std each
    return Memory(saves_input=True, extra=((2 * rows, "float32"),), float32=True)


def _maxpool(p: Any, ctx: LayerContext) -> Memory:
    assert ctx.output is not None
    return Memory(saves_input=True, extra=((math.prod(ctx.output), "index"),))


def _dropout(p: Any, ctx: LayerContext) -> Memory:
    return Memory(extra=((math.prod(ctx.input), "mask"),))


def _spatial_dropout(p: Any, ctx: LayerContext) -> Memory:
    return Memory(extra=((ctx.input[0], "activation"),))  # one multiplier per channel


def _stochastic_depth(p: Any, ctx: LayerContext) -> Memory:
    return Memory(extra=((1, "activation"),))  # the multiplier it keeps: one per sample (row mode)


def _slice(p: Any, ctx: LayerContext) -> Memory:
    return Memory(view=True)  # a view; its backward writes into a zero gradient of the input's size


def _global_max(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_input=True, saves_output=True)


def _softmax(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_output=True, float32=True)


def _mul(p: Any, ctx: LayerContext) -> Memory:
    return Memory(saves_input=True)


def _layer_scale(p: Any, ctx: LayerContext) -> Memory:
    # γ · x keeps x for γ's gradient, which is (grad · x) summed: a product of the output's size.
    # γ is float32, so the product of a half x is float32 (autocast leaves a multiply alone)
    return Memory(saves_input=True, promotes=True, backward_temporary=((math.prod(ctx.input), "activation"),))


def _softsign(p: Any, ctx: LayerContext) -> Memory:
    # x / (1 + |x|), composed: keeps x and 1 + |x|
    return Memory(saves_input=True, extra=((math.prod(ctx.input), "activation"),))


BUILTIN: Mapping[str, Any] = {
    "conv": _conv,
    "depthwise": _conv,
    "separable": _separable,
    "tconv": _conv,
    "linear": lambda p, ctx: Memory(saves_input=True, casts=True),
    "prelu": lambda p, ctx: Memory(saves_input=True, casts=True),
    **dict.fromkeys(("relu", "sigmoid", "tanh"), _saves_output),
    **dict.fromkeys(
        (
            "relu6",
            "hardtanh",
            "leaky_relu",
            "elu",
            "celu",
            "selu",
            "silu",
            "gelu",
            "mish",
            "hardsigmoid",
            "hardswish",
            "softplus",
        ),
        _saves_input,
    ),
    "softsign": _softsign,
    "softmax": _softmax,
    "log_softmax": _softmax,
    "batchnorm": _per_channel_stats,
    "instancenorm": _instancenorm,
    "groupnorm": _groupnorm,
    "layernorm": _layernorm,
    "maxpool": _maxpool,
    "adaptive_maxpool": _maxpool,
    "avgpool": _saves_input,
    "adaptive_avgpool": _saves_input,
    "global_avgpool": _saves_nothing,
    "global_maxpool": _global_max,
    "dropout": _dropout,
    "spatial_dropout": _spatial_dropout,
    "stochastic_depth": _stochastic_depth,
    "slice": _slice,
    "channel_shuffle": _saves_nothing,  # a copy in the new order; its backward needs nothing
    **dict.fromkeys(("flatten", "reshape", "identity"), _view),
    **dict.fromkeys(("pixel_shuffle", "pixel_unshuffle", "upsample", "unpool"), _saves_nothing),
    **dict.fromkeys(("add", "concat"), _passes),
    "mul": _mul,
    "layer_scale": _layer_scale,
}

# a plugin layer type without a memory rule: assumed to keep its input and its output
UNKNOWN_RULE = Memory(saves_input=True, saves_output=True)


def _kind_bytes(kind: str, activation: int) -> int:
    """Bytes per element of a rule's ``extra`` or ``backward_temporary`` entry."""
    return {"activation": activation, "float32": FP32, "index": INDEX_BYTES, "mask": MASK_BYTES}[kind]


def layer_memory(layer: Any, ctx: LayerContext) -> tuple[Memory, bool]:
    """The layer's memory rule applied, and whether its type gives one."""
    if layer.record.memory is not None:
        return layer.record.memory(layer.params, ctx), True
    if layer.type in BUILTIN:
        return BUILTIN[layer.type](layer.params, ctx), True
    return UNKNOWN_RULE, False


# ---- the replay


class _Replay:
    """Bytes alive during one training step, and the largest total seen with its parts."""

    def __init__(self, base: int, activations: dict[str, int]):
        self.base = base  # weights and optimizer state: alive throughout
        self.sizes = activations  # activation storages alive: name → bytes
        self.activations = sum(activations.values())
        self.grads: dict[int, list[int]] = {}  # gradient storage id → [bytes, references]
        self.grad_bytes = 0
        self.weight_grads = 0
        self.temporary = 0
        self.peak = (0, "", 0, 0, 0)  # total, where, weight gradients, activations, workspace
        self._ids = 0

    def check(self, where: str) -> None:
        work = self.grad_bytes + self.temporary
        total = self.base + self.weight_grads + self.activations + work
        if total > self.peak[0]:
            self.peak = (total, where, self.weight_grads, self.activations, work)

    def free(self, name: str) -> None:
        self.activations -= self.sizes.pop(name, 0)

    def new_grad(self, size: int) -> int:
        self._ids += 1
        self.grads[self._ids] = [size, 1]
        self.grad_bytes += size
        return self._ids

    def drop_grad(self, gid: int) -> None:
        self.grads[gid][1] -= 1
        if not self.grads[gid][1]:
            self.grad_bytes -= self.grads.pop(gid)[0]


def estimate(
    spec: Any, param_counts: Mapping[str, tuple[int, int]], buffers: int, batch: int, training: Training
) -> MemoryEstimate:
    """The peak of one training step of ``spec`` at ``batch`` (see the module docstring)."""
    half = 2 if training.mixed else FP32
    by_name = {layer.name: layer for layer in spec.layers}
    weights = (sum(c[0] for c in param_counts.values()) + buffers) * FP32
    trainable = sum(c[1] for c in param_counts.values())
    state = trainable * training.state_per_weight * FP32
    rules: dict[str, Memory] = {}
    unruled: list[str] = []
    dtype: dict[str, int] = {"input": FP32}  # bytes per element of each tensor
    storage: dict[str, str] = {"input": "input"}  # tensor → the storage it lives in (views share)
    numel = {"input": math.prod(spec.input_shape)}
    saved: dict[str, list[str]] = {}  # layer → storages it keeps for backward
    users: dict[str, int] = {}  # storage → layers still to run backward that keep it
    made: dict[str, int] = {}  # every storage the forward pass makes: name → bytes
    keep_forever = {"input"}  # the batch and the outputs (the training step holds them)
    made["input"] = batch * numel["input"] * FP32
    cast_weights = 0
    for layer in spec.layers:
        ctx = layer.context({f: ref_target(by_name[t]) for f, t in layer.refs.items()}, layer.output_shape)
        rule, known = layer_memory(layer, ctx)
        if not known:
            unruled.append(layer.type)
        rules[layer.name] = rule
        cast = half if rule.casts and training.mixed else FP32 if rule.float32 else None
        out_bytes = cast or (FP32 if rule.promotes else max(dtype[i] for i in layer.inputs))
        dtype[layer.name] = out_bytes
        numel[layer.name] = math.prod(layer.output_shape)
        if rule.view:
            storage[layer.name] = storage[layer.inputs[0]]
        else:
            storage[layer.name] = layer.name
            made[layer.name] = batch * numel[layer.name] * out_bytes
        keep: list[str] = []
        if rule.saves_input:
            for i in layer.inputs:
                if cast and cast != dtype[i]:  # autocast keeps a converted copy, not the input itself
                    made[f"{layer.name}<{i}"] = batch * numel[i] * cast
                    keep.append(f"{layer.name}<{i}")
                else:
                    keep.append(storage[i])
        if rule.saves_output:
            keep.append(storage[layer.name])
        for n, (elements, kind) in enumerate(rule.extra):
            made[f"{layer.name}+{n}"] = batch * elements * _kind_bytes(kind, out_bytes)
            keep.append(f"{layer.name}+{n}")
        if rule.fixed:
            made[f"{layer.name}+fixed"] = rule.fixed
            keep.append(f"{layer.name}+fixed")
        if rule.casts and training.mixed:  # the half-precision copy of its weights (autocast's cache)
            made[f"{layer.name}+weights"] = param_counts[layer.name][0] * half
            cast_weights += param_counts[layer.name][0]
            keep.append(f"{layer.name}+weights")
        saved[layer.name] = list(dict.fromkeys(keep))
        for name in saved[layer.name]:
            users[name] = users.get(name, 0) + 1

    # the loss keeps the outputs in float32 (a copy when autocast made them half) and a target each
    loss_copies = []
    for out in spec.outputs:
        keep_forever |= {storage[out], f"target:{out}"}
        made[f"target:{out}"] = batch * numel[out] * FP32
        if dtype[out] != FP32:
            made[f"loss<{out}"] = batch * numel[out] * FP32
            loss_copies.append(f"loss<{out}")
    alive = keep_forever | set(users) | set(loss_copies)
    run = _Replay(weights + state, {name: made[name] for name in alive})
    saved_all = run.activations
    run.check("the end of the forward pass")

    # backward: the loss's gradients (float32: difference and result), cast back to half outputs
    grad: dict[str, list[int]] = {}
    for out in spec.outputs:
        size = batch * numel[out] * FP32
        run.temporary = size
        gid = run.new_grad(size)
        run.check("the loss's backward")
        run.temporary = 0
        if dtype[out] != FP32:
            cast_id = run.new_grad(batch * numel[out] * dtype[out])
            run.check("the loss's backward")
            run.drop_grad(gid)
            gid = cast_id
        grad[out] = [gid]
    for copy in loss_copies:
        run.free(copy)

    def receive(tensor: str, gid: int) -> None:
        """A gradient for ``tensor``; a second one is summed as autograd's InputBuffer sums it:
        into whichever of the two no one else holds (in place), else into a new tensor."""
        held = grad.setdefault(tensor, [])
        held.append(gid)
        if len(held) > 1:
            alone = [g for g in held if run.grads[g][1] == 1]
            if alone:
                keep = alone[0]
            else:
                keep = run.new_grad(batch * numel[tensor] * dtype[tensor])
                run.check(f"summing gradients of {tensor}")
            for old in held:
                if old != keep:
                    run.drop_grad(old)
            grad[tensor] = [keep]

    def release(layer: str) -> None:
        for name in saved[layer]:
            users[name] -= 1
            if not users[name] and name not in keep_forever:
                run.free(name)

    for layer in reversed(spec.layers):
        rule = rules[layer.name]
        trained = param_counts[layer.name][1]
        where = f"backward through {layer.name}"
        needs = [i for i in layer.inputs if i != "input"]  # the batch needs no gradient
        incoming = grad.pop(layer.name, [])
        released = False
        if rule.passes_gradient:
            for i in needs:
                for gid in incoming:
                    run.grads[gid][1] += 1
                    receive(i, gid)
        else:
            new = [(i, run.new_grad(batch * numel[i] * dtype[i])) for i in needs]
            made_here = sum(  # what its backward makes and drops (layer_scale: grad · x)
                batch * n * _kind_bytes(kind, dtype[layer.name]) for n, kind in rule.backward_temporary
            )
            if training.mixed and rule.casts:
                # the weight gradient comes out in half precision; the layer's saved tensors
                # (its half weights too) are freed before it is cast to float32
                run.temporary = trained * half + made_here
                run.check(where)
                release(layer.name)
                released = True
                run.weight_grads += trained * FP32
                run.check(where)
            else:
                run.temporary = made_here
                run.weight_grads += trained * FP32
                run.check(where)
            run.temporary = 0
            for i, gid in new:
                receive(i, gid)
        for gid in incoming:
            run.drop_grad(gid)
        if not released:
            release(layer.name)
    # the optimizer step: every weight gradient and the state; netspec's fused step (one kernel
    # per tensor, in place) makes no weight-sized temporaries
    for gid in list(run.grads):
        run.grad_bytes -= run.grads.pop(gid)[0]
    run.check("the optimizer step")

    _, where, grads, acts, work = run.peak
    assumptions = [
        f"{training.describe()} ({training.source})",
        f"batch of {batch}: float32 inputs, one float32 target per output element",
        "netspec's fused optimizer step (in place; PyTorch's default on devices without fused kernels "
        "adds one or two weight-sized temporaries); weights, gradients and optimizer state in float32",
        "tensors live as long as autograd keeps them; not counted: allocator rounding, scratch memory "
        "inside one kernel (cuDNN/oneDNN convolution workspaces), cuBLAS's workspace (a few MiB per "
        "stream, 32 MiB on Hopper GPUs) and the CUDA context",
    ]
    if training.mixed:
        assumptions.append(
            f"{training.precision}: convolutions and linear layers compute in half precision and keep "
            f"half copies of their float32 inputs and of their {cast_weights:,} weights; other layers "
            "keep their input's type; softmax, layer norm and the loss run in float32"
        )
    if unruled:
        assumptions.append(
            f"layer types without a memory rule ({', '.join(dict.fromkeys(unruled))}): assumed to keep "
            "their input and output"
        )
    return MemoryEstimate(
        training, batch, weights, grads, state, acts, work, where, saved_all, tuple(assumptions)
    )
