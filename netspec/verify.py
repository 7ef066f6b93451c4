"""Check a built module against the inferred shapes: a plugin whose shape rule lies is named.

Every layer shape netspec reports comes from the layer type's shape rule; nothing runs the
module. A plugin whose rule declares one shape while its builder makes a module producing
another would pass ``build`` and ``--summary`` and fail (or silently broadcast) at training
time. So every build runs each plugin layer's module once, alone, on meta tensors of its
inferred input shapes, with its parameters and buffers swapped for meta copies: nothing is
allocated, no data is computed, the model's own tensors, buffers and RNG are untouched.

Built-in layer types are skipped by default: the test suite checks them against real modules
over thousands of configurations, and the first meta forward of some ops (relu among them)
imports ``torch._dynamo`` — about 2 s — which a built-in-only ``netspec build`` should not pay.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from netspec.errors import PluginError
from netspec.graph import Layer
from netspec.modules import layer_module
from netspec.spec import Spec

BATCH = 2  # not 1: batch norm refuses a batch of one in training mode, and squeezes show up


class _Unverifiable(Exception):
    """The module cannot run on the meta device (no meta kernel, tensors kept off the module)."""


def verify_shapes(spec: Spec, model: nn.Module, *, builtins: bool = False) -> None:
    """Raise :class:`PluginError` when a layer's module output disagrees with its inferred shape.

    Checks every layer of a non-built-in type (all layers with ``builtins=True``). Layers are
    looked up with ``model.get_submodule(layer.name)``, so dotted names of nested modules work.
    A module that cannot run on the meta device at all is not checked.
    """
    by_name = {layer.name: layer for layer in spec.layers}
    aux_cache: dict[str, tuple | None] = {}
    for layer in spec.layers:
        if builtins or not _is_builtin(spec, layer):
            _check_layer(spec, model, layer, by_name, aux_cache)


def _is_builtin(spec: Spec, layer: Layer) -> bool:
    return spec.registry.is_builtin(layer.type)


def _check_layer(spec: Spec, model: nn.Module, layer: Layer, by_name: dict, aux_cache: dict) -> None:
    extra = []
    for ref in layer.record.refs:
        aux = _aux_output(model, by_name[layer.refs[ref.field]], ref.output, aux_cache)
        if aux is None:
            return  # the layer it reads from cannot run on meta: nothing to compare with
        extra.append(aux)
    _check_output(spec, layer, layer_module(model, layer.name), extra)


def verify_module(spec: Spec, layer: Layer, module: nn.Module) -> None:
    """Check one layer's module built alone (as a summary does to count a plugin layer's
    parameters); a layer that reads another layer's auxiliary output is left to full builds."""
    if not layer.record.refs and not _is_builtin(spec, layer):
        _check_output(spec, layer, module, [])


def _check_output(spec: Spec, layer: Layer, module: nn.Module, extra: list) -> None:
    try:
        out = _run_on_meta(module, layer, extra)
    except _Unverifiable:
        return
    except Exception as exc:
        raise _lie(spec, layer, f"its module fails on inputs of the inferred shapes: {exc!r}") from None
    main = out[0] if layer.aux_outputs and isinstance(out, tuple) and out else out
    if not isinstance(main, torch.Tensor):
        raise _lie(spec, layer, f"its module returned {type(main).__name__}, not a tensor")
    real = tuple(main.shape)
    if real != (BATCH, *layer.output_shape):
        shown = list(real[1:]) if real[:1] == (BATCH,) else f"{list(real)} for a batch of {BATCH}"
        raise _lie(
            spec,
            layer,
            f"its shape rule says {list(layer.output_shape)} but its module outputs {shown}",
        )


def _aux_output(model: nn.Module, target: Layer, output: str, cache: dict) -> torch.Tensor | None:
    """A meta stand-in for ``target``'s auxiliary output (e.g. max-pool indices), or None."""
    if target.name not in cache:
        try:
            result = _run_on_meta(layer_module(model, target.name), target, [])
        except Exception:
            result = None
        cache[target.name] = result if isinstance(result, tuple) else None
    result = cache[target.name]
    order = [a for a in target.record.aux_outputs if a in target.aux_outputs]
    if result is None or output not in order or len(result) <= 1 + order.index(output):
        return None
    return result[1 + order.index(output)]


def _run_on_meta(module: nn.Module, layer: Layer, extra: Sequence[torch.Tensor]):
    """``module``'s output on meta inputs of ``layer``'s inferred input shapes, called as fx calls it."""
    inputs = [torch.empty((BATCH, *shape), device="meta") for shape in layer.input_shapes]
    args: list = [inputs] if layer.record.multi_input else inputs
    tensors = itertools.chain(module.named_parameters(), module.named_buffers())
    state = {name: torch.empty_like(tensor, device="meta") for name, tensor in tensors}
    try:
        with torch.no_grad(), torch.device("meta"), _nondeterministic_allowed():
            return functional_call(module, state, (*args, *extra))
    except NotImplementedError as exc:
        raise _Unverifiable from exc
    except RuntimeError as exc:
        if "device" in str(exc).lower():  # tensors kept outside parameters/buffers
            raise _Unverifiable from exc
        raise


@contextlib.contextmanager
def _nondeterministic_allowed() -> Iterator[None]:
    """Meta tensors compute nothing, so determinism cannot matter; but with
    ``torch.use_deterministic_algorithms(True)`` (Lightning's ``deterministic=True`` sets it for
    the whole process) ops such as max unpooling refuse to run even on meta."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _lie(spec: Spec, layer: Layer, what: str) -> PluginError:
    where = f"{spec.source}:{layer.line}: " if layer.line else f"{spec.source}: "
    return PluginError(
        f"{where}{layer.label}: layer type {layer.type!r} of plugin {spec.registry.owner_label(layer.type)} "
        f"disagrees with itself: {what} (checked on the meta device, batch of {BATCH}); "
        "the plugin's shape rule or builder is wrong: report it to its author",
        provides=(layer.type,),
    )
