"""Blocks, repetition, expressions, includes and variants, expanded into a flat layer list.

Expansion is a stage of its own between reading YAML and validation: it turns the compact
spec (``blocks:``, ``repeat:``, ``if:``, ``=expressions``, ``include:``/``extends:``,
``variants:``) into the flat spec of primitive layers that validation, shape inference and
the builder already understand — with dotted names (``layer2.0.conv1``) and every ``from:``
written out. Each flat layer remembers where it was written (a block definition, an included
file) and which uses put it there, so every later error points at both.

Expressions may ask for shapes (``in_channels``, ``shape(skip)``); those are inferred on
demand, in order, over the layers expanded so far.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netspec.errors import Problem, ShapeError, SpecError, exception_line, printable
from netspec.expressions import Budget, Evaluator, ExprError, is_expression
from netspec.params import INPUT, PATH_RE
from netspec.plugins import Registry
from netspec.registry import LayerContext, RefTarget
from netspec.yamlio import YAML_KEY_HINT, Document, Path_, Redirect, read_spec_file

LANGUAGE_KEYS = ("include", "extends", "params", "variants", "variant", "blocks")
ITEM_KEYS = ("repeat", "first", "if")  # allowed on any layer, block use or group
BLOCK_KEYS = ("params", "inputs", "layers", "outputs", "description")
SIZE = ("size",)  # an int or a non-empty list of ints: a kernel size, stride or padding (3 or [1, 7])
PARAM_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "size": SIZE,
    "any": None,
}
SHAPE_NAMES = ("in_channels", "in_shape", "in_spatial")
RESERVED = {"type", "name", "from", *ITEM_KEYS, "index", "outer_index", *SHAPE_NAMES}
MAX_REPEAT = 10_000
MAX_LAYERS = 50_000  # flat layers after expansion
MAX_MADE = 5_000_000  # list items and characters made by expressions while expanding
MAX_STEPS = 60_000  # layers and block instances visited while expanding, left-out ones included
MAX_BLOCK_DEPTH = 32
MAX_INCLUDE_DEPTH = 16
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\Z")


def _repetition(variables: dict, index: int) -> dict:
    """The variables of one repetition: its ``index``, and the enclosing repetition's as
    ``outer_index`` (a repeated item in a repeated group: the group's index)."""
    inner = {**variables, "index": index}
    inner.pop("outer_index", None)
    if "index" in variables:
        inner["outer_index"] = variables["index"]
    return inner


@dataclass
class _Block:
    name: str
    document: Document
    path: Path_  # ("blocks", name) in document
    params: dict[str, tuple[tuple[type, ...] | None, Any, bool]]  # name → (types, default, required)
    inputs: list[str]
    layers: list
    output: str | None


_SHORT = reprlib.Repr()  # block arguments in messages: a few items of a list, a few levels deep
_SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 8, 60, 60, 3


@dataclass(frozen=True)
class _UseNote:
    """ "in block 'x' used at file:12:5 as 'layer2.0' with planes=128": written only when shown."""

    block: str
    document: Document
    path: Path_
    name: str
    shown: str  # the arguments, short: a note per instance must not keep each one's values alive

    def __str__(self) -> str:
        where = _where(self.document, self.path)
        return f"in block {self.block!r} used at {where} as {self.name!r}" + (
            f" with {self.shown}" if self.shown else ""
        )


@dataclass
class _Scope:
    """One list of layers being expanded: the network's, a block instance's, or a group's."""

    document: Document
    prefix: str  # "" or "layer2.0."
    numbered: bool  # inside a block, unnamed layers are named 0, 1, … like nn.Sequential's
    variables: dict[str, Any]
    names: dict[str, str]  # local name → the global name of the layer whose output it stands for
    previous: str
    notes: tuple[_UseNote, ...] = ()
    counter: int = 0
    stack: tuple[str, ...] = ()  # blocks being expanded, for cycles


def uses_language(data: Any) -> bool:
    """Whether a spec needs expansion; a flat spec goes straight to validation."""
    if not isinstance(data, dict):
        return False
    if any(key in data for key in LANGUAGE_KEYS):
        return True
    layers = data.get("layers")
    return isinstance(layers, list) and any(
        isinstance(item, dict) and (not _ITEM_STRUCTURE.isdisjoint(item) or _has_expression(item))
        for item in layers
    )


_ITEM_STRUCTURE = frozenset((*ITEM_KEYS, "layers"))


def _has_expression(value: Any) -> bool:
    """Whether ``value`` holds an ``=expression``; scalars are tested in the loop, not by a call each
    (this scan reads every value of a flat spec)."""
    if not isinstance(value, (dict, list)):
        return is_expression(value)
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, str):
            if is_expression(item):
                return True
        elif isinstance(item, (dict, list)) and _has_expression(item):
            return True
    return False


def expand(
    doc: Document, registry: Registry, root_dir: Path | None = None, input_shape: Sequence[int] | None = None
) -> Document:
    """The flat spec of ``doc``: a new Document whose problems point back into the compact one.

    ``input_shape`` replaces the spec's ``input`` before anything is expanded (expressions may
    read shapes); like ``--input``, it may change sizes but not the rank.
    """
    if not uses_language(doc.data):
        return doc
    root = (root_dir or _base_dir(doc)).resolve()
    stack = () if doc.source.startswith("<") else (Path(doc.source).resolve(),)
    composed, blocks = _Composer(root).compose(doc, stack)
    composed = _apply_variant(composed)
    _refuse_unread_set_params(composed, blocks)
    if input_shape is not None:
        from netspec.spec import check_input_rank

        check_input_rank(composed, input_shape)
        composed.data["input"] = list(input_shape)
    flat = _Expander(composed, blocks, registry).run()
    _refuse_set_params_only_unused_blocks_read(composed, blocks, set(flat.blocks.values()))
    return flat


