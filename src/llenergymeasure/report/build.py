"""Write a report: the HTML page and, in ``<stem>_figures/`` beside it, an SVG and a PNG of
every figure. The only module that renders; everything it draws comes from ``report.data``."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure import __version__
from llenergymeasure.files import write_atomic, write_bytes_atomic
from llenergymeasure.report import data as D
from llenergymeasure.report import static
from llenergymeasure.report.figures import Section, sections
from llenergymeasure.report.page import finite, page
from llenergymeasure.report.paper import PAPER_LAYOUTS, paper_drawing
from llenergymeasure.report.provenance import source_html
from llenergymeasure.report.source import ReportSource
from llenergymeasure.report.specs import Figure
from llenergymeasure.report.table import config_table, with_ci
from llenergymeasure.results.aggregation import low_cycles_note


@dataclass
class ReportOutcome:
    """What was written, and how long it took."""

    html: Path
    figures: list[Path] = field(default_factory=list)
    configs: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def figure_dir(output: Path) -> Path:
    """``report.html`` -> ``report_figures/`` beside it."""
    return output.with_name(f"{output.stem}_figures")


def _estimate_note(points: Sequence[dict[str, object]]) -> str | None:
    estimated = [p for p in points if p["estimate"]]
    if not estimated:
        return None
    return (
        f"The energy of {len(estimated)} of {len(points)} config(s) is modelled, not measured "
        "(energy source 'estimate'): every J/token, energy and power figure for them is an "
        "estimate, marked so in each figure and in the table."
    )


def _intro(sources: Sequence[ReportSource], points: Sequence[dict[str, object]]) -> list[str]:
    drawn = static.versions()
    lines = [
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by llem {__version__} from "
        + ", ".join(str(s.directory) for s in sources)
        + f": {len(points)} config(s), {sum(len(s.records) for s in sources)} "
        "experiment-cycle(s).",
        "Figures drawn with Vega "
        + drawn["vega"]
        + ", Vega-Lite "
        + drawn["vega-lite"]
        + " (vl-convert-python "
        + drawn["vl-convert-python"]
        + "), all inline: the page "
        "opens offline.",
    ]
    ranked = [p for p in points if p.get(D.JPT.column) is not None]
    if ranked:
        best = min(ranked, key=lambda p: p[D.JPT.column])  # type: ignore[arg-type,return-value]
        where = f" ({best['source']})" if len(sources) > 1 else ""
        lines.append(
            f"Lowest J/token: {best['config']}{where}, {with_ci(dict(best), D.JPT.column)} "
            f"J/token, {best['energy_label']}."
        )
    for source in sources:
        low = low_cycles_note(source.summaries)
        if low:
            lines.append(f"{source.label}: {low}.")
    return lines


def _title(sources: Sequence[ReportSource]) -> str:
    names = [s.campaign.get("name") or s.label for s in sources]
    return "llem report: " + " vs ".join(dict.fromkeys(str(n) for n in names))


FIGURE_SUFFIXES = (".svg", ".png", ".pdf", ".csv")
"""What a figure folder holds; anything else there is the user's and stays."""


def figure_csv(rows: Sequence[dict[str, object]]) -> str:
    """A figure's rows as CSV: one column per field, in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(finite(list(rows)))
    return buffer.getvalue()


def figure_files(figure: Figure) -> dict[str, bytes]:
    """File name -> content of one figure: SVG and PNG as on the page, and for papers an SVG
    and a PDF (fonts embedded) exactly one column (3.5 in) and two columns (7 in) wide, and
    the figure's data as CSV."""
    spec = finite(figure.spec)
    svg = static.to_svg(spec)
    files = {
        f"{figure.stem}.svg": svg.encode("utf-8"),
        f"{figure.stem}.png": static.svg_to_png(svg),
    }
    for layout in PAPER_LAYOUTS:
        drawn = paper_drawing(spec, layout)
        name = f"{figure.stem}.{layout.name}"
        files[f"{name}.svg"] = static.at_width(drawn, layout.inches, "in").encode("utf-8")
        points = layout.inches * static.POINTS_PER_INCH
        files[f"{name}.pdf"] = static.svg_to_pdf(static.at_width(drawn, points))
    files[f"{figure.stem}.csv"] = figure_csv(_data_rows(spec)).encode("utf-8")
    return files


def _data_rows(spec: dict[str, object]) -> list[dict[str, object]]:
    data = spec.get("data")
    values = data.get("values") if isinstance(data, dict) else None
    return list(values) if isinstance(values, list) else []


def write_figures(found: Sequence[Section], folder: Path) -> list[Path]:
    """Every figure's files in ``folder``; stale figure files of an earlier report removed."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in (f for s in found for f in s.figures):
        for name, content in figure_files(figure).items():
            path = folder / name
            write_bytes_atomic(path, content)
            written.append(path)
    for stale in folder.iterdir():
        if stale.suffix in FIGURE_SUFFIXES and stale not in written:
            stale.unlink()
    return written


def write_report(
    sources: Sequence[ReportSource],
    output: Path,
    *,
    power: Sequence[str] = (),
    figures_only: bool = False,
) -> ReportOutcome:
    """Write ``output`` (the page) and its figures' files (``figure_files``); return what was
    written. ``figures_only``: the figure folder alone, no page.

    ``power``: experiment ids whose power over time to draw (default: a few, best first).
    Needs the ``report`` extra (UnavailableError naming it otherwise).
    """
    started = time.perf_counter()
    points, varied = D.config_points(sources)
    found = sections(sources, points, varied, power=power)
    folder = figure_dir(output)
    outcome = ReportOutcome(output, configs=len(points))
    outcome.figures = write_figures(found, folder)
    outcome.notes = [n for s in sources for n in s.notes]
    if figures_only:
        outcome.seconds = time.perf_counter() - started
        return outcome
    bundle = static.javascript_bundle()
    write_atomic(
        output,
        page(
            title=_title(sources),
            intro=_intro(sources, points),
            estimate_note=_estimate_note(points),
            sections=found,
            table=config_table(points, varied),
            provenance=[source_html(s) for s in sources],
            bundle=bundle,
            figure_dir=folder.name,
        ),
    )
    outcome.seconds = time.perf_counter() - started
    return outcome


__all__ = [
    "FIGURE_SUFFIXES",
    "ReportOutcome",
    "figure_csv",
    "figure_dir",
    "figure_files",
    "write_figures",
    "write_report",
]
