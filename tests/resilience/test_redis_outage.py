"""Redis stopped under mixed-tenant load and started again: nothing fails, budgets bind, sharing resumes by itself.

A live server on this folder's PostgreSQL and a Valkey of the test's own; see ADR 0004 for
the per-process buckets that answer while Redis is away.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from auth.tenant import Plan
from db.buckets import KEY_PREFIX
from db.seed import DataSize
from tests.live import running_server
from tests.resilience.conftest import OwnPostgres
from tests.resilience.traffic import MixedLoad, eventually

# 2 + 100 x 1 points, requested and actual alike: the STARTER tenant below has 120 shipments.
# Its bucket holds 1,000 points and gains 1,000 a minute, so about ten pass, then 429s.
DEAR = {"query": "{ shipments(first: 100) { edges { node { customer { name } } } } }"}
BIG = DataSize(customers=10, vehicles=2, drivers=2, shipments=120, events_per_shipment=1)


async def budgets_shared(http: httpx.AsyncClient) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("tenantql_budgets_shared "):
            return float(line.split()[1])
    raise AssertionError("/metrics has no tenantql_budgets_shared")


async def until_budgets_shared(http: httpx.AsyncClient, value: float) -> None:
    async def check() -> bool:
        return await budgets_shared(http) == value

    await eventually(check, what=f"tenantql_budgets_shared {value}")


async def test_stopping_redis_under_load_fails_nothing_and_still_limits(
    postgres: OwnPostgres, make_own_tenant, own_redis, tmp_path: Path
):
    first, second = await make_own_tenant("rda"), await make_own_tenant("rdb")
    starter = await make_own_tenant("rds", plan=Plan.STARTER, size=BIG)
    env = postgres.server_env(own_redis.url, TENANT_CACHE_SECONDS="0.5")
    with running_server(env, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            load = MixedLoad(http, [first, second], clients_per_tenant=2)
            await load.prepare()
            load.start()
            await asyncio.sleep(1.0)
            assert await budgets_shared(http) == 1.0

            url = own_redis.url
            await asyncio.to_thread(own_redis.stop)
            stopped = time.monotonic()
            await until_budgets_shared(http, 0.0)  # the load's next charge found Redis gone
            overspent = [await http.post("/graphql", json=DEAR, headers=starter.headers()) for _ in range(14)]
            still_local = await budgets_shared(http)
            ready_during = await http.get("/ready")
            await asyncio.sleep(1.0)

            await asyncio.to_thread(own_redis.start)
            assert own_redis.url == url
            restarted = time.monotonic()
            await until_budgets_shared(http, 1.0)
            await asyncio.sleep(1.0)
            answers = await load.stop()
            after = await http.post("/graphql", json=DEAR, headers=starter.headers())
            metrics = (await http.get("/metrics")).text
            ready_after = await http.get("/ready")

    failed = [answer.text or answer.failure for answer in answers if not answer.ok]
    assert not failed, failed[:3]  # not one request of the load failed because Redis went away
    during = [answer for answer in answers if stopped < answer.started and answer.ended < restarted]
    assert len(during) > 20
    assert {answer.kind for answer in during} == {
        "shipments",
        "shipment",
        "customers",
        "createCustomer",
        "recordTrackingEvent",
    }

    statuses = [response.status_code for response in overspent]
    assert still_local == 0.0, "the burst ran on the per-process buckets"
    assert set(statuses) == {200, 429} and statuses == sorted(statuses), statuses
    assert 8 <= statuses.count(200) <= 11, statuses  # one bucket of 1,000 points, not unlimited
    throttled = overspent[statuses.index(429)]
    assert throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert int(throttled.headers["retry-after"]) >= 1
    assert ready_during.status_code == 200
    assert ready_during.json() == {"status": "degraded", "postgres": True, "redis": False, "budgets": "per-process"}

    budgets = [line for line in metrics.splitlines() if line.startswith("tenantql_budgets_")]
    # One failover: no pooled connection of the stopped Redis was used again to fail over a second time.
    assert budgets == ["tenantql_budgets_shared 1.0", "tenantql_budgets_failovers_total 1.0"], budgets
    assert ready_after.json()["budgets"] == "shared"
    assert after.status_code == 200  # the shared bucket, in a Redis that lost its data with the restart
    async with Redis.from_url(url) as redis:
        assert await redis.exists(KEY_PREFIX + str(starter.id))
