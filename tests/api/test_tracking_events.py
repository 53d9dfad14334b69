"""recordTrackingEvent checks that a shipment is open and moves it in one statement."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from auth.tenant import Role
from db.models import Shipment, TrackingEvent
from db.transaction import tenant_transaction
from resolvers.ids import to_global_id
from tests.conftest import under_tenant

RECORD_EVENT = """mutation ($shipmentId: ID!) {
  recordTrackingEvent(input: {shipmentId: $shipmentId, status: OUT_FOR_DELIVERY, location: "Hub 7"}) {
    trackingEvent { status location } shipment { status } userErrors { field code message }
  }
}"""
CANCEL = "mutation ($id: ID!) { cancelShipment(id: $id) { userErrors { code } } }"


async def stored(owner_engine: Any, tenant: Any, shipment_id: uuid.UUID) -> tuple[str, int]:
    """The shipment's status and how many events it has, as the database has them."""
    async with tenant_transaction(owner_engine, tenant.id) as db:
        [shipment] = await db.all(select(Shipment.status).where(Shipment.id == shipment_id))
        [count] = await db.all(select(func.count()).where(TrackingEvent.shipment_id == shipment_id))
    return shipment.status.value, count[0]


async def test_an_open_shipment_is_checked_and_moved_by_one_statement(graphql, sql_statements, owner_engine, acme):
    shipment_id = acme.ids["shipments"][0]
    status, events = await stored(owner_engine, acme, shipment_id)
    assert status not in ("OUT_FOR_DELIVERY", "DELIVERED", "CANCELLED")  # an open shipment the event moves
    sql_statements.clear()
    body = await graphql(RECORD_EVENT, {"shipmentId": to_global_id("Shipment", shipment_id)}, as_tenant=acme)
    payload = body["data"]["recordTrackingEvent"]
    assert payload["userErrors"] == [] and payload["shipment"] == {"status": "OUT_FOR_DELIVERY"}
    assert payload["trackingEvent"] == {"status": "OUT_FOR_DELIVERY", "location": "Hub 7"}
    kinds = [" ".join(statement.split()[:3]) for statement in under_tenant(sql_statements)]
    assert kinds == ["UPDATE shipments SET", "INSERT INTO tracking_events", "INSERT INTO audit_log"]
    assert await stored(owner_engine, acme, shipment_id) == ("OUT_FOR_DELIVERY", events + 1)


async def test_a_closed_shipment_takes_no_event_and_is_left_as_it_was(graphql, owner_engine, acme):
    shipment_id = acme.ids["shipments"][1]
    global_id = to_global_id("Shipment", shipment_id)
    assert (await graphql(CANCEL, {"id": global_id}, as_tenant=acme))["data"]["cancelShipment"]["userErrors"] == []
    before = await stored(owner_engine, acme, shipment_id)
    payload = (await graphql(RECORD_EVENT, {"shipmentId": global_id}, as_tenant=acme, role=Role.MEMBER))["data"][
        "recordTrackingEvent"
    ]
    assert payload["trackingEvent"] is None and payload["shipment"] is None
    assert payload["userErrors"] == [
        {"field": ["input", "shipmentId"], "code": "INVALID", "message": "a CANCELLED shipment takes no more events"}
    ]
    assert await stored(owner_engine, acme, shipment_id) == before == ("CANCELLED", before[1])


async def test_another_tenants_or_an_unknown_shipment_is_not_found_and_untouched(graphql, owner_engine, acme, globex):
    theirs = globex.ids["shipments"][0]
    before = await stored(owner_engine, globex, theirs)
    for shipment in (to_global_id("Shipment", theirs), to_global_id("Shipment", uuid.uuid4()), "not-an-id"):
        payload = (await graphql(RECORD_EVENT, {"shipmentId": shipment}, as_tenant=acme))["data"]["recordTrackingEvent"]
        assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
            (["input", "shipmentId"], "NOT_FOUND")
        ]
        assert payload["shipment"] is None
    assert await stored(owner_engine, globex, theirs) == before
