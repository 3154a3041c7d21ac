"""How every number was obtained, per directory: hardware and software, energy source and method
of each experiment (an estimate in red), cycles and CI method, measurement flags, and the
experiments that were filtered, skipped or failed, with their reasons."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.report.data import ESTIMATE
from llenergymeasure.report.source import ReportSource
from llenergymeasure.report.table import number
from llenergymeasure.results.aggregation import RunRecord

FAILED = ("failed", "interrupted", "result_missing")

LIBRARIES = ("llenergymeasure", "torch", "transformers", "vllm", "tensorrt_llm", "nvidia-ml-py")


@dataclass(frozen=True)
class FlagCount:
    """One quality flag code: how many experiment-cycles carried it, and what it means."""

    code: str
    severity: str
    count: int
    message: str


def flag_counts(records: Sequence[RunRecord]) -> list[FlagCount]:
    """Flags across completed results, untrusted first, then by count."""
    seen: dict[tuple[str, str], list[str]] = {}
    for record in records:
        if record.result is None:
            continue
        for flag in record.result.flags:
            seen.setdefault((flag.code, flag.severity), []).append(flag.message)
    counts = [FlagCount(code, sev, len(msgs), msgs[0]) for (code, sev), msgs in seen.items()]
    return sorted(counts, key=lambda f: (f.severity != "untrusted", -f.count, f.code))


def failures(records: Sequence[RunRecord]) -> list[tuple[str, str, str]]:
    """(exp_id, status, first line of the error) of every run that gave no usable result."""
    found = []
    for record in records:
        if record.status in FAILED:
            lines = [line for line in (record.error or "").splitlines() if line.strip()]
            found.append((record.exp_id, record.status, lines[0] if lines else "no error recorded"))
    return found


def environments(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The distinct machines and software stacks the results were measured on."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.result is None:
            continue
        env = record.result.environment
        gpus = [g.get("name") or "?" for g in env.get("gpus") or [] if isinstance(g, dict)]
        libraries = env.get("libraries") or {}
        row = {
            "host": env.get("hostname"),
            "cpu": (env.get("cpu") or {}).get("model"),
            "gpus": ", ".join(gpus) or (env.get("gpu_unavailable_reason") or "none"),
            "gpu driver": env.get("gpu_driver_version"),
            "CUDA driver": env.get("cuda_driver_version"),
            "libraries": ", ".join(
                f"{name} {libraries[name]}" for name in LIBRARIES if libraries.get(name)
            ),
            "llem": record.result.llem_version,
        }
        seen.setdefault(json.dumps(row, sort_keys=True, default=str), row)
    return list(seen.values())


def _esc(value: Any) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _table(heads: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _energy_rows(records: Sequence[RunRecord]) -> list[list[str]]:
    rows = []
    for record in records:
        result = record.result
        if result is None:
            continue
        e = result.energy
        method = _esc(f"{e.source} / {e.method}")
        if e.is_estimate:
            method += f' <strong class="estimate">{html.escape(ESTIMATE)}</strong>'
        rows.append(
            [
                _esc(record.exp_id),
                _esc(record.cycle),
                method,
                _esc(", ".join(e.devices)),
                number(e.window_s),
                number(e.error_bound_pct, 2),
                number(e.baseline_power_w),
                _esc(", ".join(f"{f.code} ({f.severity})" for f in result.flags)),
            ]
        )
    return rows


def source_html(source: ReportSource) -> str:
    """The provenance block of one directory."""
    c = source.campaign
    facts = [
        ("directory", str(source.directory)),
        ("campaign", c.get("name") or "(a folder of llem run results, no campaign manifest)"),
        ("status", c.get("status")),
        ("created", c.get("created_at")),
        ("cycles per config", c.get("cycles")),
        ("order", c.get("structure")),
        ("executor", c.get("executor")),
        ("CI method", f"{source.ci_method}, 95% (per config: the table's CI column)"),
        ("configs", len(source.summaries)),
        ("experiment-cycles", len(source.records)),
    ]
    parts = [f"<h3>{html.escape(source.label)}</h3>"]
    parts.append(
        "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts) + "</dl>"
    )
    for note in source.notes:
        parts.append(f'<p class="warn">{html.escape(note)}</p>')
    envs = environments(source.records)
    if envs:
        heads = list(envs[0])
        parts.append("<h4>Machines and software</h4>")
        parts.append(_table(heads, [[_esc(e[h]) for h in heads] for e in envs]))
    flags = flag_counts(source.records)
    parts.append("<h4>Measurement flags</h4>")
    if flags:
        parts.append(
            _table(
                ["flag", "severity", "experiment-cycles", "what it means"],
                [
                    [
                        _esc(f.code),
                        f'<span class="{f.severity}">{_esc(f.severity)}</span>',
                        _esc(f.count),
                        _esc(f.message),
                    ]
                    for f in flags
                ],
            )
        )
        parts.append(
            "<p class='muted'>untrusted: the cycle is left out of every aggregate (counted in "
            "the table's cycles column); warning: shown, kept.</p>"
        )
    else:
        parts.append("<p>None: no short window, contended GPU or cross-check disagreement.</p>")
    failed = failures(source.records)
    parts.append(f"<h4>Failed experiments ({len(failed)})</h4>")
    if failed:
        parts.append(
            _table(["experiment", "status", "error"], [[_esc(x) for x in row] for row in failed])
        )
    parts.append(f"<h4>Filtered or skipped before running ({len(source.filtered)})</h4>")
    if source.filtered:
        parts.append(_table(["config", "reason"], [[_esc(a), _esc(b)] for a, b in source.filtered]))
    rows = _energy_rows(source.records)
    parts.append(
        f"<details><summary>Energy source and method of every experiment ({len(rows)})</summary>"
        + _table(
            [
                "experiment",
                "cycle",
                "source / method",
                "devices",
                "window (s)",
                "error bound (%)",
                "baseline (W)",
                "flags",
            ],
            rows,
        )
        + "</details>"
    )
    return "\n".join(parts)


__all__ = ["FlagCount", "environments", "failures", "flag_counts", "source_html"]
