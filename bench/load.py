"""Drive the server with wrk from a separate process and read back what the Lua script counted.

wrk is a closed-loop generator in C: N connections each send the next request as soon as
the previous answer arrives, so it measures the server, not a Python client. The
requests themselves (token and body per request) are written to a Lua plan file that
bench/wrk/graphql.lua loads in every wrk thread.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import ROOT

SCRIPT = ROOT / "bench" / "wrk" / "graphql.lua"
_MARKER = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    token: str
    body: bytes


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    socket_errors: int
    non2xx: int
    graphql_errors: int
    unexpected: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    sample: str | None  # the first failed answer, for the notes

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx + self.graphql_errors + self.unexpected

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        line = next((line for line in output.splitlines() if line.startswith(_MARKER)), None)
        if line is None:
            raise RuntimeError(f"wrk printed no {_MARKER.strip()} line:\n{output[-2000:]}")
        data: dict[str, Any] = json.loads(line[len(_MARKER) :])
        latency = data["latency_us"]
        return cls(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            socket_errors=sum(data["socket_errors"].values()),
            non2xx=data["non2xx"],
            graphql_errors=data["graphql_errors"],
            unexpected=data["unexpected"],
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            mean_ms=latency["mean"] / 1000,
            max_ms=latency["max"] / 1000,
            sample=data.get("sample"),
        )


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make bench does this)")
    return found


def wrk_version() -> str:
    completed = subprocess.run([wrk_executable(), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", completed.stdout + completed.stderr)
    return match[1] if match else "unknown"


def write_plan(path: Path, requests: Sequence[PlannedRequest], expect: str, graphql_path: str = "/graphql") -> Path:
    """A Lua file returning the requests; long brackets need no escaping, only a level that does not occur."""

    def literal(value: str) -> str:
        level = 1
        while f"]{'=' * level}]" in value:
            level += 1
        return f"[{'=' * level}[{value}]{'=' * level}]"

    items = ",\n".join(f"  {{ token = {literal(r.token)}, body = {literal(r.body.decode())} }}" for r in requests)
    path.write_text(
        f"return {{\n path = {literal(graphql_path)},\n expect = {literal(expect)},\n requests = {{\n{items}\n }}\n}}\n"
    )
    return path


def run_wrk(url: str, plan: Path, *, connections: int, seconds: int, threads: int) -> WrkResult:
    threads = max(1, min(threads, connections))
    command = [
        wrk_executable(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        url,
        "--",
        str(plan),
        str(threads),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return WrkResult.parse(completed.stdout)


__all__ = ["SCRIPT", "PlannedRequest", "WrkResult", "run_wrk", "write_plan", "wrk_executable", "wrk_version"]
