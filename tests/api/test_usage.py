"""Usage metering end to end: what tenants spend is what their responses said they spent.

The apps here have a Redis of their own and flush only when told to (or when shut down),
so no flush of the session app moves their counts while a test looks at them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth.tenant import Plan, Role
from db.models import usage_table
from db.statement_log import logged
from db.transaction import tenant_transaction
from db.usage import LIVE_KEY, CountKey, all_tenants_usage, today_number
from resolvers.ids import from_global_id
from tenantql.app import create_app
from tenantql.embedded import EmbeddedRedis
from tests.conftest import TenantHandle

USAGE = """query ($from: Date!, $to: Date!) {
  usage(from: $from, to: $to) { day points apiKeys { apiKeyId name prefix points } }
}"""
CREATE_KEY = """mutation ($name: String!) {
  createApiKey(input: {name: $name, role: VIEWER}) { key apiKey { id prefix } }
}"""
FULL_PAGE = "{ shipments(first: 5) { edges { node { trackingNumber customer { name } } } } }"  # 7, of 12 shipments
SHORT_PAGE = "{ shipments(first: 50) { edges { node { customer { name } } } } }"  # requests 52, costs 14
CREATE_CUSTOMER = 'mutation { createCustomer(input: {name: "Ada"}) { customer { id } } }'
OVER_COST = "{ customers(first: 100) { edges { node { shipments(first: 10) { edges { node { id } } } } } } }"


def utc_today() -> date:
    return date(1970, 1, 1) + timedelta(days=today_number())


@pytest.fixture(scope="module")
async def redis_home(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("usage-api-redis"), durable=False)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
def serving(settings) -> Callable[..., Any]:
    """`async with serving(redis_url) as (http, services)`: an app of the test's own, shut down at the end."""

    @asynccontextmanager
    async def serve(redis_url: str, flush_seconds: float = 3600) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        app = create_app(replace(settings, redis_url=redis_url, usage_flush_seconds=flush_seconds))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
                yield http, app.state.services

    return serve


