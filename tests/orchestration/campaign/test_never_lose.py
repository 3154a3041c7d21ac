"""Nothing measured is lost or overwritten: damaged manifests, paths that try to escape, stale
plans, unwritable or full directories, --fresh in the wrong place, status and export that look
at the result files, and the small things (temp files, umask, log lines, webhooks, huge grids).

A fake executor stands in for the model (see test_e2e_safety.py for the real processes)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.urls import redact_url
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.orchestration.campaign.manifest import (
    MANIFEST_FILE,
    ManifestDamaged,
    load_manifest,
)

from .helpers import FakeExecutor, campaign_yaml, prepare
from .test_runner import runner

A, B = "pytorch_tiny-gpt2_out4", "pytorch_tiny-gpt2_out6"


def invoke(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def finished(tmp_path: Path, **yaml: Any) -> tuple[Path, Path]:
    """A campaign file and its directory after a complete run (2 configs x 2 cycles)."""
    file, out = campaign_yaml(tmp_path / "c.yaml", **yaml), tmp_path / "out"
    outcome = runner(prepare(file, out), FakeExecutor()).run()
    assert outcome.status == "completed"
    return file, out


def snapshot(out: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every result file's inode, mtime and bytes: what must never change."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.glob("*/result*.json"))
    }


def edit_manifest(out: Path, change: Any) -> None:
    path = out / MANIFEST_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def resume(file: Path, out: Path) -> tuple[Any, FakeExecutor]:
    executor = FakeExecutor()
    return runner(prepare(file, out, resume=True), executor).run(), executor


class Measuring(FakeExecutor):
    def run(self, task: Any, progress: Any = None) -> Any:
        from llenergymeasure.orchestration.executors.base import ExecutionOutcome

        try:
            return super().run(task, progress)
        except Exception as error:  # what the in-process executor does with it
            from llenergymeasure.orchestration.executors.base import (
                FATAL_ERRORS,
                describe_error,
            )

            return ExecutionOutcome(
                "failed",
                error=describe_error(error),
                fatal=type(error).__name__ in FATAL_ERRORS,
            )


# --- damaged manifests --------------------------------------------------------------------------


def test_an_emptied_manifest_never_re_measures_results_that_are_on_disk(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    before = snapshot(out)
    edit_manifest(out, lambda d: d.update(entries=[]))
    outcome, executor = resume(file, out)
    assert executor.calls == []
    assert outcome.counts["completed"] == 4
    assert snapshot(out) == before
    manifest = load_manifest(out)
    assert manifest is not None and all(e.status == "completed" for e in manifest.entries)


def test_result_path_in_the_manifest_is_never_used_to_find_or_write_files(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    before = snapshot(out)

    def redirect(data: dict[str, Any]) -> None:
        for entry in data["entries"]:
            entry["result_path"] = "../../elsewhere/result.json"

    edit_manifest(out, redirect)
    outcome, executor = resume(file, out)
    assert executor.calls == [] and outcome.counts["completed"] == 4
    assert snapshot(out) == before
    assert not (tmp_path.parent / "elsewhere").exists()
    manifest = load_manifest(out)
    assert manifest is not None
    assert {e.result_path for e in manifest.entries} == {
        f"{e.exp_id}/result.json" for e in manifest.entries
    }


def test_an_exp_id_that_climbs_out_is_a_damaged_manifest_rebuilt_inside(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    before = snapshot(out)

    def escape(data: dict[str, Any]) -> None:
        data["entries"][0]["exp_id"] = f"../escape-{A}_c1"

    edit_manifest(out, escape)
    with pytest.raises(ManifestDamaged, match="exp_id"):
        load_manifest(out)
    status = invoke("campaign", "status", out)
    assert status.exit_code == 1 and "Traceback" not in status.output
    assert "4 valid result file(s)" in status.output
    outcome, executor = resume(file, out)
    assert executor.calls == [] and outcome.counts["completed"] == 4
    assert snapshot(out) == before
    assert not list(tmp_path.glob("escape-*"))
    assert any("rebuilt from the result files" in n for n in outcome.notes)
    kept = list(out.glob("manifest.json.damaged-*"))
    assert len(kept) == 1 and "../escape-" in kept[0].read_text()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "[" * 100_000 + "]" * 100_000, id="deep-json"),
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: '{"schema_version": "1", "entries": 5}', id="wrong-types"),
    ],
)
def test_an_unreadable_manifest_blocks_nothing_and_loses_nothing(
    tmp_path: Path, damage: Any
) -> None:
    file, out = finished(tmp_path)
    before = snapshot(out)
    path = out / MANIFEST_FILE
    path.write_text(damage(path.read_text()))

    status = invoke("campaign", "status", out, "--json")
    assert status.exit_code == 1, status.output
    assert json.loads(status.output)["results_found"] == 4
    export = invoke("results", "export", out)
    assert export.exit_code == 0, export.output
    assert "reading the result files instead" in export.output
    assert "2 config(s), 4 experiment-cycle(s)" in export.output

    plain = invoke("campaign", "run", file, "-o", out, "--yes")
    assert plain.exit_code == 2 and "--resume" in plain.output and "Traceback" not in plain.output

    outcome, executor = resume(file, out)
    assert executor.calls == [] and outcome.counts["completed"] == 4
    assert snapshot(out) == before
    assert len(list(out.glob("manifest.json.damaged-*"))) == 1
    rebuilt = load_manifest(out)
    assert rebuilt is not None and rebuilt.counts()["completed"] == 4
    assert any(event.event.startswith("rebuilt") for event in rebuilt.events)


def test_an_unknown_schema_version_is_refused_not_rebuilt(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    edit_manifest(out, lambda d: d.update(schema_version="99"))
    result = invoke("campaign", "run", file, "-o", out, "--resume", "--yes")
    assert result.exit_code == 2, result.output
    assert "schema version '99'" in result.output and "Traceback" not in result.output
    assert not list(out.glob("manifest.json.damaged-*"))


def test_a_run_adopts_a_valid_result_instead_of_measuring_it_again(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    before = snapshot(out)

    def forget(data: dict[str, Any]) -> None:  # the manifest lost track of two finished runs
        for entry in data["entries"][:2]:
            entry["status"] = "pending"

    edit_manifest(out, forget)
    plan = prepare(file, out, resume=True)
    # the plan saw them completed on disk already; force the runner's own check too
    for entry in plan.manifest.entries[:2]:
        entry.status = "pending"
    executor = FakeExecutor()
    outcome = runner(plan, executor).run()
    assert executor.calls == [] and outcome.counts["completed"] == 4
    assert snapshot(out) == before


def test_results_are_never_replaced_even_by_the_same_experiment(tmp_path: Path) -> None:
    from .helpers import make_result

    first = make_result("x_c1", "x", "a" * 64, tokens_per_second=1.0)
    second = make_result("x_c1", "x", "a" * 64, tokens_per_second=2.0)
    path = first.save(tmp_path / "x_c1")
    kept = path.read_bytes()
    other = second.save(tmp_path / "x_c1")
    assert other != path and path.read_bytes() == kept
    assert json.loads(other.read_text())["metrics"]["tokens_per_second"] == 2.0

    path.write_text("{ damaged")  # a damaged file is renamed aside, not overwritten
    third = make_result("x_c1", "x", "a" * 64).save(tmp_path / "x_c1")
    assert third == path
    assert [p.read_text() for p in tmp_path.glob("x_c1/result.json.damaged-*")] == ["{ damaged"]


# --- a plan made before the lock ----------------------------------------------------------------


def test_a_plan_made_against_a_live_run_is_made_again_under_the_lock(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    first = runner(prepare(file, out), FakeExecutor(interrupt={f"{B}_c1"})).run()
    assert first.status == "interrupted"
    waiting = prepare(file, out, resume=True)  # B plans, then waits at its prompt ...
    assert len(waiting.to_run) == 3
    runner(prepare(file, out, resume=True), FakeExecutor()).run()  # ... while A finishes
    before = snapshot(out)
    executor = FakeExecutor()
    outcome = runner(waiting, executor).run()  # B's user presses Enter
    assert executor.calls == []
    assert snapshot(out) == before
    assert any("planned again" in note for note in outcome.notes)
    manifest = load_manifest(out)
    assert manifest is not None
    assert sum(e.attempts for e in manifest.entries) == 5  # 4 runs + the one interrupted


def test_a_new_campaign_planned_before_another_started_there_is_refused(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    waiting = prepare(file, out)
    runner(prepare(file, out), FakeExecutor()).run()
    before = snapshot(out)
    with pytest.raises(ConfigError, match="already holds campaign"):
        runner(waiting, FakeExecutor()).run()
    assert snapshot(out) == before


# --- output locations ---------------------------------------------------------------------------


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_file_in_the_way_fails_campaign_run_before_anything_runs(tmp_path: Path) -> None:
    file = campaign_yaml(tmp_path / "c.yaml")
    (tmp_path / "taken").write_text("not a directory")
    for target in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        result = invoke("campaign", "run", file, "-o", target, "--yes")
        assert result.exit_code == 2, result.output
        assert "is a file" in result.output and "Traceback" not in result.output


def test_a_read_only_directory_fails_campaign_run_with_exit_2(tmp_path: Path) -> None:
    file = campaign_yaml(tmp_path / "c.yaml")
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        result = invoke("campaign", "run", file, "-o", ro / "out", "--yes")
        assert result.exit_code == 2, result.output
        assert "not writable" in result.output and "Traceback" not in result.output


def test_a_full_disk_mid_campaign_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    file = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6, 8))
    with mounted_tmpfs(tmp_path / "small", "size=24m") as small:
        out = small / "out"
        filler = small / "filler"

        def fill_after_two(task: Any) -> None:
            if task.exp_id.endswith("_c1") and len(list(out.glob("*/result.json"))) == 2:
                with contextlib.suppress(OSError), filler.open("wb") as handle:
                    while True:
                        handle.write(b"\0" * 65536)

        executor = Measuring(on_run=fill_after_two)
        outcome = runner(prepare(file, out), executor).run()
        assert outcome.status == "stopped" and outcome.exit_code == 1
        assert "No space left" in (outcome.stop_reason or "")
        assert "--resume" in (outcome.stop_reason or "")
        saved = snapshot(out)
        assert len(saved) == 2
        filler.unlink()
        resumed, again = resume(file, out)
        assert resumed.status == "completed" and resumed.counts["completed"] == 6
        assert len(again.calls) == 4
        assert all(snapshot(out)[k] == v for k, v in saved.items())


def test_a_result_that_cannot_be_written_goes_to_the_cache_and_stops_the_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llenergymeasure.results.schema as schema

    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    real = schema.write_bytes_new

    def full_under_out(path: Path, data: bytes) -> None:
        if out in path.parents:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(schema, "write_bytes_new", full_under_out)

    executor = Measuring()
    outcome = runner(prepare(file, out), executor).run()
    assert executor.calls == [f"{A}_c1"]
    assert outcome.status == "stopped"
    assert "could not be written" in (outcome.stop_reason or "")
    unsaved = list((Path(os.environ["LLEM_CACHE_DIR"]) / "unsaved").glob(f"{A}_c1-*/result.json"))
    assert unsaved, "the measured result must be kept somewhere"
    manifest = load_manifest(out)
    assert manifest is not None
    entry = next(e for e in manifest.entries if e.exp_id == f"{A}_c1")
    assert entry.status == "failed" and str(unsaved[0].parent) in (entry.error or "")


# --- --fresh and directories that are not a campaign's ------------------------------------------


def test_fresh_refuses_a_directory_that_is_not_a_campaign(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "src").mkdir()
    file = campaign_yaml(project / "campaign.yaml")
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    for flags in (["--fresh"], [], ["--resume"]):
        result = invoke("campaign", "run", file, "-o", project, "--yes", *flags)
        assert result.exit_code == 2, result.output
        assert "not a campaign directory" in result.output and "-o" in result.output
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert not list(project.glob(".previous-*"))


def test_fresh_moves_only_what_the_campaign_owns(tmp_path: Path) -> None:
    file, out = finished(tmp_path)
    (out / "my-notes.txt").write_text("keep me")
    result = invoke("campaign", "run", file, "-o", out, "--fresh", "--yes", "--quiet")
    assert result.exit_code == 0, result.output
    (previous,) = out.glob(".previous-*")
    assert (out / "my-notes.txt").read_text() == "keep me"
    assert not (previous / "my-notes.txt").exists()
    assert (previous / MANIFEST_FILE).is_file()
    assert len(list(previous.glob("*/result.json"))) == 4


# --- status and export read the result files ----------------------------------------------------


def test_status_and_export_name_missing_and_corrupt_results(tmp_path: Path) -> None:
    _file, out = finished(tmp_path)
    (out / f"{A}_c1" / "result.json").unlink()
    (out / f"{B}_c2" / "result.json").write_text("{ not json")

    status = invoke("campaign", "status", out)
    assert status.exit_code == 0, status.output
    assert "2/4 completed" in status.output
    assert f"{A}_c1/result.json is missing" in status.output
    assert f"{B}_c2/result.json cannot be read" in status.output
    counts = json.loads(invoke("campaign", "status", out, "--json").output)["counts"]
    assert counts["completed"] == 2 and counts["result_missing"] == 2

    export = invoke("results", "export", out)
    assert export.exit_code == 1
    assert f"{A}_c1" in export.output and f"{B}_c2" in export.output
    lines = (out / "experiments.csv").read_text().splitlines()
    header = lines[0].split(",")
    status_col = header.index("status")
    assert sorted(line.split(",")[status_col] for line in lines[1:]) == [
        "completed",
        "completed",
        "result_missing",
        "result_missing",
    ]


# --- tidy and private ---------------------------------------------------------------------------


def test_stray_temp_files_are_removed_at_the_next_start(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor(interrupt={f"{B}_c1"})).run()
    strays = [out / ".manifest.json.ab12cd_3.tmp", out / f"{A}_c1" / ".result.json.zz99yy00.tmp"]
    for stray in strays:
        stray.write_text("half")
    mine = out / ".notes.tmp"  # not a name our writer makes: left alone
    mine.write_text("mine")
    resume(file, out)
    assert not any(p.exists() for p in strays)
    assert mine.exists()


def test_files_honour_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        from llenergymeasure.files import _umask

        _umask.cache_clear()
        _file, out = finished(tmp_path)
    finally:
        os.umask(old)
        _umask.cache_clear()
    for path in [out / MANIFEST_FILE, *out.glob("*/result.json")]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_newline_in_the_campaign_name_is_refused_at_load(tmp_path: Path) -> None:
    name = '"x\\n2026-01-01 00:00:00 ERROR   forged line"'
    file = campaign_yaml(tmp_path / "c.yaml", name=name)
    done = invoke("campaign", "run", file, "-o", tmp_path / "out", "--dry-run")
    assert done.exit_code == 2, done.output
    assert "campaign_name" in done.output and "control character" in done.output


def test_user_strings_in_the_campaign_log_are_escaped(tmp_path: Path) -> None:
    """An experiment's error text reaches the log; a terminal escape in it stays inert."""

    class Escaping(FakeExecutor):
        def run(self, task: Any, progress: Any = None) -> Any:
            from llenergymeasure.orchestration.executors.base import ExecutionOutcome

            return ExecutionOutcome("failed", error="boom \x1b[2K\x1b[1A forged")

    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    from loguru import logger

    logger.enable("llenergymeasure")
    try:
        runner(prepare(file, out), Escaping()).run()
    finally:
        logger.disable("llenergymeasure")
    log = (out / "campaign.log").read_text()
    assert "\x1b" not in log
    assert "boom \\x1b[2K\\x1b[1A forged" in log


