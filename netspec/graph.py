"""From validated layers to a graph: names, inputs, references, outputs — then shapes.

Layers may only take inputs from layers above them, so a spec's order is a topological
order and a cycle is always reported as the reference that closes it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from netspec.errors import PluginError, Problem, ShapeError, SpecError
from netspec.params import INPUT, LayerParams
from netspec.plugins import Registry
from netspec.registry import LayerContext, LayerType, RefTarget
from netspec.reserved import GRAPH_MODULE_ATTRIBUTES, MODULE_ATTRIBUTES
from netspec.shapes import Shape, describe, size_limit_problem
from netspec.validation import layer_label
from netspec.yamlio import Document


@dataclass(frozen=True)
class Layer:
    """One layer of a spec with its inputs resolved and its shapes inferred."""

    index: int
    name: str
    type: str
    params: LayerParams
    record: LayerType = field(repr=False)
    inputs: tuple[str, ...]
    refs: dict[str, str]
    label: str
    line: int | None = None
    input_shapes: tuple[Shape, ...] = ()
    output_shape: Shape = ()
    aux_outputs: frozenset[str] = frozenset()

    def context(
        self, targets: dict[str, RefTarget] | None = None, output: Shape | None = None
    ) -> LayerContext:
        return LayerContext(self.input_shapes, targets or {}, self.aux_outputs, output)


class _Resolver:
    def __init__(self, doc: Document, registry: Registry):
        self.doc = doc
        self.registry = registry
        self.problems: list[Problem] = []

    def problem(self, index: int | None, message: str, path: tuple = (), *, label: str | None = None, **kw):
        full = ("layers", index, *path) if index is not None else path
        self.problems.append(self.doc.problem(message, full, layer=label, **kw))

    def resolve(self, params_list: list[LayerParams]) -> list[Layer]:
        names: dict[str, int] = {}
        layers: list[Layer] = []
        self.by_name: dict[
            str, Layer
        ] = {}  # grown as layers are resolved: one lookup table, not one per layer
        for index, params in enumerate(params_list):
            kind = params.type
            name = params.name or f"{kind}_{index}"
            label = layer_label(index, {"type": kind}, name)
            if name in names:
                first = names[name]
                line = self._line(first)
                self.problem(
                    index,
                    f"name {name!r} is already used by layer {first}" + (f" (line {line})" if line else ""),
                    ("name",) if params.name else ("type",),
                    label=label,
                    hint="give each layer a unique name",
                )
            names.setdefault(name, index)
            self._check_attribute_name(index, name, params, label)
            record = self.registry[kind]
            inputs = self._inputs(index, params, names, label, layers)
            refs = self._refs(index, params, record, names, label, layers)
            layers.append(
                Layer(index, name, kind, params, record, tuple(inputs), refs, label, self._line(index))
            )
            self.by_name.setdefault(name, layers[-1])
        return layers

    def _check_attribute_name(self, index: int, name: str, params: LayerParams, label: str) -> None:
        """Each part of a name becomes a module attribute: none may shadow what PyTorch needs."""
        top, *inner = name.split(".")
        clash = (
            top
            if top in GRAPH_MODULE_ATTRIBUTES
            else next((p for p in inner if p in MODULE_ATTRIBUTES), None)
        )
        if clash is not None:
            self.problem(
                index,
                f"name {clash!r}"
                + (f" (in {name!r})" if clash != name else "")
                + " clashes with a torch.nn.Module attribute",
                ("name",) if params.name else ("type",),
                label=label,
                hint=f"rename it, e.g. {clash + '_'!r}",
            )

    def _check_containers(self, layers: list[Layer]) -> None:
        """``a`` cannot be a layer and also hold ``a.b``."""
        prefixes = {
            layer.name.rsplit(".", i)[0] for layer in layers for i in range(1, layer.name.count(".") + 1)
        }
        for layer in layers:
            if layer.name in prefixes:
                self.problem(
                    layer.index,
                    f"name {layer.name!r} is both a layer and the block holding {layer.name + '.…'!r}",
                    ("name",),
                    label=layer.label,
                    hint="rename the layer or the block use",
                )

    def _line(self, index: int) -> int | None:
        loc = self.doc.positions.get(("layers", index))
        return loc.line if loc else None

    def _lookup(
        self, index: int, target: str, names: dict[str, int], path: tuple, label: str, what: str
    ) -> bool:
        if target == INPUT or (target in names and names[target] < index):
            return True
        if target in names and names[target] == index:
            self.problem(
                index,
                f"{what} {target!r} is this layer itself (a cycle)",
                path,
                label=label,
                hint="name an earlier layer or 'input'",
            )
        else:
            later = [
                i
                for i, p in enumerate(self.doc.data["layers"])
                if isinstance(p, dict) and p.get("name") == target and i > index
            ]
            if later:
                self.problem(
                    index,
                    f"{what} {target!r} refers forward to layer {later[0]}",
                    path,
                    label=label,
                    hint="layers can only use layers above them (this would be a cycle or needs reordering)",
                )
            else:
                close = difflib.get_close_matches(target, [*names, INPUT], n=1)
                numbered = re.fullmatch(r"(.+\.)[A-Za-z][A-Za-z0-9_]*_(\d+)", target)
                if numbered and numbered[1] + numbered[2] in names:  # a top-level style name in a block
                    close = [numbered[1] + numbered[2]]
                    hint = (
                        f"did you mean {close[0]!r}? inside a block, unnamed layers are numbered by "
                        f"position like nn.Sequential's children: write {numbered[2]!r} (or give it a name)"
                    )
                else:
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    hint += "use a layer's `name:` or 'input'"
                self.problem(index, f"{what} {target!r} is not a layer name", path, label=label, hint=hint)
        return False

    def _inputs(self, index, params, names, label, layers) -> list[str]:
        named = params.inputs_named()
        if named is None:
            inputs = [layers[-1].name if layers else INPUT]
        else:
            inputs = []
            for i, target in enumerate(named):
                path = ("from",) if isinstance(params.from_, str) else ("from", i)
                if self._lookup(index, target, names, path, label, "from"):
                    inputs.append(target)
        low, high = self.registry[params.type].inputs
        count = len(named) if named is not None else 1
        if count < low or (high is not None and count > high):
            want = f"{low}" if low == high else f"at least {low}" if high is None else f"{low}..{high}"
            self.problem(
                index,
                f"{params.type} takes {want} input(s), got {count}",
                ("from",),
                label=label,
                hint="list the inputs with `from: [a, b]`"
                if low > 1
                else "give a single layer name in `from:`",
            )
        return inputs

    def _refs(self, index, params, record, names, label, layers) -> dict[str, str]:
        if not record.refs:  # the name table below costs O(layers): build it only when needed
            return {}
        refs = {}
        by_name = self.by_name
        for ref in record.refs:
            target = getattr(params, ref.field)
            if not self._lookup(index, target, names, (ref.field,), label, ref.field) or target == INPUT:
                if target == INPUT:
                    self.problem(
                        index,
                        f"{ref.field} must name a layer, not the input",
                        (ref.field,),
                        label=label,
                        hint=f"name a {' or '.join(ref.types)} layer",
                    )
                continue
            if by_name[target].type not in ref.types:
                self.problem(
                    index,
                    f"{ref.field} {target!r} is a {by_name[target].type} layer; "
                    f"it must be {' or '.join(ref.types)}",
                    (ref.field,),
                    label=label,
                    hint=f"name a {' or '.join(ref.types)} layer",
                )
                continue
            refs[ref.field] = target
        return refs

    def outputs(self, layers: list[Layer], outputs) -> list[str]:
        names = {layer.name for layer in layers}
        wanted = [layers[-1].name] if outputs is None else [outputs] if isinstance(outputs, str) else outputs
        for i, name in enumerate(wanted):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                path = ("outputs",) if isinstance(outputs, str) else ("outputs", i)
                self.problem(
                    None,
                    f"output {name!r} is not a layer name",
                    path,
                    hint=f"did you mean {close[0]!r}?" if close else "list layer names",
                )
        used = set(wanted) | {n for layer in layers for n in layer.inputs}
        for layer in layers:
            if layer.name not in used:
                self.problem(
                    layer.index,
                    "this layer's output is never used",
                    ("type",),
                    label=layer.label,
                    hint="use it in a later layer's `from:`, list it in `outputs:`, or remove it",
                )
        return list(wanted)


def resolve(
    doc: Document, registry: Registry, params_list: list[LayerParams], outputs
) -> tuple[list[Layer], list[str]]:
    """Name every layer and check every ``from``, reference and output; all problems at once."""
    resolver = _Resolver(doc, registry)
    layers = resolver.resolve(params_list)
    resolver._check_containers(layers)
    wanted = [] if resolver.problems else resolver.outputs(layers, outputs)
    if resolver.problems:
        raise SpecError(resolver.problems)
    return layers, wanted


def infer(doc: Document, registry: Registry, layers: list[Layer], input_shape: Shape) -> list[Layer]:
    """Run every layer's shape rule in order; the first failure is reported with its location."""
    shapes: dict[str, Shape] = {INPUT: tuple(input_shape)}
    by_name: dict[str, Layer] = {}
    aux: dict[str, set[str]] = {}  # only the layers whose auxiliary outputs a later layer uses
    for layer in layers:
        for ref in layer.record.refs:
            aux.setdefault(layer.refs[ref.field], set()).add(ref.output)
    done = []
    _check_size(doc, tuple(input_shape), ("input",), None)
    for layer in layers:
        input_shapes = tuple([shapes[n] for n in layer.inputs])
        targets = {f: ref_target(by_name[t]) for f, t in layer.refs.items()}
        aux_outputs = frozenset(aux[layer.name]) if layer.name in aux else _NO_AUX
        ctx = LayerContext(input_shapes, targets, aux_outputs)
        try:
            output = tuple(layer.record.shape(layer.params, ctx))
        except ShapeError as exc:
            raise SpecError([_shape_problem(doc, layer, exc, input_shapes, done)]) from None
        except Exception as exc:  # a plugin bug must not look like a spec error
            owner = registry.owners.get(layer.type, "?")
            raise PluginError(
                f"shape rule of layer type {layer.type!r} (plugin {owner!r}) crashed on "
                f"{layer.label}: {exc!r}"
            ) from exc
        if not output or any(not isinstance(s, int) or s < 1 for s in output):
            owner = registry.owners.get(layer.type, "?")
            raise PluginError(f"shape rule of {layer.type!r} (plugin {owner!r}) returned {output!r}")
        _check_size(doc, output, ("layers", layer.index), layer.label)
        shapes[layer.name] = output
        inferred = _with_shapes(layer, input_shapes, output, aux_outputs)
        by_name[layer.name] = inferred
        done.append(inferred)
    return done


