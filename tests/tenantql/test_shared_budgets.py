"""Budgets are one per tenant across processes, and survive a Redis outage per process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy import text

from auth.tenant import Plan
from db.buckets import KEY_PREFIX
from tenantql.app import create_app
from tests.conftest import TenantHandle
from tests.live import running_servers, server_environment

# 2 + 8 x 1: the SMALL data set has 12 shipments, so the actual cost is the requested one.
TEN_POINTS = {"query": "{ shipments(first: 8) { edges { node { customer { name } } } } }"}


async def small_budget(owner_engine, tenant: TenantHandle, per_minute: int) -> None:
    async with owner_engine.connect() as connection:
        await connection.execute(
            text("UPDATE tenants SET plan = :plan, rate_limit_per_minute = :limit WHERE id = :id"),
            {"plan": Plan.ENTERPRISE.value, "limit": per_minute, "id": tenant.id},
        )


@pytest.fixture
def two_servers(settings) -> Iterator[list[str]]:
    """Two uvicorn processes on the session's PostgreSQL and Redis."""
    env = server_environment(settings, TENANT_CACHE_SECONDS="0.5")
    with running_servers(env, env) as urls:
        yield urls


async def test_two_server_processes_share_one_budget(owner_engine, acme, two_servers):
    await small_budget(owner_engine, acme, per_minute=60)  # 60 points: six requests, then one a 10 s
    await asyncio.sleep(0.6)  # the processes' tenant caches expire
    statuses: dict[str, list[int]] = {url: [] for url in two_servers}
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(12):
            url = two_servers[i % 2]
            response = await http.post(f"{url}/graphql", json=TEN_POINTS, headers=acme.headers())
            statuses[url].append(response.status_code)
    served = sum(status == 200 for codes in statuses.values() for status in codes)
    # One shared bucket pays six (a seventh if a refill of 10 points lands meanwhile); two buckets would pay 12.
    assert 6 <= served <= 7, statuses
    for codes in statuses.values():
        assert 200 in codes and 429 in codes, statuses


@pytest.fixture
async def outage_client(settings, own_redis) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_app(replace(settings, redis_url=own_redis.url))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
            yield http, app.state.services


async def wait_for(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_stopping_redis_keeps_serving_and_limiting_per_process(
    owner_engine, acme, globex, own_redis, outage_client, caplog
):
    http, services = outage_client
    await small_budget(owner_engine, acme, per_minute=60)
    url = own_redis.url
    before = await http.post("/graphql", json=TEN_POINTS, headers=globex.headers())
    assert before.status_code == 200
    async with Redis.from_url(url) as redis:
        assert await redis.exists(KEY_PREFIX + str(globex.id))

    await asyncio.to_thread(own_redis.stop)
    during = [await http.post("/graphql", json=TEN_POINTS, headers=acme.headers()) for _ in range(8)]
    assert [r.status_code for r in during] == [200] * 6 + [429] * 2  # a per-process bucket, still limiting
    assert all("cost" in r.json()["extensions"] for r in during)
    assert (await http.post("/graphql", json=TEN_POINTS, headers=globex.headers())).status_code == 200
    ready = await http.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "postgres": True, "redis": False, "budgets": "per-process"}
    metrics = (await http.get("/metrics")).text
    assert "tenantql_budgets_shared 0.0" in metrics
    assert "tenantql_budgets_failovers_total 1.0" in metrics
    warnings = [r for r in caplog.records if r.name == "tenantql.budgets" and r.levelname == "WARNING"]
    assert len(warnings) == 1, "the outage is logged once, not per request"

    await asyncio.to_thread(own_redis.start)
    assert own_redis.url == url

    async def shared_again() -> bool:
        return (await http.get("/ready")).json()["budgets"] == "shared"

    await wait_for(shared_again)
    after = await http.post("/graphql", json=TEN_POINTS, headers=acme.headers())
    assert after.status_code == 200  # the shared bucket: this Redis lost its data with the restart
    async with Redis.from_url(url) as redis:
        assert await redis.exists(KEY_PREFIX + str(acme.id))
    assert "tenantql_budgets_shared 1.0" in (await http.get("/metrics")).text
    assert services.buckets.shared