def _set_params(doc: Document) -> dict[str, str]:
    """The params a ``--set params.NAME=…`` gave: name → the ``--set`` that gave it."""
    overrides = doc.overrides.items()
    return {path[1]: source for path, source in overrides if len(path) >= 2 and path[0] == "params"}


def _spec_reads(doc: Document) -> set[str]:
    """The names the expressions outside ``blocks:`` mention (layers, params, variants, outputs)."""
    found: set[str] = set()
    _names_read({key: value for key, value in doc.data.items() if key != "blocks"}, found)
    return found


def _block_reads(block: _Block) -> set[str]:
    """The spec-level names a block's expressions mention (its layers, its output and its
    parameters' defaults): not its own parameters, which shadow the spec's of the same name."""
    found: set[str] = set()
    _names_read([block.layers, block.output], found)
    found -= set(block.params)
    declared: set[str] = set()
    for name, (_, default, _) in block.params.items():  # a default sees the parameters before it
        defaults: set[str] = set()
        _names_read([default], defaults)
        found |= defaults - declared
        declared.add(name)
    return found


def _refuse_unread_set_params(doc: Document, blocks: dict[str, _Block]) -> None:
    """``--set params.NAME=…`` where no expression reads NAME would change nothing: a typo
    (``params.widht``), or a spec without that parameter. Checked before expanding, so a typo is
    said first; what only unused blocks read is refused after it."""
    set_names = _set_params(doc)
    if not set_names:
        return
    read = _spec_reads(doc).union(*map(_block_reads, blocks.values()))
    problems = []
    for name, source in set_names.items():
        if name in read:
            continue
        useful = [str(k) for k in (doc.data.get("params") or {}) if k in read]
        close = difflib.get_close_matches(str(name), useful, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += (
            f"params that expressions read: {', '.join(useful)}" if useful else "no expression reads a param"
        )
        problems.append(
            Problem(f"no expression of the spec reads {name!r}: it would change nothing", source, hint=hint)
        )
    if problems:
        raise SpecError(problems)


def _refuse_set_params_only_unused_blocks_read(doc: Document, blocks: dict[str, _Block], used: set[str]):
    """``--set params.NAME=…`` that only blocks this network never uses read: ResNet-18 with
    ``--set params.groups=32`` built a plain ResNet-18 (only the bottleneck reads groups)."""
    set_names = _set_params(doc)
    if not set_names:
        return
    reads = {name: _block_reads(block) for name, block in blocks.items()}
    used_blocks = sorted(used & set(blocks))
    read = _spec_reads(doc).union(*(reads[name] for name in used_blocks))
    problems = []
    for name, source in set_names.items():
        if name in read:
            continue
        readers = [block for block, names in reads.items() if name in names]
        message = (
            f"only block {' and '.join(map(repr, readers))} read{'s' if len(readers) == 1 else ''} {name!r}, "
            "and this network uses no such block: it would change nothing"
        )
        problems.append(Problem(message, source, hint=f"blocks this network uses: {', '.join(used_blocks)}"))
    if problems:
        raise SpecError(problems)


def _names_read(value: Any, found: set[str]) -> None:
    """Every name that the ``=expressions`` in ``value`` mention (words in string literals too)."""
    if isinstance(value, dict):
        for item in value.values():
            _names_read(item, found)
    elif isinstance(value, list):
        for item in value:
            _names_read(item, found)
    elif is_expression(value):
        found.update(_NAME.findall(value))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _base_dir(doc: Document) -> Path:
    source = Path(doc.source)
    return source.parent if not doc.source.startswith("<") and source.is_file() else Path.cwd()


def _where(doc: Document, path: Path_, *, key: bool = False) -> str:
    """``file:line:column`` of what ``path`` holds (``key``: of its key), in the file where it was written."""
    doc, path = doc.origin(path)
    loc = doc.locate(path, key=key)
    return f"{doc.source}:{loc.line}:{loc.column}" if loc else doc.source


# ---------------------------------------------------------------- include / extends / variants


class _Composer:
    """Reads ``extends:`` and ``include:`` files; paths are relative to the including file."""

    def __init__(self, root: Path):
        self.root = root
        self.included: dict[Path, tuple[Document, dict[str, _Block]]] = {}  # each file read once

    def compose(self, doc: Document, stack: tuple[Path, ...]) -> tuple[Document, dict[str, _Block]]:
        """``doc`` with its base merged in, and every block it can use; ``stack``: the files being read."""
        data = doc.data if isinstance(doc.data, dict) else {}
        blocks: dict[str, _Block] = {}
        composed = doc
        if "extends" in data:
            base_doc = self._read(doc, ("extends",), data["extends"], stack)
            base, base_blocks = self.compose(base_doc, (*stack, Path(base_doc.source).resolve()))
            composed = _merge_documents(base, doc)
            blocks.update(base_blocks)
        includes = data.get("include", [])
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list):
            raise SpecError([doc.problem("include: expected a file name or a list of them", ("include",))])
        for i, name in enumerate(includes):
            path = ("include",) if isinstance(data.get("include"), str) else ("include", i)
            included = self._read(doc, path, name, stack)
            key = Path(included.source).resolve()
            if key not in self.included:
                self.included[key] = self.compose(included, (*stack, key))
            inc_doc, inc_blocks = self.included[key]
            extra = (
                set(inc_doc.data) - {"blocks", "include", "params"}
                if isinstance(inc_doc.data, dict)
                else set()
            )
            if extra:
                raise SpecError(
                    [
                        inc_doc.problem(
                            f"an included file holds blocks: and params: only, not {sorted(extra)}", ()
                        )
                    ]
                )
            _add_blocks(blocks, inc_blocks, replace=False)
            for key, value in (
                (inc_doc.data.get("params") or {}).items() if isinstance(inc_doc.data, dict) else ()
            ):
                composed.data.setdefault("params", {})
                if isinstance(composed.data["params"], dict) and key not in composed.data["params"]:
                    composed.data["params"][key] = value
                    composed.redirects[("params", key)] = Redirect(inc_doc, ("params", key))
        own = composed.data.get("blocks") if isinstance(composed.data, dict) else None
        if own is not None:
            if not isinstance(own, dict):
                raise SpecError(
                    [composed.problem("blocks: expected a mapping of block names to blocks", ("blocks",))]
                )
            _add_blocks(blocks, {name: _parse_block(composed, name) for name in own}, replace=True)
        return composed, blocks

    def _read(self, doc: Document, path: Path_, name: Any, stack: tuple[Path, ...]) -> Document:
        key = path[0]
        if not isinstance(name, str) or not name.endswith((".yaml", ".yml")):
            raise SpecError([doc.problem(f"{key}: expected a .yaml file name, got {name!r}", path)])
        if Path(name).is_absolute():
            raise SpecError(
                [
                    doc.problem(
                        f"{key}: {name!r} is an absolute path", path, hint="give a path relative to this file"
                    )
                ]
            )
        here = _base_dir(doc)
        try:
            target = (here / name).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name too long, a NUL
            raise SpecError(
                [doc.problem(f"{key}: {printable(name)!r} cannot be read: {exception_line(exc)}", path)]
            ) from None
        if not target.is_relative_to(self.root):
            raise SpecError(
                [
                    doc.problem(
                        f"{key}: {name!r} is outside the spec's directory {self.root}",
                        path,
                        hint="a spec may only read files in its own directory tree",
                    )
                ]
            )
        chain = list(stack)  # the files being read, this one last
        if target in chain:
            cycle = " → ".join(str(p.name) for p in [*chain[chain.index(target) :], target])
            raise SpecError([doc.problem(f"{key}: {name!r} makes an include cycle: {cycle}", path)])
        if len(chain) >= MAX_INCLUDE_DEPTH:
            raise SpecError([doc.problem(f"{key}: includes nested deeper than {MAX_INCLUDE_DEPTH}", path)])
        try:
            kind = target.stat().st_mode
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError)
            problem = "not found" if missing else f"cannot be read ({exc.strerror or exception_line(exc)})"
            raise SpecError(
                [
                    doc.problem(
                        f"{key}: file {name!r} {problem} (looked for {printable(str(target))})",
                        path,
                        hint="check the path" if missing else None,
                    )
                ]
            ) from None
        if not stat.S_ISREG(kind):
            what = "a directory" if stat.S_ISDIR(kind) else "not a regular file"
            raise SpecError([doc.problem(f"{key}: {name!r} is {what} ({printable(str(target))})", path)])
        if target in self.included:
            return self.included[target][0]
        read = read_spec_file(target)
        if not isinstance(read.data, dict):  # a list, a number or an empty file: was silently nothing
            kinds = {
                list: "a list",
                str: "a line of text",
                bool: "true/false",
                int: "a number",
                float: "a number",
            }
            what = "is empty" if read.data is None else f"holds {kinds.get(type(read.data), 'a value')}"
            should = (
                "a base spec is a mapping"
                if key == "extends"
                else "an included file maps blocks: and params:"
            )
            raise SpecError([doc.problem(f"{key}: {name!r} {what}; {should}", path)])
        return read


