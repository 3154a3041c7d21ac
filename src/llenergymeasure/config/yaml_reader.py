"""YAML file -> plain data, refusing what no config needs before it costs time or memory.

A config file is small: a few hundred keys, or a few thousand explicit experiments. So the
reader refuses, with the file, line and key path, and before any Python value is built:

* a file over :data:`MAX_DOCUMENT_BYTES`, or one that is not a regular file (a FIFO would hang);
* nesting deeper than :data:`MAX_DEPTH` (PyYAML's recursive composer would overflow the stack);
* aliases that expand to more than :data:`MAX_ALIAS_VALUES` values and more than
  :data:`ALIAS_RATIO` times the values written ("billion laughs" bombs, which later stages
  would walk value by value), and recursive aliases; the values written are bounded by the
  file's size alone (a 4,224-entry explicit list holds ~400,000 of them);
* tags that are not plain JSON-like data (``!!binary``, ``!!set``, ``!!timestamp``, ``!python``);
* integers beyond 64 bits (no field takes one; PyYAML's conversion of a 4,300-digit literal
  raises), NaN and infinity (no field takes them, and ``result.json`` cannot hold them);
* control characters (NUL, ESC, ...) in any string: no name, path or value needs one.

The checks run while the document is composed, one parser event at a time, so the work done
on a hostile document is bounded by the limits, not by its size. Events come from libyaml's C
parser where it is installed. Plain block-style text (every long explicit list) is read first
by :mod:`yaml_block`, which refuses nothing itself and hands anything unusual back here.
Booleans follow YAML 1.2 (only true/false) and dates stay strings.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from llenergymeasure.config import yaml_block
from llenergymeasure.exceptions import ConfigError

KeyPath = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 4 * 2**20
"""Largest config file read (an explicit list of 10,000 experiments is about 1 MB)."""
MAX_DEPTH = 32
"""Deepest nesting of lists and mappings (real configs nest 6 levels at most)."""
MAX_ALIAS_VALUES = 100_000
"""Values (keys, scalars, lists, mappings) aliases may always add, whatever the document."""
ALIAS_RATIO = 10
"""Beyond :data:`MAX_ALIAS_VALUES`, aliases may add this many values per value written: a real
file reuses a base section a few times per entry, a bomb multiplies a few values by millions."""
INT_LIMIT = 2**63 - 1
"""Largest integer magnitude read (no field takes more)."""

_DATA_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters other than tab and line breaks."""
_PLAIN_FLOAT = re.compile(r"^[-+]?[0-9_]*\.?[0-9_]*$")
"""A float literal without exponent, infinity or NaN: always finite (at 15 characters or less)."""


class _Resolver(Resolver):
    """YAML 1.2-style plain scalars: booleans are true/false only (``on:``/``no`` stay strings),
    and dates stay strings (no field is a date)."""


