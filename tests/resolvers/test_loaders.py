"""DataLoaders: a constant number of statements per nested page, and never a row of another tenant."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from sqlalchemy import text

from auth.tenant import Plan
from db.seed import DataSize
from db.statement_log import logged
from db.transaction import TenantDB
from resolvers.loaders import CustomerById, EventsByShipment, Loaders, ShipmentByTrackingNumber

NESTED_SHIPMENTS = """
query Nested($first: Int!) {
  shipments(first: $first) {
    edges { node {
      trackingNumber status
      customer { name }
      driver { name vehicle { plate } }
      events(last: 5) { status occurredAt }
    } }
  }
}
"""


def operation_statements(statements: list[str]) -> list[str]:
    """The statements of the operation itself: the tenant lookup is cached per process and
    runs at most once per request, in its own short transaction."""
    return [s for s in statements if "FROM tenants" not in s]


async def test_nested_shipments_run_the_same_sql_for_5_and_50(graphql, sql_statements, make_tenant):
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=20, vehicles=10, drivers=12, shipments=60, events_per_shipment=6)
    )
    counts = []
    for first in (5, 50):
        sql_statements.clear()
        result = await graphql(NESTED_SHIPMENTS, {"first": first}, as_tenant=tenant)
        assert len(result["data"]["shipments"]["edges"]) == first
        assert all(len(edge["node"]["events"]) == 5 for edge in result["data"]["shipments"]["edges"])
        counts.append(len(operation_statements(sql_statements)))
    # shipments page, customers, drivers, vehicles, events: one statement each
    assert counts == [5, 5]


async def test_aliased_lookups_share_one_statement(graphql, sql_statements, acme):
    first, second, third = acme.tracking_numbers[:3]
    query = f"""{{
      a: shipment(trackingNumber: "{first}") {{ trackingNumber customer {{ name }} }}
      b: shipment(trackingNumber: "{second}") {{ trackingNumber customer {{ name }} }}
      c: shipment(trackingNumber: "{third}") {{ trackingNumber customer {{ name }} }}
    }}"""
    sql_statements.clear()
    result = await graphql(query, as_tenant=acme)
    assert [result["data"][k]["trackingNumber"] for k in "abc"] == [first, second, third]
    assert len(operation_statements(sql_statements)) == 2


async def test_a_loader_never_hands_one_tenants_row_to_another(app_engine, acme, globex):
    """Even asked directly for another tenant's key, a loader answers None and asks no SQL for it."""
    db = TenantDB(app_engine, acme.id)
    try:
        loader = CustomerById(db)
        own, foreign = acme.ids["customers"][0], globex.ids["customers"][0]
        rows = await loader.load_many([(acme.id, own), (globex.id, foreign), (acme.id, foreign)])
        assert rows[0] is not None and rows[0].tenant_id == acme.id
        assert rows[1] is None  # another tenant's key: refused before SQL
        assert rows[2] is None  # another tenant's id under our key: RLS and the WHERE find nothing

        by_number = ShipmentByTrackingNumber(db)
        assert await by_number.load((globex.id, globex.tracking_numbers[0])) is None
        events = EventsByShipment(db)
        assert await events.load((globex.id, globex.ids["shipments"][0], 5)) == []
    finally:
        await db.close(commit=False)


async def test_loaders_are_built_per_request_and_keyed_by_tenant(app_engine, acme, globex):
    """Two requests never share a cache, so a row cached for one tenant cannot answer another."""
    acme_db, globex_db = TenantDB(app_engine, acme.id), TenantDB(app_engine, globex.id)
    try:
        acme_loaders, globex_loaders = Loaders(acme_db), Loaders(globex_db)
        assert acme_loaders.customer_by_id is acme_loaders.customer_by_id  # one loader, one cache, per request
        assert acme_loaders.customer_by_id is not globex_loaders.customer_by_id
        customer = acme.ids["customers"][0]
        assert await acme_loaders.customer_by_id.load((acme.id, customer)) is not None
        assert await globex_loaders.customer_by_id.load((acme.id, customer)) is None
        assert await globex_loaders.customer_by_id.load((globex.id, customer)) is None
    finally:
        await acme_db.close(commit=False)
        await globex_db.close(commit=False)


