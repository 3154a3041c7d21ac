"""``llem run``: measure one experiment."""

# No `from __future__ import annotations`: Typer reads every command's annotations on each
# start (llem --help included), and a string annotation is compiled before it is evaluated.
import sys
from pathlib import Path
from typing import Any

import typer

from llenergymeasure.cli.render import err, escape, new_table, out, print_json
from llenergymeasure.cli.serving import serving_rows
from llenergymeasure.exceptions import ConfigError


def _fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if 1e3 <= abs(value) < 1e7:  # 1,740 J, not 1.74e+03 J
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}g}{unit}"


def _energy_trust(e: Any) -> str:
    """The reading's quantisation error bound and, where made, its cross-check. An estimate
    gets no bound: the counter's resolution says nothing about how far a model is off."""
    parts = []
    if e.error_bound_pct is not None and not e.is_estimate:
        target = f" (target {e.target_error_pct:g}%)" if e.target_error_pct is not None else ""
        parts.append(f"<= {e.error_bound_pct:.2g}% from the reading's resolution{target}")
        parts.append(f"window {e.window_s:.3g} s in {e.passes} pass(es)")
    check = e.crosscheck
    if check is not None:
        parts.append(
            f"counter vs polled power {check['disagreement_pct']:.1f}% apart "
            f"(allowed {check['allowance_pct']:.1f}%)"
        )
    return "; ".join(parts)


def energy_method(e: Any) -> str:
    """``source / method``, said once where they are the same word (``estimate``)."""
    return e.source if e.method in (None, e.source) else f"{e.source} / {e.method}"


def mib(size: int | None) -> str:
    """Bytes as whole MiB with thousands separators (``1,740 MiB``, never ``1.74e+03``)."""
    return "n/a" if not size else f"{size / 2**20:,.0f} MiB"


def render_result(result: Any, path: Path) -> None:
    """A summary table whose energy rows say how they were obtained."""
    m, e, t = result.metrics, result.energy, result.timings
    table = new_table(title=f"{result.name}", show_header=False)
    table.add_column("metric")
    table.add_column("value")
    table.add_row(
        "model",
        f"{escape(result.config['model']['name'])} on {result.model['device']} ({result.model['dtype']})",
    )
    table.add_row("requests / output tokens", f"{m.num_requests} / {m.output_tokens}")
    table.add_row(
        "throughput", f"{m.tokens_per_second:.1f} tokens/s, {m.requests_per_second:.2f} requests/s"
    )
    table.add_row(
        "latency p50 / p90 / p99",
        f"{_fmt(m.latency_s.p50, ' s')} / {_fmt(m.latency_s.p90, ' s')} / {_fmt(m.latency_s.p99, ' s')}",
    )
    if m.ttft_s is not None and m.itl_s is not None:
        table.add_row(
            "TTFT p50 / ITL p50", f"{_fmt(m.ttft_s.p50, ' s')} / {_fmt(m.itl_s.p50, ' s')}"
        )
    if result.serving is not None:  # a served run (server: section)
        for name, value in serving_rows(result.serving, m):
            table.add_row(name, escape(value))
    label = "estimated" if e.is_estimate else "measured"
    if e.unavailable_reason:
        table.add_row("energy", f"[red]unavailable[/]: {escape(e.unavailable_reason)}")
    else:
        table.add_row(
            f"energy ({label})",
            f"{_fmt(m.energy_j, ' J')} raw, {_fmt(m.energy_adjusted_j, ' J')} baseline-adjusted",
        )
        table.add_row(
            f"energy per token ({m.energy_basis})",
            f"{_fmt(m.energy_per_token_j, ' J')}  ({_fmt(m.tokens_per_joule, ' tokens/J')})",
        )
        how = energy_method(e)
        if e.sample_interval_ms:
            how += f", sampled every {e.sample_interval_ms:g} ms"
        if e.baseline_power_w is not None:
            how += f", idle baseline {e.baseline_power_w:.2f} W"
        table.add_row("energy method", escape(how))
        if e.devices:
            table.add_row("devices measured", escape(", ".join(e.devices)))
        trust = _energy_trust(e)
        if trust:
            table.add_row("energy error", escape(trust))
        elif e.is_estimate:
            table.add_row("energy error", "no bound: an estimate, not a measurement")
    table.add_row(
        "peak memory",
        f"{mib(m.peak_memory_bytes)} ({m.peak_memory_method})",
    )
    table.add_row("FLOPs (estimate)", _fmt(m.flops))
    table.add_row(
        "timings",
        f"load {t.model_load_s:.2f} s, warmup {t.warmup_s:.2f} s ({t.warmup_prompts} prompts, {'converged' if t.warmup_converged else 'not converged'}), window {t.measured_window_s:.2f} s",
    )
    out.print(table)
    render_flags(result.flags)
    if e.is_estimate:
        out.print(
            "[yellow]note:[/] energy is an ESTIMATE (no GPU or RAPL sensor here), not a measurement"
        )
    if e.resolution_warning:
        out.print(f"[yellow]note:[/] {escape(e.resolution_warning)}")
    out.print(f"result: {escape(str(path))}")