def test_a_home_relative_results_dir_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    file = campaign_yaml(tmp_path / "c.yaml", extra="io: {results_dir: ~/llem-out}\n")
    dry = invoke("campaign", "run", file, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert str(tmp_path / "home" / "llem-out") in dry.output.replace("\n", "")
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:text/plain,hi", "ftp://h/x", "https://", "not a url"]
)
def test_webhooks_are_http_only_checked_at_load(tmp_path: Path, url: str) -> None:
    file = campaign_yaml(tmp_path / "c.yaml", extra=f"notify: {{webhook_url: '{url}'}}\n")
    result = invoke("campaign", "validate", file)
    assert result.exit_code == 2, result.output
    assert "notify.webhook_url" in result.output and "Traceback" not in result.output


def test_webhook_urls_are_redacted_and_a_failure_keeps_the_exit_code(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a local port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = f"http://user:hunter2@127.0.0.1:{port}/hooks/T0ABC/B0DEF/s3cr3tT0ken?key=abc"
    file = campaign_yaml(tmp_path / "c.yaml", extra=f"notify: {{webhook_url: '{secret}'}}\n")
    out = tmp_path / "out"
    from loguru import logger

    logger.enable("llenergymeasure")
    try:
        outcome = runner(prepare(file, out), FakeExecutor()).run()
    finally:
        logger.disable("llenergymeasure")
    assert outcome.status == "completed" and outcome.exit_code == 0
    assert outcome.webhook_sent is False
    log = (out / "campaign.log").read_text()
    assert "webhook" in log
    for token in ("hunter2", "s3cr3tT0ken", "key=abc", "T0ABC"):
        assert token not in log
    assert (
        redact_url(secret)
        == f"http://<redacted>@127.0.0.1:{port}/hooks/<redacted>/<redacted>/<redacted>?<redacted>"
    )


# --- grids too large to plan --------------------------------------------------------------------


def test_a_grid_of_50_to_the_20_is_counted_and_refused_at_once(tmp_path: Path) -> None:
    values = ", ".join(str(v) for v in range(1, 51))
    axes = "".join(
        f"    {key}: [{values}]\n"
        for key in (
            "max_output_tokens",
            "max_input_tokens",
            "random_seed",
            "min_output_tokens",
            "dataset.num_prompts",
        )
    )
    decoder = "".join(f"    {key}: [{values}]\n" for key in ("decoder.top_k",))
    pytorch = "".join(f"      {key}: [{values}]\n" for key in ("batch_size",))
    text = (
        "campaign_name: huge\nbase_config: {model: builtin:tiny-gpt2}\n"
        "grid:\n  backends: [pytorch]\n  shared:\n"
        + axes
        + decoder
        + "  backend_overrides:\n    pytorch:\n"
        + pytorch
    )
    file = tmp_path / "huge.yaml"
    file.write_text(text)
    for args in (
        ["campaign", "validate", file],
        ["campaign", "validate", file, "--json"],
        ["campaign", "run", file, "--dry-run", "-o", tmp_path / "o"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "50^" not in result.output  # the exact count, not a formula
        assert f"{50**7:,}" in result.output and "years" in result.output
