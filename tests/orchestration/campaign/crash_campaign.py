"""Run a campaign with the fake executor in this process, and die on request.

``python crash_campaign.py FILE DIR [--resume] [--die-at-fsync N]``: with ``--die-at-fsync``,
the process SIGKILLs itself at its N-th ``os.fsync`` call, after the bytes were written and
before they were made durable: the moment a crash is most likely to tear a file.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the shared fakes, as pytest has them


def main(argv: list[str]) -> int:
    from tests.orchestration.campaign.helpers import FakeExecutor

    from llenergymeasure.orchestration.campaign.runner import run_campaign

    if "--die-at-fsync" in argv:
        limit = int(argv[argv.index("--die-at-fsync") + 1])
        real_fsync, calls = os.fsync, [0]

        def fsync(fd: int) -> None:
            calls[0] += 1
            if calls[0] >= limit:
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(fd)

        os.fsync = fsync  # type: ignore[assignment]
    outcome = run_campaign(
        Path(argv[0]),
        Path(argv[1]),
        resume="--resume" in argv,
        executor=FakeExecutor(),
        export_formats=("csv",),
    )
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
