"""Public tracking: the host names the tenant, only public fields exist, unknown hosts get nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette

from db.statement_log import logged
from db.transaction import tenant_transaction
from tenantql.app import create_app
from tenantql.public_tracking import PATH, REQUESTS_PER_MINUTE
from tests.conftest import TenantHandle

TRACK = """
query Track($number: String!) {
  trackShipment(trackingNumber: $number) { trackingNumber status events { status location occurredAt } }
}
"""
INTROSPECT_FIELDS = "{ __schema { types { name fields { name } inputFields { name } } } }"
PRIVATE_FIELDS = {"id", "name", "email", "phone", "note", "weightKg", "origin", "destination", "customer", "driver"}


@dataclass(frozen=True)
class TrackingApp:
    asgi: Any  # the app as clients call it, wrapped by LifespanManager
    app: Starlette

    @property
    def services(self) -> Any:
        return self.app.state.services

    @property
    def endpoint(self) -> Any:
        return next(route.app for route in self.app.router.routes if getattr(route, "path", None) == PATH)


@pytest.fixture(scope="module")
async def tracking_app(settings) -> AsyncIterator[TrackingApp]:
    """An app of its own with a tracking domain: the session's app has none."""
    app = create_app(replace(settings, tracking_domain="track.test"))
    async with LifespanManager(app) as manager:
        yield TrackingApp(manager.app, app)


def visitor(tracking_app: TrackingApp, address: str = "198.51.100.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=tracking_app.asgi, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://track.test")


async def track(http: httpx.AsyncClient, host: str, number: str, *, status: int = 200) -> dict[str, Any]:
    response = await http.post(PATH, json={"query": TRACK, "variables": {"number": number}}, headers={"Host": host})
    assert response.status_code == status, response.text
    return response.json()


async def stored_shipment(owner_engine, tenant: TenantHandle, number: str) -> dict[str, Any]:
    """What the tenant's own API would say, read as the owner: the expected public answer."""
    async with tenant_transaction(owner_engine, tenant.id) as db:
        shipment = await db.one_or_none(
            text("SELECT id, status FROM shipments WHERE tenant_id = :tenant_id AND tracking_number = :n"), n=number
        )
        events = await db.all(
            text(
                "SELECT status, location FROM tracking_events WHERE tenant_id = :tenant_id AND shipment_id = :s"
                " ORDER BY occurred_at DESC, id DESC"
            ),
            s=shipment.id,
        )
    return {"status": shipment.status, "events": [{"status": e.status, "location": e.location} for e in events]}


async def update_shipment(owner_engine, tenant: TenantHandle, number: str, changes: str) -> None:
    """As the tenant's owner-side tooling would (shipments are under forced RLS, for the owner too)."""
    async with tenant_transaction(owner_engine, tenant.id) as db:
        await db.write(
            text(f"UPDATE shipments SET {changes} WHERE tenant_id = :tenant_id AND tracking_number = :n"), n=number
        )


async def set_domain(owner_engine, tenant: TenantHandle, domain: str | None) -> None:
    async with owner_engine.connect() as connection:
        await connection.execute(
            text("UPDATE tenants SET custom_domain = :domain WHERE id = :id"), {"domain": domain, "id": tenant.id}
        )


def public_view(shipment: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": shipment["status"],
        "events": [{"status": e["status"], "location": e["location"]} for e in shipment["events"]],
    }


async def test_a_subdomain_of_the_tracking_domain_tracks_its_tenants_shipments_only(
    tracking_app, owner_engine, acme, globex
):
    number = acme.tracking_numbers[0]
    async with visitor(tracking_app) as http:
        mine = await track(http, f"{acme.slug}.track.test", number)
        other = await track(http, f"{acme.slug}.track.test", globex.tracking_numbers[0])
        theirs = await track(http, f"{globex.slug}.track.test", number)

    shipment = mine["data"]["trackShipment"]
    assert shipment["trackingNumber"] == number
    assert public_view(shipment) == await stored_shipment(owner_engine, acme, number)
    assert len(shipment["events"]) == 3 and all(e["occurredAt"] for e in shipment["events"])
    assert other == {"data": {"trackShipment": None}}  # another tenant's number is simply not found
    assert theirs == {"data": {"trackShipment": None}}