def render_flags(flags: list[Any]) -> None:
    """Each quality flag on its own line, untrusted ones first and in red: an untrusted
    result is kept out of every aggregate across cycles, so the reader must see why."""
    ordered = sorted(flags, key=lambda f: f.severity != "untrusted")
    untrusted = [f for f in ordered if f.severity == "untrusted"]
    if untrusted:
        out.print(
            f"[bold red]UNTRUSTED:[/] {len(untrusted)} finding(s) limit this result; it is "
            "left out of aggregates across cycles"
        )
    for flag in ordered:
        style = "red" if flag.severity == "untrusted" else "yellow"
        out.print(f"[{style}]{flag.severity} {escape(flag.code)}:[/] {escape(flag.message)}")


def run(
    file: Path | None = typer.Argument(None, help="Experiment YAML (optional with --model)."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON on stdout."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model: hub id, local dir or builtin:tiny-gpt2."
    ),
    backend: str | None = typer.Option(None, "--backend", "-b", help="pytorch, vllm or tensorrt."),
    precision: str | None = typer.Option(
        None, "--precision", "-p", help="float32, float16 or bfloat16."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="PyTorch batch size."),
    num_prompts: int | None = typer.Option(
        None, "--num-prompts", "-n", help="Prompts in the measured window."
    ),
    max_output_tokens: int | None = typer.Option(
        None, "--max-output-tokens", help="Tokens generated per prompt."
    ),
) -> None:
    """Measure energy, throughput, latency and FLOPs of one experiment.

    Examples: llem run examples/experiment.yaml or
    llem run --model builtin:tiny-gpt2 --precision float32 -n 8

    Exit 0 measured, 1 the experiment could not run, 2 unusable config.
    """
    from llenergymeasure.cli.overrides import apply_flags
    from llenergymeasure.config.loader import read_yaml, validate_experiment
    from llenergymeasure.exceptions import ResultWriteError
    from llenergymeasure.files import check_output_dir
    from llenergymeasure.measurement.harness import run_experiment

    if file is None and model is None:
        raise ConfigError(
            "nothing to run: give an experiment YAML or --model",
            fix="llem run examples/experiment.yaml, or llem run --model builtin:tiny-gpt2",
        )
    data, lines = read_yaml(file) if file is not None else ({}, {})
    flags = {
        "--model": model,
        "--backend": backend,
        "--precision": precision,
        "--batch-size": batch_size,
        "--num-prompts": num_prompts,
        "--max-output-tokens": max_output_tokens,
    }
    data, notes = apply_flags(data, flags, file=file, lines=lines)
    config = validate_experiment(data, file=file, lines=lines)
    for note in notes:
        err.print(f"[yellow]note:[/] {escape(note)}")

    def progress(message: str) -> None:
        if not as_json:
            err.print(f"[dim]... {escape(message)}[/]")

    output = output.expanduser()
    check_output_dir(output, what="results directory (-o)")
    try:
        result = run_experiment(config, output, progress=progress)
    except ResultWriteError as error:
        if error.result_json is not None and not as_json:  # saved nowhere: still shown
            sys.stdout.write(error.result_json)  # (under --json, inside the error object)
        raise
    path = result.saved_path or output / result.experiment_id / "result.json"
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        render_result(result, path)
