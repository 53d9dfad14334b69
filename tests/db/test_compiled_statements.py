"""Statements run on the driver directly answer, and fail, exactly as SQLAlchemy's execution does."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.compiled_statements import CompiledStatements, sqlalchemy_error
from db.engine import database_unavailable
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
    events,
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

    compared = 0
    for status in (ShipmentStatus.CREATED, ShipmentStatus.DELIVERED):
        statement = select(shipments).where(shipments.c.status == status).order_by(shipments.c.id).limit(3)
        direct, through_sqlalchemy = await both_ways(app_engine, acme.id, statement)
        if through_sqlalchemy:
            assert_same_rows(direct, through_sqlalchemy)
            assert {row.status for row in direct} == {status}
            again, _ = await both_ways(app_engine, acme.id, statement)  # the same object: found by identity
            assert again == direct
            compared += 1
    assert compared, "the seeded tenant has shipments of neither status"


async def test_only_core_statements_finished_at_compilation_take_the_direct_path(app_engine):
    statements = CompiledStatements(app_engine.dialect)
    with_python_default = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer, default=1)
    )
    assert statements.find(select(customers).limit(1), {}) is not None
    assert statements.find(insert(customers).values(name="x"), {"tenant_id": None}) is not None
    assert statements.find(select(Customer).limit(1), {}) is None  # ORM statements stay with SQLAlchemy
    assert statements.find(select(customers).where(customers.c.name.in_(["a", "b"])), {}) is None  # expanding IN
    assert statements.find(text("SELECT 1"), {}) is None
    assert statements.find(insert(with_python_default).values(id=1), {}) is None  # a default computed in Python


async def test_writes_answer_as_through_sqlalchemy_and_set_only_their_own_columns(app_engine, acme):
    shipment_id = acme.ids["shipments"][0]
    update_it = (
        update(shipments)
        .where(shipments.c.tenant_id == bindparam("tenant"), shipments.c.id == bindparam("shipment"))
        .values(status=bindparam("new_status", type_=shipments.c.status.type), updated_at=func.now())
        .returning(*shipments.c)
    )
    params = {"tenant": acme.id, "shipment": shipment_id, "new_status": ShipmentStatus.IN_TRANSIT}
    add_event = insert(events).values(
        tenant_id=acme.id, shipment_id=shipment_id, status=ShipmentStatus.IN_TRANSIT, note="both ways"
    )
    db = TenantDB(app_engine, acme.id)
    try:
        with logged(app_engine) as sent:
            direct = list(await db.write(update_it, **params))
        assert db._connection is not None
        result = await db._connection.execute(update_it, params)
        assert_same_rows(direct, list(result.all()))  # now() is the transaction's start: the same both times
        # The transaction's tenant is never slipped in as a column to set.
        assert sent[0].startswith("UPDATE shipments SET status=") and "tenant_id=" not in sent[0].split("WHERE")[0]

        assert await db.write(add_event) == []  # no RETURNING of its own: no rows
        added = await db.all(select(events).where(events.c.note == "both ways"))
        assert [(row.tenant_id, row.status) for row in added] == [(acme.id, ShipmentStatus.IN_TRANSIT)]
    finally:
        await db.close(commit=False)


async def test_a_violated_constraint_raises_sqlalchemys_integrity_error(app_engine, acme):
    taken = acme.tracking_numbers[0]
    db = TenantDB(app_engine, acme.id)
    try:
        with pytest.raises(IntegrityError) as raised:
            await db.write(
                insert(shipments).values(
                    tenant_id=acme.id,
                    customer_id=acme.ids["customers"][0],
                    tracking_number=taken,
                    origin="a",
                    destination="b",
                    weight_kg=1,
                )
            )
    finally:
        await db.close(commit=False)
    assert isinstance(raised.value.orig, asyncpg.UniqueViolationError)
    assert "tracking_number" in str(raised.value.orig)


async def test_direct_statements_are_logged_for_the_counts(app_engine, acme):
    with logged(app_engine) as statements:
        db = TenantDB(app_engine, acme.id)
        try:
            await db.all(CustomerById.statement, values=acme.ids["customers"][:1])
        finally:
            await db.close(commit=False)
    assert len(statements) == 1 and "FROM customers" in statements[0]


def test_a_lost_connection_is_raised_as_sqlalchemy_raises_it_and_reads_as_unavailable():
    lost = sqlalchemy_error("SELECT 1", [], asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert isinstance(lost, DBAPIError) and lost.connection_invalidated
    assert database_unavailable(lost)
    refused = sqlalchemy_error("SELECT 1", [], asyncpg.UndefinedTableError("no such table"))
    assert isinstance(refused, ProgrammingError) and not database_unavailable(refused)
