"""Each tenant pays for its queries out of its plan's budget, kept in the real embedded Redis."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from sqlalchemy import text

from auth.tenant import Plan
from tests.conftest import TenantHandle, under_tenant

# 12 shipments in the SMALL data set: each page item costs 1 (customer) + 2 (an events list of free items).
PAGE = "shipments(first: 12) { edges { node { customer { name } events(last: 3) { status } } } }"
PAGE_COST = 2 + 12 * 3
STATUS = "{ rateLimit { maximumAvailable currentlyAvailable restoreRate } }"
# 2 + 100 x (2 + 10 x 1): over the limit of 1,000 whatever the data.
OVER_COST = (
    "{ customers(first: 100) { edges { node { shipments(first: 10) { edges { node { customer { name } } } } } } } }"
)
CREATE_CUSTOMERS = (  # 3 x (10 + 1)
    "mutation { "
    + " ".join(f'{name}: createCustomer(input: {{name: "{name}"}}) {{ customer {{ id }} }}' for name in "ABC")
    + " }"
)


def pages(count: int) -> str:
    return "{ " + " ".join(f"p{i}: {PAGE}" for i in range(count)) + " }"


async def set_budget(owner_engine, services, tenant: TenantHandle, plan: Plan, per_minute: int | None = None) -> None:
    async with owner_engine.connect() as connection:
        await connection.execute(
            text("UPDATE tenants SET plan = :plan, rate_limit_per_minute = :limit WHERE id = :id"),
            {"plan": plan.value, "limit": per_minute, "id": tenant.id},
        )
    services.tenants.forget(tenant.id)


async def available(graphql, tenant: TenantHandle) -> int:
    body = await graphql(STATUS, as_tenant=tenant)
    return body["data"]["rateLimit"]["currentlyAvailable"]


async def test_every_response_carries_its_cost_and_the_rate_limit_headers(client, acme):
    response = await client.post("/graphql", json={"query": "{ " + PAGE + " }"}, headers=acme.headers())
    assert response.status_code == 200
    cost = response.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == cost["actualQueryCost"] == PAGE_COST
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 1_000 and status["restoreRate"] == pytest.approx(1_000 / 60, abs=0.001)
    assert 1_000 - PAGE_COST - 1 <= status["currentlyAvailable"] <= 1_000 - PAGE_COST + 1
    assert response.headers["ratelimit-limit"] == "1000"
    assert response.headers["ratelimit-remaining"] == str(status["currentlyAvailable"])
    assert 1 <= int(response.headers["ratelimit-reset"]) <= math.ceil(PAGE_COST / (1_000 / 60))


async def test_rate_limit_costs_nothing_and_shows_the_bucket(graphql, globex):
    body = await graphql(STATUS, as_tenant=globex)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 0
    assert body["data"]["rateLimit"] == {
        "maximumAvailable": 10_000,
        "currentlyAvailable": 10_000,
        "restoreRate": pytest.approx(10_000 / 60, abs=0.001),
    }


async def test_a_starter_tenant_out_of_budget_gets_429_while_a_scale_tenant_is_served(client, acme, globex):
    heavy = {"query": pages(10)}  # 380 points
    answers = [await client.post("/graphql", json=heavy, headers=acme.headers()) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    throttled = answers[2]
    [error] = throttled.json()["errors"]
    assert error["extensions"]["code"] == "THROTTLED"
    assert "data" not in throttled.json()
    wait = int(throttled.headers["retry-after"])
    assert error["extensions"]["retryAfter"] == wait
    left = throttled.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    assert 1_000 - 2 * 380 <= left < 380
    assert wait == pytest.approx((380 - left) / (1_000 / 60), abs=1.5)
    assert throttled.headers["ratelimit-remaining"] == str(left)

    scale = await client.post("/graphql", json=heavy, headers=globex.headers())
    assert scale.status_code == 200 and "errors" not in scale.json()


async def test_a_throttled_operation_executes_nothing(owner_engine, services, graphql, acme, sql_statements):
    await set_budget(owner_engine, services, acme, Plan.ENTERPRISE, per_minute=60)  # 60 points, 1 a second
    await graphql(pages(1), as_tenant=acme)  # 38 of 60
    sql_statements.clear()

    body = await graphql(CREATE_CUSTOMERS, as_tenant=acme, status=429)
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert under_tenant(sql_statements) == []
    async with owner_engine.connect() as connection:
        names = await connection.execute(
            text("SELECT count(*) FROM customers WHERE tenant_id = :id AND name IN ('A', 'B', 'C')"), {"id": acme.id}
        )
        assert names.scalar() == 0


async def test_the_bucket_refills_at_the_plans_rate(owner_engine, services, graphql, acme):
    await set_budget(owner_engine, services, acme, Plan.ENTERPRISE, per_minute=6_000)  # 100 points a second
    spent = await graphql(pages(10), as_tenant=acme)
    assert spent["extensions"]["cost"]["throttleStatus"]["restoreRate"] == 100
    first, started = await available(graphql, acme), time.monotonic()
    await asyncio.sleep(1.0)
    second, elapsed = await available(graphql, acme), time.monotonic() - started
    assert second - first == pytest.approx(100 * elapsed, abs=15)


async def test_the_difference_to_the_actual_cost_is_given_back(owner_engine, services, graphql, acme):
    await set_budget(owner_engine, services, acme, Plan.ENTERPRISE, per_minute=600)  # 10 points a second
    before = await available(graphql, acme)
    # 50 asked for, 12 there: 2 + 50 x 1 requested, 2 + 12 x 1 actual.
    body = await graphql(
        "{ rateLimit { currentlyAvailable } shipments(first: 50) { edges { node { customer { name } } } } }",
        as_tenant=acme,
    )
    cost = body["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (52, 14)
    charged = body["data"]["rateLimit"]["currentlyAvailable"]  # read during execution: before the refund
    after = cost["throttleStatus"]["currentlyAvailable"]
    assert before - charged == pytest.approx(52, abs=2)
    assert after - charged == pytest.approx(52 - 14, abs=2)


@pytest.mark.parametrize(
    ("accept", "status"),
    [("application/json", 200), ("application/graphql-response+json", 400)],
)
async def test_an_over_cost_query_is_refused_and_charged_nothing(client, acme, sql_statements, accept, status):
    response = await client.post("/graphql", json={"query": OVER_COST}, headers={**acme.headers(), "Accept": accept})
    assert response.status_code == status
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1_202
    assert body["extensions"]["cost"]["actualQueryCost"] == 0
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1_000
    assert under_tenant(sql_statements) == []


async def test_over_cost_is_decided_before_the_bucket(client, graphql, acme):
    await graphql(pages(10), as_tenant=acme)
    await graphql(pages(10), as_tenant=acme)
    await graphql(pages(10), as_tenant=acme, status=429)
    body = await graphql(OVER_COST, as_tenant=acme)
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


async def test_a_plan_change_takes_effect_within_seconds(owner_engine, graphql, acme):
    async with owner_engine.connect() as connection:
        await connection.execute(text("UPDATE tenants SET plan = 'SCALE' WHERE id = :id"), {"id": acme.id})
    deadline = time.monotonic() + 10
    while True:
        body = await graphql(STATUS, as_tenant=acme)
        if body["data"]["rateLimit"]["maximumAvailable"] == 10_000:
            break
        assert time.monotonic() < deadline, "the new plan's budget never applied"
        await asyncio.sleep(0.1)


async def test_a_batch_is_throttled_operation_by_operation(client, owner_engine, services, acme):
    await set_budget(owner_engine, services, acme, Plan.ENTERPRISE, per_minute=60)
    batch = [{"query": pages(1)}, {"query": pages(1)}]
    first = await client.post("/graphql", json=batch, headers=acme.headers())
    assert first.status_code == 200  # the first was served: a batch is 429 only when none was
    codes = [(body.get("errors") or [{}])[0].get("extensions", {}).get("code") for body in first.json()]
    assert codes == [None, "THROTTLED"]
    assert int(first.headers["retry-after"]) >= 1
    second = await client.post("/graphql", json=batch, headers=acme.headers())
    assert second.status_code == 429


async def test_an_operation_dearer_than_the_whole_budget_says_so(owner_engine, services, graphql, acme):
    await set_budget(owner_engine, services, acme, Plan.ENTERPRISE, per_minute=60)
    body = await graphql(pages(2), as_tenant=acme, status=429)  # 76 points of a 60-point bucket
    [error] = body["errors"]
    assert error["extensions"]["code"] == "THROTTLED"
    assert "more than the tenant's whole budget of 60" in error["message"]
