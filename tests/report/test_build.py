"""Writing a report: the page, an SVG and a PNG of every figure, from 1 config to 2,000."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.report import data as D
from llenergymeasure.report.build import figure_dir, write_report
from llenergymeasure.results.aggregation import RunRecord

from . import synthetic as S

PNG = b"\x89PNG\r\n\x1a\n"


def check_figures(paths: list[Path]) -> None:
    """Every figure has a non-trivial SVG and PNG as on the page, a one- and a two-column SVG
    and PDF, and its data as CSV."""
    svgs = [p for p in paths if p.suffix == ".svg" and p.stem.count(".") == 0]
    assert svgs and len(paths) == 7 * len(svgs)
    for svg in svgs:
        for layout, inches in (("1col", "3.5in"), ("2col", "7in")):
            paper = svg.with_name(f"{svg.stem}.{layout}.svg").read_text(encoding="utf-8")
            assert re.search(rf'<svg\b[^>]*width="{inches}"', paper), svg
            # laid out for the column: scaled to it by at most 25%, so text prints near its size
            drawn = float(re.search(r'viewBox="0 0 ([\d.]+)', paper).group(1))  # type: ignore[union-attr]
            assert 0.75 < float(inches[:-2]) * 72 / drawn < 1.34, (svg, layout, drawn)
            pdf = svg.with_name(f"{svg.stem}.{layout}.pdf").read_bytes()
            assert pdf.startswith(b"%PDF") and b"/FontFile" in pdf, svg  # fonts embedded
        assert svg.with_suffix(".csv").read_text(encoding="utf-8").count("\n") >= 2, svg
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<svg") and len(text) > 2_000, svg
        assert len(re.findall(r"<(path|line|rect|text)\b", text)) > 10, svg
        png = svg.with_suffix(".png").read_bytes()
        assert png.startswith(PNG) and len(png) > 5_000, svg


def test_one_config_report(tmp_path: Path) -> None:
    src = S.source(S.grid_records((1,)), directory=tmp_path)
    outcome = write_report([src], tmp_path / "report.html")
    check_figures(outcome.figures)
    stems = sorted(p.name.split(".")[0] for p in outcome.figures if p.suffix == ".csv")
    assert stems == [
        "energy_accounting",
        "pareto_energy_per_request_j_latency_p50_s",
        "pareto_energy_per_request_j_tokens_per_second",
        "pareto_latency_p50_s",
        "pareto_tokens_per_second",
        "variability",
    ]
    pareto = (figure_dir(tmp_path / "report.html") / "pareto_tokens_per_second.svg").read_text()
    assert D.ESTIMATE in pareto  # the static figure carries the warning too
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "window.vegaEmbed" in html and len(html) > 500_000  # the libraries, inline
    assert "No parameter varies" in html and "No time series was recorded" in html
    assert outcome.configs == 1


def test_measured_energy_has_no_estimate_warning(tmp_path: Path) -> None:
    src = S.source(S.grid_records((1, 4), estimate=False, baseline_w=30.0), directory=tmp_path)
    outcome = write_report([src], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="estimate-warning"' not in html
    assert all(D.ESTIMATE not in p.read_text() for p in outcome.figures if p.suffix == ".svg")
    assert figure_dir(tmp_path / "r.html").name == "r_figures"


def test_a_figure_that_no_longer_applies_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report([S.source(S.grid_records((1, 4)), directory=tmp_path)], out)
    effect = figure_dir(out) / "effect_pytorch_batch_size.svg"
    assert effect.is_file()
    (figure_dir(out) / "notes.txt").write_text("mine")
    write_report([S.source(S.grid_records((1,)), directory=tmp_path)], out)
    assert not effect.exists() and (figure_dir(out) / "notes.txt").exists()


def test_two_thousand_configs_stay_readable(tmp_path: Path) -> None:
    """Builds (no speed asserted here: benchmarks/report_scale.py times it against 10 configs);
    what is drawn is trimmed as captioned."""
    src = S.source(S.big_grid(2000), directory=tmp_path)
    outcome = write_report([src], tmp_path / "report.html")
    assert outcome.configs == 2000
    check_figures(outcome.figures)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = html.split('<table id="configs"')[1].split("</table>")[0]
    assert table.split("<tbody>")[1].count("<tr>") == 2000
    assert "only front members show CI bars" in html
    assert f"The {D.MAX_ROWS} most variable configs" in html
    assert "median of" in html


def test_without_the_report_extra_the_error_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vl_convert", None)  # import fails as if not installed
    with pytest.raises(UnavailableError) as info:
        write_report([S.source(S.grid_records((1,)))], tmp_path / "report.html")
    assert "llenergymeasure[report]" in (info.value.fix or "")
    assert not (tmp_path / "report.html").exists()


def test_a_campaign_whose_every_run_failed_still_gets_its_page(tmp_path: Path) -> None:
    failed = [
        RunRecord(
            exp_id=f"x_c{c}",
            name="x",
            config_hash="hx",
            backend="pytorch",
            cycle=c,
            status="failed",
            error="CUDA out of memory",
        )
        for c in (1, 2)
    ]
    outcome = write_report([S.source(failed, directory=tmp_path)], tmp_path / "report.html")
    assert outcome.figures == [] and outcome.configs == 1
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Failed experiments (2)" in html and "CUDA out of memory" in html
    assert "No config has both J/token and tokens/s" in html