async def test_a_custom_domain_tracks_its_tenants_shipments_only(tracking_app, owner_engine, acme, globex):
    domain = f"parcels.{globex.slug}.example"
    await set_domain(owner_engine, globex, domain)
    number = globex.tracking_numbers[1]
    async with visitor(tracking_app) as http:
        mine = await track(http, f"Parcels.{globex.slug.upper()}.example:8443", number)  # any case, any port
        other = await track(http, domain, acme.tracking_numbers[1])

    assert public_view(mine["data"]["trackShipment"]) == await stored_shipment(owner_engine, globex, number)
    assert other == {"data": {"trackShipment": None}}


async def test_one_tracking_number_in_two_tenants_answers_each_hosts_own(tracking_app, owner_engine, acme, globex):
    number = acme.tracking_numbers[2]
    await update_shipment(
        owner_engine, globex, globex.tracking_numbers[2], f"tracking_number = '{number}', status = 'FAILED'"
    )
    await update_shipment(owner_engine, acme, number, "status = 'DELIVERED'")
    async with visitor(tracking_app) as http:
        at_acme = await track(http, f"{acme.slug}.track.test", number)
        at_globex = await track(http, f"{globex.slug}.track.test", number)
    assert at_acme["data"]["trackShipment"]["status"] == "DELIVERED"
    assert at_globex["data"]["trackShipment"]["status"] == "FAILED"


async def test_a_deleted_shipment_is_not_found(tracking_app, owner_engine, acme):
    number = acme.tracking_numbers[3]
    await update_shipment(owner_engine, acme, number, "deleted_at = now()")
    async with visitor(tracking_app) as http:
        assert await track(http, f"{acme.slug}.track.test", number) == {"data": {"trackShipment": None}}


@pytest.mark.parametrize(
    "query",
    [
        '{ trackShipment(trackingNumber: "x") { customer { name email } } }',
        '{ trackShipment(trackingNumber: "x") { id weightKg origin destination } }',
        '{ trackShipment(trackingNumber: "x") { events { note } } }',
        "{ shipments { edges { node { id } } } }",
        '{ node(id: "x") { id } }',
        "{ viewer { tenant { name } } }",
    ],
)
async def test_no_other_field_is_reachable(tracking_app, acme, query):
    async with visitor(tracking_app) as http:
        response = await http.post(PATH, json={"query": query}, headers={"Host": f"{acme.slug}.track.test"})
    body = response.json()
    assert "data" not in body, body
    assert body["errors"] and all(e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for e in body["errors"])


async def test_a_mutation_is_refused(tracking_app, acme):
    query = 'mutation { cancelShipment(id: "x") { shipment { id } } }'
    async with visitor(tracking_app) as http:
        response = await http.post(PATH, json={"query": query}, headers={"Host": f"{acme.slug}.track.test"})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "only queries are served here", "extensions": {"code": "BAD_REQUEST"}}]
    }


async def test_the_schema_holds_no_customer_data(tracking_app, acme):
    async with visitor(tracking_app) as http:
        response = await http.post(PATH, json={"query": INTROSPECT_FIELDS}, headers={"Host": f"{acme.slug}.track.test"})
    types = {t["name"]: t for t in response.json()["data"]["__schema"]["types"] if not t["name"].startswith("__")}
    fields = {f["name"] for t in types.values() for f in (t["fields"] or []) + (t["inputFields"] or [])}

    assert set(types) == {
        "Query",
        "PublicShipment",
        "PublicTrackingEvent",
        "ShipmentStatus",
        "DateTime",
        "String",
        "Boolean",
    }
    assert fields == {"trackShipment", "trackingNumber", "status", "events", "location", "occurredAt"}
    assert not fields & PRIVATE_FIELDS
    sdl = str(tracking_app.endpoint.schema)
    for word in ("Customer", "email", "name", "Driver", "note", "weight"):
        assert word not in sdl


