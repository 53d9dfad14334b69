"""Role rules (contract sections 4 and 12): VIEWER reads, MEMBER dispatches, ADMIN manages the fleet."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from auth.tenant import Role
from db.models import TENANT_TABLES
from db.transaction import tenant_transaction
from resolvers.ids import to_global_id

READ = """
{
  viewer { role }
  shipments(first: 5) { edges { node { id trackingNumber customer { id } driver { id } events { status } } } }
  customers(first: 5) { edges { node { id shipments(first: 2) { edges { node { id } } } } } }
  drivers(first: 5) { edges { node { id vehicle { id } } } }
  vehicles(first: 5) { edges { node { id } } }
}
"""


async def open_shipments(graphql: Any, tenant: Any) -> list[str]:
    """Ids of the tenant's shipments that still take events, drivers and a cancellation."""
    response = await graphql("{ shipments(first: 100) { edges { node { id status } } } }", as_tenant=tenant)
    final = {"DELIVERED", "CANCELLED"}
    nodes = [edge["node"] for edge in response["data"]["shipments"]["edges"]]
    return [node["id"] for node in nodes if node["status"] not in final]


def mutations(tenant: Any, open_shipments: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """One valid call of each mutation, by name: only the role can stop it."""
    customer = to_global_id("Customer", tenant.ids["customers"][0])
    driver = to_global_id("Driver", tenant.ids["drivers"][0])
    vehicle = to_global_id("Vehicle", tenant.ids["vehicles"][0])
    plate = f"R{uuid.uuid4().hex[:8].upper()}"
    return {
        "createCustomer": (
            'mutation { createCustomer(input: {name: "Role Test"}) { customer { id name } userErrors { code } } }',
            {},
        ),
        "createVehicle": (
            "mutation($plate: String!) { createVehicle(input: {plate: $plate, kind: CAR, capacityKg: 300}) "
            "{ vehicle { id plate } userErrors { code } } }",
            {"plate": plate},
        ),
        "createDriver": (
            'mutation($vehicleId: ID) { createDriver(input: {name: "Role Driver", vehicleId: $vehicleId}) '
            "{ driver { id vehicle { id } } userErrors { code } } }",
            {"vehicleId": vehicle},
        ),
        "createShipment": (
            'mutation($customerId: ID!) { createShipment(input: {customerId: $customerId, origin: "Rome", '
            'destination: "Milan", weightKg: 3}) { shipment { id status } userErrors { code } } }',
            {"customerId": customer},
        ),
        "recordTrackingEvent": (
            "mutation($id: ID!) { recordTrackingEvent(input: {shipmentId: $id, status: OUT_FOR_DELIVERY}) "
            "{ trackingEvent { status } shipment { status } userErrors { code } } }",
            {"id": open_shipments[0]},
        ),
        "assignDriver": (
            "mutation($s: ID!, $d: ID!) { assignDriver(shipmentId: $s, driverId: $d) "
            "{ shipment { id driver { id } } userErrors { code } } }",
            {"s": open_shipments[1], "d": driver},
        ),
        "cancelShipment": (
            "mutation($id: ID!) { cancelShipment(id: $id) { shipment { id status } userErrors { code } } }",
            {"id": open_shipments[2]},
        ),
    }


@pytest.fixture
async def calls(graphql: Any, acme: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    return mutations(acme, await open_shipments(graphql, acme))


MEMBER_MAY = ("createCustomer", "createShipment", "recordTrackingEvent", "assignDriver")
ADMIN_ONLY = ("createVehicle", "createDriver", "cancelShipment")


async def fingerprint(owner_engine: Any, tenant: Any) -> dict[str, tuple[int, str]]:
    """Row count and a digest of the rows of every tenant table: what a refused mutation leaves as it was."""
    found = {}
    async with tenant_transaction(owner_engine, tenant.id) as db:
        for table in TENANT_TABLES:
            [row] = await db.all(
                text(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table.name} t"
                )
            )
            found[table.name] = tuple(row)
    return found


def assert_forbidden(response: dict[str, Any], field: str) -> None:
    assert response["data"] is None
    [error] = response["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == [field]


def assert_done(response: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in response, response
    payload = response["data"][field]
    assert payload["userErrors"] == []
    return payload


async def test_a_viewer_can_read_everything(graphql, acme):
    response = await graphql(READ, as_tenant=acme, role=Role.VIEWER)
    assert "errors" not in response
    assert response["data"]["viewer"]["role"] == "VIEWER"
    for name in ("shipments", "customers", "drivers", "vehicles"):
        assert len(response["data"][name]["edges"]) == min(5, len(acme.ids[name]))


@pytest.mark.parametrize("name", [*MEMBER_MAY, *ADMIN_ONLY])
async def test_a_viewers_mutation_is_forbidden_and_changes_nothing(calls, graphql, owner_engine, acme, name):
    before = await fingerprint(owner_engine, acme)
    query, variables = calls[name]
    assert_forbidden(await graphql(query, variables, as_tenant=acme, role=Role.VIEWER), name)
    assert await fingerprint(owner_engine, acme) == before


@pytest.mark.parametrize("name", ADMIN_ONLY)
async def test_a_members_fleet_or_cancel_mutation_is_forbidden_and_changes_nothing(
    calls, graphql, owner_engine, acme, name
):
    before = await fingerprint(owner_engine, acme)
    query, variables = calls[name]
    assert_forbidden(await graphql(query, variables, as_tenant=acme, role=Role.MEMBER), name)
    assert await fingerprint(owner_engine, acme) == before


@pytest.mark.parametrize("name", MEMBER_MAY)
async def test_a_member_may_create_customers_and_shipments_record_events_and_dispatch(
    calls, graphql, owner_engine, acme, name
):
    before = await fingerprint(owner_engine, acme)
    query, variables = calls[name]
    assert_done(await graphql(query, variables, as_tenant=acme, role=Role.MEMBER), name)
    assert await fingerprint(owner_engine, acme) != before


async def test_an_admin_may_run_every_mutation(calls, graphql, acme):
    for name, (query, variables) in calls.items():
        assert_done(await graphql(query, variables, as_tenant=acme, role=Role.ADMIN), name)


async def test_an_operation_with_a_refused_mutation_changes_nothing_not_even_its_allowed_mutations(
    graphql, owner_engine, acme
):
    """Contract 12: a refused operation changes nothing. Its response has no data to report a write with."""
    before = await fingerprint(owner_engine, acme)
    query = """
    mutation {
      allowed: createCustomer(input: {name: "Written first"}) { customer { id } userErrors { code } }
      refused: createVehicle(input: {plate: "NOPE-1", kind: VAN}) { vehicle { id } userErrors { code } }
    }"""
    response = await graphql(query, as_tenant=acme, role=Role.MEMBER)
    assert_forbidden(response, "refused")
    assert await fingerprint(owner_engine, acme) == before


async def test_a_refused_operation_in_a_batch_leaves_the_batchs_other_operations_done(calls, client, acme):
    allowed, _ = calls["createCustomer"]
    refused, variables = calls["createVehicle"]
    response = await client.post(
        "/graphql",
        json=[{"query": allowed}, {"query": refused, "variables": variables}],
        headers=acme.headers(Role.MEMBER),
    )
    done, forbidden = response.json()
    created = assert_done(done, "createCustomer")["customer"]
    assert_forbidden(forbidden, "createVehicle")
    found = (
        await client.post(
            "/graphql",
            json={"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {"id": created["id"]}},
            headers=acme.headers(Role.VIEWER),
        )
    ).json()
    assert found["data"]["node"] == {"id": created["id"]}


async def test_a_cancelled_shipment_reads_back_as_cancelled(calls, graphql, acme):
    query, variables = calls["cancelShipment"]
    cancelled = assert_done(await graphql(query, variables, as_tenant=acme), "cancelShipment")["shipment"]
    assert cancelled["status"] == "CANCELLED"

    read = await graphql(
        """query($id: ID!) {
             node(id: $id) { ... on Shipment { id status trackingNumber events(last: 1) { status } } }
             cancelled: shipments(first: 100, status: CANCELLED) { edges { node { id status } } }
           }""",
        {"id": cancelled["id"]},
        as_tenant=acme,
        role=Role.VIEWER,
    )
    node = read["data"]["node"]
    assert node["status"] == "CANCELLED"
    assert node["events"] == [{"status": "CANCELLED"}]
    listed = [edge["node"] for edge in read["data"]["cancelled"]["edges"]]
    assert {"id": cancelled["id"], "status": "CANCELLED"} in listed
    by_number = await graphql(
        "query($t: String!) { shipment(trackingNumber: $t) { id status } }",
        {"t": node["trackingNumber"]},
        as_tenant=acme,
        role=Role.VIEWER,
    )
    assert by_number["data"]["shipment"] == {"id": cancelled["id"], "status": "CANCELLED"}


async def test_a_cancelled_shipment_takes_no_more_events_or_drivers(calls, graphql, acme):
    query, variables = calls["cancelShipment"]
    assert_done(await graphql(query, variables, as_tenant=acme), "cancelShipment")
    driver = to_global_id("Driver", acme.ids["drivers"][0])
    event = await graphql(
        "mutation($id: ID!) { recordTrackingEvent(input: {shipmentId: $id, status: DELIVERED}) "
        "{ shipment { status } userErrors { code } } }",
        {"id": variables["id"]},
        as_tenant=acme,
    )
    assert event["data"]["recordTrackingEvent"] == {"shipment": None, "userErrors": [{"code": "INVALID"}]}
    assign = await graphql(
        "mutation($s: ID!, $d: ID!) { assignDriver(shipmentId: $s, driverId: $d) "
        "{ shipment { id } userErrors { code } } }",
        {"s": variables["id"], "d": driver},
        as_tenant=acme,
        role=Role.MEMBER,
    )
    assert assign["data"]["assignDriver"] == {"shipment": None, "userErrors": [{"code": "INVALID"}]}
