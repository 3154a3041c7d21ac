"""A grid of three axes for scale tests and ``benchmarks/scale_bench.py``, and an ``llem``
process that reports its own peak memory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

GRID = """\
campaign_name: scale
base_config:
  model: builtin:tiny-gpt2
  energy: {{source: estimate}}
grid:
  backends: [pytorch]
  shared:
    max_output_tokens: [{a}]
    max_input_tokens: [{b}]
    random_seed: [{c}]
"""
PEAK_PROBE = """
import atexit, os
def peak():  # this process's own high-water mark: ru_maxrss would count the forking parent's
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    open(os.environ["LLEM_PEAK_FILE"], "w").write(line.split()[1])
atexit.register(peak)
from llenergymeasure.cli.app import main
main()
"""


def write_grid(path: Path, a: int, b: int, c: int) -> Path:
    """A campaign of a x b x c points."""
    path.write_text(
        GRID.format(
            a=", ".join(str(8 + i) for i in range(a)),
            b=", ".join(str(64 + i) for i in range(b)),
            c=", ".join(str(i) for i in range(c)),
        )
    )
    return path


def peak_command(args: list[str], peak_file: Path) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of an ``llem`` process that writes its peak RSS (KiB) to
    ``peak_file`` as it exits."""
    return [sys.executable, "-c", PEAK_PROBE, *args], {
        **os.environ,
        "LLEM_PEAK_FILE": str(peak_file),
    }
