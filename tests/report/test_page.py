"""The page's building blocks: escaping, the table, provenance, the estimate banner."""

from __future__ import annotations

import json
import re

from llenergymeasure.report import data as D
from llenergymeasure.report import provenance as PV
from llenergymeasure.report.figures import sections
from llenergymeasure.report.page import CSP, json_text, page, script_text
from llenergymeasure.report.table import config_table, number, with_ci
from llenergymeasure.results.aggregation import RunRecord
from llenergymeasure.results.schema import QualityFlag

from . import synthetic as S


def test_inline_script_and_json_cannot_end_their_script_element() -> None:
    assert "</script" not in script_text('a = "</script>"; b = "</SCRIPT>"').lower()
    text = json_text({"name": "</script><b>", "bad": float("nan"), "inf": [float("inf")]})
    assert "</" not in text
    assert json.loads(text) == {"name": "</script><b>", "bad": None, "inf": [None]}


def test_ci_text_says_when_there_is_no_interval() -> None:
    row = {"m": 0.5, "m_low": 0.4, "m_high": 0.6, "m_n": 3}
    assert with_ci(row, "m") == "0.5000 ± 0.10"
    assert with_ci({"m": 0.5, "m_low": None, "m_high": None, "m_n": 1}, "m") == (
        "0.5000 (n=1, no CI)"
    )
    assert with_ci({"m": 100.5, "m_low": -100.8, "m_high": 301.8, "m_n": 3}, "m") == "100.5 ± 201"
    assert number(1.5e-7) == "1.5e-07" and number(0.0) == "0" and number(None) == "-"
    assert with_ci({"m": None}, "m") == "-"
    # identical cycles: the interval's rounding noise reads as no spread, not "± 1.4e-14"
    noise = {"m": 9.5, "m_low": 9.5 - 1.4e-14, "m_high": 9.5 + 1.4e-14, "m_n": 3}
    assert with_ci(noise, "m") == "9.500 ± 0"


def test_table_has_one_row_per_config_sorted_by_energy_with_estimates_in_red() -> None:
    src = S.source(S.grid_records((1, 4, 16), (32, 64)))
    points, varied = D.config_points([src])
    table = config_table(points, varied)
    body = table.split("<tbody>")[1]
    assert body.count("<tr>") == 6
    assert body.count('class="estimate"') == 6
    names = re.findall(r'<td data-v="(pytorch_bs\d+_out\d+_float16)"', body)
    best = min(points, key=lambda p: p["energy_per_token_j"])["config"]
    assert names[0] == best and len(names) == 6
    assert '<th scope="col">batch_<wbr>size</th>' in table  # breakable after _


def test_page_is_offline_and_carries_the_estimate_banner_only_for_estimates() -> None:
    for estimate in (True, False):
        src = S.source(S.grid_records((1, 4), estimate=estimate))
        points, varied = D.config_points([src])
        html = page(
            title="t",
            intro=["x <y>"],
            estimate_note="est" if estimate else None,
            sections=sections([src], points, varied),
            table=config_table(points, varied),
            provenance=[PV.source_html(src)],
            bundle="window.vegaEmbed = function () {};",
            figure_dir="report_figures",
        )
        assert f'content="{CSP}"' in html and "default-src 'none'" in CSP
        assert ('id="estimate-warning"' in html) is estimate
        assert "x &lt;y&gt;" in html
        assert not re.search(r"""(src|href)=["']https?:""", html)  # nothing to fetch
        assert 'href="report_figures/pareto_tokens_per_second.svg"' in html


def test_flags_untrusted_first_failures_with_their_first_error_line() -> None:
    records = S.grid_records((1, 4), cycles=2)
    for r in records[:2]:
        assert r.result is not None
        r.result.flags.append(
            QualityFlag(code="warmup_not_converged", severity="warning", message="w")
        )
    assert records[3].result is not None
    records[3].result.flags.append(
        QualityFlag(code="gpu_contended", severity="untrusted", message="u")
    )
    failed = RunRecord(
        exp_id="x_c1",
        name="x",
        config_hash="hx",
        backend="pytorch",
        cycle=1,
        status="failed",
        error="\nCUDA out of memory\ntraceback...",
    )
    counts = PV.flag_counts([*records, failed])
    assert [(f.code, f.count) for f in counts] == [
        ("gpu_contended", 1),
        ("warmup_not_converged", 2),
    ]
    assert PV.failures([*records, failed]) == [("x_c1", "failed", "CUDA out of memory")]
    src = S.source([*records, failed])
    src.filtered = [("pytorch_bs3", "tensorrt needs float16")]
    html = PV.source_html(src)
    assert "Failed experiments (1)" in html and "CUDA out of memory" in html
    assert "tensorrt needs float16" in html and "Test GPU 80GB" in html and "550.1" in html
    assert html.count(D.ESTIMATE) == 4  # every experiment's method row says so
