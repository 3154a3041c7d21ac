"""``llem campaign``: validate a campaign grid (and, later, run it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from llenergymeasure.cli.render import out, print_json

app = typer.Typer(help="Campaigns: grids of experiments run in cycles.", no_args_is_help=True)


def _plan(file: Path) -> tuple[Any, Any]:
    from llenergymeasure.config.loader import load_campaign_config
    from llenergymeasure.orchestration.experiments import plan_campaign

    campaign = load_campaign_config(file)
    return campaign, plan_campaign(campaign, file)


def _json_summary(campaign: Any, result: Any) -> dict[str, Any]:
    def examples(issues: list[Any]) -> list[dict[str, Any]]:
        return [issue.model_dump() for issue in issues]

    return {
        "campaign_name": campaign.campaign_name,
        "total_generated": result.total_generated,
        "valid": len(result.valid_configs),
        "filtered": len(result.filtered_configs),
        "duplicates": len(result.duplicates),
        "warnings": len(result.warnings),
        "summary": result.summary,
        "per_backend": result.per_backend,
        "filtered_reasons": [{"rule": r, "count": n} for r, n in result.grouped_reasons()],
        "backend_requirements": result.backend_requirements,
        "experiments": [
            {"name": c["name"], "backend": c.get("backend", "pytorch"), "config_hash": h}
            for c, h in zip(result.valid_configs, result.config_hashes, strict=True)
        ],
        "filtered_configs": examples(result.filtered_configs),
        "duplicate_configs": examples(result.duplicates),
        "warning_configs": examples(result.warnings),
    }


def render_plan(result: Any, *, list_names: bool) -> None:
    """Per-backend counts, grouped reasons, requirements, warnings and the summary line."""
    table = Table(title="Experiments per backend")
    for column in ("backend", "valid", "filtered", "duplicates", "hardware warnings"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend, row in result.per_backend.items():
        table.add_row(
            backend, *(str(row[k]) for k in ("valid", "filtered", "duplicates", "warned"))
        )
    out.print(table)
    if result.filtered_configs:
        out.print("[bold]Filtered as invalid[/]")
        example: dict[str, Any] = {}
        for issue in result.filtered_configs:
            example.setdefault(issue.rule or issue.reason, issue)
        for rule, count in result.grouped_reasons():
            out.print(f"  [red]x {count}[/] {escape(rule)}")
            out.print(
                f"      e.g. {escape(example[rule].config_desc)}: {escape(example[rule].reason)}"
            )
    for requirement in result.backend_requirements.values():
        out.print(f"[yellow]note:[/] {escape(requirement)}")
    if result.warnings:
        out.print("[bold]Hardware warnings[/] (kept; may fail at run time)")
        for reason, count in Counter(w.reason for w in result.warnings).most_common():
            out.print(f"  [yellow]x {count}[/] {escape(reason)}")
    if list_names:
        out.print("[bold]Experiments[/]")
        for config, digest in zip(result.valid_configs, result.config_hashes, strict=True):
            out.print(f"  {escape(config['name'])}  [dim]{digest[:12]}[/]")
    out.print(escape(result.summary))


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Campaign YAML."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
    list_names: bool = typer.Option(False, "--list", help="List the valid experiments' names."),
) -> None:
    """Expand a campaign's grid and dry-run validate every experiment (no GPU needed).

    Example: [bold]llem campaign validate examples/campaign.yaml --list[/]

    Exit 0 when at least one experiment is valid, 1 when none is, 2 when the file is unusable.
    """
    campaign, result = _plan(file)
    if as_json:
        print_json(_json_summary(campaign, result))
    else:
        out.print(f"[bold]{escape(campaign.campaign_name)}[/] ({escape(str(file))})")
        render_plan(result, list_names=list_names)
    if not result.valid_configs:
        raise typer.Exit(1)
