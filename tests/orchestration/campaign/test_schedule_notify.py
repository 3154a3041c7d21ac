"""Daemon schedule (fake clock) and the webhook (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import ScheduleConfig
from llenergymeasure.orchestration.campaign.notify import send_webhook
from llenergymeasure.orchestration.campaign.runner import CampaignRunner
from llenergymeasure.orchestration.campaign.schedule import Scheduler, seconds_until

from .helpers import FakeExecutor, FakeTime, campaign_yaml, prepare


def local(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, second)


@pytest.mark.parametrize(
    ("now", "at", "expected"),
    [
        (local(10, 0), "10:30", 1800.0),
        (local(23, 50), "00:10", 1200.0),
        (local(2, 30), "02:30", 0.0),
        (local(2, 30, 20), "02:30", 0.0),  # within the minute: start now
        (local(2, 31), "02:30", 86340.0),  # just missed: tomorrow
    ],
)
def test_seconds_until_the_next_time_of_day(now: datetime, at: str, expected: float) -> None:
    assert seconds_until(at, now) == pytest.approx(expected)


def test_scheduler_paces_cycles_and_stops_at_the_total_duration() -> None:
    clock = FakeTime(local(9, 0).timestamp())
    scheduler = Scheduler(
        ScheduleConfig(at="09:10", interval_seconds=100, total_duration_seconds=250),
        clock=clock.clock,
        sleep=clock.sleep,
    )
    scheduler.wait_for_start()
    assert clock.sleeps == [600.0]
    assert scheduler.before_cycle()  # cycle 1 at once
    clock.now += 30  # the cycle took 30 s
    assert scheduler.before_cycle()  # cycle 2 waits the remaining 70 s
    assert clock.sleeps[-1] == pytest.approx(70.0)
    assert scheduler.before_cycle()  # cycle 3 at 200 s
    assert not scheduler.before_cycle()  # cycle 4 would start at 300 s > 250 s
    assert sum(clock.sleeps) == pytest.approx(600 + 70 + 100)


def test_a_scheduled_campaign_waits_then_leaves_late_cycles_for_resume(tmp_path: Path) -> None:
    clock = FakeTime(local(1, 0).timestamp())
    file = campaign_yaml(
        tmp_path / "c.yaml",
        cycles=3,
        extra="schedule: {at: '01:05', interval_seconds: 60, total_duration_seconds: 100}\n",
    )
    executor = FakeExecutor()
    outcome = CampaignRunner(
        prepare(file, tmp_path / "out"),
        executor=executor,
        sleep=clock.sleep,
        clock=clock.clock,
        temperatures=lambda: {},
        bootstrap_resamples=50,
    ).run()
    assert clock.sleeps == [300.0, 60.0]
    assert len(executor.calls) == 4  # cycles 1 and 2; cycle 3 would start at 120 s > 100 s
    assert outcome.status == "stopped" and "total_duration_seconds" in (outcome.stop_reason or "")
    assert outcome.counts["pending"] == 2
    assert outcome.schedule_wait_s == pytest.approx(360.0)


# --- webhook -----------------------------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "body": json.loads(self.rfile.read(length)),
                    "type": self.headers["Content-Type"],
                    "path": self.path,
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, url: str, on: str, executor: FakeExecutor) -> Any:
    file = campaign_yaml(
        tmp_path / "c.yaml", extra=f"notify: {{webhook_url: '{url}', 'on': {on}}}\n"
    )
    return CampaignRunner(
        prepare(file, tmp_path / "out"),
        executor=executor,
        sleep=lambda s: None,
        temperatures=lambda: {},
        bootstrap_resamples=50,
    ).run()


def test_webhook_posts_a_json_summary_on_completion(tmp_path: Path, hook: Any) -> None:
    url, received = hook
    outcome = _run(tmp_path, url, "[completion, failure]", FakeExecutor())
    assert outcome.webhook_sent is True
    (call,) = received
    assert call["path"] == "/hook" and call["type"] == "application/json"
    body = call["body"]
    assert body["event"] == "completion" and body["status"] == "completed"
    assert body["campaign_name"] == "test-campaign"
    assert body["counts"]["completed"] == 4 and body["failures"] == []


def test_webhook_reports_failures_with_their_errors(tmp_path: Path, hook: Any) -> None:
    url, received = hook
    _run(tmp_path, url, "[failure]", FakeExecutor(fail={"pytorch_tiny-gpt2_out6"}))
    body = received[0]["body"]
    assert body["event"] == "failure" and body["status"] == "completed_with_failures"
    assert [f["error"] for f in body["failures"]] == [
        "boom in pytorch_tiny-gpt2_out6_c1",
        "boom in pytorch_tiny-gpt2_out6_c2",
    ]


def test_webhook_not_sent_for_an_event_not_asked_for(tmp_path: Path, hook: Any) -> None:
    url, received = hook
    outcome = _run(tmp_path, url, "[failure]", FakeExecutor())
    assert outcome.webhook_sent is None and received == []


def test_an_unreachable_webhook_never_fails_the_campaign(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = _run(tmp_path, f"http://127.0.0.1:{port}/x", "[completion]", FakeExecutor())
    assert outcome.status == "completed" and outcome.exit_code == 0
    assert outcome.webhook_sent is False
    assert send_webhook("not a url", {}) is False


def test_webhook_bodies_are_strict_json_without_secrets(
    hook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = hook
    monkeypatch.setenv("HF_TOKEN", "hf_plantedsecret123456")
    payload = {"mean": float("nan"), "note": "token hf_plantedsecret123456 leaked?"}
    assert send_webhook(url, payload) is True
    (call,) = received
    assert call["body"]["mean"] is None  # json.loads would have accepted NaN: it is null
    assert "hf_plantedsecret123456" not in json.dumps(call["body"])
