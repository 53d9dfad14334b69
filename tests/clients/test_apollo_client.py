"""Apollo Client (from npm, in Node) with its persisted-queries link, against running servers.

Node runs `apollo.mjs` (packages pinned by `package-lock.json`, installed with `npm ci` into the
git-ignored `node_modules` here): each ApolloClient sends its operations through
`PersistedQueryLink` (SHA-256 from node:crypto) and `HttpLink` (global fetch, a tenant's
token), and the script records every HTTP request the client actually made. The tests assert
those sequences:

- APQ (the default mode): hash alone → PERSISTED_QUERY_NOT_FOUND, hash and text → data, then
  the same operation again → hash alone → data; also with `useGETForHashedQueries`.
- Strict mode, with a manifest made by Apollo's own `generate-persisted-query-manifest`: the
  listed operation is served by hash alone; any other is refused with
  PERSISTED_QUERY_NOT_IN_LIST, which the application sees as a GraphQL error. The same for
  one client name (`apollographql-client-name`) while other clients stay open.

The uvicorn processes run on the session's PostgreSQL and Redis. Operation names carry a
per-run nonce, so no document registered by another test is found by accident.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.live import (
    installed_as_locked,
    locked_version,
    node_executable,
    npm_install,
    run_node_script,
    running_servers,
    server_environment,
)

HERE = Path(__file__).parent
SCRIPT = HERE / "apollo.mjs"
GENERATOR = HERE / "node_modules" / "@apollo" / "generate-persisted-query-manifest" / "cli.js"
PACKAGES = ("@apollo/client", "@apollo/generate-persisted-query-manifest", "graphql", "rxjs")

NONCE = uuid.uuid4().hex[:8]
APQ_SLUG = f"query ApqSlug{NONCE} {{ viewer {{ tenant {{ slug }} }} }}"
GET_SLUG = f"query GetSlug{NONCE} {{ viewer {{ tenant {{ slug }} }} }}"
LISTED = f"query Listed{NONCE} {{ viewer {{ role tenant {{ slug }} }} }}"
UNLISTED = f"query Unlisted{NONCE} {{ viewer {{ userId tenant {{ slug }} }} }}"
IOS = "tenantql-ios"

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
HASH, HASH_AND_TEXT = "hash", "hash+text"


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with Apollo Client and its tools installed from the lockfile."""
    node = node_executable(20, "the Apollo Client test needs")
    if not installed_as_locked(HERE, PACKAGES):
        npm_install(HERE, "Apollo Client")
    return node


@pytest.fixture
def start_servers(settings: Any, tmp_path: Path) -> Iterator[Callable[..., list[str]]]:
    """`start_servers({"PERSISTED_QUERIES": "strict"}, ...)`: one uvicorn per settings, all ready.

    Returns their GraphQL URLs; the processes start together and stop with the test.
    """
    with ExitStack() as stack:

        def start(*changes: dict[str, str]) -> list[str]:
            envs = []
            for changed in changes:
                home = Path(tempfile.mkdtemp(prefix="server-", dir=tmp_path))
                envs.append(server_environment(settings, TENANTQL_HOME=str(home), **changed))
            bases = stack.enter_context(running_servers(*envs, cwd=tmp_path))
            return [f"{base}/graphql" for base in bases]

        yield start