def _add_blocks(blocks: dict[str, _Block], new: dict[str, _Block], *, replace: bool) -> None:
    for name, block in new.items():
        same = name in blocks and _where(blocks[name].document, blocks[name].path) == _where(
            block.document, block.path
        )
        if name in blocks and not replace and not same:  # one file included twice is no conflict
            first = blocks[name]
            raise SpecError(
                [
                    block.document.problem(
                        f"block {name!r} is also defined at {_where(first.document, first.path, key=True)}",
                        block.path,
                        key=True,
                        hint="rename one of them",
                    )
                ]
            )
        blocks[name] = block


def _merge_documents(base: Document, child: Document) -> Document:
    """``child`` over ``base``: mappings merge key by key, anything else is replaced."""
    redirects: dict[Path_, Redirect] = {}

    def merge(b: Any, c: Any, path: Path_) -> Any:
        if isinstance(b, dict) and isinstance(c, dict):
            out = {}
            for key in [*b, *(k for k in c if k not in b)]:
                if key in c:
                    out[key] = merge(b.get(key), c[key], (*path, key)) if key in b else c[key]
                else:
                    out[key] = b[key]
                    redirects[(*path, key)] = Redirect(base, (*path, key))
            return out
        return c

    data = merge(base.data if isinstance(base.data, dict) else {}, child.data, ())
    data.pop("extends", None)
    return Document(data, child.source, child.positions, child.key_positions, child.overrides, redirects)


