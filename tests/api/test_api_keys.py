"""API keys end to end: created by an admin, used like a token of their role, revoked for good."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from auth.tenant import Plan, Role
from tests.conftest import tampered, under_tenant

CREATE = """mutation ($name: String!, $role: Role!) {
  createApiKey(input: {name: $name, role: $role}) {
    key apiKey { id name prefix role lastUsedAt revokedAt } userErrors { field code }
  }
}"""
REVOKE = "mutation ($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } userErrors { code } } }"
WHO = "{ viewer { userId role tenant { slug } } }"


async def create_key(graphql, tenant, role: str = "VIEWER", name: str = "warehouse scanner") -> dict:
    body = await graphql(CREATE, {"name": name, "role": role}, as_tenant=tenant)
    assert "errors" not in body, body
    return body["data"]["createApiKey"]


def code(response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


async def test_a_key_acts_as_its_tenant_with_its_role_by_either_header(client, graphql, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    created = await create_key(graphql, tenant, role="MEMBER")
    key = created["key"]
    assert key.startswith(created["apiKey"]["prefix"] + "_") and created["apiKey"]["role"] == "MEMBER"
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        response = await client.post("/graphql", json={"query": WHO}, headers=headers)
        assert response.json()["data"]["viewer"] == {"userId": None, "role": "MEMBER", "tenant": {"slug": tenant.slug}}
        assert response.json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 10_000


async def test_the_key_is_shown_once_and_stored_only_as_a_hash(graphql, owner_engine, make_tenant):
    tenant = await make_tenant(Plan.ENTERPRISE)
    created = await create_key(graphql, tenant)
    listed = await graphql("{ apiKeys { prefix name } }", as_tenant=tenant)
    assert listed["data"]["apiKeys"] == [{"prefix": created["apiKey"]["prefix"], "name": "warehouse scanner"}]
    assert created["key"] not in str(listed)
    async with owner_engine.connect() as connection:
        await connection.execute(text("SELECT set_config('app.tenant_id', :id, false)"), {"id": str(tenant.id)})
        stored = (await connection.execute(text("SELECT key_hash, prefix FROM api_keys"))).all()
        await connection.execute(text("RESET app.tenant_id"))
    [(key_hash, prefix)] = stored
    assert created["key"] not in (key_hash, prefix) and len(key_hash) == 64


async def test_a_wrong_key_is_401_and_runs_no_tenant_sql(client, graphql, make_tenant, sql_statements):
    tenant = await make_tenant(Plan.SCALE)
    key = (await create_key(graphql, tenant))["key"]
    sql_statements.clear()
    for wrong in (tampered(key), "tql_00000000_nothing", "tql_"):
        response = await client.post("/graphql", json={"query": WHO}, headers={"X-API-Key": wrong})
        assert response.status_code == 401 and code(response) == "UNAUTHENTICATED"
    assert under_tenant(sql_statements) == []


async def test_a_revoked_key_is_refused_from_the_next_request(client, graphql, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    created = await create_key(graphql, tenant)
    headers = {"X-API-Key": created["key"]}
    assert (await client.post("/graphql", json={"query": WHO}, headers=headers)).status_code == 200
    revoked = await graphql(REVOKE, {"id": created["apiKey"]["id"]}, as_tenant=tenant)
    assert revoked["data"]["revokeApiKey"]["apiKey"]["revokedAt"]
    response = await client.post("/graphql", json={"query": WHO}, headers=headers)
    assert response.status_code == 401 and code(response) == "UNAUTHENTICATED"


async def test_use_is_recorded(graphql, client, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    created = await create_key(graphql, tenant)
    await client.post("/graphql", json={"query": WHO}, headers={"X-API-Key": created["key"]})
    listed = await graphql("{ apiKeys { lastUsedAt } }", as_tenant=tenant)
    assert listed["data"]["apiKeys"][0]["lastUsedAt"] is not None


@pytest.mark.parametrize("plan", [Plan.STARTER, Plan.GROWTH])
async def test_starter_and_growth_tenants_cannot_create_keys(graphql, make_tenant, plan):
    tenant = await make_tenant(plan)
    body = await graphql(CREATE, {"name": "k", "role": "VIEWER"}, as_tenant=tenant)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "SCALE or ENTERPRISE" in body["errors"][0]["message"]


async def test_a_key_stops_working_when_its_tenant_leaves_the_plans_that_allow_keys(
    client, graphql, make_tenant, owner_engine, services
):
    tenant = await make_tenant(Plan.SCALE)
    key = (await create_key(graphql, tenant))["key"]
    async with owner_engine.connect() as connection:
        await connection.execute(text("UPDATE tenants SET plan = 'GROWTH' WHERE id = :id"), {"id": tenant.id})
    services.tenants.forget(tenant.id)
    response = await client.post("/graphql", json={"query": WHO}, headers={"X-API-Key": key})
    assert response.status_code == 403 and code(response) == "FORBIDDEN"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
async def test_only_admins_manage_keys(graphql, make_tenant, role):
    tenant = await make_tenant(Plan.SCALE)
    body = await graphql(CREATE, {"name": "k", "role": "VIEWER"}, as_tenant=tenant, role=role)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await graphql("{ apiKeys { id } }", as_tenant=tenant, role=role))["errors"][0]["extensions"]["code"] == (
        "FORBIDDEN"
    )


async def test_a_key_cannot_reach_another_tenant(client, graphql, make_tenant):
    tenant, other = await make_tenant(Plan.SCALE), await make_tenant(Plan.SCALE)
    key = (await create_key(graphql, tenant, role="ADMIN"))["key"]
    response = await client.post("/graphql", json={"query": WHO}, headers={"X-API-Key": key, "X-Tenant-ID": other.slug})
    assert response.status_code == 403 and code(response) == "FORBIDDEN"
    other_key = (await create_key(graphql, other))["key"]
    listed = await graphql("{ apiKeys { prefix } }", as_tenant=tenant)
    assert [k["prefix"] for k in listed["data"]["apiKeys"]] == [key[:12]]
    assert other_key[:12] not in str(listed)
    revoke_other = await graphql(
        "{ apiKeys { id } }", as_tenant=other
    )  # another tenant's key id behaves like one that does not exist
    other_id = revoke_other["data"]["apiKeys"][0]["id"]
    refused = await graphql(REVOKE, {"id": other_id}, as_tenant=tenant)
    assert refused["data"]["revokeApiKey"]["userErrors"] == [{"code": "NOT_FOUND"}]
    assert (await client.post("/graphql", json={"query": WHO}, headers={"X-API-Key": other_key})).status_code == 200
