"""The served mode against a small fake OpenAI-compatible server: streaming timings, traffic
and concurrency, goodput, and the error paths (requests that fail; a server that dies
mid-run, which fails the experiment with the server's log tail and leaves nothing behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import fake_openai_server
from fakes.fake_openai_server import FakeOpenAIServer
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.server_config import ServingSLO
from llenergymeasure.exceptions import ExperimentError, ModelLoadError
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.serving import backend as served
from llenergymeasure.measurement.serving import server as server_module
from llenergymeasure.measurement.serving.client import Request, drive, stream_completion
from llenergymeasure.measurement.serving.goodput import RequestTiming, goodput, meets_slo
from llenergymeasure.measurement.serving.server import cli_flags, port_in_use
from llenergymeasure.results.schema import load_result


def _request(tokens: int = 4) -> Request:
    return Request([1, 2, 3], {"max_tokens": tokens, "temperature": 0.0})


def test_a_streamed_completion_is_timed_per_token_and_counted_by_usage() -> None:
    with FakeOpenAIServer(token_delay_s=0.01) as fake:
        record = stream_completion(fake.url, "fake-model", _request(5), 10.0)
        body = fake.state.bodies[0]
    assert record.error is None
    assert (record.input_tokens, record.output_tokens, record.token_counts) == (3, 5, "usage")
    assert len(record.token_times_s) == 5
    assert record.first_token_s is not None
    assert record.start_s < record.first_token_s <= record.token_times_s[-1] <= record.end_s
    assert record.token_times_s[-1] - record.first_token_s >= 0.03  # 4 gaps of >= 10 ms
    assert body["stream"] is True and body["prompt"] == [1, 2, 3]
    assert body["stream_options"] == {"include_usage": True}


def test_requests_wait_for_their_arrival_and_for_a_free_slot() -> None:
    with FakeOpenAIServer(token_delay_s=0.02) as fake:
        send = lambda r: stream_completion(fake.url, "fake-model", r, 10.0)  # noqa: E731
        now = time.perf_counter()
        arrivals = [now + 0.05 * i for i in range(8)]
        records = drive(send, [_request(5) for _ in range(8)], arrivals, 2)
        assert fake.state.max_in_flight <= 2
        assert fake.state.requests == 8
    assert [r.error for r in records] == [None] * 8
    assert all(r.start_s >= a for r, a in zip(records, arrivals, strict=True))


def test_failed_requests_are_recorded_not_dropped() -> None:
    with FakeOpenAIServer(fail_every=3) as fake:
        send = lambda r: stream_completion(fake.url, "fake-model", r, 10.0)  # noqa: E731
        records = drive(send, [_request() for _ in range(6)], None, 1)
    errors = [r.error for r in records]
    assert len(records) == 6
    assert sum(e is not None for e in errors) == 2
    assert all("HTTP 500" in e for e in errors if e is not None)


def test_goodput_counts_completed_requests_within_both_thresholds() -> None:
    slo = ServingSLO(ttft_ms=100, tpot_ms=10)
    verdicts = [
        meets_slo(RequestTiming(True, 0.05, 0.005), slo),
        meets_slo(RequestTiming(True, 0.15, 0.005), slo),  # TTFT too slow
        meets_slo(RequestTiming(True, 0.05, 0.02), slo),  # TPOT too slow
        meets_slo(RequestTiming(False, 0.01, 0.001), slo),  # failed
        meets_slo(RequestTiming(True, 0.05, None), slo),  # one token: no TPOT
    ]
    assert verdicts == [True, False, False, False, True]
    result = goodput(verdicts, 2.0)
    assert result is not None and (result.requests, result.fraction, result.per_second) == (
        2,
        0.4,
        1.0,
    )
    assert meets_slo(RequestTiming(True, 9.0, 9.0), ServingSLO()) is None


def test_cli_flags_leave_vllm_defaults_and_unset_values_to_vllm() -> None:
    args = {"model": "m", "enforce_eager": True, "disable_log_stats": False, "seed": 3}
    defaults = {"disable_log_stats": False, "seed": 0}
    assert cli_flags(args, defaults) == ["--model", "m", "--enforce-eager", "--seed", "3"]
    assert cli_flags({"enable_prefix_caching": False, "block_size": None}) == [
        "--no-enable-prefix-caching"
    ]


# ------------------------------------------------------- the served backend, end to end


def _config(**server: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": "builtin:tiny-gpt2",
            "backend": "vllm",
            "max_output_tokens": 6,
            "dataset": {"name": "builtin:conversations", "num_prompts": 12},
            "traffic": {"mode": "poisson", "target_qps": 40},
            "warmup": {"max_prompts": 4, "convergence_detection": False},
            "baseline": {"duration_sec": 0.2},
            "energy": {"source": "estimate"},
            "server": {"ready_timeout_s": 60, **server},
        }
    )


@pytest.fixture
def fake_vllm_serve(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``vllm serve`` replaced by the fake server's script: the started process, its log, its
    stop are the real ones. Returns the ports it was started on."""
    ports: list[int] = []

    def command(args: dict[str, object], port: int, defaults: object = None) -> list[str]:
        ports.append(port)
        die_after = os.environ.get("_FAKE_DIE_AFTER")
        extra = ["--die-after", die_after] if die_after else []
        return [sys.executable, fake_openai_server.__file__, "--port", str(port), *extra]

    monkeypatch.setattr(served, "serve_command", command)
    monkeypatch.setattr(served, "_platform", lambda: "cpu")
    monkeypatch.setattr(served, "_engine_arg_defaults", dict)
    return ports


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_served_run_records_requests_goodput_and_the_server_log(
    tmp_path: Path, fake_vllm_serve: list[int]
) -> None:
    config = _config(max_concurrency=4, slo={"ttft_ms": 5000, "tpot_ms": 1000})
    result = harness.run_experiment(config, tmp_path, experiment_id="served")
    serving = result.serving
    assert serving is not None
    assert serving.requests_sent == len(serving.requests) == result.metrics.num_requests
    assert serving.requests_failed == 0 and serving.goodput_fraction == 1.0
    assert serving.requested_rate_rps == 40 and serving.max_concurrency == 4
    assert all(r.ttft_s is not None and r.latency_s >= r.ttft_s for r in serving.requests)
    assert all(r.sent_s >= r.arrival_s - 1e-9 for r in serving.requests)
    # the dataset's reply lengths, capped by max_output_tokens
    assert {r.requested_output_tokens for r in serving.requests} <= set(range(1, 7))
    assert result.metrics.ttft_s is not None and result.metrics.energy_j is not None
    saved = load_result(tmp_path / "served")
    assert saved.serving == serving
    assert (tmp_path / "served" / "server.log").read_text().count("serving on 127.0.0.1") == 1
    pid = serving.server["pid"]
    assert _gone(pid) and not port_in_use(fake_vllm_serve[0])


