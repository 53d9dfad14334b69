"""`POST /admin/graphql`: platform operations for a platform-admin token only, seen by running apps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from auth.jwt import issue_platform_token
from auth.tenant import Plan, Role
from db.models import User
from db.transaction import tenant_transaction
from tenantql.admin import ADMIN_NOT_CONFIGURED, PATH
from tenantql.app import create_app
from tenantql.public_tracking import PATH as TRACKING_PATH
from tests.audit import audit_rows
from tests.conftest import JWT_SECRET, tampered
from tests.tenant_cache import within_the_tenant_cache_time

SUBJECT = "ops-alice"
TENANTS = "{ tenants { slug } }"
CREATE = """
mutation Create($input: CreateTenantInput!) {
  createTenant(input: $input) {
    created
    tenant { id tenantId slug name plan status }
    userErrors { field message code }
  }
}
"""
CHANGE_FIELDS = "changed tenant { slug plan status rateLimitPerMinute customDomain } userErrors { field message code }"
SET_PLAN = f"""
mutation SetPlan($slug: String!, $plan: Plan!, $budget: Int, $reason: String) {{
  setPlan(slug: $slug, plan: $plan, rateLimitPerMinute: $budget, reason: $reason) {{ {CHANGE_FIELDS} }}
}}
"""
SUSPEND = f"""
mutation Suspend($slug: String!, $reason: String!) {{
  suspendTenant(slug: $slug, reason: $reason) {{ {CHANGE_FIELDS} }}
}}
"""
RESUME = f"""
mutation Resume($slug: String!, $reason: String) {{ resumeTenant(slug: $slug, reason: $reason) {{ {CHANGE_FIELDS} }} }}
"""
SET_DOMAIN = f"""
mutation SetDomain($slug: String!, $domain: String, $reason: String) {{
  setCustomDomain(slug: $slug, domain: $domain, reason: $reason) {{ {CHANGE_FIELDS} }}
}}
"""
RATE_LIMIT = {"query": "{ rateLimit { maximumAvailable } }"}
SHIPMENTS = {"query": "{ shipments(first: 100) { edges { node { trackingNumber } } } }"}
TRACK = "query Track($n: String!) { trackShipment(trackingNumber: $n) { trackingNumber status } }"


def platform_headers(subject: str = SUBJECT, **claims: Any) -> dict[str, str]:
    token = issue_platform_token(JWT_SECRET, subject=subject)
    if claims:
        payload = {**jwt.decode(token, JWT_SECRET, algorithms=["HS256"]), **claims}
        token = jwt.encode(payload, JWT_SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


async def admin(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, *, status: int = 200
) -> dict[str, Any]:
    response = await http.post(PATH, json={"query": query, "variables": variables or {}}, headers=platform_headers())
    assert response.status_code == status, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
async def long_cache_app(settings) -> AsyncIterator[Any]:
    """A second app whose tenant cache outlives any test: only its own admin endpoint can refresh it."""
    app = create_app(replace(settings, tenant_cache_seconds=3600))
    async with LifespanManager(app) as manager:
        yield manager.app


def client_of(asgi: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://tenantql.test")


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": code} and "data" not in response.json()


async def test_only_a_platform_admin_token_is_accepted_and_it_is_refused_on_graphql(client, make_tenant, graphql):
    tenant = await make_tenant(Plan.SCALE)
    created = await graphql('mutation { createApiKey(input: {name: "k", role: ADMIN}) { key } }', as_tenant=tenant)
    key = created["data"]["createApiKey"]["key"]
    good = platform_headers()

    async def post(headers: dict[str, str]) -> httpx.Response:
        return await client.post(PATH, json={"query": TENANTS}, headers=headers)

    for headers in (
        {},
        {"Authorization": tampered(good["Authorization"])},  # a tampered signature
        {"X-API-Key": tampered(key)},
        {"Authorization": "Basic b3BzOnNlY3JldA=="},
        platform_headers(tenant_id=str(tenant.id)),  # a platform token names no tenant
        {"Authorization": f"Bearer {tenant.token(Role.ADMIN, ttl_seconds=-60)}"},  # expired
    ):
        response = await post(headers)
        assert_refused(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"] == "Bearer"
    for headers in ({"Authorization": f"Bearer {tenant.token(Role.ADMIN)}"}, {"X-API-Key": key}):
        assert_refused(await post(headers), 403, "FORBIDDEN")

    accepted = await post(good)
    assert accepted.status_code == 200 and accepted.headers["cache-control"] == "private, no-store"
    assert tenant.slug in {row["slug"] for row in accepted.json()["data"]["tenants"]}
    assert (await client.get(PATH, headers=good)).status_code == 405

    viewer = {"query": "{ viewer { role } }"}
    for on_graphql in (
        await client.post("/graphql", json=viewer, headers=good),
        await client.get("/graphql", params=viewer, headers=good),
    ):
        assert_refused(on_graphql, 401, "UNAUTHENTICATED")
    smuggled = await client.post(  # a platform role next to a real tenant_id is an unknown role there
        "/graphql", json={"query": "{ viewer { role } }"}, headers=platform_headers(tenant_id=str(tenant.id))
    )
    assert_refused(smuggled, 401, "UNAUTHENTICATED")


async def test_create_tenant_is_idempotent_and_audited_with_who_and_why(client, owner_engine):
    slug = f"admin-{uuid.uuid4().hex[:10]}"
    given = {"slug": slug, "name": "Fast Parcel", "plan": "GROWTH", "adminEmail": "ops@fast.example"}
    first = await admin(client, CREATE, {"input": {**given, "adminName": "Ops", "reason": "signed contract 17"}})
    again = await admin(client, CREATE, {"input": {**given, "name": "Other", "plan": "SCALE", "adminEmail": "x@b.c"}})

    assert first["createTenant"]["created"] is True and again["createTenant"]["created"] is False
    assert first["createTenant"]["tenant"] == again["createTenant"]["tenant"]
    tenant = again["createTenant"]["tenant"]
    assert [tenant[field] for field in ("slug", "name", "plan", "status")] == [slug, "Fast Parcel", "GROWTH", "ACTIVE"]
    assert again["createTenant"]["userErrors"] == []
    tenant_id = uuid.UUID(tenant["tenantId"])
    async with tenant_transaction(owner_engine, tenant_id) as db:
        users = await db.all(select(User.email, User.role).where(User.tenant_id == tenant_id))
    assert [tuple(user) for user in users] == [("ops@fast.example", Role.ADMIN)]
    [row] = await audit_rows(owner_engine, tenant_id)
    assert (row.actor, row.action, row.target_id) == (f"platform:admin:{SUBJECT}", "tenant.create", tenant_id)
    assert row.changes["reason"] == "signed contract 17" and row.changes["plan"] == "GROWTH"

    refused = await admin(
        client, CREATE, {"input": {"slug": "Bad Slug", "name": "N", "plan": "STARTER", "adminEmail": "a@b.example"}}
    )
    assert refused["createTenant"]["tenant"] is None
    [error] = refused["createTenant"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "slug"], "INVALID") and "invalid slug" in error["message"]


async def test_plan_change_and_suspension_reach_running_apps_and_a_resumed_tenant_keeps_its_data(
    client, long_cache_app, make_tenant, owner_engine, settings
):
    tenant = await make_tenant(Plan.SCALE)
    headers = tenant.headers(Role.VIEWER)
    async with client_of(long_cache_app) as admin_app:
        for http in (client, admin_app):  # both apps have the tenant cached now
            response = await http.post("/graphql", json=RATE_LIMIT, headers=headers)
            assert response.json()["data"]["rateLimit"]["maximumAvailable"] == 10_000

        changed = await admin(
            admin_app, SET_PLAN, {"slug": tenant.slug, "plan": "ENTERPRISE", "budget": 2500, "reason": "contract 9"}
        )
        assert changed["setPlan"]["changed"] is True
        assert changed["setPlan"]["tenant"]["rateLimitPerMinute"] == 2500
        # The app that made the change applies it at once, though its cache would keep the old plan for an hour.
        response = await admin_app.post("/graphql", json=RATE_LIMIT, headers=headers)
        assert response.json()["data"]["rateLimit"]["maximumAvailable"] == 2_500
        # Any other running app, within TENANT_CACHE_SECONDS.
        await within_the_tenant_cache_time(
            settings,
            client,
            RATE_LIMIT,
            headers,
            lambda r: r.status_code == 200 and r.json()["data"]["rateLimit"]["maximumAvailable"] == 2_500,
        )
        same = await admin(admin_app, SET_PLAN, {"slug": tenant.slug, "plan": "ENTERPRISE", "budget": 2500})
        assert same["setPlan"]["changed"] is False

        suspended = await admin(admin_app, SUSPEND, {"slug": tenant.slug, "reason": "invoice 42 unpaid"})
        assert suspended["suspendTenant"]["tenant"]["status"] == "SUSPENDED"
        refused = await admin_app.post("/graphql", json=SHIPMENTS, headers=headers)
        assert_refused(refused, 403, "TENANT_SUSPENDED")
        refused = await within_the_tenant_cache_time(
            settings, client, SHIPMENTS, headers, lambda r: r.status_code != 200
        )
        assert_refused(refused, 403, "TENANT_SUSPENDED")

        resumed = await admin(admin_app, RESUME, {"slug": tenant.slug, "reason": "paid"})
        assert resumed["resumeTenant"]["tenant"]["status"] == "ACTIVE"
        served = await within_the_tenant_cache_time(
            settings, client, SHIPMENTS, headers, lambda r: r.status_code == 200
        )
    numbers = {edge["node"]["trackingNumber"] for edge in served.json()["data"]["shipments"]["edges"]}
    assert numbers == set(tenant.tracking_numbers) and len(numbers) == 12

    rows = await audit_rows(owner_engine, tenant.id)
    assert [(row.actor, row.action, row.changes["reason"]) for row in rows] == [
        (f"platform:admin:{SUBJECT}", "tenant.set_plan", "contract 9"),
        (f"platform:admin:{SUBJECT}", "tenant.suspend", "invoice 42 unpaid"),
        (f"platform:admin:{SUBJECT}", "tenant.resume", "paid"),
    ]
    assert rows[0].changes["plan_before"] == "SCALE" and rows[0].changes["rate_limit_per_minute"] == 2_500

    unknown = await admin(client, SUSPEND, {"slug": "no-such-tenant", "reason": "test"})
    assert unknown["suspendTenant"]["userErrors"] == [
        {"field": ["slug"], "message": "no tenant with slug 'no-such-tenant'", "code": "NOT_FOUND"}
    ]


async def test_a_custom_domain_set_by_a_platform_admin_serves_public_tracking(client, make_tenant, owner_engine):
    tenant, other = await make_tenant(), await make_tenant()
    domain = f"parcels.{tenant.slug}.example"
    number = tenant.tracking_numbers[0]

    async def track() -> httpx.Response:
        return await client.post(
            TRACKING_PATH, json={"query": TRACK, "variables": {"n": number}}, headers={"Host": domain}
        )

    assert (await track()).status_code == 404  # and cached as unknown, like any host
    done = await admin(
        client, SET_DOMAIN, {"slug": tenant.slug, "domain": f"Parcels.{tenant.slug}.Example.", "reason": "go-live"}
    )
    assert done["setCustomDomain"]["tenant"]["customDomain"] == domain
    found = await track()  # the app that made the change serves it at once (others: see test_cli_tenants)
    assert found.status_code == 200 and found.json()["data"]["trackShipment"]["trackingNumber"] == number

    taken = await admin(client, SET_DOMAIN, {"slug": other.slug, "domain": domain})
    assert taken["setCustomDomain"]["userErrors"] == [
        {
            "field": ["domain"],
            "message": f"{domain!r} is already another tenant's custom domain",
            "code": "ALREADY_EXISTS",
        }
    ]
    for bad in ("not a host", "localhost", "10.0.0.1", ""):
        invalid = await admin(client, SET_DOMAIN, {"slug": other.slug, "domain": bad})
        [error] = invalid["setCustomDomain"]["userErrors"]
        assert (error["field"], error["code"]) == (["domain"], "INVALID"), bad

    cleared = await admin(client, SET_DOMAIN, {"slug": tenant.slug, "domain": None, "reason": "moved"})
    assert cleared["setCustomDomain"]["tenant"]["customDomain"] is None
    gone = await track()
    assert gone.status_code == 404 and gone.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_HOST"

    rows = await audit_rows(owner_engine, tenant.id)
    assert [(row.actor, row.action, row.changes["custom_domain"], row.changes["reason"]) for row in rows] == [
        (f"platform:admin:{SUBJECT}", "tenant.set_custom_domain", domain, "go-live"),
        (f"platform:admin:{SUBJECT}", "tenant.set_custom_domain", None, "moved"),
    ]
    assert await audit_rows(owner_engine, other.id) == []


async def test_without_an_owner_url_the_admin_endpoint_answers_503_and_graphql_is_served(settings, acme):
    app = create_app(replace(settings, database_owner_url=None))
    async with LifespanManager(app) as manager, client_of(manager.app) as http:
        refused = await http.post(PATH, json={"query": TENANTS}, headers=platform_headers())
        assert_refused(refused, 503, ADMIN_NOT_CONFIGURED)
        assert "DATABASE_OWNER_URL" in refused.json()["errors"][0]["message"]
        assert_refused(await http.post(PATH, json={"query": TENANTS}), 401, "UNAUTHENTICATED")
        served = await http.post("/graphql", json={"query": "{ viewer { role } }"}, headers=acme.headers())
        assert served.status_code == 200 and served.json()["data"]["viewer"]["role"] == "ADMIN"


async def test_the_tenant_schema_has_no_platform_operation_and_the_admin_schema_no_tenant_data(client, acme):
    introspect = {"query": "{ __schema { mutationType { fields { name } } queryType { fields { name } } } }"}
    tenant_side = (await client.post("/graphql", json=introspect, headers=acme.headers())).json()["data"]["__schema"]
    admin_side = (await client.post(PATH, json=introspect, headers=platform_headers())).json()["data"]["__schema"]
    names = {f["name"] for f in tenant_side["mutationType"]["fields"] + tenant_side["queryType"]["fields"]}
    assert not names & {"createTenant", "setPlan", "suspendTenant", "resumeTenant", "setCustomDomain", "tenants"}
    admin_names = {f["name"] for f in admin_side["mutationType"]["fields"] + admin_side["queryType"]["fields"]}
    assert admin_names >= {"createTenant", "setPlan", "suspendTenant", "resumeTenant", "setCustomDomain", "tenants"}
    assert not admin_names & {"shipments", "customers", "viewer", "node"}


async def test_usage_of_every_tenant_is_the_actual_cost_of_its_requests(client, make_tenant, graphql):
    tenant, idle = await make_tenant(Plan.SCALE), await make_tenant()
    spent = 0
    for query in ("{ viewer { role } }", "{ shipments(first: 5) { edges { node { customer { name } } } } }"):
        spent += (await graphql(query, as_tenant=tenant))["extensions"]["cost"]["actualQueryCost"]
    today = datetime.now(UTC).date()
    days = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}  # midnight may pass

    usage = "query U($from: Date!, $to: Date!) { usage(from: $from, to: $to) { slug points days { day points } } }"
    report = {row["slug"]: row for row in (await admin(client, usage, days))["usage"]}
    assert report[tenant.slug]["points"] == spent == 8  # 1 + 2 + 5 shipments of 1 customer each
    assert sum(day["points"] for day in report[tenant.slug]["days"]) == spent
    assert report[idle.slug] == {"slug": idle.slug, "points": 0, "days": []}

    backwards = {"from": days["to"], "to": days["from"]}
    response = await client.post(PATH, json={"query": usage, "variables": backwards}, headers=platform_headers())
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
