"""A request's transaction survives the cancellation of a resolver, refuses work once closed, and
never passes a rolled-back COMMIT off as done.

When one field fails, graphql-core cancels the fields being awaited beside it and settles
others in the background after the response is decided. Neither may break the request's
connection, lose a write, or open a connection that nothing closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from db.transaction import CommitRefused, TenantDB, TransactionEnded, tenant_transaction

SLOW = text("SELECT pg_sleep(0.3), 1 AS one")
INSERT = text("INSERT INTO customers (tenant_id, name) VALUES (:tenant_id, :name)")


@pytest.fixture
def invalidations(app_engine: Any) -> Any:
    """Every connection of the engine's pool invalidated while the test runs."""
    seen: list[Any] = []

    def record(dbapi_connection: Any, record: Any, error: Any) -> None:
        seen.append(error)

    pool = app_engine.sync_engine.pool
    event.listen(pool, "invalidate", record)
    yield seen
    event.remove(pool, "invalidate", record)


async def names(engine: Any, tenant_id: Any) -> list[str]:
    async with tenant_transaction(engine, tenant_id) as db:
        return sorted(row.name for row in await db.all(text("SELECT name FROM customers WHERE name LIKE 'cancel-%'")))


async def test_a_cancelled_statement_finishes_and_the_transaction_goes_on(
    app_engine, owner_engine, make_tenant, invalidations
):
    tenant = await make_tenant()
    db = TenantDB(app_engine, tenant.id)
    try:
        await db.write(INSERT, name="cancel-before")
        reader = asyncio.ensure_future(db.all(SLOW))
        await asyncio.sleep(0.05)  # the statement is on the server
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await db.write(INSERT, name="cancel-after")  # waits for the slow statement, then runs
        assert (await db.all(text("SELECT 1 AS one")))[0].one == 1
    finally:
        await db.close(commit=True)

    assert invalidations == []
    assert await names(owner_engine, tenant.id) == ["cancel-after", "cancel-before"]


async def test_closing_waits_for_a_cancelled_statement_and_returns_the_connection(app_engine, acme, invalidations):
    pool = app_engine.sync_engine.pool
    db = TenantDB(app_engine, acme.id)
    reader = asyncio.ensure_future(db.all(SLOW))
    await asyncio.sleep(0.05)
    reader.cancel()
    await db.close(commit=True)

    assert pool.checkedout() == 0
    assert invalidations == []


async def test_a_statement_after_close_is_refused_and_opens_no_connection(app_engine, acme):
    pool = app_engine.sync_engine.pool
    db = TenantDB(app_engine, acme.id)
    await db.all(text("SELECT 1"))
    await db.close(commit=True)
    assert pool.checkedout() == 0

    with pytest.raises(TransactionEnded):
        await db.all(text("SELECT 1"))
    with pytest.raises(TransactionEnded):
        await db.write(INSERT, name="cancel-late")
    assert pool.checkedout() == 0


async def test_a_statement_queued_behind_close_is_refused(app_engine, acme):
    """A background field whose statement waits for the lock while the request closes."""
    pool = app_engine.sync_engine.pool
    db = TenantDB(app_engine, acme.id)
    first = asyncio.ensure_future(db.all(SLOW))
    await asyncio.sleep(0.05)
    closing = asyncio.ensure_future(db.close(commit=True))
    await asyncio.sleep(0)
    late = asyncio.ensure_future(db.all(text("SELECT 1")))
    await asyncio.gather(first, closing)

    with pytest.raises(TransactionEnded):
        await late
    assert pool.checkedout() == 0


async def test_a_commit_that_postgres_turns_into_a_rollback_is_not_taken_for_done(
    app_engine, owner_engine, make_tenant
):
    """A failed statement whose error was swallowed aborts the transaction; its COMMIT then
    undoes the writes, and close() says so rather than let the request report them done."""
    tenant = await make_tenant()
    pool = app_engine.sync_engine.pool
    db = TenantDB(app_engine, tenant.id)
    await db.write(INSERT, name="cancel-lost")
    with pytest.raises(DBAPIError):
        await db.all(text("SELECT 1 / 0"))  # caught here as a careless resolver would

    with pytest.raises(CommitRefused):
        await db.close(commit=True)
    assert pool.checkedout() == 0
    assert await names(owner_engine, tenant.id) == []


async def test_a_read_only_transaction_that_failed_closes_quietly(app_engine, acme):
    db = TenantDB(app_engine, acme.id)
    with pytest.raises(DBAPIError):
        await db.all(text("SELECT 1 / 0"))
    await db.close(commit=True)  # nothing was written, so nothing was lost
