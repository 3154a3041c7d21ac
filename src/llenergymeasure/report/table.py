"""The sortable table of every config: varied parameters, J/token ± CI, tokens/s, latency,
energy method (an estimate in red), cycles, CV, adaptive convergence and flags.

Each sortable cell carries its raw value in ``data-v`` so the page's few lines of script sort
numbers as numbers; the text shows the value rounded, with its interval.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from llenergymeasure.report import data as D
from llenergymeasure.report import params as P


def number(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` significant figures, in plain notation where that reads well
    (``201.3`` not ``2e+02``); '-' when absent."""
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        return f"{value:.{max(0, digits - 1 - magnitude)}f}"
    return f"{value:.{digits}g}"


def with_ci(row: dict[str, Any], column: str) -> str:
    """'0.123 ± 0.004' (the 95% CI's half-width), '0.37 [0.12, 1.1]' when the interval is not
    symmetric about the mean (a log-scale one), or the mean alone with one cycle."""
    mean, low, high = row.get(column), row.get(f"{column}_low"), row.get(f"{column}_high")
    if mean is None:
        return "-"
    if low is None or high is None:
        return f"{number(mean)} (n={row.get(f'{column}_n', 0)}, no CI)"
    if not math.isclose((low + high) / 2, mean, rel_tol=1e-9, abs_tol=1e-300):
        return f"{number(mean)} [{number(low)}, {number(high)}]"
    half = (high - low) / 2
    if half <= 1e-9 * abs(mean):  # identical cycles: floating-point noise, not a spread
        half = 0.0
    return f"{number(mean)} ± {number(half, 2)}"


def breakable(text: str) -> str:
    """``text`` as HTML that a narrow column breaks after each ``_`` and ``/`` (and at spaces),
    never inside a word or a number."""
    return html.escape(text).replace("_", "_<wbr>").replace("/", "/<wbr>")


def _cell(text: str, value: Any = None, cls: str = "") -> str:
    sort = "" if value is None else f' data-v="{html.escape(str(value), quote=True)}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{sort}{klass}>{text}</td>"


def _energy(row: dict[str, Any]) -> str:
    label = html.escape(row["energy_label"])
    if row["estimate"]:
        label = label.replace(
            html.escape(D.ESTIMATE), f'<strong class="estimate">{html.escape(D.ESTIMATE)}</strong>'
        )
    basis = row.get("energy_basis")
    return label + (f" <span class='muted'>({html.escape(basis)} basis)</span>" if basis else "")


def _cycles(row: dict[str, Any]) -> str:
    text = f"{row['cycles_used']}/{row['cycles_planned']}"
    extra = []
    if row["cycles_excluded"]:
        extra.append(f"{row['cycles_excluded']} left out ({row['excluded']})")
    if row["cycles_failed"]:
        extra.append(f"{row['cycles_failed']} failed")
    return html.escape(text + (f"; {'; '.join(extra)}" if extra else ""))


def _converged(row: dict[str, Any]) -> str:
    converged = row.get("converged")
    if converged is None:
        return "-"
    return html.escape(("yes" if converged else "no") + f": {row.get('adaptive_stop') or ''}")


def config_table(points: Sequence[dict[str, Any]], varied: Sequence[str]) -> str:
    """The ``<table>`` (one ``<tr>`` per config in ``tbody``), sorted by J/token."""
    axes = list(varied)
    many = len({p["source"] for p in points}) > 1
    heads = (
        (["campaign"] if many else [])
        + ["config"]
        + [P.short(k) for k in axes]
        + [
            "J/token ± 95% CI",
            "J/request ± 95% CI",
            "J per 1k tokens",
            "mean power (W)",
            "tokens/s ± 95% CI",
            "latency p50 (s)",
            "TTFT p50 (s)",
            "energy method",
            "cycles used/planned",
            "CV of J/token",
            "adaptive: converged",
            "flags and notes",
        ]
    )
    head = "".join(f'<th scope="col">{breakable(h)}</th>' for h in heads)
    ranked = sorted(
        points,
        key=lambda p: (p.get(D.JPT.column) is None, p.get(D.JPT.column) or 0.0),
    )
    body = []
    for p in ranked:
        source = f'<span class="path" title="{html.escape(p["source_path"])}">{html.escape(p["source"])}</span>'
        cells = [_cell(source, p["source"])] if many else []
        cells.append(
            _cell(
                f'<span title="{html.escape(p["config_hash"])}">{breakable(p["config"])}</span>',
                p["config"],
            )
        )
        cells += [
            _cell(breakable(str(p.get(D.field_name(k), ""))), p.get(D.field_name(k))) for k in axes
        ]
        cv = p.get(f"{D.JPT.column}_cv")
        cells += [
            _cell(html.escape(with_ci(p, D.JPT.column)), p.get(D.JPT.column), "num"),
            _cell(html.escape(with_ci(p, D.EPR.column)), p.get(D.EPR.column), "num"),
            _cell(number(p.get(D.J1K.column)), p.get(D.J1K.column), "num"),
            _cell(html.escape(with_ci(p, D.POWER.column)), p.get(D.POWER.column), "num"),
            _cell(html.escape(with_ci(p, D.TPS.column)), p.get(D.TPS.column), "num"),
            _cell(number(p.get(D.LATENCY.column)), p.get(D.LATENCY.column), "num"),
            _cell(number(p.get(D.TTFT.column)), p.get(D.TTFT.column), "num"),
            _cell(_energy(p), p["energy_label"]),
            _cell(_cycles(p), p["cycles_used"], "num"),
            _cell("-" if cv is None else f"{100 * cv:.1f}%", cv, "num"),
            _cell(_converged(p), p.get("converged")),
            _cell(html.escape(p["warnings"]) or "-", p["warnings"], "notes"),
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<table id="configs" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


__all__ = ["config_table", "number", "with_ci"]