async def test_sibling_resolvers_share_one_transaction_without_conflict(app_engine, acme):
    """Concurrent loads on one request's connection are serialized, not interleaved."""
    db = TenantDB(app_engine, acme.id)
    try:
        results = await asyncio.gather(
            *(db.all(text("SELECT pg_sleep(0.01), CAST(:n AS integer) AS n"), n=n) for n in range(20))
        )
        assert [rows[0].n for rows in results] == list(range(20))
    finally:
        await db.close(commit=True)


async def test_a_load_cancelled_while_it_waits_does_not_fail_later_loads_of_its_key(app_engine, acme):
    """A resolver cancelled beside a failing field cancels its shared future; the next load asks again."""
    db = TenantDB(app_engine, acme.id)
    try:
        loader = CustomerById(db)
        key = (acme.id, acme.ids["customers"][0])

        async def resolver() -> Any:
            return await loader.load(key)

        cancelled = asyncio.ensure_future(resolver())
        await asyncio.sleep(0)  # it awaits the key's future now
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)

        row = await asyncio.wait_for(loader.load(key), 5)
        assert row is not None and row.id == key[1]
    finally:
        await db.close(commit=False)


async def test_load_many_joins_the_batch_of_its_tick_and_reuses_the_cache(app_engine, acme, globex):
    """Keys asked by `load_many` and by `load` in the same tick go out in one statement; keys
    already loaded, or cancelled and asked again, are answered as `load` answers them."""
    db = TenantDB(app_engine, acme.id)
    try:
        loader = CustomerById(db)
        first, second, third = ((acme.id, customer) for customer in acme.ids["customers"][:3])
        foreign = (globex.id, globex.ids["customers"][0])
        with logged(app_engine) as statements:
            alone = loader.load(third)
            many = await loader.load_many([first, second, foreign, first])
            assert [row.id if row else None for row in many] == [first[1], second[1], None, first[1]]
            assert (await alone).id == third[1]
            assert len(statements) == 1  # one batch: the three keys of this tenant, none of globex's

            again = await loader.load_many([third, second])
            assert [row.id for row in again] == [third[1], second[1]]
            assert len(statements) == 1  # all from the cache

            cancelled = loader._cache[first] = asyncio.get_running_loop().create_future()
            cancelled.cancel()  # as a resolver cancelled while awaiting it leaves it
            assert (await loader.load_many([first]))[0].id == first[1]
            assert len(statements) == 2  # a cancelled future is asked for again
    finally:
        await db.close(commit=False)


async def test_a_request_frees_the_rows_it_loaded_without_the_cycle_collector(graphql, make_tenant):
    """The executor that holds a request's context sits in a reference cycle; the rows the
    loaders cached must not wait in it for a full collection (the longest pauses under load)."""
    tenant = await make_tenant(
        Plan.SCALE, DataSize(customers=5, vehicles=3, drivers=4, shipments=10, events_per_shipment=2)
    )
    await graphql(NESTED_SHIPMENTS, {"first": 10}, as_tenant=tenant)  # caches and plans warm
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays in gc.garbage to be read
    try:
        answer = await graphql(NESTED_SHIPMENTS, {"first": 10}, as_tenant=tenant)
        bait: list[Any] = [asyncio.get_running_loop().create_future()]
        bait.append(bait)  # a cycle holding a future: the one such future the collector should find
        del bait
        gc.collect()
        left_to_the_collector = [
            type(o).__name__ for o in gc.garbage if isinstance(o, asyncio.Future) or type(o).__name__ in {"Row", "UUID"}
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

    assert len(answer["data"]["shipments"]["edges"]) == 10
    assert left_to_the_collector == ["Future"]  # the bait's, and nothing of the request's
