"""Scatter plots with 95% CI bars in both directions (the Pareto and the served runs'
figures): their two axes worked out once, and the bars drawn within them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenergymeasure.report.axes import Clip, axis_scale, axis_title, quantitative


def barred_rows(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """The rows whose interval on ``field`` is drawn."""
    return [r for r in rows if r.get("show_bars", True) and r.get(f"{field}_low") is not None]


def _shown(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clip markers only for configs whose bars are drawn."""
    for layer in layers:
        layer["transform"].insert(0, {"filter": "datum.show_bars"})
    return layers


@dataclass(frozen=True)
class ScatterAxes:
    """A scatter's two axes with 95% CI bars on both: field, scale, clipping, title and the
    caption's clip note of each (x first, then y)."""

    fields: tuple[str, str]
    scales: tuple[dict[str, Any], dict[str, Any]]
    clips: tuple[Clip, Clip]
    titles: tuple[list[str], list[str]]
    notes: list[str]

    def at(self, axis: int, title: bool = False) -> dict[str, Any]:
        """The encoding of a position on axis 0 (x) or 1 (y), with its title or without."""
        shown = self.titles[axis] if title else None
        return {**quantitative(self.fields[axis], shown), "scale": self.scales[axis]}


def scatter_axes(
    rows: list[dict[str, Any]], fields: tuple[str, str], labels: tuple[str, str], statistic: str
) -> ScatterAxes:
    """The axes of ``fields`` (x, y) over ``rows`` (positive domains, clipping where an
    interval runs far off), titled ``labels`` and ``statistic``, with each axis's clip note."""
    scales, clips, titles, notes = [], [], [], []
    for field, label, channel in zip(fields, labels, ("x", "y"), strict=True):
        scale = axis_scale(rows, field)
        clip = Clip.of(rows, field, f"{field}_low", scale)
        drawn = barred_rows(rows, field)
        ends = (f"{field}_low", f"{field}_high")
        log = scale.get("type") == "log"
        titles.append(axis_title(label, statistic, log, clip.axis_note(drawn, *ends, channel)))
        note = clip.note(drawn, *ends, label, channel)
        notes += [note] if note else []
        scales.append(scale)
        clips.append(clip)
    return ScatterAxes(
        fields,
        (scales[0], scales[1]),
        (clips[0], clips[1]),
        (titles[0], titles[1]),
        notes[::-1],  # the energy axis (y) said first
    )


def interval_bars(axes: ScatterAxes, colour: dict[str, Any]) -> list[dict[str, Any]]:
    """The layers of a scatter's 95% CI bars in both directions: each drawn within its axis
    with a marker at a clipped end, for rows whose ``show_bars`` is true."""
    layers: list[dict[str, Any]] = []
    for axis, channel in ((0, "x"), (1, "y")):
        along, scale, clip = axes.fields[axis], axes.scales[axis], axes.clips[axis]
        other_channel, at_other = ("y", "x")[axis], axes.at(1 - axis)
        layers.append(
            {
                "transform": [
                    {"filter": f"datum.show_bars && datum['{along}_low'] != null"},
                    *clip.transforms(f"{along}_low", f"{along}_high"),
                ],
                "mark": {"type": "rule", "opacity": 0.5},
                "encoding": {
                    channel: {
                        **quantitative(f"{along}_low_drawn", axes.titles[axis]),
                        "scale": scale,
                    },
                    f"{channel}2": {"field": f"{along}_high_drawn"},
                    other_channel: at_other,
                    "color": colour,
                },
            }
        )
        layers += _shown(clip.markers(channel, f"{along}_low", f"{along}_high", at_other, scale))
    return layers


__all__ = ["ScatterAxes", "barred_rows", "interval_bars", "scatter_axes"]
