"""Prefetched relations answer exactly what the on-demand loaders would, with no extra SQL."""

from __future__ import annotations

import schema.types.logistics as logistics
from auth.tenant import Plan
from db.seed import DataSize
from resolvers.pagination import Cursor

FIELDS = """
  id trackingNumber status
  customer { id name }
  driver { id name vehicle { id plate } }
  recent: events(last: 2) { id status occurredAt }
  events(last: 5) { status occurredAt }
"""
THROUGH_CONNECTION = f"{{ shipments(first: 30) {{ edges {{ node {{ {FIELDS} }} }} }} }}"
THROUGH_NODE = f"query One($id: ID!) {{ node(id: $id) {{ ... on Shipment {{ {FIELDS} }} }} }}"
WITH_FRAGMENTS = """
query Fragments($last: Int!) {
  shipments(first: 30) { edges { node { ...Parts } } }
}
fragment Parts on Shipment {
  id
  ... on Shipment { customer { name } }
  driver { ... on Driver { vehicle { plate } } }
  events(last: $last) { status }
}
"""


async def test_a_page_reads_the_same_as_each_shipment_fetched_alone(graphql, make_tenant):
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=6, vehicles=3, drivers=5, shipments=30, events_per_shipment=4)
    )
    page = await graphql(THROUGH_CONNECTION, as_tenant=tenant)
    nodes = [edge["node"] for edge in page["data"]["shipments"]["edges"]]
    assert len(nodes) == 30
    assert any(node["driver"] is None for node in nodes) and any(node["driver"] for node in nodes)
    assert any(node["driver"] and node["driver"]["vehicle"] is None for node in nodes)
    for node in nodes:
        alone = await graphql(THROUGH_NODE, {"id": node["id"]}, as_tenant=tenant)
        assert alone["data"]["node"] == node
        recent = [{"status": e["status"], "occurredAt": e["occurredAt"]} for e in node["recent"]]
        assert len(recent) == 2 and recent == node["events"][-2:]


async def test_fragments_and_variables_are_followed(graphql, sql_statements, make_tenant):
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=6, vehicles=3, drivers=5, shipments=30, events_per_shipment=4)
    )
    sql_statements.clear()
    result = await graphql(WITH_FRAGMENTS, {"last": 3}, as_tenant=tenant)
    nodes = [edge["node"] for edge in result["data"]["shipments"]["edges"]]
    assert all(len(node["events"]) == 3 and node["customer"]["name"] for node in nodes)
    statements = [s for s in sql_statements if "FROM tenants" not in s]
    assert len(statements) == 5  # page, customers, drivers, vehicles, events


async def test_nothing_is_prefetched_that_was_not_asked_for(graphql, sql_statements, acme):
    sql_statements.clear()
    await graphql("{ shipments(first: 10) { edges { node { trackingNumber } } } }", as_tenant=acme)
    assert len([s for s in sql_statements if "FROM tenants" not in s]) == 1


async def test_a_bad_size_is_still_refused_by_the_field(graphql, acme):
    result = await graphql(
        "{ shipments(first: 2) { edges { node { events(last: 101) { status } } } } }", as_tenant=acme
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_page_is_answered_from_what_was_loaded_ahead(graphql, make_tenant, services):
    """Literal arguments (`events(last: 5)`, which Strawberry hands over as the text "5") and
    variables alike find their prefetched pages, so no field below the page is resolved one by
    one: graphql-core's per-field path runs for the root field only."""
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=6, vehicles=3, drivers=5, shipments=30, events_per_shipment=4)
    )
    ran: list[str] = []
    planned = services.schema.execution_context_class

    class Counting(planned):  # type: ignore[misc, valid-type]
        def execute_field(self, parent_type, source, field_details_list, path, position_context=None):  # type: ignore[no-untyped-def]
            ran.append(f"{parent_type.name}.{field_details_list[0].node.name.value}")
            return super().execute_field(parent_type, source, field_details_list, path, position_context)

    services.schema.execution_context_class = Counting
    try:
        literal = await graphql(THROUGH_CONNECTION, as_tenant=tenant)
        variables = await graphql(WITH_FRAGMENTS, {"last": 3}, as_tenant=tenant)
    finally:
        services.schema.execution_context_class = planned
    assert "errors" not in literal and "errors" not in variables
    assert ran == ["Query.shipments", "Query.shipments"]


async def test_global_ids_and_cursors_are_encoded_only_when_asked_for(graphql, make_tenant, monkeypatch):
    """A page read by its other fields encodes no id and no cursor; asked for, each is encoded once."""
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=6, vehicles=3, drivers=5, shipments=20, events_per_shipment=2)
    )
    encoded: list[str] = []
    to_global_id, encode = logistics.to_global_id, Cursor.encode

    def counted_id(type_name: str, id_: object) -> str:
        encoded.append(type_name)
        return to_global_id(type_name, id_)

    def counted_cursor(cursor: Cursor) -> str:
        encoded.append("cursor")
        return encode(cursor)

    monkeypatch.setattr(logistics, "to_global_id", counted_id)
    monkeypatch.setattr(Cursor, "encode", counted_cursor)
    page = "{{ shipments(first: 20) {{ edges {{ {edge} node {{ {fields} customer {{ {fields} name }} }} }} }} }}"

    await graphql(page.format(edge="", fields=""), as_tenant=tenant)
    assert encoded == []

    result = await graphql(page.format(edge="cursor", fields="id"), as_tenant=tenant)
    edges = result["data"]["shipments"]["edges"]
    assert len(edges) == 20 and all(edge["cursor"] and edge["node"]["customer"]["id"] for edge in edges)
    assert sorted(encoded) == sorted(["cursor"] * 20 + ["Shipment"] * 20 + ["Customer"] * 20)
