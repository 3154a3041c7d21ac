"""The walk a campaign file takes through ``llem campaign run``: which modules ("rooms") its
data passes through, in order, and how often it climbs back up the layers.

The walk follows the data, not every call: it starts from the campaign file's path, and a call
into one of our functions is part of the walk when an argument (or ``self``) is something the
walk already holds; what such a call returns joins it (the loaded config, the planned grid,
the prepared plan, the manifest, the runner...). Consecutive calls in one module are one
*stay*. A *climb* is a stay in a higher layer than the stay before it (cli 5, orchestration
and report 4, measurement 3, results 2, config 1, the rest 0), e.g. planning in
``orchestration`` calling back into ``config`` and then returning: a walk that goes down the
layers once climbs rarely.

Runs a one-experiment, one-cycle campaign on the built-in model (a few seconds: the walk is
the file's, and every further experiment repeats the same loop) and prints the
stays, the rooms and the climbs, then the walk itself. Run:
    .venv/bin/python benchmarks/campaign_walk.py [--quiet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path, PurePath
from types import FrameType
from typing import Any

PACKAGE = "llenergymeasure."
LAYERS = {"cli": 5, "orchestration": 4, "report": 4, "measurement": 3, "results": 2, "config": 1}
CAMPAIGN = """\
campaign_name: walk
base_config:
  model: builtin:tiny-gpt2
  max_output_tokens: 4
  dataset: {name: builtin:prompts, num_prompts: 2}
  baseline: {enabled: false}
  warmup: {enabled: false}
grid:
  backends: [pytorch]
  shared:
    max_output_tokens: [4]
execution: {cycles: 1, config_gap_seconds: 0, cycle_gap_seconds: 0}
"""
_ATOMS = (str, bytes, int, float, bool, type(None))


def layer(module: str) -> int:
    return LAYERS.get(module.removeprefix(PACKAGE).split(".")[0], 0)


class Walk:
    """Records the stays of the campaign's data as calls are made (a ``sys.setprofile`` hook)."""

    def __init__(self, campaign_file: Path) -> None:
        self.held: dict[int, Any] = {}  # id -> object (kept alive so ids stay unique)
        self.held_text = {str(campaign_file)}
        self.hold(campaign_file)
        self.stays: list[str] = []
        self._open: dict[int, bool] = {}  # frame id -> whether its call was part of the walk

    def hold(self, value: Any) -> None:
        if not isinstance(value, _ATOMS):
            self.held[id(value)] = value

    def _holds(self, value: Any) -> bool:
        if isinstance(value, str | PurePath):  # the file's path, however it was spelled
            return str(value) in self.held_text
        return id(value) in self.held

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(PACKAGE):
            return
        if event == "call":
            code = frame.f_code
            names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            on_walk = any(self._holds(frame.f_locals.get(name)) for name in names)
            self._open[id(frame)] = on_walk
            if on_walk and (not self.stays or self.stays[-1] != module):
                self.stays.append(module)
        elif self._open.pop(id(frame), False):
            self.hold(arg)

    def climbs(self) -> int:
        return sum(layer(b) > layer(a) for a, b in zip(self.stays, self.stays[1:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="Only the totals.")
    args = parser.parse_args()
    from llenergymeasure.cli.app import app

    with tempfile.TemporaryDirectory() as tmp:
        campaign_file = Path(tmp) / "walk.yaml"
        campaign_file.write_text(CAMPAIGN, encoding="utf-8")
        argv = ["campaign", "run", str(campaign_file), "-o", str(Path(tmp) / "out"), "--yes"]
        walk = Walk(campaign_file)
        sys.setprofile(walk)
        try:
            app(argv, standalone_mode=False)
        finally:
            sys.setprofile(None)
    rooms = len(set(walk.stays))
    print(f"campaign walk: {len(walk.stays)} stays in {rooms} rooms, {walk.climbs()} climbs")
    if not args.quiet:
        shown = " -> ".join(s.removeprefix(PACKAGE) for s in walk.stays)
        print(textwrap.fill(shown, width=100, subsequent_indent="  "))


if __name__ == "__main__":
    main()