def _apply_variant(doc: Document) -> Document:
    data = doc.data
    variants, chosen = data.get("variants"), data.get("variant")
    if variants is None:
        if chosen is not None and ("variant",) in doc.overrides:
            raise SpecError([doc.problem(f"variant {chosen!r}: this spec defines no variants", ("variant",))])
        return doc  # a resolved spec records the variant it was made from
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise SpecError(
            [doc.problem("variants: expected a mapping of names to top-level overrides", ("variants",))]
        )
    named = [name for name in variants if not isinstance(name, str)]
    if named:  # YAML reads `18:` as a number: a name the CLI's --variant could never pick
        raise SpecError(
            [
                doc.problem(
                    f"variant names are text; YAML read {named[0]!r} as "
                    + (
                        "true/false"
                        if isinstance(named[0], bool)
                        else "a number"
                        if named[0] is not None
                        else "null"
                    ),
                    ("variants", named[0]),
                    key=True,
                    hint="quote the name in the spec (and pick it with --variant or variant: as text)",
                )
            ]
        )
    if chosen is None:
        raise SpecError(
            [
                doc.problem(
                    "this spec has variants; pick one with `variant:`",
                    ("variants",),
                    hint="variants: "
                    + ", ".join(printable(str(v)) for v in variants)
                    + " (or --set variant=NAME)",
                )
            ]
        )
    if not isinstance(chosen, str) or chosen not in variants:
        close = difflib.get_close_matches(str(chosen), list(map(str, variants)), n=1)
        raise SpecError(
            [
                doc.problem(
                    f"unknown variant {chosen!r}",
                    ("variant",),
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + "variants: "
                    + ", ".join(printable(str(v)) for v in variants),
                )
            ]
        )
    overlay = Document(variants[chosen], doc.source)
    overlay.redirects[()] = Redirect(doc, ("variants", chosen))
    merged = _merge_documents(doc, overlay)
    merged.redirects.update({k: v for k, v in doc.redirects.items() if k not in merged.redirects})
    # paths the variant wrote point into the variant; everything else into the spec
    for path in _leaf_paths(variants[chosen]):
        merged.redirects[path] = Redirect(doc, ("variants", chosen, *path))
    merged.redirects.setdefault((), Redirect(doc, ()))
    merged.positions, merged.key_positions, merged.overrides = {}, {}, {}
    merged.data.pop("variants", None)
    # a --set wins over the variant (`--set expect=null` drops a variant's contract too)
    for path, source in doc.overrides.items():
        if path and path[0] not in ("variant", "variants") and _set_path(merged.data, path, doc.data):
            merged.redirects[path] = Redirect(doc, path)
            merged.overrides[path] = source
    return merged


def _set_path(target: dict, path: Path_, source: Any) -> bool:
    """Copy the value at ``path`` of ``source`` into ``target``; False when ``source`` lacks it."""
    value = source
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return True


def _leaf_paths(data: Any, path: Path_ = ()) -> list[Path_]:
    if isinstance(data, dict) and data:
        return [p for key, value in data.items() for p in _leaf_paths(value, (*path, key))]
    return [path]


def _parse_block(doc: Document, name: Any) -> _Block:
    path = ("blocks", name)
    body = doc.data["blocks"][name]

    def fail(message: str, sub: Path_ = (), *, key: bool = False, hint: str | None = None):
        raise SpecError([doc.problem(f"block {name!r}: {message}", (*path, *sub), key=key, hint=hint)])

    if not isinstance(name, str) or not _IDENT.match(name):
        fail("block names are identifiers (letters, digits, '_', starting with a letter)", key=True)
    if not isinstance(body, dict):
        fail("expected a mapping with `layers:` (and optional params:, inputs:, outputs:)")
    for key in body:
        if key not in BLOCK_KEYS:
            close = difflib.get_close_matches(str(key), BLOCK_KEYS, n=1)
            fail(
                f"unknown key {key!r}",
                (key,),
                key=True,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "allowed keys: "
                + ", ".join(BLOCK_KEYS),
            )
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        fail("`layers:` must be a non-empty list", ("layers",))
    inputs = body.get("inputs", [INPUT])
    if isinstance(inputs, str):
        inputs = [inputs]
    if (
        not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(i, str) and _IDENT.match(i) for i in inputs)
    ):
        fail("`inputs:` must be a list of names", ("inputs",))
    output = body.get("outputs")
    if output is not None and not isinstance(output, str):
        fail("`outputs:` names the one layer whose output the block gives", ("outputs",))
    params = {}
    declared = body.get("params") or {}
    if not isinstance(declared, dict):
        fail(
            "`params:` must map parameter names to a type (" + ", ".join(PARAM_TYPES) + ") or a default",
            ("params",),
        )
    for pname, decl in declared.items():
        where = ("params", pname)
        if not isinstance(pname, str) or not _IDENT.match(pname) or pname in RESERVED:
            fail(
                f"parameter name {pname!r} is not allowed",
                where,
                key=True,
                hint="use an identifier that is not one of: " + ", ".join(sorted(RESERVED)),
            )
        if isinstance(decl, str) and decl in PARAM_TYPES:
            params[pname] = (PARAM_TYPES[decl], None, True)
        elif isinstance(decl, dict) and set(decl) <= {"type", "default", "description"}:
            kind = decl.get("type", "any")
            if kind not in PARAM_TYPES:
                fail(
                    f"parameter {pname!r}: unknown type {kind!r}",
                    (*where, "type"),
                    hint="types: " + ", ".join(PARAM_TYPES),
                )
            params[pname] = (PARAM_TYPES[kind], decl.get("default"), "default" not in decl)
        else:
            params[pname] = (_type_of(decl), decl, False)
    return _Block(name, doc, path, params, inputs, layers, output)


def _type_of(value: Any) -> tuple[type, ...] | None:
    if is_expression(value):  # a default computed per use: its type is what it computes
        return None
    if isinstance(value, bool):
        return (bool,)
    if isinstance(value, float):
        return (int, float)
    for kind in (int, str, list):
        if isinstance(value, kind):
            return (kind,)
    return None


def _type_ok(value: Any, types: tuple | None) -> bool:
    if types is None or value is None:
        return True
    if types == SIZE:
        items = value if isinstance(value, list) and value else [value]
        return all(isinstance(item, int) and not isinstance(item, bool) for item in items)
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _type_name(types: tuple | None) -> str:
    return next((k for k, v in PARAM_TYPES.items() if v == types), "any")


