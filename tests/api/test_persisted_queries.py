"""Persisted queries the way Apollo clients send them: APQ, trusted documents, strict mode."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from db.persisted_queries import APQ_PREFIX, ManifestOperation, PersistedQueryStore, sha256_of
from tenantql.app import create_app
from tenantql.settings import PersistedMode
from tests.live import run_cli

SLUG = "query Slug { viewer { tenant { slug } } }"
LISTED = "query Listed { viewer { role } }"
UNLISTED = "query Unlisted { viewer { userId } }"
CANCEL = "mutation Cancel($id: ID!) { cancelShipment(id: $id) { shipment { status } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def persisted(text: str, *, with_text: bool = False, sha256: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256 or sha256_of(text)}}}
    if with_text:
        body["query"] = text
    return body


def code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors") or [{}]
    return errors[0].get("extensions", {}).get("code")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    operations = [{"id": "listed-1", "name": "Listed", "type": "query", "body": LISTED}]
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}))
    return path


@pytest.fixture
def app_with(settings) -> Callable[..., Any]:
    """`async with app_with(persisted_queries=...) as http:` a client of an app with those settings."""

    class Running:
        def __init__(self, **changes: Any) -> None:
            self.app = create_app(replace(settings, **changes))

        async def __aenter__(self) -> httpx.AsyncClient:
            self.lifespan = LifespanManager(self.app)
            manager = await self.lifespan.__aenter__()
            self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t.test")
            return self.http

        async def __aexit__(self, *exc: Any) -> None:
            await self.http.aclose()
            await self.lifespan.__aexit__(*exc)

    return Running


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_an_unknown_hash_is_not_found_with_200_then_hash_and_text_register_it(client, urls, acme, accept):
    text = f"query Fresh{accept.count('+')} {{ viewer {{ tenant {{ slug }} }} }}"
    headers = {**acme.headers(), "Accept": accept}
    missed = await client.post("/graphql", json=persisted(text), headers=headers)
    assert missed.status_code == 200 and code(missed) == "PERSISTED_QUERY_NOT_FOUND"

    registered = await client.post("/graphql", json=persisted(text, with_text=True), headers=headers)
    assert registered.json()["data"] == {"viewer": {"tenant": {"slug": acme.slug}}}
    async with Redis.from_url(urls.redis_url) as redis:
        assert (await redis.get(APQ_PREFIX + sha256_of(text))).decode() == text  # shared by every process

    hit = await client.post("/graphql", json=persisted(text), headers=headers)
    assert hit.json()["data"] == {"viewer": {"tenant": {"slug": acme.slug}}}


async def test_a_hash_that_is_not_the_texts_is_refused_and_stores_nothing(client, acme):
    poisoned = persisted(UNLISTED, with_text=True, sha256=sha256_of(SLUG + " "))
    response = await client.post("/graphql", json=poisoned, headers=acme.headers())
    assert response.status_code == 400 and code(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    later = await client.post("/graphql", json=persisted(SLUG + " "), headers=acme.headers())
    assert code(later) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_registered_document_gives_each_tenant_its_own_data(client, acme, globex):
    await client.post("/graphql", json=persisted(SLUG, with_text=True), headers=acme.headers())
    for tenant in (acme, globex):
        response = await client.post("/graphql", json=persisted(SLUG), headers=tenant.headers())
        assert response.json()["data"] == {"viewer": {"tenant": {"slug": tenant.slug}}}


async def test_get_with_a_hash_is_served_and_never_stored_by_shared_caches(client, acme):
    await client.post("/graphql", json=persisted(SLUG, with_text=True), headers=acme.headers())
    params = {"extensions": json.dumps(persisted(SLUG)["extensions"])}
    response = await client.get("/graphql", params=params, headers=acme.headers())
    assert response.json()["data"] == {"viewer": {"tenant": {"slug": acme.slug}}}
    assert response.headers["cache-control"] == "private, no-store"
    assert "Authorization" in response.headers["vary"]


async def test_get_never_runs_a_persisted_mutation(client, acme, owner_engine):
    await client.post(
        "/graphql",
        json={**persisted(CANCEL, with_text=True), "variables": {"id": "x"}},
        headers=acme.headers(),
    )
    params = {"extensions": json.dumps(persisted(CANCEL)["extensions"]), "variables": json.dumps({"id": "x"})}
    response = await client.get("/graphql", params=params, headers=acme.headers())
    assert response.status_code == 405


async def test_a_document_known_by_hash_is_parsed_and_validated_once(client, services, acme):
    text = "query ParsedOnce { viewer { role } }"
    await client.post("/graphql", json=persisted(text, with_text=True), headers=acme.headers())
    parsed, checked = services.schema.documents.parse.cache_info(), services.schema.documents.check.cache_info()
    for _ in range(3):
        assert "errors" not in (await client.post("/graphql", json=persisted(text), headers=acme.headers())).json()
    assert services.schema.documents.parse.cache_info().misses == parsed.misses
    assert services.schema.documents.check.cache_info().misses == checked.misses


async def test_with_persisted_queries_off_a_hash_alone_is_not_supported(app_with, acme):
    async with app_with(persisted_queries=PersistedMode.OFF) as http:
        response = await http.post("/graphql", json=persisted(SLUG), headers=acme.headers())
        assert code(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
        plain = await http.post("/graphql", json=persisted(SLUG, with_text=True), headers=acme.headers())
        assert plain.json()["data"]["viewer"]["tenant"]["slug"] == acme.slug


async def test_strict_mode_runs_only_the_manifests_operations(app_with, manifest, acme):
    async with app_with(persisted_queries=PersistedMode.STRICT, persisted_query_manifest=str(manifest)) as http:
        headers = acme.headers()
        assert (await http.post("/graphql", json={"query": LISTED}, headers=headers)).json()["data"]
        assert (await http.post("/graphql", json={"documentId": "listed-1"}, headers=headers)).json()["data"]
        assert (await http.post("/graphql", json=persisted(LISTED), headers=headers)).json()["data"]
        refused = await http.post("/graphql", json={"query": UNLISTED}, headers=headers)
        assert code(refused) == "PERSISTED_QUERY_NOT_IN_LIST" and "data" not in refused.json()
        registering = await http.post("/graphql", json=persisted(UNLISTED, with_text=True), headers=headers)
        assert code(registering) == "PERSISTED_QUERY_NOT_IN_LIST"
        unknown = await http.post("/graphql", json={"documentId": "no-such-id"}, headers=headers)
        assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


async def test_strict_mode_can_apply_to_one_client_name(app_with, manifest, acme):
    changes = {"persisted_query_manifest": str(manifest), "persisted_query_strict_clients": ("ios-app",)}
    async with app_with(**changes) as http:
        mobile = {**acme.headers(), "apollographql-client-name": "ios-app"}
        web = {**acme.headers(), "apollographql-client-name": "dispatch-web"}
        assert code(await http.post("/graphql", json={"query": UNLISTED}, headers=mobile)) == (
            "PERSISTED_QUERY_NOT_IN_LIST"
        )
        assert (await http.post("/graphql", json={"query": LISTED}, headers=mobile)).json()["data"]
        assert (await http.post("/graphql", json={"query": UNLISTED}, headers=web)).json()["data"]
        assert (await http.post("/graphql", json={"query": UNLISTED}, headers=acme.headers())).json()["data"]


async def test_the_cli_loads_a_manifest_that_every_server_then_trusts(settings, client, acme, tmp_path):
    body = "query FromTheCli { viewer { tenant { name } } }"
    path = tmp_path / "cli-manifest.json"
    operations = [{"id": "cli-1", "name": "FromTheCli", "type": "query", "body": body}]
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}))
    done = run_cli(settings, "persisted", "load", str(path))
    assert done.returncode == 0, done.stderr
    assert "trusted 1 operations" in done.stdout
    response = await client.post("/graphql", json={"documentId": "cli-1"}, headers=acme.headers())
    assert response.json()["data"]["viewer"]["tenant"]["name"]


async def test_the_cli_refuses_a_file_that_is_not_a_manifest(settings, tmp_path):
    path = tmp_path / "not-a-manifest.json"
    path.write_text(json.dumps({"operations": []}))
    done = run_cli(settings, "persisted", "load", str(path))
    assert done.returncode == 2 and "not" in done.stderr


async def test_a_hash_the_process_has_seen_costs_no_redis_round_trip(client, services, acme):
    text = "query SeenBefore { viewer { tenant { name } } }"
    await client.post("/graphql", json=persisted(text, with_text=True), headers=acme.headers())
    calls = []
    original = services.redis.execute_command

    async def counting(*args, **kwargs):
        calls.append(args[0])
        return await original(*args, **kwargs)

    services.redis.execute_command = counting
    try:
        response = await client.post("/graphql", json=persisted(text), headers=acme.headers())
    finally:
        del services.redis.execute_command
    assert "errors" not in response.json()
    assert calls == ["EVALSHA"]  # the budget's charge, and nothing for the document


def operation(name: str) -> ManifestOperation:
    return ManifestOperation(id=f"id-{name}", name=name, type="query", body=f"query {name} {{ viewer {{ role }} }}")


async def test_loading_a_manifest_replaces_the_trusted_set_unless_added_to(urls):
    first, second, third = operation("First"), operation("Second"), operation("Third")
    async with Redis.from_url(urls.redis_url) as redis:
        loader = PersistedQueryStore(redis)
        server = PersistedQueryStore(redis, trusted_ttl=0)  # another process, asking Redis every time
        await loader.load_manifest([first])
        assert await server.trusted(first.id) == first.body
        assert await server.is_trusted(first.body)

        await loader.load_manifest([second])
        assert await server.trusted(first.id) is None and not await server.is_trusted(first.body)
        assert await loader.trusted(first.id) is None  # the loading process forgets at once
        assert await server.trusted(second.id) == second.body

        await loader.load_manifest([third], replace=False)
        assert await server.trusted(second.id) == second.body and await server.trusted(third.id) == third.body


async def test_a_process_trusts_what_it_remembers_only_for_a_while(urls):
    listed = operation("Remembered")
    async with Redis.from_url(urls.redis_url) as redis:
        loader, server = PersistedQueryStore(redis), PersistedQueryStore(redis, trusted_ttl=30)
        await loader.load_manifest([listed])
        assert await server.trusted(listed.id) == listed.body
        await loader.load_manifest([operation("Other")])
        assert await server.trusted(listed.id) == listed.body  # still remembered
        for key in list(server._documents):
            text, _ = server._documents[key]
            server._documents[key] = (text, 0.0)  # as if 30 seconds had passed
        assert await server.trusted(listed.id) is None


async def test_a_server_started_with_a_manifest_keeps_it_through_a_redis_outage(settings, manifest, acme):
    """Redis on a port where nothing listens: the configured manifest still runs, others are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    changes = {"redis_url": dead, "persisted_queries": PersistedMode.STRICT, "persisted_query_manifest": str(manifest)}
    app = create_app(replace(settings, **changes))
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t.test") as http:
            listed = await http.post("/graphql", json={"documentId": "listed-1"}, headers=acme.headers())
            assert listed.json()["data"] == {"viewer": {"role": "ADMIN"}}
            other = await http.post("/graphql", json={"query": UNLISTED}, headers=acme.headers())
            assert code(other) == "PERSISTED_QUERY_NOT_IN_LIST"
