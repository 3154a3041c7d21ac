"""Every hostile document found so far (tests/data/hostile/) ends as its first line says.

Files are named ``campaign-*.yaml`` or ``experiment-*.yaml`` and start with
``# exit: N  (what went wrong before)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .checks import check

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
FILES = sorted(CORPUS.glob("*.yaml"))


def _expected(path: Path) -> int:
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", "replace")
    found = re.match(r"# exit: (\d)", first)
    assert found, f"{path.name} lacks its '# exit: N' first line"
    return int(found.group(1))


def test_corpus_is_there() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_hostile_document_ends_with_its_exit_code(path: Path) -> None:
    kind = path.name.split("-", 1)[0]
    assert kind in ("campaign", "experiment"), path.name
    assert check(path, kind) == _expected(path)