async def test_get_serves_queries_too(tracking_app, acme):
    number = acme.tracking_numbers[0]
    async with visitor(tracking_app) as http:
        response = await http.get(
            PATH,
            params={"query": TRACK, "variables": f'{{"number": "{number}"}}'},
            headers={"Host": f"{acme.slug}.track.test"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["trackShipment"]["trackingNumber"] == number


@pytest.fixture
def sql_statements_of(tracking_app):
    with logged(tracking_app.services.engine) as statements:
        yield statements


@pytest.mark.parametrize(
    "host",
    ["tenantql.test", "nobody.track.test", "a.b.track.test", "track.test", "[::1]:8000", "bad_host", "unknown.example"],
)
async def test_an_unknown_host_gets_404_and_nothing_runs_under_a_tenant(tracking_app, acme, sql_statements_of, host):
    async with visitor(tracking_app) as http:
        response = await http.post(
            PATH, json={"query": TRACK, "variables": {"number": acme.tracking_numbers[0]}}, headers={"Host": host}
        )
    assert response.status_code == 404
    assert response.json() == {
        "errors": [{"message": "no tracking is served at this host", "extensions": {"code": "UNKNOWN_HOST"}}]
    }
    assert sql_statements_of == []  # the host lookup is its own, tenant-less read; no tenant query followed


async def test_a_suspended_tenants_host_is_unknown(tracking_app, owner_engine, make_tenant):
    tenant = await make_tenant()
    async with visitor(tracking_app) as http:
        assert (await track(http, f"{tenant.slug}.track.test", tenant.tracking_numbers[0]))["data"]["trackShipment"]
        async with owner_engine.connect() as connection:
            await connection.execute(text("UPDATE tenants SET status = 'SUSPENDED' WHERE id = :id"), {"id": tenant.id})
        tracking_app.endpoint.hosts.forget()  # else seen once the host cache expires (tenant_cache_seconds)
        body = await track(http, f"{tenant.slug}.track.test", tenant.tracking_numbers[0], status=404)
    assert body["errors"][0]["extensions"]["code"] == "UNKNOWN_HOST" and "data" not in body


async def test_an_address_is_limited_per_tenant_while_others_are_served(tracking_app, make_tenant):
    tenant, other_tenant = await make_tenant(), await make_tenant()
    host = f"{tenant.slug}.track.test"
    served, refused = 0, None
    async with visitor(tracking_app, "203.0.113.9") as http:
        for _ in range(REQUESTS_PER_MINUTE + 10):
            response = await http.post(PATH, json={"query": "{ __typename }"}, headers={"Host": host})
            if response.status_code != 200:
                refused = response
                break
            served += 1
        other_host = await http.post(
            PATH, json={"query": "{ __typename }"}, headers={"Host": f"{other_tenant.slug}.track.test"}
        )
    async with visitor(tracking_app, "203.0.113.10") as http:
        other_address = await http.post(PATH, json={"query": "{ __typename }"}, headers={"Host": host})

    # A refill of one request a second may land while the first sixty are sent.
    assert REQUESTS_PER_MINUTE <= served <= REQUESTS_PER_MINUTE + 2
    assert refused is not None and refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in refused.json()
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == str(REQUESTS_PER_MINUTE)
    assert other_address.status_code == 200, other_address.text
    assert other_host.status_code == 200, other_host.text


async def test_one_lookup_per_request(tracking_app, acme):
    first, second = acme.tracking_numbers[4:6]
    query = """query ($a: String!, $b: String!) {
      a: trackShipment(trackingNumber: $a) { trackingNumber }
      b: trackShipment(trackingNumber: $b) { trackingNumber }
    }"""
    payload = {"query": query, "variables": {"a": first, "b": second}}
    async with visitor(tracking_app) as http:
        body = (await http.post(PATH, json=payload, headers={"Host": f"{acme.slug}.track.test"})).json()
    assert body["data"] == {"a": {"trackingNumber": first}, "b": None}  # aliases cannot try many numbers at once
    assert [e["path"] for e in body["errors"]] == [["b"]]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_body_over_the_limit_is_refused(tracking_app, acme):
    async with visitor(tracking_app) as http:
        response = await http.post(
            PATH,
            content=b'{"query": "' + b" " * 20_000 + b'{ __typename }"}',
            headers={"Host": f"{acme.slug}.track.test", "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_tenants_policy_admits_only_the_row_the_transaction_names(app_engine, owner_engine, acme, globex):
    await set_domain(owner_engine, globex, f"policy.{globex.slug}.example")

    async def visible(host: str, slug: str) -> list[str]:
        async with app_engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            async with raw.transaction():
                await raw.execute(
                    "SELECT set_config('app.request_host', $1, true), set_config('app.request_slug', $2, true)",
                    host,
                    slug,
                )
                return [row["slug"] for row in await raw.fetch("SELECT slug FROM tenants")]

    with pytest.raises(IntegrityError, match="ck_tenants_custom_domain_lowercase"):
        await set_domain(owner_engine, acme, f"Policy.{acme.slug}.example")  # stored as hosts are compared

    assert await visible("", "") == []
    assert await visible("", acme.slug) == [acme.slug]
    assert await visible(f"policy.{globex.slug}.example", "") == [globex.slug]
    assert await visible("", "") == []  # the settings were transaction-local
