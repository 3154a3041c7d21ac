"""``llem config``: check one experiment file, list parameters, print the JSON Schema."""

# No `from __future__ import annotations`: Typer reads every command's annotations on each
# start (llem --help included), and a string annotation is compiled before it is evaluated.
from pathlib import Path

import typer

from llenergymeasure.cli.render import escape, new_table, out, print_json

app = typer.Typer(
    rich_markup_mode=None,
    help="Experiment configs: validate, list parameters, JSON Schema.",
    no_args_is_help=True,
)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Experiment YAML."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved config as JSON."),
) -> None:
    """Check an experiment YAML and show its resolved settings.

    Example: llem config validate examples/experiment.yaml

    Exit 0 valid, 2 unusable: a file that cannot be read, or values that do not go together.
    """
    from llenergymeasure.config.identity import config_hash
    from llenergymeasure.config.introspection import hardware_warnings
    from llenergymeasure.config.loader import load_experiment_config

    config = load_experiment_config(file)
    needs = hardware_warnings(config)
    if as_json:
        print_json(
            {
                "valid": True,
                "config_hash": config_hash(config),
                "hardware_warnings": needs,
                "config": config.model_dump(mode="json"),
            }
        )
        return
    out.print(f"[green]valid[/] {escape(str(file))} (config_hash {config_hash(config)[:12]})")
    out.print(
        f"  {config.backend} / {escape(config.model.name)} / {config.fp_precision}, "
        f"{config.dataset.num_prompts} prompts from {escape(config.dataset.name)}, "
        f"max {config.max_output_tokens} output tokens, energy source {config.energy.source}"
    )
    for need in needs:
        out.print(f"  [yellow]hardware:[/] {escape(need)}")


@app.command("params")
def params(
    backend: str | None = typer.Option(None, "--backend", "-b", help="Show one backend's section."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List every parameter with its type, default, valid values and hardware needs.

    Example: llem config params --backend vllm
    """
    from llenergymeasure.config.introspection import (
        get_backend_params,
        get_shared_params,
        list_backends,
        nearest_names,
    )
    from llenergymeasure.exceptions import ConfigError

    if backend is not None and backend not in list_backends():
        near = nearest_names(backend, list_backends())
        raise ConfigError(
            f"unknown backend '{backend}'" + (f"; did you mean '{near[0]}'?" if near else ""),
            fix=f"use one of: {', '.join(list_backends())}",
        )
    sections = (
        {backend: get_backend_params(backend)}
        if backend
        else {
            "experiment": get_shared_params(),
            **{b: get_backend_params(b) for b in list_backends()},
        }
    )
    if as_json:
        print_json(
            {
                section: {
                    path: {
                        "type": p.type,
                        "default": p.default,
                        "options": list(p.options) if p.options else None,
                        "description": p.description,
                        "requires": list(p.requires),
                    }
                    for path, p in found.items()
                }
                for section, found in sections.items()
            }
        )
        return
    for section, found in sections.items():
        table = new_table(
            title=section if section == "experiment" else f"{section}: (section '{section}:')"
        )
        for column in ("key", "type", "default", "valid values", "description"):
            table.add_column(column, overflow="fold")  # a key is whole, never cut with "…"
        for path, p in found.items():
            description = p.description or ""
            for rule in p.requires:
                description += f" [needs {rule['needs']} when {rule['when']}]"
            options = ", ".join(str(o) for o in p.options) if p.options else ""
            table.add_row(
                path, p.type, escape(repr(p.default)), escape(options), escape(description)
            )
        out.print(table)


@app.command("schema")
def schema(
    kind: str = typer.Argument("experiment", help="experiment or campaign."),
) -> None:
    """Print the JSON Schema of experiment or campaign YAML (for editors and CI checks).

    Example: llem config schema campaign > campaign.schema.json
    """
    from llenergymeasure.config.schemas import campaign_json_schema, experiment_json_schema
    from llenergymeasure.exceptions import ConfigError

    schemas = {"experiment": experiment_json_schema, "campaign": campaign_json_schema}
    if kind not in schemas:
        raise ConfigError(
            f"unknown schema '{kind}'", fix="use: llem config schema experiment|campaign"
        )
    print_json(schemas[kind]())