_Resolver.yaml_implicit_resolvers = {
    first: [
        r
        for r in resolvers
        if r[0] not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _event_source() -> type:
    """libyaml's C parser when installed, else PyYAML's pure-Python reader/scanner/parser."""
    if yaml.__with_libyaml__:
        from yaml.cyaml import CParser  # type: ignore[attr-defined]

        return CParser

    class _PythonParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

    return _PythonParser


_EventSource: Any = _event_source()


class _Refused(Exception):
    """A limit or rule broken at ``mark``'s line and key ``path`` (becomes a ConfigError)."""

    def __init__(self, what: str, mark: Any, path: KeyPath, fix: str) -> None:
        super().__init__(what)
        self.what, self.line, self.path, self.fix = what, mark.line + 1, path, fix


class _BoundedLoader(_EventSource, SafeConstructor, _Resolver):
    """Builds one document's values straight from parser events, counting as it goes (see
    module docstring); also records the line of every key path it reads.

    No node tree is composed and then constructed: each value is built as its events arrive,
    and a scalar literal is resolved, checked and converted once, then looked up (an explicit
    list repeats the same few hundred literals thousands of times).
    """

    def __init__(self, text: str, *, record_lines: bool = True) -> None:
        _EventSource.__init__(self, text)
        SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self.anchors: dict[str, Any] = {}
        self.lines: dict[KeyPath, int] = {}
        self._record = record_lines
        self._path: list[str | int] = []
        self._count = 0  # values, aliases expanded (an anchor's size is a difference of it)
        self._expanded = 0  # of which aliases added
        self._level = 0
        self._deepest = 0
        self._sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels), once complete
        self._scalars: dict[tuple[Any, ...], tuple[str, Any]] = {}  # literal -> (tag, value)

    # --- building ------------------------------------------------------------------------

    def get_single_value(self) -> tuple[bool, Any]:
        """(whether the stream holds a document, its value)."""
        self.get_event()  # stream start
        found, value = False, None
        if not self.check_event(StreamEndEvent):
            self.get_event()  # document start
            found, value = True, self._compose()
            self.get_event()  # document end
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                None,
                "but found another document (a config file holds one; remove the '---' separators)",
                event.start_mark,
            )
        self.get_event()  # stream end
        return found, value

    def _refuse(self, what: str, mark: Any, fix: str) -> _Refused:
        return _Refused(what, mark, tuple(self._path), fix)

    def _expand(self, values: int, levels: int, mark: Any) -> None:
        """Count an alias's values: refused beyond both bounds of ``ALIAS_RATIO``."""
        self._expanded += values
        written = self._count + values - self._expanded
        if self._expanded > max(MAX_ALIAS_VALUES, ALIAS_RATIO * written):
            raise self._refuse(
                f"the document's aliases expand to more than {MAX_ALIAS_VALUES:,} values and "
                f"more than {ALIAS_RATIO} times the {written:,} values it writes",
                mark,
                "repeat fewer aliases, or write the values out; an alias (*name) repeats all "
                "of its anchor",
            )
        self._grow(values, levels, mark)

    def _grow(self, values: int, levels: int, mark: Any) -> None:
        self._count += values
        deepest = self._level + levels
        if deepest > MAX_DEPTH:
            raise self._refuse(
                f"the document nests lists and mappings more than {MAX_DEPTH} levels deep",
                mark,
                "flatten it; config sections nest a few levels at most",
            )
        if deepest > self._deepest:
            self._deepest = deepest

    def _compose(self) -> Any:
        event = self.peek_event()
        if type(event) is ScalarEvent and event.anchor is None:  # the common case, kept short
            return self._plain_scalar(self.get_event())[1]
        if isinstance(event, AliasEvent):
            self.get_event()
            if event.anchor not in self.anchors:
                raise self._refuse(
                    f"alias *{event.anchor} names no anchor before it",
                    event.start_mark,
                    f"define &{event.anchor} before using *{event.anchor}",
                )
            if event.anchor not in self._sizes:
                raise self._refuse(
                    f"alias *{event.anchor} is used inside its own anchor (a recursive value)",
                    event.start_mark,
                    "a config value cannot contain itself; repeat the values instead",
                )
            self._expand(*self._sizes[event.anchor], event.start_mark)
            return self.anchors[event.anchor]
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise self._refuse(
                f"anchor &{anchor} is defined twice", event.start_mark, "rename one of them"
            )
        start_count, outer_deepest = self._count, self._deepest
        self._deepest = 0
        self._grow(1, 1, event.start_mark)
        if isinstance(event, ScalarEvent):
            value = self.anchors[anchor] = self._scalar(self.get_event())[1]
        elif isinstance(event, SequenceStartEvent):
            value = self._sequence(anchor)
        else:
            value = self._mapping(anchor)
        if anchor is not None:
            self._sizes[anchor] = (self._count - start_count, self._deepest - self._level)
        self._deepest = max(outer_deepest, self._deepest)
        return value

    def _tag(self, kind: type[Node], value: str | None, event: Any) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(kind, value, event.implicit)
        if tag not in _DATA_TAGS and tag != _MERGE_TAG:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise self._refuse(
                f"the YAML tag {shown} is not supported",
                event.start_mark,
                "remove the tag: config values are strings, numbers, booleans, lists and mappings",
            )
        return str(tag)

    def _plain_scalar(self, event: Any) -> tuple[str, Any]:
        """``_scalar`` for a scalar without anchor, counted here (the hot path of a long list)."""
        self._count += 1
        if self._level >= MAX_DEPTH:
            self._count -= 1
            self._grow(1, 1, event.start_mark)  # raises
        if self._level >= self._deepest:  # what _grow records, for an anchor's size
            self._deepest = self._level + 1
        found = self._scalars.get((event.value, event.implicit, event.tag))
        return found if found is not None else self._scalar(event)

    def _scalar(self, event: Any) -> tuple[str, Any]:
        """(tag, value) of a scalar event: resolved, checked and converted once per literal."""
        key = (event.value, event.implicit, event.tag)
        found = self._scalars.get(key)
        if found is None:
            node = ScalarNode(
                self._tag(ScalarNode, event.value, event),
                event.value,
                event.start_mark,
                event.end_mark,
                style=event.style,
            )
            self._check_scalar(node, explicit=event.tag not in (None, "!"))
            value = node.value if node.tag == _MERGE_TAG else self.construct_object(node)
            found = self._scalars[key] = (node.tag, value)
        return found

    def _sequence(self, anchor: str | None) -> list[Any]:
        start = self.get_event()
        self._tag(SequenceNode, None, start)
        items: list[Any] = []
        if anchor is not None:
            self.anchors[anchor] = items
        self._level += 1
        path, lines = self._path, self.lines
        if not self._record:  # the fast read: no key paths (a refusal is read again for them)
            while not self.check_event(SequenceEndEvent):
                items.append(self._compose())
        index = 0
        while not self.check_event(SequenceEndEvent):
            path.append(index)
            lines[tuple(path)] = self.peek_event().start_mark.line + 1
            items.append(self._compose())
            path.pop()
            index += 1
        self._level -= 1
        self.get_event()
        return items

    def _mapping(self, anchor: str | None) -> dict[Any, Any]:
        start = self.get_event()
        self._tag(MappingNode, None, start)
        mapping: dict[Any, Any] = {}
        if anchor is not None:
            self.anchors[anchor] = mapping
        merged: list[dict[Any, Any]] = []  # << merge keys, in order
        self._level += 1
        path, lines, scalars, record = self._path, self.lines, self._scalars, self._record
        peek, get, plain = self.peek_event, self.get_event, self._plain_scalar
        if self._level >= MAX_DEPTH:
            scalars = {}  # every scalar goes through plain(), which refuses the depth
        while True:  # _plain_scalar inlined for keys and values: the hot loop of a long list
            event = peek()
            kind = type(event)
            if kind is MappingEndEvent:
                break
            if self._level >= self._deepest:  # what _grow records for a scalar, for anchors
                self._deepest = self._level + 1
            if kind is ScalarEvent and event.anchor is None:
                get()
                found = scalars.get((event.value, event.implicit, event.tag))
                if found is None:
                    tag, key = plain(event)
                else:
                    self._count += 1
                    tag, key = found
            else:
                tag, key = "", self._compose()
            if record:  # (the fast read keeps no key paths: a refusal is read again for them)
                path.append(event.value if kind is ScalarEvent else "?")  # as written
                lines[tuple(path)] = event.start_mark.line + 1
            following = peek()
            if type(following) is ScalarEvent and following.anchor is None:
                get()
                found = scalars.get((following.value, following.implicit, following.tag))
                if found is None:
                    value = plain(following)[1]
                else:
                    self._count += 1
                    value = found[1]
            else:
                value = self._compose()
            if record:
                path.pop()
            if tag == _MERGE_TAG:
                merged += self._merge_sources(value, event.start_mark)
                continue
            try:
                mapping[key] = value
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    start.start_mark,
                    "found unhashable key",
                    event.start_mark,
                ) from None
        self._level -= 1
        self.get_event()
        if merged:  # explicit keys win, then earlier merge sources over later ones
            combined: dict[Any, Any] = {}
            for source in reversed(merged):
                combined.update(source)
            combined.update(mapping)
            mapping.clear()
            mapping.update(combined)
        return mapping

    def _merge_sources(self, value: Any, mark: Any) -> list[dict[Any, Any]]:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                mark,
                "expected a mapping or list of mappings for merging",
                mark,
            )
        return sources

    # --- values --------------------------------------------------------------------------

    def _check_scalar(self, node: ScalarNode, *, explicit: bool) -> None:
        """Refuse what the value would become: checked in full for an explicit tag or a long
        literal, since a short implicit one always converts to a finite value in range."""
        value = node.value
        control = _CONTROL.search(value)
        if control:
            raise self._refuse(
                f"a string holds the control character {control.group()!r}",
                node.start_mark,
                "remove it: names, paths and values cannot hold NUL or other control characters",
            )
        kind = node.tag[18:]  # after "tag:yaml.org,2002:"
        try:
            full = explicit or len(value) > 15  # 15 characters stay below 2^63 in any base
            if kind == "int" and full:
                self._check_int(node)
            elif kind == "float" and (full or not _PLAIN_FLOAT.match(value)):
                if not math.isfinite(self.construct_yaml_float(node)):
                    raise self._refuse(
                        f"{value} is not a finite number",
                        node.start_mark,
                        "give a finite number: no field accepts NaN or infinity",
                    )
            elif kind == "bool" and value.lower() not in self.bool_values:
                raise self._refuse(
                    f"{value!r} is not a boolean", node.start_mark, "use true or false"
                )
        except ValueError:
            noun = {"int": "an integer", "float": "a number"}.get(kind, f"a {kind}")
            raise self._refuse(
                f"{value[:40]!r} is not {noun}", node.start_mark, f"give {noun}"
            ) from None

    def _check_int(self, node: ScalarNode) -> None:
        # over 80 characters is far beyond 2^63 in any base: refused without converting
        if len(node.value) > 80 or abs(self.construct_yaml_int(node)) > INT_LIMIT:
            shown = node.value[:20] + ("..." if len(node.value) > 20 else "")
            raise self._refuse(
                f"the integer {shown} is beyond the range of every field",
                node.start_mark,
                f"give an integer of magnitude at most {INT_LIMIT} (2^63 - 1)",
            )


