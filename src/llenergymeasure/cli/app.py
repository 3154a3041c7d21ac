"""The ``llem`` command: a thin Typer layer over the library.

Commands parse arguments, call the library and render with Rich. Heavy libraries are imported
inside the commands that need them, so ``llem --help`` stays instant.
"""

# No `from __future__ import annotations`: Typer reads every command's annotations on each
# start (llem --help included), and a string annotation is compiled before it is evaluated.
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from llenergymeasure import __version__
from llenergymeasure.cli import campaign, config_cmd, report_cmd, results_cmd, run
from llenergymeasure.cli.render import JSON_MODE, fail, fail_json
from llenergymeasure.exceptions import LLEMError


def _asks_json(args: list[str]) -> bool:
    """Whether a command line asks for ``--json`` (before any ``--``, which ends options)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class _Group(TyperGroup):
    """Ends every command's LLEMError as one message and its exit code, never a traceback;
    under ``--json``, every refusal (a usage error too) is one JSON object on stdout."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[JSON_MODE] = _asks_json(args)  # meta is shared by every sub-command's context
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LLEMError as error:
            fail(error, as_json=ctx.meta.get(JSON_MODE, False))
        except typer.TyperException as error:  # a usage error: Click's own message otherwise
            if not ctx.meta.get(JSON_MODE):
                raise
            usage: Any = error  # Click's ClickException (Typer names only its base class)
            usage.show()
            fail_json(type(error).__name__, usage.format_message(), usage.exit_code)


app = typer.Typer(
    name="llem",
    cls=_Group,
    help="Measure what LLM inference really costs: energy, throughput, latency, FLOPs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich's help rendering imports markdown and pygments
)
app.add_typer(campaign.app, name="campaign")
app.add_typer(config_cmd.app, name="config")
app.add_typer(results_cmd.app, name="results")
app.command("run")(run.run)
app.command("report")(report_cmd.report)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llem {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs on stderr."),
) -> None:
    """llenergymeasure: energy, throughput and latency of LLM inference, with provenance."""
    from llenergymeasure import log

    def setup(logger: Any) -> None:
        from llenergymeasure.redaction import install_log_redaction

        logger.remove()
        logger.add(
            sys.stderr,
            level="DEBUG" if verbose else "WARNING",
            format="<level>{level}</level>: {message}",
        )
        logger.enable("llenergymeasure")
        install_log_redaction()

    log.on_first_use(setup)


PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"
"""Pydantic looks for plugins (the ``pydantic`` entry points of every installed distribution)
when it builds the first model: a scan that grows with the environment (~10 ms in a small one).
llem's models are plain config, so the command skips it, as Typer does for its own adapters;
a value the user set is kept (``PYDANTIC_DISABLE_PLUGINS=`` loads the plugins again)."""


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault(PYDANTIC_PLUGINS_ENV, "__all__")
    app()
