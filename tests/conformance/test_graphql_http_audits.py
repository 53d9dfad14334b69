"""The GraphQL over HTTP server audits of the `graphql-http` npm package, against a running server.

Node runs `audit.mjs` (packages pinned by `package-lock.json`, installed with `npm ci` into the
git-ignored `node_modules` here) against one uvicorn process on the session's PostgreSQL and
Redis, every request carrying a tenant's token. Every MUST audit has to pass; the SHOULD and
MAY results are recorded (`test-artifacts/graphql-http-audits.json`, the JUnit properties), and
each SHOULD we do not meet must be explained in this folder's README.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import (
    installed_as_locked,
    node_executable,
    npm_install,
    run_node_script,
    running_server,
    server_environment,
)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
ARTIFACT = ROOT / "test-artifacts" / "graphql-http-audits.json"
AUDIT_SCRIPT = HERE / "audit.mjs"


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with the audit's npm packages installed from the lockfile."""
    node = node_executable(18, "the graphql-http audits need", why="global fetch")
    if not installed_as_locked(HERE, ("graphql-http", "graphql")):
        npm_install(HERE, "the graphql-http audits")
    return node


@pytest.fixture
def server(settings: Any, tmp_path: Path) -> Iterator[str]:
    """One uvicorn process on the session's PostgreSQL and Redis; yields its GraphQL URL."""
    # One MUST audit asks for `__type`.
    env = server_environment(settings, TENANTQL_HOME=str(tmp_path), INTROSPECTION="true")
    with running_server(env, cwd=tmp_path) as base:
        yield f"{base}/graphql"


def _line(result: dict[str, Any]) -> str:
    line = f"{result['status']:>6}  {result['id']}  {result['name']}"
    if "reason" in result:
        line += f"  -- {result['reason']} (HTTP {result.get('httpStatus')}: {result.get('body')})"
    return line


def _summary(results: list[dict[str, Any]]) -> str:
    return "\n".join(_line(result) for result in results)


async def test_graphql_http_server_audits(node: str, server: str, make_tenant: Callable[..., Any], record_property):
    tenant = await make_tenant()
    results = json.loads(await run_node_script(node, AUDIT_SCRIPT, server, tenant.token(), seconds=180))

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
