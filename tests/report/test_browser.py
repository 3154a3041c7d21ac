"""The report in a real browser (headless Chromium): every figure drawn, no console error, no
network request, the estimate warning visible and red, one table row per config.

The end-to-end test runs a real 2-config x 3-cycle campaign on the built-in model first, and
saves screenshots of the page (see ``browser.artifacts_dir``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.report.build import figure_dir, write_report
from llenergymeasure.results.schema import QualityFlag
from orchestration.campaign.helpers import campaign_yaml

from . import synthetic as S
from .browser import artifacts_dir, render, section_pages
from .test_build import check_figures

RED = "rgb(198, 40, 40)"


def assert_drawn(page: Path, configs: int, *, estimate: bool, shots: dict | None = None) -> None:  # type: ignore[type-arg]
    rendered = render(page, screenshots=shots)
    assert rendered.errors == []
    assert rendered.figures, "no figure on the page"
    assert set(rendered.figures.values()) == {"true"}, rendered.figures
    empty = {stem: n for stem, n in rendered.svg_marks.items() if n < 10}
    assert not empty, f"figures drawn without marks: {empty}"
    assert rendered.table_rows() == configs
    names = re.findall(r'<td data-v="([^"]*)"><span title=', rendered.dom)
    assert len(names) == configs
    assert rendered.sorted_first["config"] == [min(names), max(names)]  # the headers sort
    low, high = rendered.sorted_first["J/token ± 95% CI"]
    assert low is not None and high is not None, rendered.sorted_first  # every config has one
    assert float(low) <= float(high)
    if estimate:
        assert rendered.estimate_visible is True
        assert rendered.estimate_colour == RED
        assert "ESTIMATE — not a measurement" in rendered.dom
    else:
        assert rendered.estimate_visible is None  # no banner at all


def test_comparison_with_power_series_and_flags_in_a_browser(tmp_path: Path) -> None:
    measured = S.grid_records((1, 4), (32, 64), baseline_w=40.0, estimate=False)
    assert measured[0].result is not None and measured[1].result is not None
    measured[0].result.flags.append(
        QualityFlag(code="gpu_contended", severity="untrusted", message="another process")
    )
    series = tmp_path / "a" / measured[1].exp_id
    series.mkdir(parents=True)
    rows = "".join(f"{i / 10:.1f},{150 + (i % 5) * 4},60\n" for i in range(40))
    (series / "timeseries.csv").write_text("t_s,power_w,temperature_c\n" + rows)
    measured[1].result.timeseries_file = "timeseries.csv"
    a = S.source(measured, label="a", directory=tmp_path / "a")
    b = S.source(S.grid_records((1, 4), (32, 64)), label="b", directory=tmp_path / "b")
    outcome = write_report([a, b], tmp_path / "report.html")
    stems = {p.stem for p in outcome.figures}
    assert {"power_over_time", "comparison", "effect_pytorch_batch_size"} <= stems
    assert_drawn(tmp_path / "report.html", 8, estimate=True)


def test_measured_only_report_has_no_banner_in_a_browser(tmp_path: Path) -> None:
    src = S.source(S.grid_records((1,), estimate=False), directory=tmp_path)
    write_report([src], tmp_path / "report.html")
    assert_drawn(tmp_path / "report.html", 1, estimate=False)


@pytest.mark.slow
def test_real_campaign_then_report_in_a_browser(
    tmp_path: Path, tiny_model_dir: Path, offline_model_cache: Path
) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6), cycles=3), tmp_path / "out"
    runner = CliRunner()
    run = runner.invoke(app, ["campaign", "run", str(file), "-o", str(out), "--yes"])
    assert run.exit_code == 0, run.output
    assert f"wrote {out / 'report.html'}" in run.output, run.output  # written by the campaign
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["status"] for e in manifest["entries"]] == ["completed"] * 6

    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "2 config(s)" in report.output, report.output
    figures = sorted(figure_dir(out / "report.html").iterdir())
    check_figures(figures)
    assert {p.stem for p in figures} >= {
        "pareto_tokens_per_second",
        "effect_max_output_tokens",
        "energy_accounting",
        "variability",
    }

    shots = artifacts_dir(tmp_path / "artifacts")
    top, full = shots / "report-e2e-top.png", shots / "report-e2e-full.png"
    assert_drawn(
        out / "report.html",
        2,
        estimate=True,
        shots={str(top): (1280, 1600), str(full): (1280, 6400)},
    )
    assert top.stat().st_size > 50_000 and full.stat().st_size > 100_000
    print(f"screenshots: {top} {full}")

    (out / "report.html").unlink()
    resumed = runner.invoke(
        app, ["campaign", "run", str(file), "-o", str(out), "--resume", "--yes"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "nothing left to run" in resumed.output
    assert (out / "report.html").is_file(), resumed.output  # refreshed on resume


def test_the_browser_check_sees_a_broken_figure_and_a_network_request(tmp_path: Path) -> None:
    """The checks above can fail: a figure Vega cannot draw and an attempted download are
    both reported."""
    src = S.source(S.grid_records((1, 4)), directory=tmp_path)
    write_report([src], tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    broken = page.replace('"mark": {"type": "bar"', '"mark": {"type": "no-such-mark"', 1)
    assert broken != page
    broken = broken.replace("</nav>", '</nav><img src="https://example.invalid/x.png">', 1)
    (tmp_path / "broken.html").write_text(broken, encoding="utf-8")
    rendered = render(tmp_path / "broken.html")
    assert rendered.figures["energy_accounting"] == "error"
    assert any("TypeError" in e for e in rendered.errors), rendered.errors
    assert any("CSP" in e and "example.invalid" in e for e in rendered.errors), rendered.errors


def test_two_thousand_configs_in_a_browser(tmp_path: Path) -> None:
    src = S.source(S.big_grid(2000), directory=tmp_path)
    write_report([src], tmp_path / "report.html")
    assert_drawn(tmp_path / "report.html", 2000, estimate=True)


SECTIONS = ["pareto", "effects", "power", "accounting", "variability", "configs-section"]
SHOTS = Path("/tmp/report_shots")


def _shoot(page: Path, name: str, configs: int) -> None:
    """Every section alone, screenshotted 1400 px wide into SHOTS; nothing passes that width."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    copies = section_pages(page, SECTIONS)
    shots = {str(SHOTS / f"{name}-{a}.png"): (1400, 1500) for a in SECTIONS}
    pages = {str(SHOTS / f"{name}-{a}.png"): copies[a] for a in SECTIONS}
    try:
        rendered = render(page, screenshots=shots, shot_pages=pages)
    finally:
        for copy in copies.values():
            copy.unlink()
    assert rendered.errors == []
    assert rendered.overflow == [], rendered.overflow
    assert rendered.table_rows() == configs


def test_a_noisy_campaign_fits_1400_px(tmp_path: Path) -> None:
    from .test_specs import _noisy

    src = S.source(_noisy(), label="noisy", directory=tmp_path)
    write_report([src], tmp_path / "report.html")
    _shoot(tmp_path / "report.html", "noisy", 6)


def test_the_48_config_grid_fits_1400_px(tmp_path: Path) -> None:
    src = S.source(S.big_grid(48), label="grid48", directory=tmp_path)
    write_report([src], tmp_path / "report.html")
    _shoot(tmp_path / "report.html", "grid48", 48)
