"""The end of ``llem campaign run``: what the user came for, in at most ``HEADLINE_ROWS`` rows.

The best configs by J/token and the Pareto set of J/token against latency p50, each with its
interval, throughput, latency, flags and how its energy was obtained (ESTIMATE where it is one),
then the command that shows everything (``llem report DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.cli.render import escape, new_table, out

HEADLINE_ROWS = 10
JPT, TPS, P50, P90 = "energy_per_token_j", "tokens_per_second", "latency_p50_s", "latency_p90_s"
NOT_A_WARNING = frozenset({"converged", "energy_is_estimate"})
"""True columns of a summary row that warn of nothing (the estimate is said on its own)."""


@dataclass(frozen=True)
class Headline:
    """One config's line: its numbers as text, and whether it is on the Pareto front."""

    name: str
    jpt: str
    tps: str
    latency: str
    pareto: bool
    flags: list[str]


def _mean(summary: Any, metric: str) -> float | None:
    stats = summary.stats.get(metric)
    return None if stats is None else stats.mean


def _jpt(summary: Any) -> float:
    """J/token's mean, for sorting the configs that have one."""
    return summary.stats[JPT].mean


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _interval(stats: Any) -> str:
    """``0.0123 J [0.0119, 0.0128]``: the bounds as computed (they need not be symmetric)."""
    low = getattr(stats, "lower", getattr(stats, "ci_low", None))
    high = getattr(stats, "upper", getattr(stats, "ci_high", None))
    text = f"{stats.mean:.3g} J"
    return text + (f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else "")


KEPT_FLAGS = "flagged, kept: "
"""How a summary's warnings list its cycles' warning flags (``machine_busy x2``)."""


def flags_of(summary: Any) -> list[str]:
    """ESTIMATE where the energy is one, every true flag column of the summary row
    (low_cycles, high_variability, whatever comes), the cycles' warning flags it kept and
    the untrusted ones it left out."""
    row = summary.row()
    named = [k for k, v in row.items() if v is True and k not in NOT_A_WARNING]
    kept = [w.removeprefix(KEPT_FLAGS) for w in summary.warnings if w.startswith(KEPT_FLAGS)]
    left_out = [f"{code} x{n} left out" for code, n in sorted(summary.excluded.items())]
    return (["ESTIMATE"] if summary.energy_is_estimate else []) + named + kept + left_out


def headlines(summaries: list[Any]) -> tuple[list[Headline], int]:
    """The rows to show (Pareto set first in, then the best by J/token, at most
    ``HEADLINE_ROWS``, ordered by J/token) and how many configs had no J/token."""
    from llenergymeasure.report.pareto import front

    ranked = sorted((s for s in summaries if _mean(s, JPT) is not None), key=_jpt)
    both = [s for s in ranked if _mean(s, P50) is not None]
    on_front = front(
        [_jpt(s) for s in both],
        [_mean(s, P50) or 0.0 for s in both],
        minimize_x=True,
        minimize_y=True,
    )
    pareto = {id(s) for s, on in zip(both, on_front, strict=True) if on}
    chosen = [s for s in ranked if id(s) in pareto][:HEADLINE_ROWS]
    chosen += [s for s in ranked if id(s) not in pareto][: HEADLINE_ROWS - len(chosen)]
    chosen.sort(key=_jpt)
    rows = [
        Headline(
            name=s.name,
            jpt=_interval(s.stats[JPT]),
            tps=_num(_mean(s, TPS)),
            latency=f"{_num(_mean(s, P50))} / {_num(_mean(s, P90))} s",
            pareto=id(s) in pareto,
            flags=flags_of(s),
        )
        for s in chosen
    ]
    return rows, len(summaries) - len(ranked)


def render_headline(directory: Path) -> None:
    """The campaign's headline table and the next command; nothing when no config has a
    J/token (the run's own lines already said why)."""
    from llenergymeasure.cli.results_cmd import campaign_execution, load_records
    from llenergymeasure.results.aggregation import aggregate

    records, seed = load_records(directory)
    summaries = aggregate(records, seed=seed, execution=campaign_execution(directory))
    rows, without = headlines(summaries)
    if not rows:
        return
    basis = "/".join(sorted({b for s in summaries for b in s.energy_bases})) or "n/a"
    methods = "/".join(sorted({m for s in summaries for m in s.energy_methods})) or "n/a"
    estimate = any(s.energy_is_estimate for s in summaries)
    title = (
        f"Best of {len(summaries)} config(s) by J/token (95% CI; energy basis {basis}, "
        f"method {methods}{', an ESTIMATE, not a measurement' if estimate else ''}); "
        "* = Pareto front of J/token vs latency p50"
    )
    if out.is_terminal:
        table = new_table(title=escape(title))
        for column in ("config", "J/token", "tokens/s", "latency p50 / p90", "flags"):
            table.add_column(column, overflow="fold")
        for row in rows:
            mark = "* " if row.pareto else "  "
            table.add_row(
                escape(mark + row.name), row.jpt, row.tps, row.latency, ", ".join(row.flags)
            )
        out.print(table)
    else:  # plain lines: a table would cut names to 80 columns
        out.print(title, markup=False)
        for row in rows:
            flags = f"  [{', '.join(row.flags)}]" if row.flags else ""
            out.print(
                f"{'*' if row.pareto else ' '} {row.name}  J/token {row.jpt}  {row.tps} tokens/s  "
                f"p50/p90 {row.latency}{flags}",
                markup=False,
            )
    if without:
        out.print(f"{without} config(s) without a J/token are not ranked")
    out.print(f"next: llem report {escape(str(directory))}")
