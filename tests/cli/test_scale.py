"""Planning streams: a million-point grid validates and lists in the memory of a small one.
Memory is asserted (peak RSS of the command's process), never time."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .scale_grid import peak_command, write_grid

MIB = 1024 * 1024


def _peak(args: list[str], tmp: Path) -> tuple[int, int]:
    """(lines printed, peak RSS in bytes) of one llem process; its output read as it comes."""
    file = tmp / "peak"
    command, env = peak_command(args, file)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    lines = 0
    while chunk := proc.stdout.read(1 << 16):
        lines += chunk.count(b"\n")
    assert proc.wait() == 0
    return lines, int(file.read_text()) * 1024


def test_listing_a_million_point_grid_stays_in_bounded_memory(tmp_path: Path) -> None:
    small_lines, small = _peak(
        ["campaign", "validate", str(write_grid(tmp_path / "s.yaml", 10, 10, 10)), "--list"],
        tmp_path,
    )
    big_lines, big = _peak(
        ["campaign", "validate", str(write_grid(tmp_path / "b.yaml", 10, 100, 1000)), "--list"],
        tmp_path,
    )
    # one line per experiment, streamed; and the big one's warning about its size
    assert big_lines - small_lines == 1_000_000 - 1_000 + 1
    assert big < 200 * MIB, f"peak {big / MIB:.0f} MiB"
    # ~100 bytes a kept point (KeptPoints' arrays and its two tables); the high-water mark
    # also catches an array mid-reallocation, so it reads 93-121 MiB depending on the hash
    # values and the allocator's timing. A dict per point would be ~1 GiB.
    assert big - small < 150 * MIB, f"grew {(big - small) / MIB:.0f} MiB over 999,000 more points"


def test_a_dry_run_holds_no_manifest_entry_per_run(tmp_path: Path) -> None:
    def dry(name: str, c: int) -> int:
        file = write_grid(tmp_path / f"{name}.yaml", 10, 10, c)
        args = ["campaign", "run", str(file), "-o", str(tmp_path / name), "--dry-run"]
        return _peak(args, tmp_path)[1]

    small, big = dry("s", 10), dry("b", 2000)  # 1,000 and 200,000 experiments x 3 cycles
    assert big - small < 60 * MIB, (
        f"grew {(big - small) / MIB:.0f} MiB over 199,000 more experiments"
    )