class LineMap(Mapping[KeyPath, int]):
    """The 1-based line of each key path of a document that was read without recording them.

    Lines matter only for a message about a mistake, so the first read skips them (a quarter
    of the time of a long explicit list) and the first lookup reads the text again for them.
    """

    def __init__(self, text: str, source: str) -> None:
        self._text, self._source = text, source
        self._lines: dict[KeyPath, int] | None = None

    def _map(self) -> dict[KeyPath, int]:
        if self._lines is None:
            self._lines = parse_yaml(self._text, source=self._source)[1]
        return self._lines

    def __getitem__(self, path: KeyPath) -> int:
        return self._map()[path]

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())

    def mentions(self, key: str) -> bool:
        """Whether ``key`` may be a key of the document (its text holds it), without reading."""
        return key in self._text


def _scalar_reader() -> yaml_block.ScalarFn:
    """This reader's scalar rules (resolution, checks, conversion) for :mod:`yaml_block`."""
    loader = _BoundedLoader("")
    mark = yaml.Mark("", 0, 0, 0, "", 0)

    def scalar(text: str, quoted: bool) -> Any:
        style = '"' if quoted else None
        event = ScalarEvent(None, None, (not quoted, quoted), text, mark, mark, style)
        try:
            return loader._scalar(event)[1]
        except _Refused:
            raise yaml_block.Unreadable from None  # the full reader gives the message

    return scalar


