"""A fast reader for the plain block-style YAML most config files are written in.

A long explicit experiment list (the predecessor's thesis file: 4,224 entries, 80,000 lines) is
``key: value`` lines nested by indentation. Read through libyaml's events it costs ~50 us per
entry, most of it building a Python object per event. This reader handles only that subset,
line by line: indented ``key: value`` / ``key:`` lines, ``- `` sequence items, plain or
simply-quoted scalars, one-line ``[a, b]`` lists of plain scalars, blank lines and comments.

Anything else (anchors, aliases, tags, flow mappings, multi-line scalars, escapes, tabs,
document markers, keys that are not simple names, nesting deeper than the limit) makes it
answer ``None``, and the caller reads the text with the full, guarded reader, which then gives
the same value or the exact refusal. Scalars are resolved and checked by the caller's
``scalar`` function (the full reader's own rules), so both readers agree on every value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ScalarFn = Callable[[str, bool], Any]
"""(text, whether it was quoted) -> the value; raises ``Unreadable`` to hand the text back."""


class Unreadable(Exception):
    """The text is outside the subset (or a scalar is refused): read it with the full reader."""


_PLAIN = r"(?:[A-Za-z0-9_./~+]|-(?=[0-9.]))(?:[^\s#]*[^\s#:])?(?: +[^\s#](?:[^\s]*[^\s:])?)*"
"""A plain scalar on one line: no indicator first, no ': ' or ' #' inside, no ':' at a word end."""
_QUOTED = r"\"[^\"\\\x00-\x1f]*\"|'[^'\x00-\x1f]*'"
_ITEM = r"(?:[A-Za-z0-9_./~+]|-(?=[0-9.]))[^\s#:,\[\]{}'\"]*(?: +[^\s#:,\[\]{}'\"]+)*"
"""A plain scalar inside ``[...]``: also no ',', brackets, braces, quotes or ':' at all."""
_FLOW = rf"\[ *(?:{_ITEM} *(?:, *{_ITEM} *)*)?\]"
_LINE = re.compile(
    rf"(?P<indent> *)(?P<dash>- +)?"
    rf"(?:(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*) *:(?: +(?P<value>{_QUOTED}|{_FLOW}|{_PLAIN}))?"
    rf"|(?P<item>{_QUOTED}|{_FLOW}|{_PLAIN}))"
    r"(?: +#.*)?"
)
_ITEM_SPLIT = re.compile(r" *, *")

# what a line holds (an entry: (column, kind, key, value)); a "- " line is two entries
_VALUE, _FLOW_VALUE, _OPEN, _DASH, _SCALAR = range(5)
"""key: scalar / key: [list] / key: (a block follows, or null) / "- " / a lone scalar"""
Entry = tuple[int, int, Any, Any]


def read_block(text: str, scalar: ScalarFn, *, max_depth: int) -> Any:
    """The document's value, or raise :class:`Unreadable` (read it with the full reader).

    A long list repeats the same few hundred lines thousands of times, so each distinct line
    is matched and its scalars resolved once, then looked up."""
    parsed: dict[str, tuple[Entry, ...]] = {}
    entries: list[Entry] = []
    resolve = _Resolved(scalar)
    for raw in text.split("\n"):
        found = parsed.get(raw)
        if found is None:
            found = parsed[raw] = _entries(raw, resolve)
        entries += found
    if not entries or entries[0][1] == _SCALAR:
        raise Unreadable  # empty, or a lone scalar: the full reader says what they are
    reader = _Reader(entries, max_depth)
    value = reader.block(1)
    if reader.at < len(entries):
        raise Unreadable
    return value


class _Resolved:
    """Each distinct scalar text resolved once (keys and values share the rules)."""

    def __init__(self, scalar: ScalarFn) -> None:
        self._scalar = scalar
        self._values: dict[tuple[str, bool], Any] = {}

    def __call__(self, text: str) -> Any:
        if text[0] == "[":
            inner = text[1:-1].strip(" ")
            return tuple(self(item) for item in _ITEM_SPLIT.split(inner)) if inner else ()
        quoted = text[0] in "\"'"
        key = (text[1:-1] if quoted else text, quoted)
        if key not in self._values:
            self._values[key] = self._scalar(*key)
        return self._values[key]


def _entries(raw: str, resolve: _Resolved) -> tuple[Entry, ...]:
    stripped = raw.removesuffix("\r").rstrip(" ")
    body = stripped.lstrip(" ")
    if not body or body[0] == "#":
        return ()
    found = _LINE.fullmatch(stripped)
    if found is None:
        raise Unreadable
    indent, dash, key, value, item = found.group("indent", "dash", "key", "value", "item")
    column = len(indent)
    head: tuple[Entry, ...] = ()
    if dash:  # "- key: v" opens a mapping at the key's column; "- v" is a scalar item
        head = ((column, _DASH, None, None),)
        column += len(dash)
    if key is None:  # (its key slot says whether the value is a [list], copied when used)
        return (*head, (column, _SCALAR, item[0] == "[", resolve(item)))
    if value is None:
        return (*head, (column, _OPEN, resolve(key), None))
    kind = _FLOW_VALUE if value[0] == "[" else _VALUE
    return (*head, (column, kind, resolve(key), resolve(value)))


class _Reader:
    """Recursive descent over the entries: each block starts at the column of its first one."""

    def __init__(self, entries: list[Entry], max_depth: int) -> None:
        self.entries, self.max_depth = entries, max_depth
        self.at = 0

    def block(self, depth: int) -> Any:
        if depth >= self.max_depth:  # (the full reader counts scalars as a level too)
            raise Unreadable
        column, kind, flow, value = self.entries[self.at]
        if kind == _DASH:
            return self.sequence(column, depth)
        if kind == _SCALAR:  # a sequence item's or an opened key's value
            self.at += 1
            self._expect_end(column)
            return list(value) if flow else value
        return self.mapping(column, depth)

    def sequence(self, column: int, depth: int) -> list[Any]:
        items: list[Any] = []
        entries = self.entries
        while self.at < len(entries):
            entry = entries[self.at]
            if entry[0] != column or entry[1] != _DASH:
                break
            self.at += 1  # to the item's own entry, which follows its dash
            items.append(self.block(depth + 1))
            self._expect_end(column)
        return items

    def mapping(self, column: int, depth: int) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        entries, count = self.entries, len(self.entries)
        at = self.at
        while at < count:  # the hot loop of a long list
            entry_column, kind, key, value = entries[at]
            if entry_column != column or kind >= _DASH:
                break
            at += 1
            if kind == _VALUE:
                mapping[key] = value
            elif kind == _FLOW_VALUE:
                mapping[key] = list(value)
            elif at < count and (
                entries[at][0] > column or (entries[at][0] == column and entries[at][1] == _DASH)
            ):
                self.at = at
                mapping[key] = self.block(depth + 1)
                at = self.at
            else:
                mapping[key] = None
            if at < count and (
                entries[at][0] > column or (entries[at][0] == column and entries[at][1] == _SCALAR)
            ):
                raise Unreadable  # deeper, or a scalar continuing the block: not this subset
        self.at = at
        return mapping

    def _expect_end(self, column: int) -> None:
        """After a member, the next entry continues its block or closes it: never deeper."""
        if self.at < len(self.entries):
            following_column, kind, _, _ = self.entries[self.at]
            if following_column > column or (following_column == column and kind == _SCALAR):
                raise Unreadable
