"""`llem report` through the CLI: what it writes, and one clear message for each mistake."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llenergymeasure.cli import report_cmd
from llenergymeasure.cli.app import app
from llenergymeasure.report import static

from . import synthetic as S


def llem(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of `llem run` results: 2 configs x 3 cycles."""
    directory = tmp_path / "runs"
    S.save_all(S.grid_records((1, 4)), directory)
    return directory


def test_report_of_a_folder_of_results(folder: Path) -> None:
    result = llem("report", folder)
    assert result.exit_code == 0, result.output
    assert "2 config(s)" in result.output and f"wrote {folder / 'report.html'}" in result.output
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.split("<tbody>")[1].split("</tbody>")[0].count("<tr>") == 2
    assert "no campaign manifest" in html
    assert (folder / "report_figures" / "pareto_tokens_per_second.png").is_file()


def test_two_directories_are_compared(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    S.save_all(S.grid_records((1, 4)), other)
    monkeypatch.chdir(tmp_path)
    result = llem("report", folder, other, "--ci-method", "student_t")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="comparison"' in html and "other vs runs" in html
    assert "<li>other vs runs: pytorch_bs1_out32_float16 (other) has" in html
    assert (tmp_path / "report_figures" / "comparison.svg").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing"], "no such directory"),
        (["{folder}", "{folder}"], "the same directory is given twice"),
        (["{folder}", "-o", "{folder}"], "is a directory"),
        (["{folder}", "-o", "{folder}/r.txt"], "the report is an HTML page"),
        (["{folder}", "--ci-method", "bayes"], "unknown --ci-method"),
        (["{folder}", "--power", "pytorch_bs1_out32_float16_c9"], "did you mean"),
        (["{folder}", "--power", "pytorch_bs1_out32_float16_c1"], "recorded no time series"),
    ],
)
def test_mistakes_end_in_one_message(
    folder: Path, tmp_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = llem("report", *[a.format(folder=folder) for a in args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (folder / "report.html").exists()


def test_an_empty_directory_says_there_are_no_results(tmp_path: Path) -> None:
    result = llem("report", tmp_path)
    assert result.exit_code == 1 and "no results in" in result.output


def test_without_the_extra_the_command_names_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "available", lambda: False)
    result = llem("report", folder)
    assert result.exit_code == 1
    assert "llenergymeasure[report]" in result.output


def _outcome(status: str = "completed") -> SimpleNamespace:
    return SimpleNamespace(status=status, notes=[], exports=[])


def test_after_a_campaign_a_failed_report_is_a_note(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.report import build

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(build, "write_report", broken)
    outcome = _outcome()
    report_cmd.campaign_report(folder, outcome)
    assert outcome.notes == ["report.html not written: RuntimeError: disk on fire"]
    assert outcome.exports == []


def test_after_a_campaign_a_missing_extra_is_a_note(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "available", lambda: False)
    outcome = _outcome()
    report_cmd.campaign_report(folder, outcome)
    assert "report extra is not installed" in outcome.notes[0]


def test_the_cli_imports_no_plotting_library_until_a_report_is_written() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llenergymeasure.cli.app; "
        "heavy = [m for m in ('vl_convert', 'llenergymeasure.report.static') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_after_an_interrupted_campaign_the_report_waits_for_resume(folder: Path) -> None:
    outcome = _outcome("interrupted")
    report_cmd.campaign_report(folder, outcome)
    assert outcome.notes == ["report.html not refreshed (interrupted); --resume writes it"]
    assert not (folder / "report.html").exists()


def test_ctrl_c_while_drawing_after_a_campaign_is_a_note(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.report import build

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "write_report", interrupted)
    outcome = _outcome()
    report_cmd.campaign_report(folder, outcome)
    assert "not written (interrupted)" in outcome.notes[0]


def test_power_over_time_of_a_chosen_experiment(tmp_path: Path) -> None:
    directory = tmp_path / "runs"
    records = S.grid_records((1, 4), cycles=1)
    series = "t_s,power_w,temperature_c\n" + "".join(f"{i / 10},{90 + i},55\n" for i in range(20))
    for r in records:
        assert r.result is not None
        r.result.save(directory / r.exp_id, timeseries_csv=series)
    chosen = records[0].exp_id
    result = llem("report", directory, "--power", chosen)
    assert result.exit_code == 0, result.output
    html = (directory / "report.html").read_text(encoding="utf-8")
    spec = html.split('id="llem-figures">', 1)[1].split("</script>", 1)[0]
    assert chosen in spec and records[1].exp_id not in spec.split("power_over_time", 1)[1]
    assert (directory / "report_figures" / "power_over_time.svg").is_file()


def test_help_has_an_example_and_names_the_extra() -> None:
    result = llem("report", "--help")
    assert result.exit_code == 0
    assert "Example: llem report results/sweep" in result.output
    assert "pip install 'llenergymeasure[report]'" in result.output


def test_a_disk_that_refuses_the_page_is_one_message(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.report import build

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build, "write_report", full)
    result = llem("report", folder)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not be written" in result.output and "No space left on device" in result.output


def test_figures_only_writes_the_paper_files_and_no_page(folder: Path) -> None:
    result = llem("report", folder, "--figures-only")
    assert result.exit_code == 0, result.output
    assert not (folder / "report.html").exists()
    figures = folder / "report_figures"
    for suffix in (".svg", ".png", ".1col.svg", ".1col.pdf", ".2col.svg", ".2col.pdf", ".csv"):
        assert (figures / f"pareto_tokens_per_second{suffix}").is_file(), suffix
    assert "1- and 2-column SVG and PDF" in result.output
