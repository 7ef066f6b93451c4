"""A one-pass reader for plain YAML: libyaml's events straight to data and positions.

Composing node objects and then walking them costs about 30 µs per layer; most specs use
no anchors, aliases, merge keys or tags, and need neither. This reader handles only such
documents and gives up (returns None) on anything else, including every problem, so the
full reader in :mod:`netspec.yamlio` still decides what is refused and how it is located.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent

from netspec import yamlio
from netspec.errors import Location

_STR_TAG = "tag:yaml.org,2002:str"
_CONSTRUCTED = {f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null")}
_RESOLVER = yamlio._Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MISSING = object()


class _NotPlain(Exception):
    """The document needs the full reader."""


def read_plain(text: str, source: str) -> yamlio.Document | None:
    """The document of ``text`` as :func:`netspec.yamlio.load_yaml` reads it, or None if not plain."""
    parser = yamlio._CParser(text)
    doc = yamlio.Document(None, source)
    try:
        events = parser.get_event
        events()  # stream start
        if not isinstance(events(), yaml.DocumentStartEvent):
            return None  # an empty stream: the full reader locates it
        doc.data = _Reader(events, doc).node(events(), (), 0)
        events()  # document end
        if not isinstance(events(), yaml.StreamEndEvent):
            return None  # a second document
        return doc
    except (_NotPlain, yaml.YAMLError):
        return None
    finally:
        parser.dispose()


class _Reader:
    def __init__(self, events, doc: yamlio.Document):
        self.events = events
        self.positions = doc.positions
        self.key_positions = doc.key_positions
        self.count = 0
        self.tags: dict[str, str] = {}  # plain scalar → resolved tag
        self.values: dict[tuple[str, str], Any] = {}  # (tag, text) → number, bool or None

    def node(self, event, path: tuple, depth: int) -> Any:
        self.count += 1
        if self.count > yamlio.MAX_NODES or depth >= yamlio.MAX_DEPTH - 1:
            raise _NotPlain
        if event.anchor is not None or event.tag is not None:
            raise _NotPlain
        mark = event.start_mark
        self.positions[path] = Location(mark.line + 1, mark.column + 1)
        kind = type(event)
        if kind is ScalarEvent:
            return self.scalar(event)
        if kind is MappingStartEvent:
            return self.mapping(path, depth)
        if kind is SequenceStartEvent:
            items: list = []
            while type(item := self.events()) is not SequenceEndEvent:
                items.append(self.node(item, (*path, len(items)), depth + 1))
            return items
        raise _NotPlain  # an alias

    def mapping(self, path: tuple, depth: int) -> dict:
        out: dict = {}
        while type(event := self.events()) is not MappingEndEvent:
            if type(event) is not ScalarEvent or event.anchor is not None or event.tag is not None:
                raise _NotPlain
            self.count += 1
            key = self.scalar(event)
            if key in out or key == "<key>":  # a duplicate is refused by the full reader
                raise _NotPlain
            mark = event.start_mark
            self.key_positions[(*path, key)] = Location(mark.line + 1, mark.column + 1)
            out[key] = self.node(self.events(), (*path, key), depth + 1)
        return out

    def scalar(self, event) -> Any:
        text = event.value
        tag = _STR_TAG
        if event.implicit[0]:
            tag = self.tags.get(text)
            if tag is None:
                tag = self.tags[text] = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
        if tag == _STR_TAG:
            if yamlio._CONTROL_RE.search(text):
                raise _NotPlain
            return text
        if tag not in _CONSTRUCTED or len(text) > yamlio.MAX_NUMBER_CHARS:
            raise _NotPlain  # a merge key, a timestamp, an absurd number
        value = self.values.get((tag, text), _MISSING)
        if value is _MISSING:
            node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark)
            try:
                value = _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
            except (ValueError, KeyError, TypeError, OverflowError, yaml.YAMLError):
                raise _NotPlain from None
            self.values[tag, text] = value
        return value
