"""Tenant isolation through the API: with acme's credential, globex does not exist."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from auth.tenant import Plan, Role
from db.models import TENANT_TABLES
from db.transaction import tenant_transaction
from resolvers.ids import from_global_id, to_global_id

LISTS = """
query Lists {
  shipments(first: 100) { edges { node { id trackingNumber origin customer { id name email } driver { id name } } } }
  customers(first: 100) { edges { node { id name email phone } } }
  drivers(first: 100) { edges { node { id name phone vehicle { id plate } } } }
  vehicles(first: 100) { edges { node { id plate kind } } }
}
"""

NESTED = """
query Nested {
  customers(first: 10) {
    edges { node { id name shipments(first: 50) { edges { node { id trackingNumber customer { id } } } } } }
  }
}
"""

NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Shipment { trackingNumber }
    ... on Customer { name }
    ... on Driver { name }
    ... on Vehicle { plate }
    ... on Tenant { slug name }
  }
}
"""

CREATE_CUSTOMER = """
mutation($name: String!) { createCustomer(input: {name: $name}) { customer { id } userErrors { code } } }
"""
CREATE_VEHICLE = """
mutation($plate: String!) {
  createVehicle(input: {plate: $plate, kind: VAN}) { vehicle { id plate } userErrors { field message code } }
}
"""
CREATE_DRIVER = """
mutation($name: String!, $vehicleId: ID) {
  createDriver(input: {name: $name, vehicleId: $vehicleId}) { driver { id name } userErrors { field message code } }
}
"""
CREATE_SHIPMENT = """
mutation($customerId: ID!, $trackingNumber: String) {
  createShipment(input: {customerId: $customerId, origin: "Berlin", destination: "Oslo", weightKg: 2.5,
                         trackingNumber: $trackingNumber}) {
    shipment { id trackingNumber customer { id } }
    userErrors { field message code }
  }
}
"""
ASSIGN_DRIVER = """
mutation($shipmentId: ID!, $driverId: ID!) {
  assignDriver(shipmentId: $shipmentId, driverId: $driverId) {
    shipment { id driver { id } }
    userErrors { field message code }
  }
}
"""
RECORD_EVENT = """
mutation($shipmentId: ID!) {
  recordTrackingEvent(input: {shipmentId: $shipmentId, status: IN_TRANSIT, location: "Hub"}) {
    trackingEvent { id status }
    shipment { id status }
    userErrors { field message code }
  }
}
"""
CANCEL = """
mutation($id: ID!) { cancelShipment(id: $id) { shipment { id status } userErrors { field message code } } }
"""


def gid(type_name: str, id_: uuid.UUID) -> str:
    return to_global_id(type_name, id_)


def decoded_ids(found: Any) -> set[tuple[str, uuid.UUID]]:
    """Every global id anywhere in a response, decoded."""
    ids: set[tuple[str, uuid.UUID]] = set()
    if isinstance(found, dict):
        for key, value in found.items():
            if key == "id" and isinstance(value, str):
                decoded = from_global_id(value)
                assert decoded is not None, value
                ids.add(decoded)
            else:
                ids |= decoded_ids(value)
    elif isinstance(found, list):
        for item in found:
            ids |= decoded_ids(item)
    return ids


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """A response less its `extensions.cost`, which differs from one request to the next."""
    return {key: value for key, value in body.items() if key != "extensions"}


def of_type(ids: set[tuple[str, uuid.UUID]], type_name: str) -> set[uuid.UUID]:
    return {id_ for kind, id_ in ids if kind == type_name}


async def snapshot(owner_engine: Any, tenant: Any) -> dict[str, list[Any]]:
    """Every row of every tenant table of one tenant, read as the owner."""
    async with tenant_transaction(owner_engine, tenant.id) as db:
        return {
            table.name: [tuple(row) for row in await db.all(select(table).order_by(*table.primary_key.columns))]
            for table in TENANT_TABLES
        }


@pytest.fixture
async def globex_secrets(graphql, globex) -> list[str]:
    """Strings that exist only in globex: its ids, tracking numbers, emails, slug, and names made for it."""
    marker = uuid.uuid4().hex[:10].upper()
    customer = await graphql(CREATE_CUSTOMER, {"name": f"Globex Only Customer {marker}"}, as_tenant=globex)
    vehicle = await graphql(CREATE_VEHICLE, {"plate": f"GX{marker}"}, as_tenant=globex)
    vehicle_id = vehicle["data"]["createVehicle"]["vehicle"]["id"]
    driver = await graphql(
        CREATE_DRIVER, {"name": f"Globex Only Driver {marker}", "vehicleId": vehicle_id}, as_tenant=globex
    )
    for created, kind in ((customer, "customers"), (vehicle, "vehicles"), (driver, "drivers")):
        payload = next(iter(created["data"].values()))
        node = payload[kind[:-1]]
        assert payload["userErrors"] == [] and node is not None
        globex.ids[kind].append(from_global_id(node["id"])[1])
    secrets = [marker, globex.slug, str(globex.id), gid("Tenant", globex.id), *globex.tracking_numbers]
    for kind, type_name in (
        ("shipments", "Shipment"),
        ("customers", "Customer"),
        ("drivers", "Driver"),
        ("vehicles", "Vehicle"),
    ):
        for id_ in globex.ids[kind]:
            secrets += [str(id_), gid(type_name, id_)]
    return secrets


