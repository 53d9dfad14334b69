"""Real processes for the tests that need them: uvicorn servers, and Node with npm packages from a lockfile."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 60


def free_port() -> int:
    """A port that is free now: the server binds it a moment later (good enough on a test machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(settings: Any, **extra: str) -> dict[str, str]:
    """This process's environment pointed at the session's PostgreSQL, Redis and JWT secret, plus `extra`."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": str(settings.jwt_secret),
        "LOG_FORMAT": "json",
        **extra,
    }


def run_cli(settings: Any, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`tenantql ARGS` as an operator runs it, against the session's servers (owner role included)."""
    env = server_environment(settings, DATABASE_OWNER_URL=settings.database_owner_url, LOG_FORMAT="console")
    return subprocess.run(
        [sys.executable, "-m", "tenantql", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def running_servers(*envs: Mapping[str, str], cwd: Path | None = None) -> Iterator[list[str]]:
    """One uvicorn process per environment, started together; yields their base URLs once all are ready.

    A `cwd` of the test's own keeps the work tree's `.env` out. Stderr goes to files, not pipes nobody
    reads (a full pipe would stall a server), and is shown if a server exits or is not ready in time.
    """
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tenantql-server-")))
        started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

        @stack.callback
        def stop() -> None:
            for _, process, _ in started:
                process.terminate()
            for _, process, _ in started:
                process.wait(timeout=30)

        for env in envs:
            port = free_port()
            log = logs / f"{port}.stderr"
            with log.open("wb") as stderr:
                process = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "uvicorn", "tenantql.app:app_from_env", "--factory"),
                        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                    ],
                    cwd=cwd,
                    env=dict(env),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            started.append((f"http://127.0.0.1:{port}", process, log))
        deadline = time.monotonic() + READY_SECONDS
        for base, process, log in started:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the server exited:\n{log.read_text(errors='replace')}", pytrace=False)
                try:
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() >= deadline:
                    pytest.fail(
                        f"the server did not become ready within {READY_SECONDS} s:\n{log.read_text(errors='replace')}",
                        pytrace=False,
                    )
                time.sleep(0.05)
        yield [base for base, _, _ in started]


@contextmanager
def running_server(env: Mapping[str, str], cwd: Path | None = None) -> Iterator[str]:
    """`running_servers` for one server: yields its base URL."""
    with running_servers(env, cwd=cwd) as [base]:
        yield base


def node_executable(minimum: int, needs: str, why: str = "") -> str:
    """`node` of at least version `minimum`; otherwise the test fails saying what `needs` it and why."""
    requirement = f"{needs} Node.js {minimum} or later" + (f" ({why})" if why else "")
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"`node` is not on PATH: {requirement}", pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < minimum:
        pytest.fail(f"{requirement}, found {version}", pytrace=False)
    return node


async def run_node_script(
    node: str, script: Path, url: str, token: str, *, seconds: float, stdin: bytes | None = None
) -> bytes:
    """Run `script` (from its folder) against `url` as the tenant of `token`; returns its stdout.

    The token goes in TENANTQL_TOKEN, not the command line; a script still running after `seconds` is killed.
    """
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        url,
        cwd=script.parent,
        env={**os.environ, "TENANTQL_TOKEN": token},
        stdin=None if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"{script.name} failed ({process.returncode}):\n{stderr.decode()}"
    return stdout


def locked_version(folder: Path, package: str) -> str:
    """The version of `package` that `folder/package-lock.json` pins."""
    lock = json.loads((folder / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def _installed_version(folder: Path, package: str) -> str | None:
    manifest = folder / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def installed_as_locked(folder: Path, packages: Iterable[str]) -> bool:
    """Whether `folder/node_modules` has these packages at their locked versions (not missing, not stale)."""
    return all(_installed_version(folder, package) == locked_version(folder, package) for package in packages)


def npm_install(folder: Path, what: str, *, options: Sequence[str] = (), how: str | None = None) -> None:
    """`npm ci` in `folder`; the test fails saying how to install `what` if npm is missing or the install fails."""
    npm = shutil.which("npm")
    if npm is None:
        how = how or f"`npm ci` in {folder.relative_to(ROOT)}"
        pytest.fail(f"`npm` is not on PATH: it is needed once to install {what} ({how})", pytrace=False)
    installed = subprocess.run(
        [npm, "ci", *options, "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True, timeout=600
    )
    if installed.returncode != 0:
        pytest.fail(f"`npm ci` failed in {folder}:\n{installed.stdout}\n{installed.stderr}", pytrace=False)
