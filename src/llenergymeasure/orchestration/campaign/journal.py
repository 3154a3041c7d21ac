"""The manifest's journal, ``DIR/manifest.journal``: what changed since ``manifest.json``.

Rewriting a 100,000-entry manifest twice per experiment would cost seconds each time; instead
each change appends one line (fsync'd) holding the entries it changed in full, the events added
since the last line, and the manifest's top-level fields. ``manifest.json`` is the snapshot the
journal starts from: it records ``journal_seq``, the last line folded into it, and is rewritten
(compacted) only when the journal has grown as long as the manifest, so the cost per update stays
flat whatever the campaign's size.

Format: one JSON object per line, ``{"seq": n, "head": {...}, "entries": [...], "events": [...]}``
with ``seq`` counting up by one from the snapshot's ``journal_seq``. Reading: the snapshot, then
every complete line after its ``journal_seq`` in order. A torn last line (a writer killed mid-write)
is ignored; a bad line followed by good ones, or a gap in ``seq``, means the file is damaged (or
was compacted while being read: the reader tries again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.files import write_bytes_atomic

JOURNAL_FILE = "manifest.journal"


class JournalDamaged(ValueError):
    """The journal holds a bad line before good ones, or its lines do not follow on."""


def journal_path(directory: Path) -> Path:
    return directory / JOURNAL_FILE


def append(directory: Path, line: dict[str, Any]) -> None:
    """Append one line and fsync it: after this returns, the change survives a crash."""
    data = (json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(journal_path(directory), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def reset(directory: Path) -> None:
    """An empty journal (after a snapshot that holds everything it said)."""
    write_bytes_atomic(journal_path(directory), b"")


def read_bytes(directory: Path) -> bytes:
    try:
        return journal_path(directory).read_bytes()
    except FileNotFoundError:
        return b""


def parse(raw: bytes) -> list[dict[str, Any]]:
    """The complete lines of a journal; a torn or unreadable last line is left out."""
    lines: list[dict[str, Any]] = []
    chunks = raw.split(b"\n")
    complete, tail = chunks[:-1], chunks[-1]  # tail: after the last newline (torn, or empty)
    for number, chunk in enumerate(complete, 1):
        try:
            line = json.loads(chunk)
            if not isinstance(line, dict) or not isinstance(line.get("seq"), int):
                raise ValueError("not a journal line")
        except (ValueError, RecursionError) as err:
            if number == len(complete) and not tail:
                break  # the last line, cut short: its change never counted
            raise JournalDamaged(f"line {number}: {err}") from None
        lines.append(line)
    return lines


def torn_bytes(raw: bytes) -> int:
    """How many bytes at the journal's end are no complete line: a torn last line (a writer
    killed mid-write) or a file cut short, which may have taken whole lines with it."""
    end = raw.rfind(b"\n") + 1
    tail = raw[end:]
    if tail:
        return len(tail)
    start = raw.rfind(b"\n", 0, max(0, end - 1)) + 1
    try:
        json.loads(raw[start:end])
    except (ValueError, RecursionError):
        return end - start
    return 0


def fold(data: dict[str, Any], lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The snapshot ``data`` with the lines after its ``journal_seq`` applied, in order."""
    seq, entries, events = (
        data.get("journal_seq", 0),
        data.get("entries", []),
        data.get("events", []),
    )
    if not isinstance(seq, int) or not isinstance(entries, list) or not isinstance(events, list):
        return data  # a damaged snapshot: validating it says what is wrong
    entries, events = list(entries), list(events)
    where = {e.get("exp_id"): i for i, e in enumerate(entries) if isinstance(e, dict)}
    head: dict[str, Any] = {}
    for line in lines:
        if line["seq"] <= seq:
            continue  # already in the snapshot (a crash between snapshot and reset)
        if line["seq"] != seq + 1:
            raise JournalDamaged(f"line seq {line['seq']} does not follow {seq}")
        seq = line["seq"]
        head.update(line.get("head") or {})
        for entry in line.get("entries") or []:
            if not isinstance(entry, dict):
                raise JournalDamaged(f"line seq {seq}: an entry is not an object")
            index = where.get(entry.get("exp_id"))
            if index is None:
                where[entry.get("exp_id")] = len(entries)
                entries.append(entry)
            else:
                entries[index] = entry
        events.extend(line.get("events") or [])
    return {**data, **head, "entries": entries, "events": events, "journal_seq": seq}
