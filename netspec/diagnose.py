"""Explain why a spec does not build: the failing layer's formula, and parameter values that fix it.

``netspec build SPEC --explain`` on an invalid spec prints the error as always, then this: the
layer that failed with its inputs, the formulas that produced the mismatch (its own, and for
a merge those of the layers feeding it), and single-parameter changes — on that layer or the
few layers above it — that make it build, found by trying nearby values through the same
shape rules. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from netspec.errors import NetspecError, ShapeError
from netspec.graph import Layer, ref_target
from netspec.params import INPUT
from netspec.registry import LayerContext
from netspec.shapes import Shape, describe

MAX_TRIALS = 3000  # shape-rule evaluations spent looking for fixes
SEARCH_DEPTH = 4  # how many layers above the failing one may be changed
SKIP_FIELDS = {"name", "from_", "type"}
PREFERRED = {"output_padding", "output_size", "padding", "ceil_mode", "in_channels", "in_features"}


@dataclass(frozen=True)
class Fix:
    layer: Layer
    field: str
    old: Any
    new: Any
    output: Shape  # the changed layer's new output
    whole: bool  # the whole spec builds with it
    where: str


def explain_failure(
    path: str, *, input_shape: Sequence[int] | None = None, overrides: Sequence[str] = ()
) -> str | None:
    """The explanation of the layer at which ``path`` fails shape inference, or None when the
    spec fails before shapes (a YAML or validation error) or builds."""
    from netspec.expand import expand
    from netspec.graph import resolve
    from netspec.plugins import default_registry
    from netspec.spec import _with_input
    from netspec.validation import validate
    from netspec.yamlio import read_spec_file

    registry = default_registry()
    try:
        doc = read_spec_file(path)
        for assignment in overrides:
            doc.override(assignment)
        doc = expand(doc, registry, input_shape=input_shape)
        model = validate(doc, registry)
        if input_shape is not None:
            model = _with_input(doc, model, input_shape)
        layers, _ = resolve(doc, registry, list(model.layers), model.outputs)
    except NetspecError:
        return None
    return _Diagnosis(doc, layers, tuple(model.input)).render()


class _Diagnosis:
    def __init__(self, doc, layers: list[Layer], input_shape: Shape):
        self.doc = doc
        self.layers = layers
        self.by_name = {layer.name: layer for layer in layers}
        self.aux: dict[str, set[str]] = {layer.name: set() for layer in layers}
        for layer in layers:
            for ref in layer.record.refs:
                self.aux[layer.refs[ref.field]].add(ref.output)
        self.input_shape = input_shape
        self.trials = 0

    def _context(self, layer: Layer, shapes: dict, params=None) -> LayerContext:
        targets = {}
        for f, t in layer.refs.items():
            target = self.by_name[t]
            targets[f] = ref_target(
                Layer(
                    **{
                        **target.__dict__,
                        "input_shapes": tuple(shapes[n] for n in target.inputs),
                        "output_shape": shapes[t],
                    }
                )
            )
        return LayerContext(tuple(shapes[n] for n in layer.inputs), targets, frozenset(self.aux[layer.name]))

    def _run(self, start: int, shapes: dict, changed: dict[int, Any], stop: int) -> tuple[int | None, dict]:
        """Infer layers start..stop (inclusive); the index of the first failure (or None)."""
        shapes = dict(shapes)
        for layer in self.layers[start : stop + 1]:
            params = changed.get(layer.index, layer.params)
            self.trials += 1
            try:
                shapes[layer.name] = tuple(layer.record.shape(params, self._context(layer, shapes)))
            except Exception:
                return layer.index, shapes
        return None, shapes

    def render(self) -> str | None:
        failing, shapes = self._run(0, {INPUT: self.input_shape}, {}, len(self.layers) - 1)
        if failing is None:
            return None
        layer = self.layers[failing]
        ctx = self._context(layer, shapes)
        try:
            layer.record.shape(layer.params, ctx)
        except ShapeError as exc:
            message = exc.message
        except Exception as exc:  # a plugin's crash: reported elsewhere
            message = repr(exc)
        ins = ", ".join(f"{n} {describe(shapes[n])}" for n in layer.inputs)
        lines = [f"why {layer.label} fails: {message}", f"  input: {ins}"]
        lines += [f"    {line}" for line in _explain(layer, layer.params, ctx)]
        if len(layer.inputs) > 1:
            for name in dict.fromkeys(layer.inputs):
                if name == INPUT:
                    continue
                source = self._size_source(name, shapes)
                via = "" if source is self.by_name[name] else f", its size set by {source.label}"
                lines.append(f"  {self.by_name[name].label} gives {describe(shapes[name])}{via}:")
                lines += [
                    f"    {line}"
                    for line in _explain(source, source.params, self._context(source, shapes))
                    if "_out" in line or "output_size" in line
                ]
        fixes = self._fixes(layer, shapes)
        if fixes:
            lines.append("values that make it build (one change each):")
            for fix in fixes:
                lines.append(
                    f"  {fix.where}: {fix.layer.label}: {_yaml_key(fix.field)}: {_yaml(fix.new)} "
                    f"(now {_yaml(fix.old)}) → {describe(fix.output)}"
                    + ("; the whole spec then builds" if fix.whole else self._shared(fix))
                )
        else:
            lines.append("no single nearby parameter value of this layer or the few above it fixes it")
        return "\n".join(lines) + "\n"

    def _fixes(self, failing: Layer, shapes: dict) -> list[Fix]:
        found: list[tuple[tuple, Fix]] = []
        for distance, candidate in self._ancestors(failing):
            before = {INPUT: self.input_shape}
            before.update(
                {
                    n: s
                    for n, s in shapes.items()
                    if self.by_name.get(n, None) is None or self.by_name[n].index < candidate.index
                }
            )
            targets = [list(shapes[n][1:]) for n in failing.inputs if len(shapes[n]) > 1]
            for field, old, new in _variations(candidate.params, targets):
                if self.trials > MAX_TRIALS:
                    break
                try:
                    params = _with(candidate.params, field, new)
                except Exception:
                    continue
                bad, trial = self._run(candidate.index, before, {candidate.index: params}, failing.index)
                if bad is not None:
                    continue
                where = self._where(candidate, field)
                whole = self._whole(where, field, old, new)
                fix = Fix(candidate, field, old, new, trial[candidate.name], whole, where)
                priority = 0 if field in PREFERRED else 1
                found.append(((not fix.whole, priority, distance, _delta(old, new)), fix))
        found.sort(key=lambda item: item[0])
        seen, out = set(), []
        for _, fix in found:
            key = (fix.layer.name, fix.field)
            if key not in seen:
                seen.add(key)
                out.append(fix)
        return out[:5]

    def _whole(self, where: str, field: str, old, new) -> bool:
        """Does the whole spec build once the line is edited (a block's line changes every use)?"""
        changed = {}
        for layer in self.layers:
            same = field in type(layer.params).model_fields and getattr(layer.params, field) == old
            if same and self._where(layer, field) == where:
                try:
                    changed[layer.index] = _with(layer.params, field, new)
                except Exception:
                    return False
        bad, _ = self._run(0, {INPUT: self.input_shape}, changed, len(self.layers) - 1)
        return bad is None

    def _shared(self, fix: Fix) -> str:
        uses = sum(1 for layer in self.layers if self._where(layer, fix.field) == fix.where)
        if uses > 1:
            return f"; but this line serves {uses} layers (a block), and another use then fails"
        return "; a later layer still fails"

    def _size_source(self, name: str, shapes: dict) -> Layer:
        """Walk back from ``name`` through layers that keep the spatial size to the one that set it."""
        layer = self.by_name[name]
        while len(layer.inputs) == 1 and layer.inputs[0] != INPUT:
            if shapes[layer.inputs[0]][1:] != shapes[layer.name][1:]:
                break
            layer = self.by_name[layer.inputs[0]]
        return layer

    def _ancestors(self, layer: Layer):
        queue, seen = [(0, layer)], {layer.name}
        while queue:
            distance, current = queue.pop(0)
            yield distance, current
            if distance >= SEARCH_DEPTH:
                continue
            for name in current.inputs:
                if name != INPUT and name not in seen:
                    seen.add(name)
                    queue.append((distance + 1, self.by_name[name]))

    def _where(self, layer: Layer, field: str) -> str:
        data = self.doc.data["layers"][layer.index] if isinstance(self.doc.data, dict) else {}
        path = ("layers", layer.index) + ((field,) if isinstance(data, dict) and field in data else ())
        problem = self.doc.problem("", path)
        loc = problem.location
        return problem.source + (f":{loc.line}:{loc.column}" if loc else "")


def _explain(layer: Layer, params, ctx: LayerContext) -> list[str]:
    if layer.record.explain is None:
        return []
    try:
        return [str(line) for line in layer.record.explain(params, ctx)]
    except Exception:
        return []


def _variations(params, targets: list[list[int]]):
    """(field, old, new) for nearby values of every int, int-list and bool field, and the
    spatial sizes of the failing layer's inputs for an unset ``output_size``/``size``."""
    for field in type(params).model_fields:
        if field in SKIP_FIELDS:
            continue
        old = getattr(params, field)
        if isinstance(old, bool):
            yield field, old, not old
        elif isinstance(old, int):
            for step in range(1, 9):
                for new in (old - step, old + step):
                    if new >= 0:
                        yield field, old, new
        elif isinstance(old, list | tuple) and old and all(isinstance(v, int) for v in old):
            for step in range(1, 5):
                for i in range(len(old)):
                    for new_item in (old[i] - step, old[i] + step):
                        if new_item >= 0:
                            yield field, old, [*old[:i], new_item, *old[i + 1 :]]
        elif old is None and field in ("output_size", "size"):
            for target in targets:
                yield field, old, target
        elif old is None and field == "output_padding":
            for new in range(1, 4):
                yield field, old, new


def _with(params, field: str, value):
    data = params.model_dump(by_alias=True, exclude_unset=True)
    alias = type(params).model_fields[field].alias or field
    data[alias] = value
    return type(params).model_validate(data)


def _delta(old, new) -> int:
    if isinstance(old, bool) or old is None:
        return 1
    if isinstance(old, int):
        return abs(new - old)
    return sum(abs(a - b) for a, b in zip(old, new, strict=True))


def _yaml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_yaml, value)) + "]"
    return str(value)


def _yaml_key(field: str) -> str:
    return "from" if field == "from_" else field