def read_lazily(text: str, *, source: str) -> tuple[Any, LineMap]:
    """``parse_yaml`` with the line map worked out only when first looked up; a document it
    refuses is read again with key paths, so the message names the key.

    Plain block-style text (most config files, and every long explicit list) is read by
    :mod:`yaml_block` first, ~4x faster; anything outside that subset by the full reader."""
    try:
        data = yaml_block.read_block(text, _scalar_reader(), max_depth=MAX_DEPTH)
        return data, LineMap(text, source)
    except yaml_block.Unreadable:
        pass
    try:
        data, _ = parse_yaml(text, source=source, record_lines=False)
    except ConfigError:
        parse_yaml(text, source=source)  # raises the same refusal, with its key path
        raise
    return data, LineMap(text, source)


def parse_yaml(
    text: str, *, source: str, record_lines: bool = True
) -> tuple[Any, dict[KeyPath, int]]:
    """The one document in ``text`` as plain data, and the 1-based line of each key path
    (empty with ``record_lines=False``).

    ``source`` names the text in messages (usually the file's path).
    """
    loader = _BoundedLoader(text, record_lines=record_lines)
    try:
        _, data = loader.get_single_value()
    except _Refused as refused:
        dotted = ".".join(str(p) for p in refused.path)
        raise ConfigError(
            refused.what,
            where=f"{source}:{refused.line}" + (f": {dotted}" if dotted else ""),
            fix=refused.fix,
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err)
        if "nesting depth" in problem:  # libyaml's own limit, met before ours in flow style
            raise ConfigError(
                f"the document nests lists and mappings more than {MAX_DEPTH} levels deep",
                where=where,
                fix="flatten it; config sections nest a few levels at most",
            ) from None
        raise ConfigError(
            f"YAML syntax error: {problem}", where=where, fix="fix the YAML syntax"
        ) from None
    finally:
        loader.dispose()
    return data, loader.lines


def read_text(path: str | Path) -> str:
    """A config file's text: a regular file of at most :data:`MAX_DOCUMENT_BYTES`, UTF-8."""
    file = Path(path)
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{file} is not a regular file", fix="give the path of a YAML file")
        with file.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}", fix="check the path") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(
            f"the path {str(file)!r} holds a NUL character", fix="check the path"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read {file}: {err.strerror or err}", fix="check the path and its permissions"
        ) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            f"{file} is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB, far more than a config "
            "needs",
            fix="check that this is the right file; split a huge experiment list into several "
            "campaigns",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{file} is not UTF-8 text (byte {err.start})", fix="save the file as UTF-8"
        ) from None