def _size_hint(key: str, value: Any, declared: tuple) -> str:
    """An int parameter given a list of ints (``kernel_size: 1``, then ``[1, 7]``): the type for both."""
    types, default, required = declared
    if types == PARAM_TYPES["int"] and _type_ok(value, SIZE):
        shown = "" if required else f", default: {json.dumps(default, default=str)}"  # YAML's null, true
        return f"; to take an int or a list of ints, declare it `{key}: {{type: size{shown}}}`"
    return ""


def _kind(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}.get(
        type(value), "null"
    )


# ---------------------------------------------------------------- expansion


class _Expander:
    def __init__(self, doc: Document, blocks: dict[str, _Block], registry: Registry):
        self.doc = doc
        self.blocks = blocks
        self.registry = registry
        self.flat: list[dict] = []
        self.steps = 0
        self.made = Budget(MAX_MADE)  # list items and characters the expressions make, in all
        self.instances: dict[str, str] = {}  # "layer2.0" → "bottleneck", "layer2" → "bottleneck ×4"
        self.use_lines: dict[str, int] = {}  # "layer2" → the line of its use in the spec's file
        self.redirects: dict[Path_, Redirect] = {}
        self.positions: dict[Path_, Any] = {}
        self.shapes = _ShapeTracker(self, registry)
        for name, block in blocks.items():
            if registry.is_builtin(name):
                raise SpecError(
                    [
                        block.document.problem(
                            f"block {name!r} has the name of a built-in layer type",
                            block.path,
                            key=True,
                            hint="give the block another name",
                        )
                    ]
                )
        # a spec's own block wins over a plugin's layer type of the same name: what a spec
        # means must not change when somebody installs a plugin

    def run(self) -> Document:
        data = self.doc.data
        layers = data.get("layers")
        if not isinstance(layers, list):
            return self._flat_document(dict(data))
        variables = self._globals_cache()
        scope = _Scope(self.doc, "", False, variables, {INPUT: INPUT}, INPUT)
        self._items(scope, layers, ("layers",))
        flat = {k: v for k, v in data.items() if k not in ("include", "extends", "blocks", "variants")}
        flat["layers"] = self.flat
        if variables:
            flat["params"] = {k: v for k, v in variables.items()}
        if "train" in data:  # `num_classes: =classes` keeps the data in step with the network's params
            flat["train"] = self._value(self.doc, ("train",), data["train"], variables, None)
        outputs = data.get("outputs")
        if isinstance(outputs, str):
            flat["outputs"] = scope.names.get(outputs, outputs)
        elif isinstance(outputs, list):
            flat["outputs"] = [scope.names.get(o, o) if isinstance(o, str) else o for o in outputs]
        return self._flat_document(flat)

    def _flat_document(self, data: dict) -> Document:
        doc = Document(data, self.doc.source, dict(self.positions))
        doc.redirects = {(): Redirect(self.doc, ()), **self.redirects}
        doc.blocks = dict(self.instances)
        doc.block_lines = dict(self.use_lines)
        return doc

    def _globals(self) -> dict[str, Any]:
        params = self.doc.data.get("params")
        if params is None:
            return {}
        if not isinstance(params, dict):
            raise SpecError([self.doc.problem("params: expected a mapping of names to values", ("params",))])
        values: dict[str, Any] = {}
        for name, value in params.items():
            if not isinstance(name, str) or not _IDENT.match(name) or name in RESERVED:
                hint = None if isinstance(name, str) else YAML_KEY_HINT
                message = f"params: name {name!r} is not allowed"
                raise SpecError([self.doc.problem(message, ("params", name), key=True, hint=hint)])
            values[name] = self._value(self.doc, ("params", name), value, values, None)
        return values

    # -- expressions

    def _value(self, doc: Document, path: Path_, value: Any, variables: dict, scope: _Scope | None) -> Any:
        """A parameter value with every ``=expression`` in it evaluated."""
        if isinstance(value, list):
            return [self._value(doc, (*path, i), v, variables, scope) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._value(doc, (*path, k), v, variables, scope) for k, v in value.items()}
        if not is_expression(value):
            return value
        shape_of = (lambda name: self._shape_of(scope, name, doc, path)) if scope is not None else None
        try:
            return Evaluator(variables, shape_of, self.made).evaluate(value)
        except ExprError as exc:
            raise SpecError(
                [self._problem(doc, path, scope, f"{value!r}: {exc.message}", exc.hint)]
            ) from None

    def _shape_of(self, scope: _Scope, name: str, doc: Document, path: Path_) -> tuple[int, ...]:
        target = self._lookup(scope, name)
        if target is None:
            known = ", ".join(sorted(scope.names))
            raise ExprError(f"no layer {name!r} here", f"layers and inputs in scope: {known}")
        return self.shapes.of(target)

    def _problem(
        self, doc: Document, path: Path_, scope: _Scope | None, message: str, hint=None, **kw
    ) -> Problem:
        notes = tuple(map(str, scope.notes)) if scope is not None else ()
        return doc.problem(message, path, hint=hint, details=notes, **kw)

    # -- names

    def _lookup(self, scope: _Scope, name: str) -> str | None:
        """Global name of a local one; dotted names reach into earlier blocks (``enc1.pool``)."""
        if name in scope.names:
            return scope.names[name]
        head, _, rest = name.partition(".")
        if rest and head in scope.names:
            candidate = f"{scope.names[head]}.{rest}" if scope.names[head] != INPUT else None
            base = f"{scope.prefix}{head}.{rest}"
            for option in (base, candidate):
                if option and option in self.shapes.known:
                    return self.shapes.resolve_alias(option)
        return None

    def _ref(self, scope: _Scope, name: Any) -> Any:
        """A reference as written → the global name; unknown ones stay scoped so errors stay local."""
        if not isinstance(name, str):
            return name
        found = self._lookup(scope, name)
        if found is not None:
            return found
        return name if name == INPUT else f"{scope.prefix}{name}"

    # -- items

    def _items(self, scope: _Scope, items: list, path: Path_) -> None:
        for i, item in enumerate(items):
            self._item(scope, item, (*path, i))

    def _item(self, scope: _Scope, item: Any, path: Path_) -> None:
        doc = scope.document
        self.steps += 1
        if self.steps > MAX_STEPS:
            message = f"the spec takes more than {MAX_STEPS} steps to expand (repeats inside repeats?)"
            raise SpecError([self._problem(doc, path, scope, message, "lower the repeat counts")])
        if not isinstance(item, dict):  # validation reports it, located
            self._emit(scope, item, path, None)
            return
        cond = item.get("if", True)
        if "if" in item:
            cond = self._value(doc, (*path, "if"), cond, scope.variables, scope)
            if not isinstance(cond, bool):
                raise SpecError(
                    [self._problem(doc, (*path, "if"), scope, f"if: expected true or false, got {cond!r}")]
                )
        inputs = self._inputs(scope, item, path, scope.variables)
        if not cond:
            self._left_out(scope, item, inputs)
            return
        repeat = self._repeat(scope, item, path)
        first = item.get("first")
        if first is not None and (not isinstance(first, dict) or repeat is None):
            message = "first: expected a mapping of parameters for the first repetition, with repeat:"
            raise SpecError([self._problem(doc, (*path, "first"), scope, message)])
        bad = set(first or {}) & {"type", "name", "from", *ITEM_KEYS, "layers"}
        if bad:
            raise SpecError(
                [self._problem(doc, (*path, "first"), scope, f"first: cannot change {sorted(bad)}")]
            )
        name = item.get("name")
        if "layers" in item and "type" not in item:
            self._group(scope, item, path, repeat, inputs)
            return
        container = isinstance(name, str) and not is_expression(name) and repeat is not None
        last = None
        for index in range(1 if repeat is None else repeat):
            variables = scope.variables if repeat is None else _repetition(scope.variables, index)
            inst = {**item, **first} if index == 0 and first else item
            sources = dict.fromkeys(first or (), (*path, "first"))
            if container:
                local = f"{name}.{index}"
            elif isinstance(name, str):
                local = self._value(doc, (*path, "name"), name, variables, scope)
                if not isinstance(local, str):
                    raise SpecError(
                        [
                            self._problem(
                                doc, (*path, "name"), scope, f"name: expected a string, got {local!r}"
                            )
                        ]
                    )
                if not PATH_RE.match(scope.prefix + local):  # here, once: not at each layer the use holds
                    message = f"name: {name!r} gives {local!r}, not a name (parts joined by dots)"
                    hint = "a part is letters, digits, '_', '-' from a letter on (a number inside a block)"
                    raise SpecError([self._problem(doc, (*path, "name"), scope, message, hint)])
            else:
                local = None
            from_ = inputs if index == 0 else [last]
            last = self._instance(scope, inst, path, local, from_, variables, sources)
            if local is not None:
                scope.names[local] = last
            scope.previous = last
        if container and last is not None:
            scope.names[name] = last
            kinds = {self.instances.get(f"{scope.prefix}{name}.{i}", "layers") for i in range(repeat)}
            self.instances[scope.prefix + name] = f"{kinds.pop() if len(kinds) == 1 else 'layers'} ×{repeat}"
            self._use_line(scope.prefix + name, doc, path)
        if container or (isinstance(name, str) and repeat is None):
            scope.counter += 1
        elif isinstance(name, str) and repeat:  # each repetition named by the expression takes a position
            scope.counter += repeat
        if repeat == 0:
            self._left_out(scope, item, inputs)

    def _left_out(self, scope: _Scope, item: dict, inputs: list[str] | None) -> None:
        """An item left out (``if: false``, ``repeat: 0``) is an identity on its (first) input: its
        name and the next layer's implicit input read that input, so switching an item off
        never rewires anything but the item itself."""
        stand_in = inputs[0] if inputs else scope.previous
        name = item.get("name")
        if isinstance(name, str) and not is_expression(name):
            scope.names[name] = stand_in
        scope.previous = stand_in

    def _repeat(self, scope: _Scope, item: dict, path: Path_) -> int | None:
        if "repeat" not in item:
            return None
        value = self._value(scope.document, (*path, "repeat"), item["repeat"], scope.variables, scope)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPEAT:
            message = f"repeat: expected an integer from 0 to {MAX_REPEAT}, got {value!r}"
            raise SpecError([self._problem(scope.document, (*path, "repeat"), scope, message)])
        return value

    def _inputs(self, scope: _Scope, item: dict, path: Path_, variables: dict) -> list[str] | None:
        """The global names of an item's ``from:`` (None: the previous layer)."""
        if "from" not in item:
            return None
        value = self._value(scope.document, (*path, "from"), item["from"], variables, scope)
        if isinstance(value, list):
            return [self._ref(scope, v) for v in value]
        return [self._ref(scope, value)]

    def _group(self, scope: _Scope, item: dict, path: Path_, repeat: int | None, inputs) -> None:
        extra = set(item) - {"layers", "from", "repeat", "if"}
        layers = item["layers"]
        if extra or not isinstance(layers, list) or not layers:
            message = (
                "a group (`layers:` without `type:`) takes only layers, from, repeat and if; "
                f"got {sorted(extra)}"
                + (" (for the first repetition, use `=a if index == 0 else b`)" if "first" in extra else "")
                if extra
                else "a group's `layers:` must be a non-empty list"
            )
            raise SpecError([self._problem(scope.document, path, scope, message)])
        if inputs is not None:
            if len(inputs) != 1:
                raise SpecError(
                    [self._problem(scope.document, (*path, "from"), scope, "a group takes one input")]
                )
            scope.previous = inputs[0]
        outer = scope.variables
        for index in range(1 if repeat is None else repeat):
            scope.variables = outer if repeat is None else _repetition(outer, index)
            self._items(scope, layers, (*path, "layers"))
        scope.variables = outer

    def _instance(
        self, scope: _Scope, item: dict, path: Path_, local: str | None, inputs, variables, sources
    ) -> str:
        """Expand one layer or block use; returns the global name of its output."""
        doc = scope.document
        kind = self._value(doc, (*path, "type"), item.get("type"), variables, scope)
        if "type" in item and not isinstance(kind, str):  # `type: =null` was a layer 'None_0' of type 'None'
            got = "null" if kind is None else f"{type(kind).__name__} {kind!r}"
            message = f"type: expected a layer or block type name, got {got}"
            raise SpecError([self._problem(doc, (*path, "type"), scope, message)])
        if local is None:
            local = str(scope.counter) if scope.numbered else f"{kind}_{scope.counter}"
            scope.counter += 1
        name = scope.prefix + local
        inputs = inputs or [scope.previous]
        if isinstance(kind, str) and kind in self.blocks:
            return self._use(scope, self.blocks[kind], item, path, name, inputs, variables, sources)
        layer: dict[str, Any] = {}
        record = self.registry.layers.get(kind) if isinstance(kind, str) else None
        refs = {ref.field for ref in record.refs} if record else set()
        for key, value in item.items():
            if key in ITEM_KEYS or key in ("name", "from"):
                continue
            where = (*sources.get(key, path), key)
            value = kind if key == "type" else self._value(doc, where, value, variables, scope)
            layer[key] = self._ref(scope, value) if key in refs else value
        layer["name"] = name
        layer["from"] = inputs[0] if len(inputs) == 1 and not isinstance(item.get("from"), list) else inputs
        self._emit(scope, layer, path, sources)
        return self.shapes.alias(name, name)

    def _emit(self, scope: _Scope, layer: Any, path: Path_, sources) -> None:
        index = len(self.flat)
        if index >= MAX_LAYERS:
            raise SpecError(
                [
                    self._problem(
                        scope.document, path, scope, f"the spec expands to more than {MAX_LAYERS} layers"
                    )
                ]
            )
        self.flat.append(layer)
        redirect = Redirect(scope.document, path, scope.notes)
        self.redirects[("layers", index)] = redirect
        for key, source in (sources or {}).items():
            self.redirects[("layers", index, key)] = Redirect(scope.document, (*source, key), scope.notes)
        loc = self._top_location(scope.document, path)
        if loc is not None:
            self.positions[("layers", index)] = loc  # the summary's line column: lines of this file only
        if isinstance(layer, dict) and isinstance(layer.get("name"), str):
            self.shapes.known.add(layer["name"])

    def _top_location(self, document: Document, path: Path_):
        """Where ``path`` was written, if in the spec's own file (not an included or base one)."""
        origin, where = document.origin(path)
        loc = origin.locate(where)
        return loc if loc is not None and origin.source == self.doc.origin(())[0].source else None

    def _use_line(self, name: str, document: Document, path: Path_) -> None:
        """A block instance's line: a folded summary row shows where the block was used."""
        loc = self._top_location(document, path)
        if loc is not None:
            self.use_lines.setdefault(name, loc.line)

    def _use(
        self, scope: _Scope, block: _Block, item: dict, path: Path_, name: str, inputs, variables, sources
    ) -> str:
        doc = scope.document
        if block.name in scope.stack:
            cycle = " → ".join([*scope.stack[scope.stack.index(block.name) :], block.name])
            raise SpecError(
                [
                    self._problem(
                        doc,
                        (*path, "type"),
                        scope,
                        f"block {block.name!r} uses itself: {cycle}",
                        "a block cannot contain itself, directly or through other blocks",
                    )
                ]
            )
        if len(scope.stack) >= MAX_BLOCK_DEPTH:
            raise SpecError([self._problem(doc, path, scope, f"blocks nested deeper than {MAX_BLOCK_DEPTH}")])
        args = self._arguments(scope, block, item, path, variables, sources)
        self.instances[name] = block.name
        self._use_line(name, doc, path)
        if len(inputs) != len(block.inputs):
            message = (
                f"block {block.name!r} takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}), "
                f"got {len(inputs)}"
            )
            raise SpecError([self._problem(doc, (*path, "from"), scope, message, "list them in `from:`")])
        shown = ", ".join(f"{k}={_SHORT.repr(v)}" for k, v in args.items())
        note = _UseNote(block.name, doc, path, name, shown)
        first_input = inputs[0]
        child_vars: dict[str, Any] = {
            **self._globals_cache(),
            **args,
            "in_shape": lambda: list(self.shapes.of(first_input)),
            "in_channels": lambda: self.shapes.of(first_input)[0],
            "in_spatial": lambda: list(self.shapes.of(first_input)[1:]),
        }
        names = {INPUT: first_input, **dict(zip(block.inputs, inputs, strict=True))}
        child = _Scope(
            block.document,
            name + ".",
            True,
            child_vars,
            names,
            first_input,
            (note, *scope.notes),
            stack=(*scope.stack, block.name),
        )
        self._defaults(child, block, args)
        self._items(child, block.layers, (*block.path, "layers"))
        if block.output is None:
            return self.shapes.alias(name, child.previous)
        out = child.names.get(block.output)
        if out is None:
            message = f"block {block.name!r}: outputs {block.output!r} is not a layer of the block"
            raise SpecError([self._problem(block.document, (*block.path, "outputs"), scope, message)])
        return self.shapes.alias(name, out)

    def _defaults(self, child: _Scope, block: _Block, args: dict) -> None:
        """Defaults written as expressions, computed in the block's scope (``=in_channels * 4``)
        in declaration order, so a default may use the parameters declared before it."""
        for key, (types, default, _required) in block.params.items():
            if args.get(key) is not default or not is_expression(default):
                continue
            where = (*block.path, "params", key)
            if isinstance(block.document.data["blocks"][block.name]["params"][key], dict):
                where = (*where, "default")
            value = self._value(block.document, where, default, child.variables, child)
            if not _type_ok(value, types):
                message = (
                    f"default of parameter {key!r} computes {_kind(value)} {value!r}, not {_type_name(types)}"
                )
                raise SpecError([self._problem(block.document, where, child, message)])
            args[key] = child.variables[key] = value

    def _globals_cache(self) -> dict[str, Any]:
        if not hasattr(self, "_global_values"):
            self._global_values = self._globals()
        return self._global_values

    def _arguments(self, scope: _Scope, block: _Block, item: dict, path: Path_, variables, sources) -> dict:
        doc = scope.document
        problems = []
        args: dict[str, Any] = {}
        for key, value in item.items():
            if key in ("type", "name", "from", *ITEM_KEYS):
                continue
            where = (*sources.get(key, path), key)
            if key not in block.params:
                close = difflib.get_close_matches(str(key), list(block.params), n=1)
                hint = (f"did you mean {close[0]!r}? " if close else "") + (
                    f"parameters of {block.name!r}: "
                    + (", ".join(block.params) or "none")
                    + f" (defined at {_where(block.document, block.path)})"
                )
                problems.append(
                    self._problem(
                        doc,
                        where,
                        scope,
                        f"unknown parameter {key!r} of block {block.name!r}",
                        hint,
                        key=True,
                    )
                )
                continue
            value = self._value(doc, where, value, variables, scope)
            types = block.params[key][0]
            if not _type_ok(value, types):
                problems.append(
                    self._problem(
                        doc,
                        where,
                        scope,
                        f"parameter {key!r} of block {block.name!r} expects {_type_name(types)}, "
                        f"got {_kind(value)} {value!r}",
                        f"declared at {_where(block.document, (*block.path, 'params', key))}"
                        + _size_hint(key, value, block.params[key]),
                    )
                )
            args[key] = value
        for key, (_types, default, required) in block.params.items():
            if key in args:
                continue
            if required:
                problems.append(
                    self._problem(
                        doc,
                        path,
                        scope,
                        f"block {block.name!r} needs parameter {key!r}",
                        f"add `{key}: ...`; declared at "
                        + _where(block.document, (*block.path, "params", key)),
                    )
                )
            else:
                args[key] = default
        if problems:
            raise SpecError(problems)
        return args


