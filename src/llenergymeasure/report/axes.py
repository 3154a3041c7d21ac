"""Axes of the figures: scales that keep positive metrics positive, and interval bars clipped
at an axis edge with a marker and a note saying so (never silently cut, never below zero)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LOG_SPAN = 100.0
"""Values spanning more decades than this ratio are drawn on a log axis."""


def axis_scale(
    rows: list[dict[str, Any]], field: str, low: str | None = None, high: str | None = None
) -> dict[str, Any]:
    """A log scale where the values span more than two decades (else linear, not from zero).

    Every plotted metric is positive: where an interval's low end (``low``, by default
    ``<field>_low``) is below zero the linear axis stops at zero and the bar is clipped there,
    so the axis never runs below zero; an interval reaching past CLIP_ABOVE times the largest
    value is clipped there (``Clip`` draws the marks and says so)."""
    values = [r[field] for r in rows if r.get(field) is not None]
    scale: dict[str, Any]
    if values and min(values) > 0 and max(values) / min(values) > LOG_SPAN:
        scale = {"type": "log"}
    elif any(v is not None and v < 0 for v in (r.get(low or f"{field}_low") for r in rows)):
        scale = {"zero": False, "domainMin": 0, "clamp": True}
    else:
        scale = {"zero": False}
    ceiling = _ceiling(rows, field, high or f"{field}_high", log=scale.get("type") == "log")
    if ceiling is not None:
        scale.update(domainMax=ceiling, clamp=True)
    return scale


CLIP_ABOVE = 3.0
"""Linear axes end at 3x the largest plotted value when an interval reaches further (a noisy
config's interval would otherwise flatten every other point); log axes at 10x."""


def _ceiling(rows: list[dict[str, Any]], field: str, high: str, *, log: bool) -> float | None:
    values = [r[field] for r in rows if r.get(field) is not None]
    highs = [r[high] for r in rows if r.get(high) is not None]
    if not values or not highs or max(values) <= 0:
        return None
    top = max(values) * (10.0 if log else CLIP_ABOVE)
    return _nice(top) if max(highs) > top else None


def _nice(value: float) -> float:
    """The next 1, 2 or 5 x 10^k at or above ``value`` (> 0): an axis end that reads well."""
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= value * (1 - 1e-12))


@dataclass(frozen=True)
class Clip:
    """Where one axis clips interval bars: below ``floor`` (0 on a linear axis an interval
    crossed, the lowest drawn value on a log axis) and above ``ceiling``; the bar is drawn to
    the edge and a triangle marks the clipped end."""

    floor: float | None
    ceiling: float | None

    @classmethod
    def of(cls, rows: list[dict[str, Any]], field: str, low: str, scale: dict[str, Any]) -> Clip:
        if scale.get("type") == "log":
            positive = [
                r[k] for r in rows for k in (field, low) if r.get(k) is not None and r[k] > 0
            ]
            lows = [r[low] for r in rows if r.get(low) is not None]
            floor = min(positive) if positive and any(v <= 0 for v in lows) else None
        else:
            floor = 0.0 if scale.get("domainMin") == 0 else None
        return cls(floor, scale.get("domainMax"))

    def transforms(self, low: str, high: str) -> list[dict[str, Any]]:
        """``<low>_drawn`` and ``<high>_drawn``: the interval's ends within the axis."""
        lo = f"max(datum['{low}'], {self.floor})" if self.floor is not None else f"datum['{low}']"
        hi = (
            f"min(datum['{high}'], {self.ceiling})"
            if self.ceiling is not None
            else f"datum['{high}']"
        )
        return [{"calculate": lo, "as": f"{low}_drawn"}, {"calculate": hi, "as": f"{high}_drawn"}]

    def markers(
        self,
        channel: str,
        low: str,
        high: str,
        other: dict[str, Any],
        scale: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """A triangle layer per clipped end, pointing off the axis. ``other``: the encoding
        of the other position channel (where the bar stands); ``extra``: more encoding
        channels the bars have (their offset within a band)."""
        layers = []
        ends = ((self.floor, low, "<", "down", "left"), (self.ceiling, high, ">", "up", "right"))
        for edge, end, op, vertical, horizontal in ends:
            if edge is None:
                continue
            shape = f"triangle-{vertical if channel == 'y' else horizontal}"
            other_channel = "x" if channel == "y" else "y"
            layers.append(
                {
                    "transform": [
                        {"filter": f"datum['{end}'] != null && datum['{end}'] {op} {edge}"},
                        {"calculate": str(edge), "as": "clipped_at"},
                    ],
                    "mark": {"type": "point", "shape": shape, "filled": True, "size": 70},
                    "encoding": {
                        channel: {"field": "clipped_at", "type": "quantitative", "scale": scale},
                        other_channel: other,
                        "color": {"value": "#111"},
                    }
                    | (extra or {}),
                }
            )
        return layers

    def count(self, rows: list[dict[str, Any]], low: str, high: str) -> int:
        """Rows with a clipped end."""
        return sum(
            (self.floor is not None and r.get(low) is not None and r[low] < self.floor)
            or (self.ceiling is not None and r.get(high) is not None and r[high] > self.ceiling)
            for r in rows
        )

    def note(
        self, rows: list[dict[str, Any]], low: str, high: str, what: str, channel: str = "y"
    ) -> str | None:
        """The caption's sentence saying what was clipped, or None."""
        short = self.axis_note(rows, low, high, channel)
        if short is None:
            return None
        return (
            f"{what}: {short}, the axis edge (each bar or band is drawn to it); the table has "
            "every interval."
        )

    def axis_note(
        self, rows: list[dict[str, Any]], low: str, high: str, channel: str = "y"
    ) -> str | None:
        """The short line under the axis title: how many intervals are clipped, where, and
        the marker that shows it (pointing the way the bar runs on, like the marker drawn)."""
        n = self.count(rows, low, high)
        if not n:
            return None
        down, up = ("▼", "▲") if channel == "y" else ("◄", "►")
        edges = []
        if self.floor is not None:
            edges.append(f"{self.floor:.4g} {down}")
        if self.ceiling is not None:
            edges.append(f"{self.ceiling:.4g} {up}")
        return f"{n} interval(s) clipped at " + " or ".join(edges)


def axis_title(metric: str, statistic: str, log: bool, note: str | None) -> list[str]:
    """An axis title in short lines (a rotated title no longer than its plot): the metric,
    the statistic drawn (and the log scale), and where the axis clips, what it clips."""
    return [metric, statistic + (" (log scale)" if log else ""), *([note] if note else [])]


def quantitative(field: str, title: str | list[str] | None = None, **extra: Any) -> dict[str, Any]:
    encoding = {"field": field, "type": "quantitative", "scale": {"zero": False}, **extra}
    if title is not None:
        encoding["title"] = title
    return encoding


__all__ = ["CLIP_ABOVE", "LOG_SPAN", "Clip", "axis_scale", "axis_title", "quantitative"]
