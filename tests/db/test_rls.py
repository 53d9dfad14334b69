"""Row Level Security, checked in SQL as the application role: the guarantee under everything else."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.models import TENANT_TABLES
from db.transaction import TenantDB, begin_sql, tenant_transaction


async def test_with_no_tenant_set_every_tenant_table_returns_no_rows(app_engine, acme, globex):
    async with app_engine.connect() as connection:
        for table in TENANT_TABLES:
            count = (await connection.execute(text(f"SELECT count(*) FROM {table.name}"))).scalar()
            assert count == 0, table.name
        assert (await connection.execute(text("SELECT count(*) FROM tenants"))).scalar() == 0


async def test_a_tenant_sees_only_its_own_rows(app_engine, acme, globex):
    async with tenant_transaction(app_engine, acme.id) as db:
        tenants_seen = {row[0] for row in await db.all(text("SELECT DISTINCT tenant_id FROM shipments"))}
        tenant_rows = await db.all(text("SELECT id FROM tenants"))
    assert tenants_seen == {acme.id}
    assert [row.id for row in tenant_rows] == [acme.id]


async def test_inserting_a_row_of_another_tenant_fails(app_engine, acme, globex):
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(app_engine, acme.id) as db:
            await db.write(text("INSERT INTO customers (tenant_id, name) VALUES (:other, 'intruder')"), other=globex.id)


async def test_updating_or_deleting_another_tenants_rows_touches_nothing(app_engine, owner_engine, acme, globex):
    async with tenant_transaction(app_engine, acme.id) as db:
        updated = await db.write(
            text("UPDATE customers SET name = 'taken' WHERE tenant_id = :other RETURNING id"), other=globex.id
        )
        deleted = await db.write(
            text("DELETE FROM tracking_events WHERE tenant_id = :other RETURNING id"), other=globex.id
        )
    assert updated == [] and deleted == []
    async with tenant_transaction(owner_engine, globex.id) as db:
        names = [row.name for row in await db.all(text("SELECT name FROM customers"))]
    assert names and "taken" not in names


async def test_moving_a_row_to_another_tenant_fails(app_engine, acme, globex):
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(app_engine, acme.id) as db:
            await db.write(text("UPDATE customers SET tenant_id = :other"), other=globex.id)


async def test_a_shipment_cannot_reference_another_tenants_customer(owner_engine, acme, globex):
    with pytest.raises(DBAPIError, match="foreign key"):
        async with tenant_transaction(owner_engine, acme.id) as db:
            await db.write(
                text(
                    "INSERT INTO shipments (tenant_id, tracking_number, customer_id, origin, destination, weight_kg) "
                    "VALUES (:tenant_id, 'X-1', :customer, 'a', 'b', 1)"
                ),
                customer=globex.ids["customers"][0],
            )


async def test_a_connection_back_in_the_pool_carries_no_tenant(app_engine, acme):
    db = TenantDB(app_engine, acme.id)
    assert await db.all(text("SELECT current_setting('app.tenant_id', true) AS t")) == [(str(acme.id),)]
    await db.close(commit=True)
    # The pool has two connections at most: whichever is handed out next was just used.
    for _ in range(3):
        async with app_engine.connect() as connection:
            setting = (await connection.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar()
            assert setting in ("", None)


async def test_a_failed_request_leaves_no_tenant_and_no_open_transaction(app_engine, acme):
    db = TenantDB(app_engine, acme.id)
    with pytest.raises(DBAPIError):
        await db.all(text("SELECT 1 / 0"))
    await db.close(commit=True)  # COMMIT of an aborted transaction rolls back
    async with app_engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert not driver.is_in_transaction()
        assert (await connection.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar() in ("", None)


async def test_begin_and_tenant_setting_share_one_round_trip(app_engine, acme):
    """The simple-query statements a transaction sends: one to open it, one to end it."""
    sent: list[str] = []

    def log(record):
        sent.append(record.query)

    db = TenantDB(app_engine, acme.id)
    db._connection = await app_engine.connect()
    driver = db._driver = (await db._connection.get_raw_connection()).driver_connection
    driver.add_query_logger(log)
    try:
        await db.all(text("SELECT 1"))
        await db.close(commit=True)
        await asyncio.sleep(0.01)  # query loggers are called back on the event loop
    finally:
        driver.remove_query_logger(log)
    assert sent == [begin_sql(acme.id), "COMMIT"]


def test_the_inlined_tenant_can_only_be_a_uuid():
    with pytest.raises(TypeError):
        begin_sql("'; DROP TABLE tenants; --")  # type: ignore[arg-type]
    assert str(uuid.UUID(int=1)) in begin_sql(uuid.UUID(int=1))


async def customer_names(engine, tenant_id) -> list[str]:
    async with tenant_transaction(engine, tenant_id) as db:
        return sorted(row.name for row in await db.all(text("SELECT name FROM customers WHERE name LIKE 'unit-%'")))


async def test_a_discarded_unit_undoes_its_writes_and_keeps_earlier_ones(app_engine, owner_engine, make_tenant):
    tenant = await make_tenant()
    insert = text("INSERT INTO customers (tenant_id, name) VALUES (:tenant_id, :name)")
    async with tenant_transaction(app_engine, tenant.id) as db:
        async with db.atomic() as unit:  # nothing written before it: the transaction itself is undone
            await db.write(insert, name="unit-1")
            unit.discard()
        async with db.atomic():
            await db.write(insert, name="unit-2")
        async with db.atomic() as unit:  # after a write: a savepoint keeps unit-2
            await db.write(insert, name="unit-3")
            unit.discard()
        with pytest.raises(RuntimeError):
            async with db.atomic():
                await db.write(insert, name="unit-4")
                raise RuntimeError("the unit fails")
    assert await customer_names(owner_engine, tenant.id) == ["unit-2"]
