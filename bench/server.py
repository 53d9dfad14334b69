"""The server under test, started as a user starts it: `tenantql serve` in its own process.

It gets its own session, so a Ctrl-C at the terminal reaches only the bench, which then
stops the server with SIGTERM; on SIGTERM `serve` drains and stops the embedded servers
it started. Memory is sampled over the serve process and its workers (the embedded
PostgreSQL and Valkey are not the server under test and are left out).
"""

from __future__ import annotations

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
from pathlib import Path

import psutil

_NOT_THE_API = ("postgres", "valkey", "redis")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """`tenantql serve --workers N --port P`, its output kept in a log file."""

    def __init__(self, tenantql: Path, *, workers: int, port: int, env: Mapping[str, str], log: Path) -> None:
        self.command = [str(tenantql), "serve", "--workers", str(workers), "--port", str(port)]
        self.port = port
        self.env = dict(env)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, *, timeout: float = 180.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"tenantql serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"tenantql serve was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 60.0) -> None:
        """SIGTERM, as an orchestrator would; the process tree is killed only if that hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for child in api_processes(self.process.pid):
                child.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def api_processes(pid: int) -> list[psutil.Process]:
    """The serve process and its descendants, without the embedded database servers."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for process in tree:
        try:
            if not process.name().startswith(_NOT_THE_API):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def tree_rss(pid: int) -> int:
    total = 0
    for process in api_processes(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class RssSampler:
    """Peak resident memory of the server's process tree, sampled every `interval` seconds.

    Usage: `with RssSampler(pid) as rss: run_load()`, then `rss.peak_bytes`.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, tree_rss(self.pid))


def tenantql_executable() -> Path:
    """The `tenantql` script next to the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / "tenantql"
    return candidate if candidate.exists() else Path("tenantql")


def serve_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["TENANTQL_HOME"] = str(home)
    env.setdefault("PERSISTED_QUERIES", "apq")  # ready for Q1p/Q2p once persisted queries are built
    env.setdefault("LOG_FORMAT", "console")
    return env


__all__ = ["RssSampler", "ServeProcess", "api_processes", "free_port", "serve_env", "tenantql_executable", "tree_rss"]
