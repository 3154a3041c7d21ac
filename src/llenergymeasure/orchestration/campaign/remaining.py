"""The runs a campaign still has to do, with their time kept up to date as runs leave.

The runner asks for an ETA twice per experiment; summing the gaps over every remaining run
each time made a campaign's bookkeeping grow with the square of its size. Here the gap total
and the known timings are adjusted as each run leaves, so an ETA costs the same at 1e2 and
1e5 runs.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry
from llenergymeasure.orchestration.campaign.order import gap_between


class Remaining:
    """Runs still to do, in plan order; taking the first is O(1), taking any other O(n)."""

    def __init__(
        self,
        entries: Iterable[ManifestEntry],
        execution: ExecutionConfig,
        timings_s: Mapping[str, float],
    ) -> None:
        self._items: deque[ManifestEntry] = deque(entries)
        self._execution = execution
        self._timings = timings_s
        self._gaps_s = sum(self._gap(a, b) for a, b in itertools.pairwise(self._items))
        self._known_s = sum(timings_s.get(e.config_hash, 0.0) for e in self._items)
        self._unknown = sum(e.config_hash not in timings_s for e in self._items)

    def _gap(self, a: ManifestEntry, b: ManifestEntry) -> float:
        return gap_between(a, b, self._execution)[0]

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self._items)

    def _forget(self, entry: ManifestEntry) -> None:
        if entry.config_hash in self._timings:
            self._known_s -= self._timings[entry.config_hash]
        else:
            self._unknown -= 1
        if not self._items:  # no float drift survives an empty queue
            self._gaps_s = self._known_s = 0.0

    def popleft(self) -> ManifestEntry:
        """The next run in plan order."""
        entry = self._items.popleft()
        if self._items:
            self._gaps_s -= self._gap(entry, self._items[0])
        self._forget(entry)
        return entry

    def remove(self, entry: ManifestEntry) -> None:
        """Take ``entry`` out of the middle (a parallel executor starts runs out of order)."""
        index = self._items.index(entry)
        before = self._items[index - 1] if index > 0 else None
        after = self._items[index + 1] if index + 1 < len(self._items) else None
        if before is not None:
            self._gaps_s -= self._gap(before, entry)
        if after is not None:
            self._gaps_s -= self._gap(entry, after)
        if before is not None and after is not None:
            self._gaps_s += self._gap(before, after)
        del self._items[index]
        self._forget(entry)

    def eta_s(
        self, current: ManifestEntry | None, mean_run_s: float | None, slots: int
    ) -> float | None:
        """Seconds until the campaign ends: ``current`` (running now) and every remaining run,
        at ``mean_run_s`` each when runs have been timed this session, else at the earlier
        campaign's timings when every one of them has one; None when neither is known."""
        count = len(self._items) + (current is not None)
        if not count:
            return 0.0
        gaps = max(0.0, self._gaps_s)
        if current is not None and self._items:
            gaps += self._gap(current, self._items[0])
        if mean_run_s is not None:
            return mean_run_s * count / slots + gaps
        unknown = self._unknown + (current is not None and current.config_hash not in self._timings)
        if not self._timings or unknown:
            return None
        known = self._known_s + (self._timings[current.config_hash] if current is not None else 0.0)
        return max(0.0, known) / slots + gaps