def assert_no_secret(response: dict[str, Any], secrets: list[str]) -> None:
    text = repr(response)
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == [], leaked


async def test_list_queries_return_only_the_callers_rows(graphql, acme, globex, globex_secrets):
    response = await graphql(LISTS, as_tenant=acme)
    assert "errors" not in response
    ids = decoded_ids(response["data"])
    assert of_type(ids, "Shipment") == set(acme.ids["shipments"])
    assert of_type(ids, "Customer") == set(acme.ids["customers"])
    assert of_type(ids, "Driver") == set(acme.ids["drivers"])
    assert of_type(ids, "Vehicle") == set(acme.ids["vehicles"])
    assert_no_secret(response, globex_secrets)


async def test_nested_customer_shipments_return_only_the_callers_rows(graphql, acme, globex, globex_secrets):
    response = await graphql(NESTED, as_tenant=acme)
    assert "errors" not in response
    ids = decoded_ids(response["data"])
    assert of_type(ids, "Shipment") == set(acme.ids["shipments"])
    assert of_type(ids, "Customer") == set(acme.ids["customers"])
    assert_no_secret(response, globex_secrets)


async def test_another_tenants_tracking_numbers_are_not_found(graphql, acme, globex, globex_secrets):
    numbers = [*globex.tracking_numbers, "TQNOSUCHNUMB", acme.tracking_numbers[0]]
    fields = " ".join(f"s{i}: shipment(trackingNumber: $t{i}) {{ id trackingNumber }}" for i in range(len(numbers)))
    declared = ", ".join(f"$t{i}: String!" for i in range(len(numbers)))
    response = await graphql(
        f"query({declared}) {{ {fields} }}", {f"t{i}": number for i, number in enumerate(numbers)}, as_tenant=acme
    )
    assert "errors" not in response
    *others, missing, own = response["data"].values()
    assert others == [None] * len(globex.tracking_numbers)
    assert missing is None
    assert own["trackingNumber"] == acme.tracking_numbers[0]
    assert_no_secret(response, globex_secrets)


# The seeded kinds of row, and the Node type each is fetched as.
NODE_KINDS = (("shipments", "Shipment"), ("customers", "Customer"), ("drivers", "Driver"), ("vehicles", "Vehicle"))


async def test_node_of_another_tenants_id_answers_like_an_id_that_does_not_exist(graphql, acme, globex, globex_secrets):
    cases = [("Tenant", [globex.id])] + [(type_name, globex.ids[kind]) for kind, type_name in NODE_KINDS]
    for type_name, ids in cases:
        nowhere = await graphql(NODE, {"id": gid(type_name, uuid.uuid4())}, as_tenant=acme)
        assert nowhere["data"] == {"node": None} and "errors" not in nowhere
        for id_ in ids:
            response = await graphql(NODE, {"id": gid(type_name, id_)}, as_tenant=acme)
            assert without_cost(response) == without_cost(nowhere), (type_name, id_)


async def test_node_of_the_callers_own_ids_finds_them(graphql, acme):
    own = [("Tenant", acme.id)] + [(type_name, acme.ids[kind][0]) for kind, type_name in NODE_KINDS]
    for type_name, id_ in own:
        response = await graphql(NODE, {"id": gid(type_name, id_)}, as_tenant=acme)
        assert response["data"]["node"]["__typename"] == type_name
        assert response["data"]["node"]["id"] == gid(type_name, id_)


def mutations_naming(acme: Any, other: Callable[[str, str], str]) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """(name, query, variables, field) of each mutation, with `other(type_name, kind)` as the id under test."""
    own_shipment = gid("Shipment", acme.ids["shipments"][0])
    own_driver = gid("Driver", acme.ids["drivers"][0])
    return [
        ("createShipment", CREATE_SHIPMENT, {"customerId": other("Customer", "customers")}, ["input", "customerId"]),
        (
            "createDriver",
            CREATE_DRIVER,
            {"name": "Nobody", "vehicleId": other("Vehicle", "vehicles")},
            ["input", "vehicleId"],
        ),
        (
            "assignDriver",
            ASSIGN_DRIVER,
            {"shipmentId": other("Shipment", "shipments"), "driverId": own_driver},
            ["shipmentId"],
        ),
        (
            "assignDriver",
            ASSIGN_DRIVER,
            {"shipmentId": own_shipment, "driverId": other("Driver", "drivers")},
            ["driverId"],
        ),
        ("recordTrackingEvent", RECORD_EVENT, {"shipmentId": other("Shipment", "shipments")}, ["input", "shipmentId"]),
        ("cancelShipment", CANCEL, {"id": other("Shipment", "shipments")}, ["id"]),
    ]


