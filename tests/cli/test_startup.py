"""The CLI starts instantly because nothing heavy is imported before it is needed: a fresh
interpreter per case, and the modules it loaded checked against what must stay out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = {"torch", "transformers", "numpy", "pynvml", "vllm", "ray", "pyarrow", "vl_convert"}
"""Never imported before a command needs them."""
HELP_RENDERING = {"markdown_it", "pygments"}
"""What Rich's help formatter would pull in."""
RICH_EMOJI = "rich._emoji_codes"
"""Rich's emoji table: the consoles render no emoji codes, so it is never imported."""
OURS_FOR_COMMANDS = (
    "llenergymeasure.config",
    "llenergymeasure.orchestration",
    "llenergymeasure.files",
)
"""Our modules that help text never needs (the config models, planning, the file helpers)."""

PROBE = """
import json, sys
sys.argv = {argv!r}
{setup}
{code}
print("@@" + json.dumps({{"modules": sorted(sys.modules), "scans": SCANS}}))
"""
NO_SETUP = "SCANS = []"
COUNT_SCANS = """
import importlib.metadata as metadata
SCANS = []
def _counted(name, read):
    def counted(*args, **kwargs):
        SCANS.append(name)
        return read(*args, **kwargs)
    return counted
for _name in ("entry_points", "distributions", "distribution", "metadata", "version"):
    setattr(metadata, _name, _counted(_name, getattr(metadata, _name)))
"""
"""Counts reads of installed distributions' metadata (pydantic's plugin scan is one)."""
RUN_CLI = """
from llenergymeasure.cli.app import main
import contextlib, io
try:
    with contextlib.redirect_stdout(io.StringIO()):
        main()
except SystemExit:
    pass
"""


def _probe(code: str, argv: list[str], setup: str = NO_SETUP) -> tuple[set[str], list[str]]:
    """(modules loaded, with their top-level packages; metadata reads) of ``code``."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, setup=setup, code=code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("@@"))
    seen = json.loads(line[2:])
    modules = set(seen["modules"])
    return {name.split(".")[0] for name in modules} | modules, seen["scans"]


def test_importing_the_package_loads_nothing_but_itself() -> None:
    loaded, _ = _probe("import llenergymeasure", ["python"])
    assert not loaded & (HEAVY | {"loguru", "pydantic", "yaml", "rich", "typer"})
    assert "importlib.metadata" not in loaded  # the version is a string, not a lookup


@pytest.mark.parametrize(
    ("argv", "allowed_extra"),
    [
        (["llem", "--help"], set()),
        (["llem", "campaign", "--help"], {"pydantic"}),  # typer's own adapters import it
        (["llem", "campaign", "validate", "examples/campaign.yaml"], {"pydantic", "yaml", "rich"}),
        (["llem", "config", "params"], {"pydantic", "yaml", "rich"}),
    ],
)
def test_the_cli_imports_only_what_the_command_needs(
    argv: list[str], allowed_extra: set[str]
) -> None:
    loaded, scans = _probe(RUN_CLI, argv, COUNT_SCANS)
    assert not loaded & HEAVY, argv
    assert not loaded & HELP_RENDERING, argv
    assert RICH_EMOJI not in loaded, argv
    assert "loguru" not in loaded, argv  # nothing logged: the logger never loaded
    light = {"pydantic", "yaml", "rich"} - allowed_extra
    assert not loaded & light, (argv, loaded & light)
    if argv[-1] == "--help":
        ours = {m for m in loaded if m.startswith(OURS_FOR_COMMANDS)}
        assert not ours, (argv, ours)
    assert not scans, (argv, scans)  # no metadata scan (pydantic's plugin lookup) on start-up
