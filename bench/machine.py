"""What a result was measured on: numbers from a 2-core container and a workstation differ x5."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.config import ROOT


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    commit: str

    def describe(self) -> str:
        return (
            f"{self.cpus} CPUs (`nproc`), {self.cpu_model} (/proc/cpuinfo), {self.memory_gib:.1f} GiB RAM, "
            f"Linux {self.kernel}, Python {self.python}"
        )


def this_machine() -> Machine:
    return Machine(
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        memory_gib=_memory_gib(),
        kernel=platform.release(),
        python=platform.python_version(),
        commit=_commit(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _commit() -> str:
    """The commit measured, and whether the tree had changes (read-only git: no index refresh)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head} with uncommitted changes" if status else head


def busy_cpu_percent(seconds: float = 1.0) -> float:
    """System-wide CPU use while the bench itself is idle: other work on a 2-core machine skews every number."""
    return float(psutil.cpu_percent(interval=seconds))


__all__ = ["Machine", "busy_cpu_percent", "this_machine"]
