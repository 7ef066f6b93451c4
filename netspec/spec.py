"""A loaded spec: validated, resolved and shape-inferred; ready to build."""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.errors import Problem, SpecError
from netspec.expand import expand, uses_language
from netspec.graph import Layer, infer, resolve
from netspec.heap import gc_paused
from netspec.plugins import Registry, default_registry
from netspec.shapes import Shape
from netspec.validation import validate
from netspec.yamlio import MAX_BYTES, MAX_DEPTH, MAX_NODES, Document, load_yaml, read_spec_file

if TYPE_CHECKING:
    from torch import fx


class Spec:
    """A network spec whose every layer shape is known. Build it with :meth:`build`."""

    def __init__(
        self, document: Document, model: Any, layers: list[Layer], outputs: list[str], registry: Registry
    ):
        self.document = document
        self.model = model
        self.layers = layers
        self.outputs = outputs
        self.registry = registry

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def source(self) -> str:
        return self.document.source

    @property
    def input_shape(self) -> Shape:
        return tuple(self.model.input)

    def layer(self, name: str) -> Layer:
        """The layer of that name (an index built on first use: per-layer callers were quadratic)."""
        index = self.__dict__.get("_by_name")
        if index is None or len(index) != len(self.layers):
            index = self.__dict__["_by_name"] = {layer.name: layer for layer in self.layers}
        return index[name]

    def no_such_layer(self, name: str) -> Problem:
        """``name`` is not a layer here (``show --layers``, ``build --explain``): a block instance's
        name lists its layers, a near miss gets a "did you mean"."""
        names = [layer.name for layer in self.layers]
        inside = [n for n in names if n.startswith(name + ".")]
        if inside:
            hint = f"{name!r} is a block instance; name one of its layers: " + ", ".join(inside[:8])
        else:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = (
                "did you mean " + ", ".join(repr(c) for c in close) + "?"
                if close
                else "layers: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            )
        return Problem(f"no layer {name!r} in {self.name}", self.source, hint=hint)

    def shapes(self) -> dict[str, Shape]:
        """Per-sample output shape of every layer, by name, in spec order."""
        return {layer.name: layer.output_shape for layer in self.layers}

    def output_shapes(self) -> list[Shape]:
        """Per-sample shapes of the network's outputs."""
        return [self.layer(name).output_shape for name in self.outputs]

    def build(self) -> fx.GraphModule:
        """The network as a ``torch.fx.GraphModule`` (see :func:`netspec.build`)."""
        from netspec.builder import build

        with gc_paused():  # like loading: every module and graph node built is kept
            return build(self)

    def __repr__(self) -> str:
        return f"<Spec {self.name!r} from {self.source}: {len(self.layers)} layers>"


def load(
    source: str | Path | Mapping | Document,
    *,
    registry: Registry | None = None,
    input_shape: Sequence[int] | None = None,
    overrides: Sequence[str] = (),
) -> Spec:
    """Load, validate and shape-infer a spec from a path, a YAML string or a dict.

    ``input_shape`` overrides the spec's ``input`` (e.g. to try a larger image; sizes, not the
    rank; its ``expect:`` contracts, written for its own input, are then not checked); ``overrides``
    are ``--set``-style ``dotted.key=value`` assignments, validated exactly like the file.
    Raises :class:`netspec.SpecError` with file:line:column for every problem found.

    Example:
        >>> spec = netspec.load("specs/lenet.yaml")
        >>> spec.shapes()["conv_0"]
        (6, 28, 28)
    """
    with gc_paused():
        return _load(source, registry, input_shape, overrides)


def _load(
    source: str | Path | Mapping | Document,
    registry: Registry | None,
    input_shape: Sequence[int] | None,
    overrides: Sequence[str],
) -> Spec:
    registry = registry or default_registry()
    _check_arguments(registry, input_shape, overrides)
    doc = _document(source)
    for assignment in overrides:
        doc.override(assignment)
    if input_shape is not None and not uses_language(doc.data):
        check_input_rank(doc, input_shape)
    written = doc.data.get("input") if isinstance(doc.data, dict) else None  # expansion may replace it
    set_params = [source for path, source in doc.overrides.items() if path[:1] == ("params",)]
    try:
        doc = expand(doc, registry, input_shape=input_shape)
        model = validate(doc, registry)
        if input_shape is not None:
            model = _with_input(doc, model, input_shape, written)
        layers, outputs = resolve(doc, registry, list(model.layers), model.outputs)
        layers = infer(doc, registry, layers, tuple(model.input))
    except SpecError as exc:
        if not set_params:
            raise
        raise _naming_set_params(exc, set_params) from None
    spec = Spec(doc, model, layers, outputs, registry)
    from netspec.contracts import check_output_contract

    check_output_contract(spec)
    return spec


def _naming_set_params(exc: SpecError, set_params: list[str]) -> SpecError:
    """A value that ``--set params.NAME=…`` gave flows through expressions into layers: a problem
    it causes is found where it is used, in the file; say which ``--set`` changed the params."""
    note = "with " + ", ".join(set_params)
    return SpecError(
        [
            p if p.source.startswith("--set ") else dataclasses.replace(p, details=(*p.details, note))
            for p in exc.problems
        ]
    )


def check_input_rank(doc: Document, shape: Sequence[int]) -> None:
    """An input override changes sizes, never the rank: that would turn every Conv2d into a Conv1d."""
    written = doc.data.get("input") if isinstance(doc.data, dict) else None
    if not isinstance(written, list) or len(written) == len(shape):
        return  # a missing or malformed `input:` is reported by validation, located
    given = ",".join(map(str, shape))
    raise SpecError(
        [
            doc.problem(
                f"--input {given} has {len(shape)} dimension(s) but the spec's input {written} has "
                f"{len(written)}; the input rank decides every layer's dimensionality (Conv2d or "
                "Conv1d), so --input may change sizes only",
                ("input",),
                hint=f"give {len(written)} numbers, or edit `input:` to build a network of another rank",
            )
        ]
    )


def _with_input(doc: Document, model: Any, input_shape: Sequence[int], written: Any) -> Any:
    shape = list(input_shape)
    if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
        raise SpecError([doc.problem(f"input override {shape} must be positive integers", ("input",))])
    if shape == written:
        return model.model_copy(update={"input": shape})  # its own input: `expect:` holds, checked
    # `expect:` describes the network at the spec's own input; at another size its output
    # shape and MACs (and, after a flatten, its parameters) are different by design
    return model.model_copy(update={"input": shape, "expect": None})


def plain_data(source: Mapping) -> dict:
    """A spec given as a dict, held to what a YAML file can hold: mappings, lists, strings,
    numbers, booleans and null, nested at most ``MAX_DEPTH`` deep, ``MAX_NODES`` values and
    ``MAX_BYTES`` of text in all, no cycles (a deep or self-containing value raised RecursionError;
    an object, or a function, which an expression would have called, went on into the spec).
    Tuples are read as lists; str and number subclasses (NumPy's) as Python's own."""
    problems: list[str] = []
    count = chars = 0

    def where(path: tuple) -> str:
        return ".".join(map(str, path[:8])) + (".…" if len(path) > 8 else "") or "the spec"

    def refuse(message: str) -> SpecError:
        return SpecError([Document(None, "<dict>").problem(message)])

    def copy(value: Any, path: tuple) -> Any:
        nonlocal count, chars
        count += 1
        if count > MAX_NODES:
            raise refuse(f"more than {MAX_NODES:,} values in the dict")
        if len(path) > MAX_DEPTH:
            raise refuse(f"{where(path)}: nested deeper than {MAX_DEPTH} levels (or it contains itself)")
        if isinstance(value, Mapping):
            return {_plain_key(key): copy(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [copy(item, (*path, i)) for i, item in enumerate(value)]
        if isinstance(value, str):
            chars += len(value)
            if chars > MAX_BYTES:
                raise refuse(f"the dict's strings hold more than {MAX_BYTES:,} characters, as no file may")
        if value is None or type(value) in (str, int, float, bool):
            return value
        if isinstance(value, (str, int)):
            return _plain_key(value)
        if isinstance(value, numbers.Integral):  # numpy.int64
            return int(value)
        if isinstance(value, numbers.Real):  # a float subclass, numpy.float32
            return float(value)
        problems.append(f"{where(path)}: {type(value).__name__} is not a value a spec holds")
        return None

    data = copy(source, ())
    if problems:
        hint = "a spec holds mappings, lists, strings, numbers, true/false and null, as YAML does"
        raise SpecError([Document(None, "<dict>").problem(problem, hint=hint) for problem in problems[:20]])
    return data


def _check_arguments(registry: Any, input_shape: Any, overrides: Any) -> None:
    """load()'s own arguments, for a caller who passed the wrong kind (a string of sizes was
    read character by character as a shape of 5 dimensions)."""
    from netspec.plugins import Registry

    wrong = []
    if not isinstance(registry, Registry):
        wrong.append(f"registry must be a netspec Registry, got {type(registry).__name__}")
    if input_shape is not None and (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, Sequence)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in input_shape)
    ):
        wrong.append(f"input_shape must be a list of ints such as [3, 32, 32], got {input_shape!r:.60}")
    if isinstance(overrides, (str, bytes)) or not all(isinstance(o, str) for o in overrides):
        wrong.append("overrides must be a list of 'key=value' strings such as ['params.width=32']")
    if wrong:
        raise SpecError([Document(None, "netspec.load").problem(message) for message in wrong])


def _plain_key(key: Any) -> Any:
    """A str or int subclass as a key is a plain str or int: its own __hash__ and __eq__ stay out."""
    if isinstance(key, str) and type(key) is not str:
        return str.__str__(key)
    if isinstance(key, int) and type(key) not in (int, bool):
        return int.__int__(key)
    return key


def _document(source: str | Path | Mapping | Document) -> Document:
    if isinstance(source, Document):
        return source
    if isinstance(source, Mapping):
        return Document(plain_data(source), "<dict>")
    if isinstance(source, Path):
        return read_spec_file(source)
    if isinstance(source, str):
        # one line naming anything on disk (a directory or FIFO too) is a path: read_spec_file
        # refuses what is not a regular file; os.path.exists never raises on odd strings
        if "\n" not in source and (source.endswith((".yaml", ".yml")) or os.path.exists(source)):
            return read_spec_file(source)
        return load_yaml(source, "<string>")
    raise SpecError([Document(None).problem(f"cannot load a spec from {type(source).__name__}")])