class Spending:
    """Sends operations and adds up the `actualQueryCost` of each response, per tenant and key."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.spent: Counter[tuple[Any, Any]] = Counter()

    async def send(
        self,
        tenant: TenantHandle,
        query: str,
        variables: dict | None = None,
        *,
        key: dict | None = None,
        role: Role = Role.ADMIN,
    ) -> dict:
        headers = {"X-API-Key": key["key"]} if key else tenant.headers(role)
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        self.spent[tenant.id, key["apiKey"]["id"] if key else None] += body["extensions"]["cost"]["actualQueryCost"]
        return body

    def total(self, tenant: TenantHandle) -> int:
        return sum(points for (tenant_id, _), points in self.spent.items() if tenant_id == tenant.id)


async def old_usage(owner_engine, tenant: TenantHandle, days: int) -> date:
    """Rows for `days` days of 2020, as flushes long ago would have left them."""
    first = date(2020, 1, 1)
    async with tenant_transaction(owner_engine, tenant.id) as db:
        for offset in range(days):
            await db.write(usage_table.insert().values(tenant_id=tenant.id, day=first + timedelta(offset), points=9))
    return first


async def test_usage_totals_equal_the_sum_of_actual_query_costs(serving, redis_home, owner_engine, make_tenant):
    scale, starter = await make_tenant(Plan.SCALE), await make_tenant(Plan.STARTER)
    first_old_day = await old_usage(owner_engine, starter, days=40)
    async with serving(redis_home.url) as (http, services):
        spending = Spending(http)
        key = (await spending.send(scale, CREATE_KEY, {"name": "scanner"}))["data"]["createApiKey"]
        for query in (FULL_PAGE, SHORT_PAGE, CREATE_CUSTOMER, OVER_COST):
            await spending.send(scale, query)
        for query in (FULL_PAGE, SHORT_PAGE, SHORT_PAGE):
            cost = (await spending.send(scale, query, key=key))["extensions"]["cost"]
        assert cost["requestedQueryCost"] > cost["actualQueryCost"]  # a short page: the difference was refunded
        for query in (FULL_PAGE, SHORT_PAGE, OVER_COST):
            await spending.send(starter, query, role=Role.MEMBER)
        # 40 days returned where 31 were priced: the operation costs more than it was charged.
        span = {"from": str(first_old_day), "to": str(first_old_day + timedelta(days=59))}
        dear = await spending.send(starter, USAGE, span)
        assert len(dear["data"]["usage"]) == 40
        assert dear["extensions"]["cost"]["actualQueryCost"] > dear["extensions"]["cost"]["requestedQueryCost"]
        assert spending.spent[scale.id, None] and spending.spent[scale.id, key["apiKey"]["id"]]

        # Read before any flush: the report holds what waits in Redis and in the process, and
        # the charge of the report itself, taken before it ran.
        today = utc_today()
        window = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}
        days = {}
        for tenant in (scale, starter):
            expected = spending.total(tenant)
            report = await spending.send(tenant, USAGE, window)
            requested = report["extensions"]["cost"]["requestedQueryCost"]
            [days[tenant.id]] = report["data"]["usage"]
            assert (days[tenant.id]["day"], days[tenant.id]["points"]) == (str(today), expected + requested)
        assert days[starter.id]["apiKeys"] == []
        [used] = days[scale.id]["apiKeys"]
        assert used["points"] == spending.spent[scale.id, key["apiKey"]["id"]]
        assert (used["name"], used["prefix"]) == ("scanner", key["apiKey"]["prefix"])
        assert from_global_id(used["apiKeyId"]) == from_global_id(key["apiKey"]["id"])

        await services.usage.flush()
        flushed = {
            report.tenant_id: report
            for report in await all_tenants_usage(owner_engine, today - timedelta(days=1), today + timedelta(days=1))
        }
    for tenant in (scale, starter):
        assert flushed[tenant.id].points == spending.total(tenant)
    [day] = flushed[scale.id].days
    [used] = day.api_keys
    assert used.points == spending.spent[scale.id, key["apiKey"]["id"]] and used.name == "scanner"


async def test_metering_adds_no_redis_round_trip_and_no_sql(serving, redis_home, make_tenant):
    tenant = await make_tenant()
    async with serving(redis_home.url) as (http, services):
        calls: list[str] = []
        original = services.redis.execute_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(args[0])
            return await original(*args, **kwargs)

        field = CountKey(tenant.id, today_number(), None).field
        services.redis.execute_command = counting
        try:
            with logged(services.engine) as statements:
                for query, round_trips in ((FULL_PAGE, ["EVALSHA"]), (SHORT_PAGE, ["EVALSHA", "EVALSHA"])):
                    calls.clear()
                    before = int(await original("HGET", LIVE_KEY, field) or 0)
                    response = await http.post("/graphql", json={"query": query}, headers=tenant.headers())
                    assert calls == round_trips  # the charge, and the refund of a short page: as before metering
                    after = int(await original("HGET", LIVE_KEY, field) or 0)
                    assert after - before == response.json()["extensions"]["cost"]["actualQueryCost"]
        finally:
            del services.redis.execute_command
    assert statements and not [statement for statement in statements if "usage" in statement]


async def test_only_admins_read_usage_and_only_for_a_year_at_most(graphql, acme):
    today = utc_today()
    week = {"from": str(today - timedelta(days=6)), "to": str(today)}
    for role in (Role.MEMBER, Role.VIEWER):
        body = await graphql(USAGE, week, as_tenant=acme, role=role)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN" and body["data"] is None
    for span in (
        {"from": str(today - timedelta(days=366)), "to": str(today)},  # 367 days
        {"from": str(today), "to": str(today - timedelta(days=1))},
    ):
        body = await graphql(USAGE, span, as_tenant=acme)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    year = {"from": str(today - timedelta(days=365)), "to": str(today)}
    assert "errors" not in await graphql(USAGE, year, as_tenant=acme)


async def test_a_clean_shutdown_flushes_what_redis_and_the_local_fallback_hold(
    serving, settings, owner_engine, make_tenant, tmp_path: Path
):
    tenant = await make_tenant()
    redis = EmbeddedRedis(tmp_path, durable=False)
    await asyncio.to_thread(redis.start)
    try:
        async with serving(redis.url) as (http, services):
            spending = Spending(http)
            await asyncio.to_thread(redis.stop)
            for query in (FULL_PAGE, SHORT_PAGE):  # counted in process, the refund too
                await spending.send(tenant, query)
            assert not services.buckets.shared and len(services.buckets.usage) == 1
            await asyncio.to_thread(redis.start)
            await eventually(lambda: services.buckets.shared)
            for query in (SHORT_PAGE, CREATE_CUSTOMER):  # counted in Redis
                await spending.send(tenant, query)
            assert await stored_points(owner_engine, tenant) == 0  # nothing flushed before the shutdown
        assert await stored_points(owner_engine, tenant) == spending.total(tenant)
    finally:
        await asyncio.to_thread(redis.stop)


async def test_usage_is_flushed_every_usage_flush_seconds(serving, redis_home, owner_engine, make_tenant):
    tenant = await make_tenant()
    async with serving(redis_home.url, flush_seconds=0.2) as (http, _):
        spending = Spending(http)
        await spending.send(tenant, SHORT_PAGE)

        async def flushed() -> bool:
            return await stored_points(owner_engine, tenant) == spending.total(tenant)

        deadline = time.monotonic() + 10
        while not await flushed():
            assert time.monotonic() < deadline, "no flush within 10 s"
            await asyncio.sleep(0.1)


async def stored_points(owner_engine, tenant: TenantHandle) -> int:
    async with tenant_transaction(owner_engine, tenant.id) as db:
        rows = await db.all(usage_table.select().where(usage_table.c.tenant_id == tenant.id))
    return sum(row.points for row in rows)


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.05)
