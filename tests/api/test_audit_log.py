"""The audit log: one row per committed mutation, in its transaction, read by the tenant's admins only."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from auth.tenant import Plan, Role, TenantContext, TenantStatus
from db.api_keys import hash_of
from db.models import AuditEntry, Customer
from db.transaction import tenant_transaction
from resolvers.audit import record
from resolvers.context import Context
from resolvers.ids import from_global_id, to_global_id
from schema import build_schema
from schema.types.audit import target_global_id

AUDIT_LOG = """query ($first: Int, $after: String) {
  auditLog(first: $first, after: $after) {
    edges { cursor node { id actor action targetId changes occurredAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""

CREATE_CUSTOMER = """mutation ($name: String!) {
  createCustomer(input: {name: $name, email: "ops@example.com"}) { customer { id } userErrors { code } }
}"""
CREATE_VEHICLE = """mutation ($plate: String!) {
  createVehicle(input: {plate: $plate, kind: VAN, capacityKg: 800}) { vehicle { id } userErrors { code } }
}"""
CREATE_DRIVER = """mutation ($vehicleId: ID) {
  createDriver(input: {name: "Audit Driver", vehicleId: $vehicleId}) { driver { id } userErrors { code } }
}"""
CREATE_SHIPMENT = """mutation ($customerId: ID!, $trackingNumber: String) {
  createShipment(input: {customerId: $customerId, origin: "Lyon", destination: "Porto", weightKg: 4.5,
                         trackingNumber: $trackingNumber}) {
    shipment { id trackingNumber } userErrors { code }
  }
}"""
ASSIGN_DRIVER = """mutation ($shipmentId: ID!, $driverId: ID!) {
  assignDriver(shipmentId: $shipmentId, driverId: $driverId) { shipment { id } userErrors { code } }
}"""
RECORD_EVENT = """mutation ($shipmentId: ID!) {
  recordTrackingEvent(input: {shipmentId: $shipmentId, status: IN_TRANSIT, location: "Hub 7"}) {
    trackingEvent { id } shipment { id } userErrors { code }
  }
}"""
CANCEL = "mutation ($id: ID!) { cancelShipment(id: $id) { shipment { id } userErrors { code } } }"
CREATE_KEY = """mutation ($name: String!) {
  createApiKey(input: {name: $name, role: MEMBER}) { key apiKey { id prefix } userErrors { code } }
}"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(id: $id) { apiKey { id } userErrors { code } } }"


async def audit_log(graphql: Any, tenant: Any, **variables: Any) -> dict[str, Any]:
    body = await graphql(AUDIT_LOG, variables, as_tenant=tenant)
    assert "errors" not in body, body
    return body["data"]["auditLog"]


async def entries(graphql: Any, tenant: Any) -> list[dict[str, Any]]:
    """The whole log as the tenant's admin reads it, newest first."""
    return [edge["node"] for edge in (await audit_log(graphql, tenant, first=100))["edges"]]


async def stored(app_engine: Any, tenant: Any) -> list[Any]:
    """Every audit row the tenant's own transaction can see: no filter but the one RLS applies."""
    async with tenant_transaction(app_engine, tenant.id) as db:
        return list(await db.all(select(AuditEntry.__table__)))


def payload_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    [payload] = body["data"].values()
    assert payload["userErrors"] == [], payload
    return payload


async def new_shipment(graphql: Any, tenant: Any) -> str:
    customer = to_global_id("Customer", tenant.ids["customers"][0])
    return payload_of(await graphql(CREATE_SHIPMENT, {"customerId": customer}, as_tenant=tenant))["shipment"]["id"]


async def new_key(graphql: Any, tenant: Any) -> dict[str, Any]:
    return payload_of(await graphql(CREATE_KEY, {"name": "scanner"}, as_tenant=tenant))


@dataclass(frozen=True)
class Case:
    """One mutation: `prepare` makes what it acts on and returns its variables."""

    query: str
    role: Role
    action: str
    target: Callable[[dict[str, Any]], str]  # the changed object's global id, from the payload
    changes: dict[str, Any]  # a subset the row's `changes` must hold
    prepare: Callable[[Any, Any], Awaitable[dict[str, Any]]]


async def _customer(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"name": "Audited Customer"}


async def _vehicle(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"plate": "au-" + uuid.uuid4().hex[:6]}


async def _driver(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"vehicleId": to_global_id("Vehicle", tenant.ids["vehicles"][0])}


async def _shipment(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"customerId": to_global_id("Customer", tenant.ids["customers"][0]), "trackingNumber": "AUDIT1"}


async def _assign(graphql: Any, tenant: Any) -> dict[str, Any]:
    driver = to_global_id("Driver", tenant.ids["drivers"][0])
    return {"shipmentId": await new_shipment(graphql, tenant), "driverId": driver}


async def _open_shipment(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"shipmentId": await new_shipment(graphql, tenant)}


async def _cancel(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"id": await new_shipment(graphql, tenant)}


async def _key_name(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"name": "audited key"}


async def _revoke(graphql: Any, tenant: Any) -> dict[str, Any]:
    return {"id": (await new_key(graphql, tenant))["apiKey"]["id"]}


CASES = {
    "createCustomer": Case(
        CREATE_CUSTOMER,
        Role.MEMBER,
        "customer.create",
        lambda p: p["customer"]["id"],
        {"name": "Audited Customer", "email": "ops@example.com"},
        _customer,
    ),
    "createVehicle": Case(
        CREATE_VEHICLE, Role.ADMIN, "vehicle.create", lambda p: p["vehicle"]["id"], {"kind": "VAN"}, _vehicle
    ),
    "createDriver": Case(
        CREATE_DRIVER, Role.ADMIN, "driver.create", lambda p: p["driver"]["id"], {"name": "Audit Driver"}, _driver
    ),
    "createShipment": Case(
        CREATE_SHIPMENT,
        Role.MEMBER,
        "shipment.create",
        lambda p: p["shipment"]["id"],
        {"tracking_number": "AUDIT1", "origin": "Lyon", "destination": "Porto", "weight_kg": 4.5},
        _shipment,
    ),
    "assignDriver": Case(
        ASSIGN_DRIVER, Role.MEMBER, "shipment.assign_driver", lambda p: p["shipment"]["id"], {}, _assign
    ),
    "recordTrackingEvent": Case(
        RECORD_EVENT,
        Role.MEMBER,
        "shipment.record_event",
        lambda p: p["shipment"]["id"],
        {"status": "IN_TRANSIT", "location": "Hub 7"},
        _open_shipment,
    ),
    "cancelShipment": Case(
        CANCEL, Role.ADMIN, "shipment.cancel", lambda p: p["shipment"]["id"], {"status": "CANCELLED"}, _cancel
    ),
    "createApiKey": Case(
        CREATE_KEY, Role.ADMIN, "api_key.create", lambda p: p["apiKey"]["id"], {"name": "audited key"}, _key_name
    ),
    "revokeApiKey": Case(REVOKE_KEY, Role.ADMIN, "api_key.revoke", lambda p: p["apiKey"]["id"], {}, _revoke),
}


@pytest.mark.parametrize("name", CASES)
async def test_each_mutation_writes_one_row_naming_actor_action_and_target(graphql, make_tenant, name):
    case = CASES[name]
    tenant = await make_tenant(Plan.SCALE)  # SCALE: API keys allowed
    variables = await case.prepare(graphql, tenant)
    before = {entry["id"] for entry in await entries(graphql, tenant)}

    response = await graphql(case.query, variables, as_tenant=tenant, role=case.role)

    payload = payload_of(response)
    [entry] = [entry for entry in await entries(graphql, tenant) if entry["id"] not in before]
    assert entry["action"] == case.action
    assert entry["actor"] == f"user:{tenant.user_id(case.role)}"
    assert entry["targetId"] == case.target(payload)
    assert entry["changes"].items() >= case.changes.items()
    assert from_global_id(entry["id"])[0] == "AuditEntry"


async def test_changes_name_the_related_rows_and_never_an_api_keys_secret(graphql, app_engine, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    driver = to_global_id("Driver", tenant.ids["drivers"][1])
    shipment = await new_shipment(graphql, tenant)
    payload_of(await graphql(ASSIGN_DRIVER, {"shipmentId": shipment, "driverId": driver}, as_tenant=tenant))
    created = await new_key(graphql, tenant)

    by_action = {entry["action"]: entry for entry in await entries(graphql, tenant)}
    assert by_action["shipment.create"]["changes"]["customer_id"] == str(tenant.ids["customers"][0])
    assert by_action["shipment.assign_driver"]["changes"] == {"driver_id": str(tenant.ids["drivers"][1])}
    assert by_action["api_key.create"]["changes"] == {
        "name": "scanner",
        "role": "MEMBER",
        "prefix": created["apiKey"]["prefix"],
    }
    raw = str(await stored(app_engine, tenant))
    assert created["key"] not in raw and hash_of(created["key"]) not in raw


async def test_a_mutation_made_with_an_api_key_names_the_key_as_actor(client, graphql, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    created = await new_key(graphql, tenant)
    response = await client.post(
        "/graphql",
        json={"query": CREATE_CUSTOMER, "variables": {"name": "By Key"}},
        headers={"X-API-Key": created["key"]},
    )
    customer = payload_of(response.json())["customer"]["id"]
    [entry] = [entry for entry in await entries(graphql, tenant) if entry["targetId"] == customer]
    assert entry["actor"] == f"api_key:{from_global_id(created['apiKey']['id'])[1]}"


async def _refusals(graphql: Any, tenant: Any) -> dict[str, tuple[str, dict[str, Any], Role, str]]:
    """Mutations refused before they change anything: (query, variables, role, expected code)."""
    shipment = await new_shipment(graphql, tenant)
    cancelled = await new_shipment(graphql, tenant)
    payload_of(await graphql(CANCEL, {"id": cancelled}, as_tenant=tenant))
    plate = "DUP" + uuid.uuid4().hex[:6]
    payload_of(await graphql(CREATE_VEHICLE, {"plate": plate}, as_tenant=tenant))
    customer = to_global_id("Customer", tenant.ids["customers"][0])
    taken = tenant.tracking_numbers[0]
    return {
        "empty name": (CREATE_CUSTOMER, {"name": "  "}, Role.MEMBER, "INVALID"),
        "duplicate plate": (CREATE_VEHICLE, {"plate": plate}, Role.ADMIN, "ALREADY_EXISTS"),
        "taken tracking number": (
            CREATE_SHIPMENT,
            {"customerId": customer, "trackingNumber": taken},
            Role.MEMBER,
            "ALREADY_EXISTS",
        ),
        "unknown customer": (
            CREATE_SHIPMENT,
            {"customerId": to_global_id("Customer", uuid.uuid4())},
            Role.MEMBER,
            "NOT_FOUND",
        ),
        "unknown driver": (
            ASSIGN_DRIVER,
            {"shipmentId": shipment, "driverId": to_global_id("Driver", uuid.uuid4())},
            Role.MEMBER,
            "NOT_FOUND",
        ),
        "event on a cancelled shipment": (RECORD_EVENT, {"shipmentId": cancelled}, Role.MEMBER, "INVALID"),
        "cancel a cancelled shipment": (CANCEL, {"id": cancelled}, Role.ADMIN, "INVALID"),
        "revoke an unknown key": (REVOKE_KEY, {"id": to_global_id("ApiKey", uuid.uuid4())}, Role.ADMIN, "NOT_FOUND"),
        "vehicle as MEMBER": (CREATE_VEHICLE, {"plate": "NOPE1"}, Role.MEMBER, "FORBIDDEN"),
        "cancel as MEMBER": (CANCEL, {"id": shipment}, Role.MEMBER, "FORBIDDEN"),
        "customer as VIEWER": (CREATE_CUSTOMER, {"name": "Nope"}, Role.VIEWER, "FORBIDDEN"),
        "api key as MEMBER": (CREATE_KEY, {"name": "nope"}, Role.MEMBER, "FORBIDDEN"),
    }


async def test_a_refused_mutation_writes_no_row(graphql, app_engine, make_tenant):
    tenant = await make_tenant(Plan.SCALE)
    refusals = await _refusals(graphql, tenant)
    before = await stored(app_engine, tenant)
    for name, (query, variables, role, code) in refusals.items():
        body = await graphql(query, variables, as_tenant=tenant, role=role)
        if code == "FORBIDDEN":
            assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code, name
        else:
            [payload] = body["data"].values()
            assert [error["code"] for error in payload["userErrors"]] == [code], name
    assert await stored(app_engine, tenant) == before


async def test_an_api_key_refused_for_the_plan_writes_no_row(graphql, app_engine, acme):
    before = await stored(app_engine, acme)
    body = await graphql(CREATE_KEY, {"name": "starter key"}, as_tenant=acme)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await stored(app_engine, acme) == before


async def test_a_row_is_rolled_back_with_its_operation(client, graphql, app_engine, acme):
    """The operation's second mutation is FORBIDDEN, so the endpoint discards the whole operation."""
    shipment = await new_shipment(graphql, acme)
    before = await stored(app_engine, acme)
    marker = f"Rolled Back {uuid.uuid4().hex[:8]}"
    failing = (
        "mutation ($name: String!, $id: ID!) {"
        " createCustomer(input: {name: $name}) { customer { id } }"
        " cancelShipment(id: $id) { shipment { id } } }"
    )
    kept = 'mutation { createCustomer(input: {name: "Kept"}) { customer { id } } }'
    response = await client.post(
        "/graphql",
        json=[{"query": kept}, {"query": failing, "variables": {"name": marker, "id": shipment}}],
        headers=acme.headers(Role.MEMBER),
    )
    kept_body, failed_body = response.json()
    assert failed_body["data"] is None and failed_body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    kept_id = from_global_id(kept_body["data"]["createCustomer"]["customer"]["id"])[1]

    added = [row for row in await stored(app_engine, acme) if row not in before]
    assert [(row.action, row.target_id) for row in added] == [("customer.create", kept_id)]
    assert marker not in str(added)
    async with tenant_transaction(app_engine, acme.id) as db:
        assert await db.all(select(Customer.id).where(Customer.name == marker)) == []


def _request_tenant(handle: Any) -> TenantContext:
    return TenantContext(
        tenant_id=handle.id,
        slug=handle.slug,
        name=handle.slug,
        plan=handle.plan,
        status=TenantStatus.ACTIVE,
        user_id=handle.user_id(Role.ADMIN),
        role=Role.ADMIN,
        request_id="test",
    )


async def test_a_unit_that_fails_after_recording_leaves_no_row(app_engine, acme):
    tenant = _request_tenant(acme)
    before = await stored(app_engine, acme)
    async with tenant_transaction(app_engine, acme.id) as db:
        ctx = Context.for_request(tenant, db)
        async with db.atomic():
            await record(ctx, "customer.create", uuid.uuid4(), {"name": "kept"})
        with pytest.raises(RuntimeError):
            async with db.atomic():
                await record(ctx, "customer.create", uuid.uuid4(), {"name": "undone"})
                raise RuntimeError("the change after the audit row failed")
    added = [row for row in await stored(app_engine, acme) if row not in before]
    assert [row.changes for row in added] == [{"name": "kept"}]


async def test_a_tenants_admin_never_sees_another_tenants_rows(graphql, app_engine, acme, globex):
    payload_of(await graphql(CREATE_CUSTOMER, {"name": "Acme's own"}, as_tenant=acme))
    globex_targets = set()
    for role, (query, variables) in (
        (Role.ADMIN, (CREATE_CUSTOMER, {"name": "Globex only"})),
        (Role.MEMBER, (CREATE_CUSTOMER, {"name": "Globex member"})),
        (Role.ADMIN, (CREATE_VEHICLE, {"plate": "GX" + uuid.uuid4().hex[:6]})),
        (Role.ADMIN, (CREATE_KEY, {"name": "globex key"})),
    ):
        payload = payload_of(await graphql(query, variables, as_tenant=globex, role=role))
        globex_targets.add(next(node["id"] for node in payload.values() if isinstance(node, dict)))
    globex_log = await audit_log(graphql, globex, first=100)
    globex_actors = {f"user:{globex.user_id(role)}" for role in Role}
    assert {edge["node"]["targetId"] for edge in globex_log["edges"]} >= globex_targets

    seen = await entries(graphql, acme)
    assert "customer.create" in {entry["action"] for entry in seen}
    assert not {entry["targetId"] for entry in seen} & globex_targets
    assert not {entry["actor"] for entry in seen} & globex_actors
    # Globex's cursor names a position in time, not a row acme could reach through it.
    through_cursor = await audit_log(graphql, acme, first=100, after=globex_log["edges"][-1]["cursor"])
    assert not {edge["node"]["targetId"] for edge in through_cursor["edges"]} & globex_targets

    rows = await stored(app_engine, acme)
    assert rows and {row.tenant_id for row in rows} == {acme.id}
    assert {row.id for row in rows}.isdisjoint({row.id for row in await stored(app_engine, globex)})


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
async def test_only_admins_read_the_log(graphql, acme, role):
    body = await graphql(AUDIT_LOG, {"first": 5}, as_tenant=acme, role=role)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN" and error["path"] == ["auditLog"]


async def test_the_log_pages_newest_first(graphql, acme):
    made = []
    for name in ("first", "second", "third"):
        payload = payload_of(await graphql(CREATE_CUSTOMER, {"name": name}, as_tenant=acme))
        made.append(payload["customer"]["id"])

    page = await audit_log(graphql, acme, first=2)
    assert [edge["node"]["targetId"] for edge in page["edges"]] == made[:0:-1]
    assert page["pageInfo"] == {"hasNextPage": True, "endCursor": page["edges"][-1]["cursor"]}
    rest = await audit_log(graphql, acme, first=100, after=page["pageInfo"]["endCursor"])
    older = [edge["node"]["targetId"] for edge in rest["edges"]]
    assert older[0] == made[0] and not set(made[1:]) & set(older)  # older: anything logged before these
    assert rest["pageInfo"]["hasNextPage"] is False
    times = [edge["node"]["occurredAt"] for edge in page["edges"] + rest["edges"]]
    assert times == sorted(times, reverse=True)


async def test_the_log_is_costed_like_the_other_connections(graphql, acme):
    """Sized by `first` through the same @listSize; its entries hold scalars only, so a page costs 2."""
    sdl = str(build_schema())
    for field in ("auditLog", "customers"):
        [line] = [line for line in sdl.splitlines() if line.strip().startswith(f"{field}(")]
        assert '@listSize(assumedSize: 20, slicingArguments: ["first"]' in line
    costs = []
    for field in ("auditLog", "customers"):
        for first in (50, None):
            query = f"query ($first: Int) {{ {field}(first: $first) {{ edges {{ node {{ id }} }} }} }}"
            body = await graphql(query, {"first": first}, as_tenant=acme)
            costs.append(body["extensions"]["cost"]["requestedQueryCost"])
    assert costs[:2] == costs[2:] == [2, 2]


async def test_a_foreign_cursor_or_page_size_is_bad_user_input(graphql, acme):
    for variables in ({"after": "not-a-cursor"}, {"first": 101}):
        body = await graphql(AUDIT_LOG, variables, as_tenant=acme)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_target_is_a_global_id_when_the_action_names_its_type():
    target = uuid.uuid4()
    assert from_global_id(target_global_id("shipment.cancel", target)) == ("Shipment", target)
    assert from_global_id(target_global_id("tenant.suspend", target)) == ("Tenant", target)
    assert target_global_id("report.export", target) == str(target)
    assert target_global_id("customer.create", None) is None