_NO_AUX: frozenset[str] = frozenset()


def _with_shapes(layer: Layer, input_shapes: tuple[Shape, ...], output: Shape, aux: frozenset[str]) -> Layer:
    """``dataclasses.replace`` for the three inferred fields, without ``__init__``'s twelve frozen
    ``object.__setattr__`` calls: 0.8 µs instead of 3-4 µs, per layer of every load."""
    inferred = object.__new__(Layer)
    inferred.__dict__.update(layer.__dict__, input_shapes=input_shapes, output_shape=output, aux_outputs=aux)
    return inferred


def _check_size(doc: Document, shape: Shape, path: tuple, label: str | None) -> None:
    """One bound for every shape, whichever layer or plugin computed it (see size_limit_problem)."""
    problem = size_limit_problem(shape)
    if problem is not None:
        message, hint = problem
        what = "input" if label is None else "output"
        raise SpecError([doc.problem(f"{what} {message}", path, layer=label, hint=hint)])


def ref_target(layer: Layer) -> RefTarget:
    return RefTarget(layer.name, layer.type, layer.params, layer.input_shapes, layer.output_shape)


def _shape_problem(doc: Document, layer: Layer, exc: ShapeError, input_shapes, done: list[Layer]) -> Problem:
    path = ("layers", layer.index)
    layer_data = doc.data["layers"][layer.index] if isinstance(doc.data, dict) else {}
    if exc.field and isinstance(layer_data, dict) and exc.field in layer_data:
        path += (exc.field,)
    details: tuple[str, ...] = ()
    hint = exc.hint
    if len(input_shapes) > 1:
        by_name = {d.name: d for d in done}
        details = tuple(
            f"{name!r}{_where(doc, by_name.get(name), layer.name)} gives {describe(shape)}"
            for name, shape in zip(layer.inputs, input_shapes, strict=True)
        )
        turn = _where_sizes_parted(layer, input_shapes, by_name)
        if turn is not None:
            culprit, before = turn
            settings = (
                "its padding and stride"
                if hasattr(culprit.params, "padding") or hasattr(culprit.params, "stride")
                else f"the {culprit.type} layer's settings"
            )
            hint = (
                f"{culprit.name!r}{_where(doc, culprit, layer.name)} turns {describe(before)} into "
                f"{describe(culprit.output_shape)} (the other inputs are {_spatial(before)}): "
                f"check {settings}"
            )
    return doc.problem(exc.message, path, layer=layer.label, hint=hint, details=details)


