"""The GraphQL over HTTP server audits of the `graphql-http` npm package, against a running server.

Node runs `audit.mjs` (packages pinned by `package-lock.json`, installed with `npm ci` into the
git-ignored `node_modules` here) against one uvicorn process on the session's PostgreSQL and
Redis, every request carrying a tenant's token. Every MUST audit has to pass; the SHOULD and
MAY results are recorded (`test-artifacts/graphql-http-audits.json`, the JUnit properties), and
each SHOULD we do not meet must be explained in this folder's README.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
ARTIFACT = ROOT / "test-artifacts" / "graphql-http-audits.json"
AUDIT_SCRIPT = HERE / "audit.mjs"


def _locked_version(package: str) -> str:
    lock = json.loads((HERE / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def _installed_version(package: str) -> str | None:
    manifest = HERE / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with the audit's npm packages installed from the lockfile."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        pytest.fail("`node` is not on PATH: the graphql-http audits need Node.js 18 or later", pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"the graphql-http audits need Node.js 18 or later (global fetch), found {version}", pytrace=False)
    if any(_installed_version(p) != _locked_version(p) for p in ("graphql-http", "graphql")):
        if npm is None:
            pytest.fail(
                "`npm` is not on PATH: it is needed once to install the graphql-http audits "
                f"(`npm ci` in {HERE.relative_to(ROOT)})",
                pytrace=False,
            )
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600
        )
        if installed.returncode != 0:
            pytest.fail(f"`npm ci` failed in {HERE}:\n{installed.stdout}\n{installed.stderr}", pytrace=False)
    return node


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(settings: Any, tmp_path: Path) -> Iterator[str]:
    """One uvicorn process on the session's PostgreSQL and Redis; yields its GraphQL URL."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": str(settings.jwt_secret),
        "TENANTQL_HOME": str(tmp_path),
        "INTROSPECTION": "true",  # one MUST audit asks for `__type`
        "LOG_FORMAT": "json",
    }
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "tenantql.app:app_from_env", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited:\n{process.stderr.read().decode()}", pytrace=False)
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready within 60 s"
            time.sleep(0.1)
        yield f"{base}/graphql"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _run_audits(node: str, url: str, token: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(AUDIT_SCRIPT),
        url,
        cwd=HERE,
        env={**os.environ, "TENANTQL_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"audit.mjs failed ({process.returncode}):\n{stderr.decode()}"
    return json.loads(stdout)


def _line(result: dict[str, Any]) -> str:
    line = f"{result['status']:>6}  {result['id']}  {result['name']}"
    if "reason" in result:
        line += f"  -- {result['reason']} (HTTP {result.get('httpStatus')}: {result.get('body')})"
    return line


def _summary(results: list[dict[str, Any]]) -> str:
    return "\n".join(_line(result) for result in results)


async def test_graphql_http_server_audits(node: str, server: str, make_tenant: Callable[..., Any], record_property):
    tenant = await make_tenant()
    results = await _run_audits(node, server, tenant.token())

    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(results, indent=2) + "\n")
    tally = {
        level: {
            "ok": sum(r["status"] == "ok" for r in results if r["requirement"] == level),
            "total": sum(r["requirement"] == level for r in results),
        }
        for level in ("MUST", "SHOULD", "MAY")
    }
    record_property("graphql_http_audits", json.dumps(tally))
    for r in results:
        record_property(f"audit {r['id']}", f"{r['status']}: {r['name']}")
    print(f"graphql-http audits: {tally}\n{_summary(results)}")  # shown with -s or -rP

    assert results, "no audits ran"
    assert tally["MUST"]["total"] > 0
    crashed = [r for r in results if r["status"] == "fatal"]
    assert not crashed, f"audits that crashed:\n{_summary(crashed)}"
    failed_musts = [r for r in results if r["requirement"] == "MUST" and r["status"] != "ok"]
    assert not failed_musts, f"MUST audits failed:\n{_summary(failed_musts)}"

    documented = set(re.findall(r"`([0-9A-Z]{4})`", (HERE / "README.md").read_text()))
    undocumented = [r for r in results if r["requirement"] == "SHOULD" and r["status"] != "ok"]
    undocumented = [r for r in undocumented if r["id"] not in documented]
    assert not undocumented, f"SHOULD audits not met and not explained in README.md:\n{_summary(undocumented)}"
