"""Safe YAML reading that remembers where every value came from.

PyYAML's ``safe_load`` forgets node positions, accepts duplicate keys silently, reads
``1e-3`` as a string and happily expands an alias bomb. This reader walks the composed
node tree itself so that none of that reaches a user.
"""

from __future__ import annotations

import dataclasses
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on the PyYAML build
    _CParser = None

from netspec.errors import Location, Problem, SpecError

MAX_BYTES = 1 << 20  # a spec is a page of text; a megabyte is already absurd
MAX_NODES = 100_000  # counted with aliases expanded: stops "billion laughs"
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]

_ALLOWED_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}

YAML_KEY_HINT = (
    "YAML reads on, off, yes, no, true and false unquoted as booleans and 12 as a number: quote the key"
)

# YAML 1.2 floats: PyYAML (YAML 1.1) wants a dot, so ``1e-3`` would otherwise be a string.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's resolver with YAML 1.2 floats (``1e-3`` is a number)."""

    yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for key, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_Resolver.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


class _Refused(Exception):
    """A limit was hit while composing; ``mark`` is where."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Limits:
    """Composer limits enforced node by node, so a hostile file stops early instead of after parsing.

    Counts composed nodes (a megabyte of ``[1,1,1,...]`` is refused after MAX_NODES items, not
    after building half a million nodes), bounds nesting, and refuses an alias inside the node it
    names (``&a [*a]``), which would otherwise make a cyclic tree.
    """

    def _init_limits(self) -> None:
        self._depth = 0
        self._nodes = 0
        self._open_anchors: list[str] = []

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _Refused(
                    f"alias *{event.anchor} is inside the node &{event.anchor} it refers to "
                    "(a cycle); refusing to read it",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(_TOO_MANY, event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(_TOO_DEEP, event.start_mark)
        self._depth += 1
        self._open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.pop()


class _PyLoader(
    _Limits,
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.constructor.SafeConstructor,
    _Resolver,
):
    """Pure-Python safe loader with the limits; used when PyYAML was built without libyaml."""

    def __init__(self, text: str):
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._init_limits()


if _CParser is not None:

    class _CLoader(_Limits, yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, _Resolver):
        """libyaml's scanner and parser (about 10× faster) under PyYAML's Python composer.

        The composer stays in Python so that the limits above apply while composing; events
        carry the same marks, so every position is the same as with the pure-Python loader.
        """

        def __init__(self, text: str):
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)
            self._init_limits()


_TOO_MANY = f"YAML has more than {MAX_NODES} values (an alias/anchor bomb?); refusing to read it"
_TOO_DEEP = f"YAML nested deeper than {MAX_DEPTH} levels; refusing to read it"


@dataclass
class Document:
    """Plain data read from YAML, with the location of every value and mapping key."""

    data: Any
    source: str = "<spec>"
    positions: dict[Path_, Location] = field(default_factory=dict)
    key_positions: dict[Path_, Location] = field(default_factory=dict)
    overrides: dict[Path_, str] = field(default_factory=dict)  # path → "--set a.b=value"
    redirects: dict[Path_, Redirect] = field(default_factory=dict)  # expanded data → where it was written
    blocks: dict[str, str] = field(default_factory=dict)  # block instance path → what it is ("bottleneck")
    block_lines: dict[str, int] = field(default_factory=dict)  # block instance path → the line of its use

    def override(self, assignment: str) -> None:
        """Apply ``a.b.0.c=value`` (value read as YAML) on top of the file, as ``--set`` does.

        A number addresses an item of a list (``layers.0.out_channels=8``); missing mappings
        are created. Problems in what ``--set`` wrote are reported against the ``--set``.
        """
        source = f"--set {assignment}"
        key, sep, raw = assignment.partition("=")
        parts = tuple(part.strip() for part in key.strip().split("."))
        if not sep or not key.strip() or not all(parts):
            raise SpecError(
                [Problem("expected KEY=VALUE with a dotted KEY, e.g. train.max_epochs=3", source)]
            )
        value = _set_value(raw, source)
        if self.data is None:
            self.data = {}
        node, path = self.data, ()
        for part in parts[:-1]:
            node, path = self._descend(node, path, part, source)
        last = self._step(node, path, parts[-1], source)
        node[last] = value
        self.overrides[(*path, last)] = source

    def _descend(self, node, path: Path_, part: str, source: str):
        step = self._step(node, path, part, source)
        if isinstance(node, dict) and node.get(step) is None:
            node[step] = {}  # a missing (or null) mapping is created, as if written out
        return node[step], (*path, step)

    @staticmethod
    def _step(node, path: Path_, part: str, source: str) -> str | int:
        """The key or list index ``part`` names in ``node``, or a SpecError naming the --set."""
        where = ".".join(map(str, path)) or "the spec"
        if isinstance(node, dict):
            return part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(
                    [
                        Problem(
                            f"{where} is a list of {len(node)} item(s); {part!r} is not an index in it",
                            source,
                            hint=f"use an index from 0 to {len(node) - 1}" if node else "the list is empty",
                        )
                    ]
                )
            return int(part)
        raise SpecError(
            [
                Problem(
                    f"{where} is {node!r}, not a mapping or a list; cannot set {part!r} inside it",
                    source,
                    hint=f"set {where} itself, e.g. --set {where}=...",
                )
            ]
        )

    def locate(self, path: Path_, *, key: bool = False) -> Location | None:
        """Location of ``path``, or of its nearest located ancestor."""
        path = tuple(path)
        if key and path in self.key_positions:
            return self.key_positions[path]
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get(())

    def origin(self, path: Path_) -> tuple[Document, Path_]:
        """The document and path where the value at ``path`` was written, through redirects."""
        path = tuple(path)
        for cut in range(len(path), -1, -1) if self.redirects else ():
            redirect = self.redirects.get(path[:cut])
            if redirect is not None:
                return redirect.document.origin((*redirect.path, *path[cut:]))
        return self, path

    def problem(self, message: str, path: Path_ = (), *, key: bool = False, **kw) -> Problem:
        path = tuple(path)
        for cut in range(len(path), -1, -1) if self.redirects else ():
            redirect = self.redirects.get(path[:cut])
            if redirect is not None:
                kw["details"] = (*kw.get("details", ()), *map(str, redirect.notes))
                return redirect.document.problem(message, (*redirect.path, *path[cut:]), key=key, **kw)
        for written, source in self.overrides.items():
            # the problem is in what --set wrote, or in a mapping that only --set created
            if path[: len(written)] == written or (len(path) > 1 and written[: len(path)] == path):
                return Problem(message, source=source, **kw)
        return Problem(message, source=self.source, location=self.locate(path, key=key), **kw)


def _set_value(raw: str, source: str) -> Any:
    """A ``--set`` value read as YAML; a problem in it says where in the value, not glued to the
    ``--set`` as a file position (``--set a=[2,2:2:1: …``)."""
    try:
        return load_yaml(raw, source).data
    except SpecError as exc:
        problems = []
        for p in exc.problems:
            if p.location is not None:
                line, column = p.location.line, p.location.column
                at = (
                    "the end"
                    if line > len(raw.split("\n"))
                    else f"column {column}" + (f" of line {line}" if "\n" in raw else "")
                )
                p = dataclasses.replace(p, message=f"{p.message} (at {at} of the value)", location=None)
            problems.append(p)
        raise SpecError(problems) from None


@dataclass(frozen=True)
class Redirect:
    """Data that an expansion copied from ``path`` of another document (a block, an included file).

    ``notes`` say how it got here ("in block 'x' used at file:12:5 as layer2.0 with planes=128");
    any objects whose ``str()`` is that text, so the text is written only when a problem is shown.
    """

    document: Document
    path: Path_
    notes: tuple[object, ...] = ()


def _loc(mark) -> Location:
    return Location(mark.line + 1, mark.column + 1)


def _offset_location(data: str | bytes, offset: int) -> Location:
    """Line and column of a character (or byte) offset: for errors that carry no mark."""
    before = data[:offset]
    newline = "\n" if isinstance(before, str) else b"\n"
    line_start = before.rfind(newline) + 1
    column = len(before[line_start:].decode("utf-8", "replace")) if isinstance(before, bytes) else None
    return Location(before.count(newline) + 1, (column if column is not None else offset - line_start) + 1)


def _refuse(message: str, source: str, location: Location | None, hint: str | None = None) -> SpecError:
    """A located problem; ``location`` is None only for a file that could not be read at all."""
    return SpecError([Problem(message, source, location, hint=hint)])


def load_yaml(text: str, source: str = "<spec>") -> Document:
    """Parse ``text`` into a :class:`Document`; raise :class:`SpecError` on anything unsafe.

    Every refusal is located (at least file and line), and every limit holds while reading,
    so no input makes this take more than a fraction of a second.
    """
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in a str: not text any file can hold
        raise _refuse("text is not valid Unicode", source, _offset_location(text, exc.start)) from None
    if len(encoded) > MAX_BYTES:
        raise _refuse(f"spec is larger than {MAX_BYTES // 1024} KiB; refusing to read it", source, None)
    _check_event_count(text, source)
    if _CParser is not None:
        from netspec.yamlplain import read_plain  # builds on this module

        doc = read_plain(text, source)
        if doc is not None:
            return doc
    try:
        loader = _CLoader(text) if _CParser is not None else _PyLoader(text)
        try:
            root = loader.get_single_node()
            doc = Document(None, source)
            if root is None:  # an empty document: its problems are at its start
                doc.positions[()] = Location(1, 1)
            else:
                doc.data = _Walker(loader, doc).walk(root, ())
            return doc
        finally:
            loader.dispose()
    except _Refused as exc:
        raise _refuse(exc.message, source, _loc(exc.mark)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = exc.problem or str(exc)
        if exc.context:
            msg = f"{exc.context}: {msg}"
        raise _refuse(f"invalid YAML: {msg}", source, _loc(mark) if mark else Location(1, 1)) from None
    except yaml.reader.ReaderError as exc:  # control characters: Python counts characters, libyaml bytes
        where = _offset_location(encoded if _CParser is not None else text, exc.position)
        raise _refuse(
            f"invalid YAML: {exc.reason}: character {exc.character:#06x}",
            source,
            where,
            hint="a spec is plain text: remove control characters",
        ) from None
    except yaml.YAMLError as exc:
        raise _refuse(f"invalid YAML: {exc}", source, Location(1, 1)) from None


def _check_event_count(text: str, source: str) -> None:
    """Refuse a file with far too many values in one C pass (~0.1 s per MiB), before composing.

    A document of n nodes has at most 2n + 4 parse events, so more events than that is likely
    over the limit (certainly, for one document); the walk over events that finds where costs
    about a microsecond each. Many small documents end the walk without a refusal: the real
    parse then refuses the second document.
    """
    if _CParser is None or len(text) < MAX_NODES:
        return
    try:
        events = _CParser(text).raw_parse()
    except yaml.YAMLError:
        return  # the real parse reports the error with its location
    if events <= 2 * MAX_NODES + 4:
        return
    parser = _CParser(text)
    nodes = 0
    while (event := parser.get_event()) is not None:
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _refuse(_TOO_MANY, source, _loc(event.start_mark))


def read_spec_file(path: str | Path) -> Document:
    """Read a spec file, refusing oversized, non-regular or non-UTF-8 files with a message.

    The file type is checked with ``stat`` before opening: opening a FIFO for reading would
    block, and a directory is not a spec.
    """
    p = Path(path)
    try:
        info = p.stat()
    except OSError as exc:
        raise _refuse(f"cannot read spec: {exc.strerror}", str(p), None) from None
    except ValueError:  # a NUL in the path
        raise _refuse("cannot read spec: the path holds a NUL character", str(p), None) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise _refuse(f"cannot read spec: {kind}", str(p), None, hint="give the path of a .yaml spec file")
    if info.st_size > MAX_BYTES:
        raise _refuse(f"spec is larger than {MAX_BYTES // 1024} KiB; refusing to read it", str(p), None)
    try:
        with p.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _refuse(f"cannot read spec: {exc.strerror}", str(p), None) from None
    if len(raw) > MAX_BYTES:  # it grew after stat
        raise _refuse(f"spec is larger than {MAX_BYTES // 1024} KiB; refusing to read it", str(p), None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(
            f"cannot read spec: byte {raw[exc.start]:#04x} is not UTF-8",
            str(p),
            _offset_location(raw, exc.start),
            hint="save the spec as UTF-8 text",
        ) from None
    return load_yaml(text.removeprefix("\ufeff"), str(p))


_INT_TAG, _FLOAT_TAG, _STR_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_NUMBER_CHARS = 100  # a spec's numbers are short; long ones cost quadratic time to convert
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class _Walker:
    """Turns composed nodes into plain data, recording positions and counting nodes."""

    def __init__(self, loader, doc: Document):
        self.loader = loader
        self.doc = doc
        self.count = 0

    def _fail(self, message: str, node, hint: str | None = None):
        message = message.replace("tag:yaml.org,2002:", "!!")
        raise SpecError([Problem(message, self.doc.source, _loc(node.start_mark), hint=hint)])

    def walk(self, node, path: Path_):
        self.count += 1
        if self.count > MAX_NODES:
            self._fail(_TOO_MANY.replace("values", "values with aliases expanded"), node)
        if len(path) > MAX_DEPTH:  # aliases nest nodes deeper than the text does
            self._fail(_TOO_DEEP.replace("levels", "levels with aliases expanded"), node)
        self.doc.positions.setdefault(path, _loc(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self._fail(f"YAML tag {node.tag!r} is not allowed in a spec", node)
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node):
        if node.tag not in _ALLOWED_SCALAR_TAGS:
            self._fail(
                f"YAML tag {node.tag!r} is not allowed in a spec",
                node,
                hint="netspec reads plain YAML only: strings, numbers, booleans, lists, mappings",
            )
        if node.tag in (_INT_TAG, _FLOAT_TAG) and len(node.value) > MAX_NUMBER_CHARS:
            self._fail(f"number with more than {MAX_NUMBER_CHARS} characters; refusing to read it", node)
        try:
            # a scalar's constructor, called directly: construct_object's bookkeeping is for collections
            value = (
                node.value
                if node.tag == _STR_TAG
                else self.loader.yaml_constructors[node.tag](self.loader, node)
            )
        except (ValueError, KeyError, TypeError, OverflowError, yaml.YAMLError):
            shown = node.value if len(node.value) <= 40 else node.value[:40] + "…"
            self._fail(
                f"{shown!r} is not a valid {node.tag}", node, hint="remove the explicit tag or fix the value"
            )
        if isinstance(value, str) and _CONTROL_RE.search(value):
            self._fail(
                "string holds a control character or a lone surrogate (from an escape)",
                node,
                hint="a spec's strings are plain text",
            )
        return value

    def _mapping(self, node, path: Path_) -> dict:
        """Keys and values, then ``<<: *anchor`` merges: explicit keys win, then earlier merges."""
        if node.tag != "tag:yaml.org,2002:map":
            self._fail(f"YAML tag {node.tag!r} is not allowed in a spec", node)
        out: dict = {}
        seen: dict = {}
        merges = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail("mapping keys must be plain scalars", key_node)
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self.walk(key_node, (*path, "<key>"))
            if key in seen:
                first = seen[key]
                self._fail(
                    f"duplicate key {key!r} (first given at line {first.line})",
                    key_node,
                    hint="remove one of them; YAML would silently keep only the last"
                    + ("" if isinstance(key, str) else f"; {YAML_KEY_HINT}"),
                )
            seen[key] = _loc(key_node.start_mark)
            self.doc.key_positions.setdefault((*path, key), seen[key])
            out[key] = self.walk(value_node, (*path, key))
        self.doc.positions.pop((*path, "<key>"), None)
        for value_node in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self._fail("a merge key '<<' takes a mapping or a list of mappings", source)
                self.count += 1
                for key, value in self._mapping(source, path).items():
                    out.setdefault(key, value)
        return out
