"""SELECTs run on the driver directly answer exactly what SQLAlchemy's execution answers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.compiled_select import CompiledSelects
from db.models import Customer, ShipmentStatus
from db.statement_log import logged
from db.transaction import TenantDB
from resolvers.loaders import (
    _CUSTOMER_PAGE,
    _EVENTS_STATEMENT,
    CustomerById,
    DriverById,
    ShipmentById,
    ShipmentByTrackingNumber,
    VehicleById,
    customers,
    shipments,
)
from resolvers.pagination import Cursor, PageRequest, fetch_page


async def both_ways(engine: AsyncEngine, tenant_id: Any, statement: Any, **params: Any) -> tuple[list[Any], list[Any]]:
    """The statement's rows through `TenantDB` (directly) and through SQLAlchemy, in one transaction."""
    db = TenantDB(engine, tenant_id)
    try:
        direct = list(await db.all(statement, **params))
        assert db._connection is not None
        result = await db._connection.execute(statement, {"tenant_id": tenant_id, **params})
        return direct, list(result.all())
    finally:
        await db.close(commit=False)


def assert_same_rows(direct: list[Any], through_sqlalchemy: list[Any]) -> None:
    assert through_sqlalchemy, "the comparison needs rows"
    assert [row._fields for row in direct] == [row._fields for row in through_sqlalchemy]
    assert [tuple(row) for row in direct] == [tuple(row) for row in through_sqlalchemy]
    for ours, theirs in zip(direct, through_sqlalchemy, strict=True):
        assert [type(value) for value in ours] == [type(value) for value in theirs]


async def test_every_loader_statement_answers_as_through_sqlalchemy(app_engine, acme):
    ids = acme.ids
    cases = [
        (CustomerById.statement, {"values": ids["customers"][:5]}),
        (VehicleById.statement, {"values": ids["vehicles"][:5]}),  # capacity_kg: Numeric as a float
        (DriverById.statement, {"values": ids["drivers"][:5]}),
        (ShipmentById.statement, {"values": ids["shipments"][:5]}),  # status: the enum
        (ShipmentByTrackingNumber.statement, {"values": acme.tracking_numbers[:5]}),
        (_EVENTS_STATEMENT, {"ids": ids["shipments"][:5], "size": 3}),
        (_CUSTOMER_PAGE[False], {"ids": ids["customers"][:3], "size": 4}),
    ]
    for statement, params in cases:
        assert_same_rows(*await both_ways(app_engine, acme.id, statement, **params))

    direct, _ = await both_ways(app_engine, acme.id, ShipmentById.statement, values=ids["shipments"][:1])
    assert isinstance(direct[0].status, ShipmentStatus)


async def test_a_cursor_page_statement_answers_as_through_sqlalchemy(app_engine, acme):
    first_page, _ = await both_ways(app_engine, acme.id, _CUSTOMER_PAGE[False], ids=ids_of(acme), size=2)
    after = first_page[0]
    direct, through_sqlalchemy = await both_ways(
        app_engine,
        acme.id,
        _CUSTOMER_PAGE[True],
        ids=ids_of(acme),
        size=50,
        after_created_at=after.created_at,
        after_id=after.id,
    )
    assert_same_rows(direct, through_sqlalchemy)


def ids_of(tenant: Any) -> list[Any]:
    return tenant.ids["customers"][:3]


async def test_statements_built_per_call_share_a_shape_and_keep_their_own_values(app_engine, acme):
    """The shipments page is built per request with its values bound inside; each call must
    run with its own values, not those of the call that compiled its shape."""
    db = TenantDB(app_engine, acme.id)
    try:
        first = await fetch_page(db, shipments, PageRequest.parse(3, None), newest_first=True)
        cursor = Cursor.of(first.items[-1]).encode()
        second = await fetch_page(db, shipments, PageRequest.parse(3, cursor), newest_first=True)
        names = [
            (await db.all(select(customers.c.name).where(customers.c.id == customer_id)))[0].name
            for customer_id in acme.ids["customers"][:3]
        ]
    finally:
        await db.close(commit=False)
    assert not {row.id for row in first.items} & {row.id for row in second.items}
    assert len(set(names)) == 3

    for status in (ShipmentStatus.CREATED, ShipmentStatus.DELIVERED):
        statement = select(shipments).where(shipments.c.status == status).order_by(shipments.c.id).limit(3)
        direct, through_sqlalchemy = await both_ways(app_engine, acme.id, statement)
        if through_sqlalchemy:
            assert_same_rows(direct, through_sqlalchemy)
            assert {row.status for row in direct} == {status}


async def test_only_plain_core_selects_take_the_direct_path(app_engine):
    selects = CompiledSelects(app_engine.dialect)
    assert selects.find(select(customers).limit(1), {}) is not None
    assert selects.find(insert(customers).values(name="x"), {}) is None  # writes stay with SQLAlchemy
    assert selects.find(select(Customer).limit(1), {}) is None  # ORM statements too
    assert selects.find(select(customers).where(customers.c.name.in_(["a", "b"])), {}) is None  # expanding IN
    assert selects.find(text("SELECT 1"), {}) is None


async def test_direct_statements_are_logged_for_the_counts(app_engine, acme):
    with logged(app_engine) as statements:
        db = TenantDB(app_engine, acme.id)
        try:
            await db.all(CustomerById.statement, values=acme.ids["customers"][:1])
        finally:
            await db.close(commit=False)
    assert len(statements) == 1 and "FROM customers" in statements[0]
