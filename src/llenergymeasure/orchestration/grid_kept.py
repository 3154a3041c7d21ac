"""The experiments a grid validation kept, held in a few flat arrays instead of one dict each.

A million-point grid would need a gigabyte as config dicts; here a kept point costs about
70 bytes: where it came from (its part of the stream and its position there, from which its
dict and name are rebuilt on demand), its config hash, the hash of its directory-safe name, and
an index into the few distinct (backend, model, precision, baseline, energy source) tuples.
Two open-addressing tables over those arrays answer "was this config hash kept?" and "is this
name taken?" exactly: a table only narrows the search to a few candidates, each checked
against the stored digest or the rebuilt name.
"""

from __future__ import annotations

from array import array
from typing import Any, NamedTuple

from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.grid_explicit import Entry, OverridePoints
from llenergymeasure.orchestration.grid_points import Choice, PlanExpander

DIGEST_BYTES = 32


class PointInfo(NamedTuple):
    """What plans and tables show of a kept experiment, without rebuilding its config."""

    backend: str
    model: str
    precision: str
    baseline_s: float | None
    """Idle baseline it measures (None: disabled)."""
    baseline_cached: bool
    energy_source: str


class _IndexTable:
    """Open addressing from 32-bit keys to item numbers, one 64-bit slot each: the key in the
    high half, item + 1 in the low half (0 is empty). Items may share a key, so a lookup
    (``KeptPoints.find``, ``name_key``) checks each candidate it finds."""

    def __init__(self, expected: int = 0) -> None:
        size = 1024
        while size < 2 * expected:
            size *= 2
        self.slots = array("Q", bytes(8 * size))
        self.mask = size - 1
        self._count = 0

    def add(self, key: int, item: int) -> None:
        self._count += 1
        if 2 * self._count > len(self.slots):
            self._grow()
        slots, mask = self.slots, self.mask
        slot = key & mask
        while slots[slot]:
            slot = (slot + 1) & mask
        slots[slot] = (key << 32) | (item + 1)

    def _grow(self) -> None:
        old = self.slots
        self.slots = slots = array("Q", bytes(16 * len(old)))
        self.mask = mask = len(slots) - 1
        for value in old:
            if value:
                slot = (value >> 32) & mask
                while slots[slot]:
                    slot = (slot + 1) & mask
                slots[slot] = value


_ITEM = (1 << 32) - 1


Part = PlanExpander | OverridePoints | None
"""Where a kept point came from: a grid plan, explicit experiments, or plain dicts (None)."""


class KeptPoints:
    """The kept experiments in validation order; each one's dict and name rebuilt on access.

    ``expected``: about how many points will be kept (sizes the tables once)."""

    def __init__(self, expected: int = 0) -> None:
        self._parts: list[Part] = []
        self._held: list[Any] = []  # explicit entries and plain dicts, by position
        self._part = array("H")
        self._pos = array("Q")
        self._digests = bytearray()
        self._info = array("I")
        self._infos: dict[tuple[Any, ...], int] = {}
        self._info_list: list[PointInfo] = []
        self.info_counts: list[int] = []
        """How many kept points have each distinct ``PointInfo`` (by its index)."""
        self._renamed: dict[int, str] = {}
        self._by_digest = _IndexTable(expected)
        self._by_name = _IndexTable(expected)

    def __len__(self) -> int:
        return len(self._pos)

    # --- adding ----------------------------------------------------------------------------

    def add(
        self,
        part: Part,
        point: tuple[Choice, ...] | Entry | dict[str, Any],
        digest: bytes,
        name: str,
        name_key: int,
        info: tuple[str, str, str, float | None, bool, str],
        *,
        renamed: bool,
    ) -> None:
        """Keep a point (a grid plan's choices, an explicit entry, or a plain dict) under
        ``name``, with the key :meth:`name_key` gave it; ``info`` as the fields of ``PointInfo``."""
        item = len(self._pos)
        parts = self._parts
        if not parts or parts[-1] is not part:
            parts.append(part)  # parts come one after another: a part never returns
        self._part.append(len(parts) - 1)
        if isinstance(part, PlanExpander):
            self._pos.append(part.position(point))  # type: ignore[arg-type]
        else:
            self._pos.append(len(self._held))
            self._held.append(point)
        self._digests += digest
        index = self._infos.get(info)
        if index is None:
            index = self._infos[info] = len(self._info_list)
            self._info_list.append(PointInfo(*info))
            self.info_counts.append(0)
        self._info.append(index)
        self.info_counts[index] += 1
        if renamed:
            self._renamed[item] = name
        self._by_digest.add(int.from_bytes(digest[:4], "little"), item)
        self._by_name.add(name_key, item)

    # --- looking up --------------------------------------------------------------------------

    def find(self, digest: bytes) -> int | None:
        """The kept point with this config digest (sha256 bytes), or None."""
        table, digests, size = self._by_digest, self._digests, DIGEST_BYTES
        slots, mask = table.slots, table.mask
        key = int.from_bytes(digest[:4], "little")
        slot = key & mask
        while value := slots[slot]:
            if value >> 32 == key:
                item = (value & _ITEM) - 1
                if digests[item * size : (item + 1) * size] == digest:
                    return item
            slot = (slot + 1) & mask
        return None

    def find_hash(self, config_hash: str) -> int | None:
        """:meth:`find` by the hex config hash."""
        try:
            digest = bytes.fromhex(config_hash)
        except ValueError:
            return None
        return self.find(digest) if len(digest) == DIGEST_BYTES else None

    def name_key(self, name: str) -> int | None:
        """The key ``name`` is kept under, or None when a kept point's name already makes the
        same directory name."""
        safe = safe_name(name)
        slots, mask = self._by_name.slots, self._by_name.mask
        key = hash(safe) & _ITEM
        slot = key & mask
        while value := slots[slot]:
            if value >> 32 == key and safe_name(self.name((value & _ITEM) - 1)) == safe:
                return None
            slot = (slot + 1) & mask
        return key

    # --- reading back ------------------------------------------------------------------------

    def digest(self, item: int) -> str:
        return self._digests[item * DIGEST_BYTES : (item + 1) * DIGEST_BYTES].hex()

    def info(self, item: int) -> PointInfo:
        return self._info_list[self._info[item]]

    @property
    def infos(self) -> list[PointInfo]:
        """The distinct infos, in first-kept order (``info_counts`` says how many of each)."""
        return self._info_list

    def name(self, item: int) -> str:
        renamed = self._renamed.get(item)
        if renamed is not None:
            return renamed
        part, point = self._source(item)
        if isinstance(part, PlanExpander):
            return part.name(point)
        if isinstance(part, OverridePoints):
            return str(point[2])
        return str(point["name"])

    def config(self, item: int) -> dict[str, Any]:
        """The point's config dict with its final name: fresh for grid and explicit points; a
        plain dict as given (a copy only when it was renamed)."""
        part, point = self._source(item)
        renamed = self._renamed.get(item)
        if isinstance(part, PlanExpander):
            return part.build(point, renamed)
        if isinstance(part, OverridePoints):
            config = part.build(point)
        elif renamed is None:
            return point
        else:
            config = {**point}
        if renamed is not None:
            config["name"] = renamed
        return config

    def _source(self, item: int) -> tuple[Part, Any]:
        part = self._parts[self._part[item]]
        pos = self._pos[item]
        if isinstance(part, PlanExpander):
            return part, part.combo_at(pos)
        return part, self._held[pos]


__all__ = ["KeptPoints", "PointInfo"]