def test_a_server_that_dies_mid_run_fails_the_experiment_with_its_log_tail(
    tmp_path: Path, fake_vllm_serve: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_FAKE_DIE_AFTER", "6")  # warmup's 4 requests pass, the window's do not
    with pytest.raises(ExperimentError) as caught:
        harness.run_experiment(_config(), tmp_path, experiment_id="dies")
    message = caught.value.render()
    assert "stopped answering" in message
    assert "out of memory (simulated crash)" in message  # the server's log tail
    assert not (tmp_path / "dies").exists()  # no result, nothing half-written
    assert not server_module._running  # nothing left to stop
    assert not port_in_use(fake_vllm_serve[0])


def test_a_server_that_never_gets_ready_is_stopped_with_a_clear_message(
    tmp_path: Path, fake_vllm_serve: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[server_module.ServerProcess] = []
    real_start = server_module.ServerProcess.start

    def slow_start(self: server_module.ServerProcess) -> None:
        self.command = [*self.command, "--startup-s", "30"]
        started.append(self)
        real_start(self)

    monkeypatch.setattr(server_module.ServerProcess, "start", slow_start)
    config = _config(ready_timeout_s=1.0)
    with pytest.raises(ModelLoadError, match=r"did not answer .*/health within 1 s"):
        harness.run_experiment(config, tmp_path, experiment_id="slow")
    assert started and started[0].pid is not None and _gone(started[0].pid)


def test_an_external_server_is_used_as_it_is(tmp_path: Path, fake_vllm_serve: list[int]) -> None:
    with FakeOpenAIServer() as fake:
        result = harness.run_experiment(_config(url=fake.url), tmp_path, experiment_id="ext")
        assert fake.state.requests >= 12
    assert fake_vllm_serve == []  # llem started nothing
    assert result.serving is not None and result.serving.server["mode"] == "external"
    assert any("external server" in note for note in result.model["notes"])


def test_a_load_that_fails_after_the_start_stops_the_server(
    tmp_path: Path, fake_vllm_serve: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(url: str) -> str:
        raise ExperimentError("no model listed")

    monkeypatch.setattr(served, "served_model_id", no_model)
    with pytest.raises(ExperimentError, match="no model listed"):
        harness.run_experiment(_config(), tmp_path, experiment_id="nomodel")
    assert fake_vllm_serve and not port_in_use(fake_vllm_serve[0])
    assert not server_module._running


CHILD = """
import sys, time
from pathlib import Path
from llenergymeasure.measurement.serving.server import ServerProcess, free_port
port = free_port()
server = ServerProcess([sys.executable, sys.argv[1], "--port", str(port)], port, Path(sys.argv[2]))
server.start()
server.wait_ready(30, "the fake")
print(server.pid, port, flush=True)
time.sleep(120)
"""


def _llem_serving(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    """A process standing in for llem with a server it started: (it, server PID, port)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, fake_openai_server.__file__, str(tmp_path / "s.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    pid, port = (int(v) for v in child.stdout.readline().split())
    return child, pid, port


def test_sigterm_to_llem_stops_the_server_it_started(tmp_path: Path) -> None:
    child, pid, port = _llem_serving(tmp_path)
    try:
        assert port_in_use(port)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM  # then it ended as SIGTERM does
    finally:
        child.kill()
    assert _gone(pid) and not port_in_use(port)


def test_a_killed_llem_takes_its_server_with_it(tmp_path: Path) -> None:
    """SIGKILL runs no handler: the kernel's parent-death signal stops the server (Linux)."""
    if sys.platform != "linux":
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    child, pid, port = _llem_serving(tmp_path)
    try:
        child.kill()
        child.wait(timeout=30)
        deadline = time.perf_counter() + 30
        while not _gone(pid) and time.perf_counter() < deadline:
            time.sleep(0.1)
    finally:
        child.kill()
    assert _gone(pid) and not port_in_use(port)