@pytest.fixture
def manifest(node: str, tmp_path: Path) -> Path:
    """An Apollo persisted query manifest listing LISTED, made by Apollo's own generator."""
    project = tmp_path / "app"
    (project / "src").mkdir(parents=True)
    (project / "src" / "Listed.graphql").write_text(LISTED + "\n")
    config = project / "persisted-query-manifest.config.json"
    config.write_text(json.dumps({"documents": ["src/**/*.graphql"], "output": "persisted-query-manifest.json"}))
    done = subprocess.run(
        [node, str(GENERATOR), "--config", str(config)], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"generate-persisted-query-manifest failed:\n{done.stdout}\n{done.stderr}"
    return project / "persisted-query-manifest.json"


async def run_apollo(node: str, url: str, token: str, *clients: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run `apollo.mjs` with these client plans; returns each client's requests and results by label."""
    plan = json.dumps({"clients": list(clients)}).encode()
    output = json.loads(await run_node_script(node, SCRIPT, url, token, seconds=60, stdin=plan))
    assert output["apolloClient"] == locked_version(HERE, "@apollo/client")
    print(json.dumps(output, indent=2))  # shown with -s or -rP
    return {client["label"]: client for client in output["clients"]}


def wire(client: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each request as (method, what it carried, what came back: an error code or "data")."""
    return [
        (
            request["method"],
            HASH_AND_TEXT if request["hasQuery"] else HASH,
            request["codes"][0] if request["codes"] else "data" if request["data"] else "nothing",
        )
        for request in client["requests"]
    ]


def slugs(client: dict[str, Any]) -> list[str | None]:
    """The tenant slug in each operation's data, as the application saw it (None for an error)."""
    return [(result.get("data") or {}).get("viewer", {}).get("tenant", {}).get("slug") for result in client["results"]]


def error_codes(client: dict[str, Any]) -> list[list[str] | None]:
    return [result["error"]["codes"] if "error" in result else None for result in client["results"]]


def one_hash_per_operation(client: dict[str, Any]) -> None:
    """Every request names the operation by the SHA-256 of the text it sends when it sends text."""
    by_operation: dict[str, set[str]] = {}
    for request in client["requests"]:
        assert request["sha256Hash"], request
        by_operation.setdefault(request["operationName"], set()).add(request["sha256Hash"])
        if request["hasQuery"]:
            assert request["hashIsOfQuery"], request
    assert all(len(hashes) == 1 for hashes in by_operation.values()), by_operation


async def test_apollo_apq_misses_once_then_sends_the_hash_alone(node, start_servers, make_tenant):
    acme, globex = await make_tenant(), await make_tenant()
    [url] = start_servers({})  # PERSISTED_QUERIES defaults to apq
    runs = await run_apollo(
        node,
        url,
        acme.token(),
        {"label": "post", "operations": [APQ_SLUG, APQ_SLUG]},
        {"label": "get", "useGETForHashedQueries": True, "operations": [GET_SLUG, GET_SLUG]},
        {"label": "other tenant", "token": globex.token(), "operations": [APQ_SLUG]},
    )

    assert wire(runs["post"]) == [("POST", HASH, NOT_FOUND), ("POST", HASH_AND_TEXT, "data"), ("POST", HASH, "data")]
    assert slugs(runs["post"]) == [acme.slug, acme.slug]
    # The retry with text goes by POST whatever the first request's method (the text may be long).
    assert wire(runs["get"]) == [("GET", HASH, NOT_FOUND), ("POST", HASH_AND_TEXT, "data"), ("GET", HASH, "data")]
    assert slugs(runs["get"]) == [acme.slug, acme.slug]
    served_by_get = runs["get"]["requests"][2]  # tenant data in a GET response: no shared cache may keep it
    assert "private" in served_by_get["cacheControl"] or "no-store" in served_by_get["cacheControl"]
    assert "authorization" in served_by_get["vary"].lower()
    # Documents are global, data is not: another tenant's first request by hash is served, with its own data.
    assert wire(runs["other tenant"]) == [("POST", HASH, "data")]
    assert slugs(runs["other tenant"]) == [globex.slug]
    for run in runs.values():
        one_hash_per_operation(run)
        assert all(request["status"] == 200 for request in run["requests"])


async def test_apollo_in_strict_mode_runs_only_the_manifests_operations(node, start_servers, manifest, acme):
    generated = json.loads(manifest.read_text())
    assert generated["format"] == "apollo-persisted-query-manifest"
    [listed] = generated["operations"]
    assert listed["name"] == f"Listed{NONCE}" and listed["type"] == "query"
    assert listed["id"] == hashlib.sha256(listed["body"].encode()).hexdigest()
    assert "__typename" in listed["body"]  # Apollo lists the document its cache sends, not the source text

    strict, ios_only = start_servers(
        {"PERSISTED_QUERIES": "strict", "PERSISTED_QUERY_MANIFEST": str(manifest)},
        {"PERSISTED_QUERY_MANIFEST": str(manifest), "PERSISTED_QUERIES_STRICT_CLIENTS": IOS},
    )

    runs = await run_apollo(node, strict, acme.token(), {"label": "strict", "operations": [LISTED, UNLISTED]})
    refused = [("POST", HASH, "data"), ("POST", HASH, NOT_FOUND), ("POST", HASH_AND_TEXT, NOT_IN_LIST)]
    assert wire(runs["strict"]) == refused
    assert slugs(runs["strict"]) == [acme.slug, None]
    assert error_codes(runs["strict"]) == [None, [NOT_IN_LIST]]
    assert runs["strict"]["requests"][0]["sha256Hash"] == listed["id"]
    one_hash_per_operation(runs["strict"])

    runs = await run_apollo(
        node,
        ios_only,
        acme.token(),
        {"label": "ios", "clientName": IOS, "operations": [LISTED, UNLISTED]},
        {"label": "web", "clientName": "tenantql-web", "operations": [UNLISTED]},
        {"label": "ios again", "clientName": IOS, "operations": [UNLISTED]},
    )
    assert wire(runs["ios"]) == refused
    assert error_codes(runs["ios"]) == [None, [NOT_IN_LIST]]
    assert all(request["clientName"] == IOS for request in runs["ios"]["requests"])
    assert wire(runs["web"]) == [("POST", HASH, NOT_FOUND), ("POST", HASH_AND_TEXT, "data")]
    assert slugs(runs["web"]) == [acme.slug]
    # What the web client registered is still not in the list for the strict client.
    assert wire(runs["ios again"]) == [("POST", HASH, NOT_FOUND), ("POST", HASH_AND_TEXT, NOT_IN_LIST)]
