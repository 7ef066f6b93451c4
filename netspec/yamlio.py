"""Safe YAML reading that remembers where every value came from.

PyYAML's ``safe_load`` forgets node positions, accepts duplicate keys silently, reads
``1e-3`` as a string and happily expands an alias bomb. This reader walks the composed
node tree itself so that none of that reaches a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

# YAML 1.2 floats: PyYAML (YAML 1.1) wants a dot, so ``1e-3`` would otherwise be a string.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and a nesting limit; never constructs objects."""

    yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


class _TooDeep(Exception):
    def __init__(self, mark):
        self.mark = mark


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

    def override(self, assignment: str) -> None:
        """Apply ``a.b.c=value`` (value read as YAML) on top of the file, as ``--set`` does."""
        key, sep, raw = assignment.partition("=")
        path = tuple(part for part in key.strip().split(".") if part)
        if not sep or not path:
            raise SpecError(
                [
                    Problem(
                        "expected KEY=VALUE with a dotted KEY, e.g. train.max_epochs=3", f"--set {assignment}"
                    )
                ]
            )
        value = load_yaml(raw, f"--set {assignment}").data
        if not isinstance(self.data, dict):
            self.data = {}
        node = self.data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
        self.overrides[path] = f"--set {assignment}"

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


def load_yaml(text: str, source: str = "<spec>") -> Document:
    """Parse ``text`` into a :class:`Document`; raise :class:`SpecError` on anything unsafe."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise SpecError(
            [Problem(f"spec is larger than {MAX_BYTES // 1024} KiB; refusing to read it", source)]
        )
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except _TooDeep as exc:
            raise SpecError(
                [
                    Problem(
                        f"YAML nested deeper than {MAX_DEPTH} levels; refusing to read it",
                        source,
                        _loc(exc.mark),
                    )
                ]
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            msg = exc.problem or str(exc)
            if exc.context:
                msg = f"{exc.context}: {msg}"
            raise SpecError([Problem(f"invalid YAML: {msg}", source, _loc(mark) if mark else None)]) from None
        except yaml.YAMLError as exc:
            raise SpecError([Problem(f"invalid YAML: {exc}", source)]) from None
        doc = Document(None, source)
        if root is None:
            return doc
        doc.data = _Walker(loader, doc).walk(root, ())
        return doc
    finally:
        loader.dispose()


def read_spec_file(path: str | Path) -> Document:
    """Read a spec file, refusing oversized or unreadable files with a message."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise SpecError([Problem(f"cannot read spec: {exc.strerror}", str(p))]) from None
    if size > MAX_BYTES:
        raise SpecError(
            [Problem(f"spec is larger than {MAX_BYTES // 1024} KiB; refusing to read it", str(p))]
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read spec: {exc}", str(p))]) from None
    return load_yaml(text, str(p))


class _Walker:
    """Turns composed nodes into plain data, recording positions and counting nodes."""

    def __init__(self, loader: _Loader, doc: Document):
        self.loader = loader
        self.doc = doc
        self.count = 0

    def _fail(self, message: str, node, hint: str | None = None):
        message = message.replace("tag:yaml.org,2002:", "!!")
        raise SpecError([Problem(message, self.doc.source, _loc(node.start_mark), hint=hint)])

    def walk(self, node, path: Path_):
        self.count += 1
        if self.count > MAX_NODES:
            self._fail(
                f"YAML expands to more than {MAX_NODES} values (an alias/anchor bomb?); refusing to read it",
                node,
            )
        self.doc.positions.setdefault(path, _loc(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self._fail(f"YAML tag {node.tag!r} is not allowed in a spec", node)
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag not in _ALLOWED_SCALAR_TAGS:
            self._fail(
                f"YAML tag {node.tag!r} is not allowed in a spec",
                node,
                hint="netspec reads plain YAML only: strings, numbers, booleans, lists, mappings",
            )
        return self.loader.construct_object(node)

    def _mapping(self, node, path: Path_) -> dict:
        if node.tag != "tag:yaml.org,2002:map":
            self._fail(f"YAML tag {node.tag!r} is not allowed in a spec", node)
        try:
            self.loader.flatten_mapping(node)  # resolves ``<<: *anchor`` merge keys
        except yaml.MarkedYAMLError as exc:
            self._fail(f"invalid YAML merge: {exc.problem}", node)
        out: dict = {}
        seen: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail("mapping keys must be plain scalars", key_node)
            key = self.walk(key_node, (*path, "<key>"))
            if key in seen:
                first = seen[key]
                self._fail(
                    f"duplicate key {key!r} (first given at line {first.line})",
                    key_node,
                    hint="remove one of them; YAML would silently keep only the last",
                )
            seen[key] = _loc(key_node.start_mark)
            self.doc.key_positions[(*path, key)] = seen[key]
            out[key] = self.walk(value_node, (*path, key))
        self.doc.positions.pop((*path, "<key>"), None)
        return out