class _ShapeTracker:
    """Shapes of the flat layers expanded so far, inferred on demand and in order."""

    def __init__(self, expander: _Expander, registry: Registry):
        self.expander = expander
        self.registry = registry
        self.models = registry.language[1]
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.layers: dict[str, tuple[str, Any, tuple]] = {}  # name → (type, params, input shapes)
        self.done = 0
        self.known: set[str] = {INPUT}
        self.aliases: dict[str, str] = {}

    def alias(self, name: str, target: str) -> str:
        if name != target:
            self.aliases[name] = target
            self.known.add(name)
        return target

    def resolve_alias(self, name: str) -> str:
        while name in self.aliases:
            name = self.aliases[name]
        return name

    def of(self, name: str) -> tuple[int, ...]:
        if not isinstance(name, str):  # a malformed `from:`; validation will say where
            raise ExprError(f"{name!r} is not a layer name")
        name = self.resolve_alias(name)
        if name == INPUT:
            return self._input()
        flat = self.expander.flat
        while name not in self.shapes and self.done < len(flat):
            self._infer(self.done)
            self.done += 1
        if name not in self.shapes:
            raise ExprError(f"no shape for {name!r} yet: it is not above this layer")
        return self.shapes[name]

    def _input(self) -> tuple[int, ...]:
        value = self.expander.doc.data.get("input")
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            raise SpecError(
                [self.expander.doc.problem("input: expected a list of positive integers", ("input",))]
            )
        return tuple(value)

    def _infer(self, index: int) -> None:
        raw = self.expander.flat[index]
        try:
            model = self.models[raw["type"]]
            params = model.model_validate(raw)
            inputs = params.inputs_named() or []
            input_shapes = tuple(self._input() if n == INPUT else self.shapes[n] for n in inputs)
            record = self.registry.layers[raw["type"]]
            targets = {}
            for ref in record.refs:
                target = getattr(params, ref.field)
                kind, tparams, tinputs = self.layers[target]
                targets[ref.field] = RefTarget(target, kind, tparams, tinputs, self.shapes[target])
            shape = tuple(record.shape(params, LayerContext(input_shapes, targets)))
        except (ValidationError, ShapeError, KeyError, TypeError):
            self._fail(index)
            raise
        self.shapes[raw["name"]] = shape
        self.layers[raw["name"]] = (raw["type"], params, input_shapes)

    def _fail(self, index: int) -> None:
        """Report the failure as the full pipeline would, on the layers so far."""
        from netspec.graph import infer, resolve
        from netspec.validation import validate

        flat = self.expander.flat[: index + 1]
        data = {k: v for k, v in self.expander.doc.data.items() if k in ("netspec", "name", "input")}
        data["layers"] = flat
        data["outputs"] = [layer["name"] for layer in flat if isinstance(layer, dict) and "name" in layer]
        doc = self.expander._flat_document(data)
        model = validate(doc, self.registry)
        layers, _ = resolve(doc, self.registry, list(model.layers), model.outputs)
        infer(doc, self.registry, layers, tuple(model.input))
