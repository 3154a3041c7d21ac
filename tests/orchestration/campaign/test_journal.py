"""The manifest journal: an update costs one appended line, a crash at any instant (between a
journal write and its fsync included) leaves a state that --resume completes with every
(config, cycle) exactly once, torn lines are ignored, readers see a whole state mid-write."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llenergymeasure.orchestration.campaign import journal
from llenergymeasure.orchestration.campaign.manifest import (
    COMPACT_AFTER,
    MANIFEST_FILE,
    Manifest,
    ManifestDamaged,
    ManifestEntry,
    load_manifest,
    manifest_fingerprint,
)

from .helpers import FakeExecutor, campaign_yaml, prepare
from .test_runner import runner

CRASH = [sys.executable, str(Path(__file__).with_name("crash_campaign.py"))]


def _manifest(n: int) -> Manifest:
    return Manifest(
        campaign_name="j",
        design_hash="d",
        created_at="t",
        updated_at="t",
        cycles=1,
        structure="interleaved",
        seed=0,
        executor="fake",
        entries=[
            ManifestEntry(
                exp_id=f"e{i}_c1", name=f"e{i}", config_hash=f"h{i}", backend="pytorch", cycle=1
            )
            for i in range(n)
        ],
    )


def test_an_update_appends_one_line_and_the_snapshot_waits(tmp_path: Path) -> None:
    manifest = _manifest(3)
    manifest.save(tmp_path)  # the first save of a process: a snapshot
    snapshot = (tmp_path / MANIFEST_FILE).read_bytes()
    entry = manifest.entries[1]
    entry.status, entry.attempts = "running", 1
    manifest.log("started")
    manifest.save(tmp_path, [entry])
    assert (tmp_path / MANIFEST_FILE).read_bytes() == snapshot
    (line,) = journal.parse(journal.read_bytes(tmp_path))
    assert line["seq"] == 1 and [e["exp_id"] for e in line["entries"]] == ["e1_c1"]
    assert [e["event"] for e in line["events"]] == ["started"]
    loaded = load_manifest(tmp_path)
    assert loaded is not None and loaded.entries[1].status == "running"
    assert loaded.journal_seq == 1 and [e.event for e in loaded.events] == ["started"]


def test_the_journal_is_folded_into_a_snapshot_once_as_long_as_the_manifest(
    tmp_path: Path,
) -> None:
    manifest = _manifest(2)
    manifest.save(tmp_path)
    for i in range(COMPACT_AFTER + 1):
        manifest.entries[0].attempts = i
        manifest.save(tmp_path, [manifest.entries[0]])
    assert len(journal.parse(journal.read_bytes(tmp_path))) == 0  # compacted on the last save
    data = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert data["journal_seq"] == COMPACT_AFTER and data["entries"][0]["attempts"] == COMPACT_AFTER
    loaded = load_manifest(tmp_path)
    assert loaded is not None and loaded.entries[0].attempts == COMPACT_AFTER


def test_a_crash_between_snapshot_and_journal_reset_applies_nothing_twice(tmp_path: Path) -> None:
    manifest = _manifest(2)
    manifest.save(tmp_path)
    manifest.log("one")
    manifest.save(tmp_path, [manifest.entries[0]])
    lines = journal.read_bytes(tmp_path)
    manifest.save(tmp_path)  # snapshot with journal_seq 1 ...
    journal.journal_path(tmp_path).write_bytes(lines)  # ... and the reset never happened
    loaded = load_manifest(tmp_path)
    assert loaded is not None and [e.event for e in loaded.events] == ["one"]


def test_a_torn_last_line_is_ignored_and_a_bad_middle_line_is_damage(tmp_path: Path) -> None:
    manifest = _manifest(2)
    manifest.save(tmp_path)
    manifest.entries[0].status = "running"
    manifest.save(tmp_path, [manifest.entries[0]])
    path = journal.journal_path(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good + b'{"seq": 2, "entries": [{"exp_id": "e1_c1", "sta')  # cut short
    loaded = load_manifest(tmp_path)
    assert loaded is not None and loaded.journal_seq == 1
    assert [e.status for e in loaded.entries] == ["running", "pending"]
    path.write_bytes(b"not json\n" + good)
    with pytest.raises(ManifestDamaged, match=r"manifest\.journal"):
        load_manifest(tmp_path)
    path.write_bytes(good + good.replace(b'"seq":1', b'"seq":3'))  # a gap
    with pytest.raises(ManifestDamaged, match="does not follow"):
        load_manifest(tmp_path)


def test_the_fingerprint_sees_journal_lines(tmp_path: Path) -> None:
    manifest = _manifest(1)
    manifest.save(tmp_path)
    before = manifest_fingerprint(tmp_path)
    manifest.save(tmp_path, [manifest.entries[0]])
    assert manifest_fingerprint(tmp_path) != before


def test_a_reader_during_writes_always_sees_a_whole_state(tmp_path: Path) -> None:
    manifest = _manifest(50)
    manifest.save(tmp_path)
    done = threading.Event()
    seen: list[int] = []
    problems: list[BaseException] = []

    def read() -> None:
        while not done.is_set():
            try:
                loaded = load_manifest(tmp_path)
                assert loaded is not None
                seen.append(sum(e.attempts for e in loaded.entries))  # updates applied
            except BaseException as error:
                problems.append(error)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(600):  # three compactions on the way
            entry = manifest.entries[i % 50]
            entry.attempts += 1
            manifest.save(tmp_path, [entry])
    finally:
        done.set()
        reader.join(timeout=60)
    assert not problems, problems
    assert len(seen) > 10
    assert seen == sorted(seen), "a reader saw the campaign go backwards"
    final = load_manifest(tmp_path)
    assert final is not None and sum(e.attempts for e in final.entries) == 600


def _exactly_once(out: Path, planned: int) -> None:
    loaded = load_manifest(out)
    assert loaded is not None
    keys = [e.key for e in loaded.entries]
    assert len(keys) == len(set(keys)) == planned
    assert {e.status for e in loaded.entries} == {"completed"}
    results = sorted(out.glob("*/result*.json"))
    assert len(results) == planned, results  # none measured twice (a rerun lands beside)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_every_run_exactly_once(tmp_path: Path) -> None:
    """SIGKILL at a chosen fsync (after a write, before it is durable) and at random times."""
    file = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6, 8), cycles=3)
    rng = random.Random(7)
    crashes = [("fsync", n) for n in (1, 2, 3, 5, 8, 13, 21)] + [
        ("timer", round(rng.uniform(0.3, 2.5), 2)) for _ in range(4)
    ]
    for number, (how, when) in enumerate(crashes):
        out = tmp_path / f"out{number}"
        if how == "fsync":
            first = subprocess.run([*CRASH, file, out, "--die-at-fsync", str(when)], timeout=120)
            assert first.returncode in (0, -9), first
        else:
            proc = subprocess.Popen([*CRASH, file, out])
            try:
                proc.wait(timeout=when)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        again = subprocess.run(
            [*CRASH, file, out, "--resume"], capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, (how, when, again.stdout, again.stderr)
        _exactly_once(out, 9)


def test_a_campaign_leaves_a_compact_snapshot_and_an_empty_journal(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor()).run()
    assert journal.read_bytes(out) == b""
    data = json.loads((out / MANIFEST_FILE).read_text())
    assert {e["status"] for e in data["entries"]} == {"completed"}
    assert os.path.getsize(out / MANIFEST_FILE) > 0


def test_a_journal_cut_mid_file_is_damage_counted_from_the_result_files(tmp_path: Path) -> None:
    """Snapshot taken with everything pending, then one journal line per completed run; the
    file cut a third of the way in keeps the first runs only. The result files are the truth:
    status counts every run completed and warns; resume measures nothing again."""
    from typer.testing import CliRunner

    from llenergymeasure.cli.app import app

    file, out = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6, 8), cycles=3), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor()).run()
    manifest = load_manifest(out)
    assert manifest is not None
    done = list(manifest.entries)
    for entry in done:
        entry.status = "pending"
    manifest.save(out)
    for entry in done:
        entry.status = "completed"
        manifest.save(out, [entry])
    raw = journal.read_bytes(out)
    journal.journal_path(out).write_bytes(raw[: len(raw) // 3])
    kept = load_manifest(out)
    assert kept is not None and 0 < kept.counts()["completed"] < 9  # a torn tail, as before

    shown = CliRunner().invoke(app, ["campaign", "status", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["counts"]["completed"] == 9
    assert report["counts"]["pending"] == 0
    assert "lost lines" in report["journal_damage"]
    lost = {e.exp_id for e in kept.entries if e.status != "completed"}
    assert set(report["recovered_from_results"]) == lost
    text = CliRunner().invoke(app, ["campaign", "status", str(out)])
    assert "9/9 completed" in text.output and "lost lines" in text.output

    again = FakeExecutor()
    assert runner(prepare(file, out, resume=True), again).run().status == "completed"
    assert again.calls == []
    _exactly_once(out, 9)