def _where(doc: Document, source: Layer | None, reader: str) -> str:
    """`` (line N)`` of a merge's input. One made inside a block instance that does not hold the
    merge is placed at that instance's use (the outermost such): its own line is inside the
    block's definition."""
    if source is None:
        return ""
    parts = source.name.split(".")
    for end in range(1, len(parts)):
        instance = ".".join(parts[:end])
        if instance in doc.block_lines and not reader.startswith(instance + "."):
            return f" (block {instance!r} used at line {doc.block_lines[instance]})"
    return f" (line {source.line})" if source.line else ""


def _spatial(shape: Shape) -> str:
    return "×".join(map(str, shape[1:]))


def _compared(layer: Layer, input_shapes) -> list[int] | None:
    """The spatial dims on which a merge's inputs must agree: not a concat's own dim, nor one
    where an input has size 1 (it may broadcast). None unless their ranks and channels agree."""
    if len({len(s) for s in input_shapes}) != 1 or len(input_shapes[0]) < 2:
        return None
    if len({s[0] for s in input_shapes}) != 1:
        return None  # the channels disagree: the rule's message and hint are about that
    rank = len(input_shapes[0])
    joined = getattr(layer.params, "dim", None)
    joined = joined % rank if isinstance(joined, int) and -rank <= joined < rank else None
    return [d for d in range(1, rank) if d != joined and all(s[d] != 1 for s in input_shapes)]


def _where_sizes_parted(layer: Layer, input_shapes, by_name: dict[str, Layer]):
    """For a merge whose one odd input disagrees with all the others on its spatial sizes (the
    channels agreeing): the layer where that input's sizes left theirs, and its input's shape.
    None where no one layer did it: the odd branch changed its size again after leaving (a
    U-Net's decoder: down, then up), or never had the common size.

    Walks back along the first input of the odd branch, at most once per layer of the spec."""
    dims = _compared(layer, input_shapes)
    if not dims:
        return None
    sizes = [tuple(s[d] for d in dims) for s in input_shapes]
    common = max(sizes, key=sizes.count)
    odd = [i for i, size in enumerate(sizes) if size != common]
    if len(odd) != 1:
        return None  # none, or several: no one layer to name
    name = layer.inputs[odd[0]]
    for _ in range(len(by_name)):
        current = by_name.get(name)
        if current is None or not current.inputs or not current.input_shapes:
            return None
        before = current.input_shapes[0]
        if len(before) == len(input_shapes[0]) and tuple(before[d] for d in dims) == common:
            return current, before
        if tuple(before[1:]) != tuple(current.output_shape[1:]):
            return None
        name = current.inputs[0]
    return None
