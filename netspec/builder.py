"""Spec → ``torch.fx.GraphModule``: generated forward code, no per-call interpretation."""

from __future__ import annotations

import math
import operator
import re

import torch
from torch import fx, nn

from netspec.errors import PluginError, SpecError
from netspec.graph import ref_target
from netspec.modules import LayerScale
from netspec.params import INPUT
from netspec.spec import Spec
from netspec.verify import verify_shapes

LAYER = "netspec_layer"  # a graph node's meta key: the layer whose output the node is


def build(spec: Spec) -> fx.GraphModule:
    """Build the network of ``spec``; its submodules are named after the layers.

    The module takes a batched tensor ``[N, *spec.input]`` and returns one tensor, or a
    tuple when the spec lists several ``outputs``. Build on the meta device
    (``with torch.device("meta"):``) to count parameters without allocating them.
    """
    graph = fx.Graph()
    values: dict[str, fx.Node] = {INPUT: graph.placeholder("x", type_expr=torch.Tensor)}
    aux: dict[tuple[str, str], fx.Node] = {}
    modules: dict[str, nn.Module] = {}
    held: dict[str, nn.Parameter] = {}  # layer_scale's γ: a parameter of the enclosing block
    by_name = {layer.name: layer for layer in spec.layers}
    for layer in spec.layers:
        targets = {f: ref_target(by_name[t]) for f, t in layer.refs.items()}
        module = _build_module(spec, layer, targets)
        args: list = [values[n] for n in layer.inputs]
        if isinstance(module, LayerScale):
            held[layer.name] = module.scale
            node = graph.call_function(operator.mul, (graph.get_attr(layer.name), args[0]))
            node.meta[LAYER] = layer.name
            values[layer.name] = node
            continue
        modules[layer.name] = module
        if layer.record.multi_input:
            args = [args]
        args += [aux[(t, ref.output)] for ref in layer.record.refs for t in [layer.refs[ref.field]]]
        node = graph.call_module(layer.name, tuple(args))
        node.meta[LAYER] = layer.name
        if layer.aux_outputs:  # the module returns (output, *aux outputs); name each part
            values[layer.name] = graph.create_node(
                "call_function", operator.getitem, (node, 0), name=f"{layer.name}_out"
            )
            order = [a for a in layer.record.aux_outputs if a in layer.aux_outputs]
            for i, name in enumerate(order, start=1):
                aux[(layer.name, name)] = graph.create_node(
                    "call_function", operator.getitem, (node, i), name=f"{layer.name}_{name}"
                )
        else:
            values[layer.name] = node
    outs = [values[name] for name in spec.outputs]
    graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    from netspec.inputcheck import install

    model = fx.GraphModule(_hierarchy(modules, held), graph, class_name=_class_name(spec.name))
    install(model, spec)  # the first eager call checks the input, once
    verify_shapes(spec, model)  # a plugin whose module disagrees with its shape rule is named
    if spec.model.expect is not None:
        from netspec.contracts import check_cost_contracts
        from netspec.summary import total_macs

        check_cost_contracts(spec, sum(p.numel() for p in model.parameters()), total_macs(spec))
    return model


def _hierarchy(modules: dict[str, nn.Module], held: dict[str, nn.Parameter]) -> nn.Module:
    """Nest ``layer2.0.conv1`` as submodules, in spec order (state_dict keys read like
    torchvision's), and each held γ as a parameter of its block (saved before its children)."""
    root = nn.Module()
    for path, item in [*modules.items(), *held.items()]:
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        if isinstance(item, nn.Parameter):
            node.register_parameter(leaf, item)
        else:
            node.add_module(leaf, item)
    return root


def _build_module(spec: Spec, layer, targets) -> nn.Module:
    return build_module(spec, layer, layer.context(targets, layer.output_shape))


def build_module(spec: Spec, layer, ctx) -> nn.Module:
    """One layer's module from its record's builder; a failing or misbehaving builder names its plugin."""
    try:
        module = layer.record.build(layer.params, ctx)
    except Exception as exc:
        _raise_if_too_large(spec, layer, exc)
        owner = spec.registry.owners.get(layer.type, "?")
        raise PluginError(
            f"builder of layer type {layer.type!r} (plugin {owner!r}) failed on {layer.label}: {exc!r}"
        ) from exc
    if not isinstance(module, nn.Module):
        owner = spec.registry.owners.get(layer.type, "?")
        raise PluginError(
            f"builder of layer type {layer.type!r} (plugin {owner!r}) returned "
            f"{type(module).__name__}, not an nn.Module"
        )
    return module


def _raise_if_too_large(spec: Spec, layer, exc: Exception) -> None:
    """A weight too large for any tensor is a spec problem at its layer, not a plugin bug.

    Shapes are bounded before building (see ``shapes.size_limit_problem``); weights are only
    known to the builder, and torch reports them as "Storage size calculation overflowed".
    """
    if _out_of_memory(exc):
        raise SpecError([_not_allocated(spec, layer, exc)]) from None
    found = re.search(r"Storage size calculation overflowed with sizes=(\[[0-9, ]*\])", str(exc))
    if found is None:
        return
    sizes = [int(s) for s in re.findall(r"[0-9]+", found.group(1))]
    raise SpecError(
        [
            spec.document.problem(
                f"a parameter of shape {sizes} would have {math.prod(sizes):,} elements, "
                "more than a tensor can hold (its size in bytes must fit in 64 bits)",
                ("layers", layer.index),
                layer=layer.label,
                hint="use fewer channels or features",
            )
        ]
    ) from None


def _out_of_memory(exc: Exception) -> bool:
    """The allocator refused a weight: torch's CPU allocator says so in a RuntimeError."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(exc)


def _not_allocated(spec: Spec, layer, exc: Exception):
    """A weight larger than the device's memory is the spec's size, not a broken builder."""
    tried = re.search(r"(?:tried to allocate|Tried to allocate) ([0-9.]+ ?[KMGT]?i?B|[0-9]+ bytes)", str(exc))
    needs = f" (torch tried to allocate {_bytes_text(tried.group(1))})" if tried else ""
    device = torch.get_default_device()
    return spec.document.problem(
        f"out of memory building this layer's parameters on {device.type}{needs}",
        ("layers", layer.index),
        layer=layer.label,
        hint="use fewer channels or features; `netspec build SPEC --summary` shows each layer's "
        "parameters and their memory before anything is allocated",
    )


def _bytes_text(text: str) -> str:
    """A byte count (the CPU allocator's "1003520000000 bytes") in units; CUDA's "20.00 GiB" as it is."""
    from netspec.report import human_bytes

    count = re.fullmatch(r"([0-9]+) bytes", text)
    return human_bytes(int(count.group(1))) if count else text


def _class_name(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    title = "".join(w[:1].upper() + w[1:] for w in words) or "Network"
    return title if title[0].isalpha() else "Net" + title