async def test_mutations_naming_another_tenants_ids_answer_not_found_exactly_like_missing_ids(
    graphql, owner_engine, acme, globex
):
    globex_before = await snapshot(owner_engine, globex)
    acme_before = await snapshot(owner_engine, acme)

    foreign = mutations_naming(acme, lambda type_name, kind: gid(type_name, globex.ids[kind][1]))
    missing = mutations_naming(acme, lambda type_name, kind: gid(type_name, uuid.uuid4()))
    for (name, query, variables, field), (_, _, missing_variables, _) in zip(foreign, missing, strict=True):
        response = await graphql(query, variables, as_tenant=acme)
        nowhere = await graphql(query, missing_variables, as_tenant=acme)
        assert "errors" not in response, name
        payload = response["data"][name]
        assert [error["code"] for error in payload["userErrors"]] == ["NOT_FOUND"], name
        assert payload["userErrors"][0]["field"] == field, name
        assert without_cost(response) == without_cost(nowhere), name

    assert await snapshot(owner_engine, globex) == globex_before
    assert await snapshot(owner_engine, acme) == acme_before


async def test_the_same_tracking_number_can_exist_in_two_tenants_but_not_twice_in_one(graphql, acme, globex):
    def create(tenant: Any, number: str) -> Any:
        customer = gid("Customer", tenant.ids["customers"][0])
        return graphql(CREATE_SHIPMENT, {"customerId": customer, "trackingNumber": number}, as_tenant=tenant)

    fresh = f"SAME{uuid.uuid4().hex[:12].upper()}"
    for tenant, number in ((acme, globex.tracking_numbers[0]), (acme, fresh), (globex, fresh)):
        payload = (await create(tenant, number))["data"]["createShipment"]
        assert payload["userErrors"] == []
        assert payload["shipment"]["trackingNumber"] == number

    for tenant in (acme, globex):
        payload = (await create(tenant, fresh))["data"]["createShipment"]
        assert payload["shipment"] is None
        assert payload["userErrors"] == [
            {
                "field": ["input", "trackingNumber"],
                "message": "a shipment with this tracking number already exists",
                "code": "ALREADY_EXISTS",
            }
        ]


async def test_the_same_plate_can_exist_in_two_tenants_but_not_twice_in_one(graphql, acme, globex):
    fresh = f"PL{uuid.uuid4().hex[:8].upper()}"
    for tenant in (globex, acme):
        payload = (await graphql(CREATE_VEHICLE, {"plate": fresh}, as_tenant=tenant))["data"]["createVehicle"]
        assert payload["userErrors"] == []
        assert payload["vehicle"]["plate"] == fresh

    for tenant in (acme, globex):
        payload = (await graphql(CREATE_VEHICLE, {"plate": fresh}, as_tenant=tenant))["data"]["createVehicle"]
        assert payload["vehicle"] is None
        assert [error["code"] for error in payload["userErrors"]] == ["ALREADY_EXISTS"]


BURST = """
query Burst {
  shipments(first: 20) { edges { node { id trackingNumber customer { id } } } }
  customers(first: 10) { edges { node { id shipments(first: 3) { edges { node { id } } } } } }
}
"""


async def test_500_concurrent_requests_of_two_tenants_each_see_only_their_own_rows(client, make_tenant):
    # Budgets big enough for the burst: 250 requests of 44 points each, all charged before any refund.
    acme, globex = await make_tenant(Plan.ENTERPRISE), await make_tenant(Plan.ENTERPRISE)
    tenants = [acme, globex] * 250
    roles = [Role.ADMIN, Role.MEMBER, Role.VIEWER]
    headers = [tenant.headers(roles[i % 3]) for i, tenant in enumerate(tenants)]

    # 100 in flight at a time: three times the pool, so connections pass between tenants all
    # the time, while no request waits out the pool timeout on a busy machine.
    in_flight = asyncio.Semaphore(100)

    async def post(i: int) -> Any:
        async with in_flight:
            return await client.post("/graphql", json={"query": BURST}, headers=headers[i])

    responses = await asyncio.gather(*(post(i) for i in range(len(tenants))))

    for tenant, response in zip(tenants, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        ids = decoded_ids(body["data"])
        assert {kind for kind, _ in ids} == {"Shipment", "Customer"}
        assert of_type(ids, "Shipment") == set(tenant.ids["shipments"])
        assert of_type(ids, "Customer") == set(tenant.ids["customers"])
        numbers = {edge["node"]["trackingNumber"] for edge in body["data"]["shipments"]["edges"]}
        assert numbers == set(tenant.tracking_numbers)
