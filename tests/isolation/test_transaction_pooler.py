"""Tenants stay apart with the server behind PgBouncer in transaction pooling mode.

A transaction pooler hands each transaction whichever server connection is free, so the
two server connections here carry every client connection and both tenants in turn. Only
a tenant setting that ends with its transaction keeps them apart: these tests run the
isolation fuzz, the hand-written isolation tests and raw checks through such a pool.
`TENANTQL_FUZZ_POOLER_EXAMPLES` sets the fuzz's count (100 by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from db.engine import Pooler, create_app_engine, with_pooler
from db.models import Customer
from db.transaction import tenant_transaction
from tenantql.app import create_app
from tests.api import test_isolation as handwritten
from tests.isolation.fuzz import IsolationFuzz, fuzz_tenants, graphql_sender
from tests.isolation.pgbouncer import PgBouncer
from tests.isolation.strategies import POOLER_EXAMPLES_ENV, examples_from_env

SERVER_CONNECTIONS = 2
WHO = "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS tenant"

# The hand-written isolation tests, run again here, where `client` goes through PgBouncer.
globex_secrets = handwritten.globex_secrets
for _name in dir(handwritten):
    if _name.startswith("test_"):
        globals()[_name] = getattr(handwritten, _name)


@pytest.fixture(scope="module")
async def pgbouncer(embedded: Any) -> AsyncIterator[PgBouncer]:
    bouncer = PgBouncer(embedded.postgres, pool_size=SERVER_CONNECTIONS)
    await bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def pooled_url(pgbouncer: PgBouncer, embedded: Any) -> str:
    return with_pooler(pgbouncer.url(embedded.postgres.roles.app), Pooler.TRANSACTION)


@pytest.fixture(scope="module")
async def pooled(settings: Any, pooled_url: str) -> AsyncIterator[Any]:
    """The app with DATABASE_URL through PgBouncer (the owner's, for set-up, goes direct)."""
    application = create_app(replace(settings, database_url=pooled_url))
    async with LifespanManager(application) as manager:
        yield manager.app, application.state.services


@pytest.fixture
async def client(pooled: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Replaces the session app's client for every test of this module, the imported ones included."""
    transport = httpx.ASGITransport(app=pooled[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
        yield http


async def test_the_app_reaches_postgresql_through_pgbouncer(pooled: Any, pgbouncer: PgBouncer) -> None:
    url = pooled[1].engine.url
    assert (url.query["host"], url.query["port"]) == (str(pgbouncer.directory), "6432")


async def test_without_the_pooler_setting_pgbouncer_refuses_the_connections_start_up_parameters(pgbouncer, embedded):
    engine = create_app_engine(pgbouncer.url(embedded.postgres.roles.app), pool_size=1)
    try:
        with pytest.raises(DBAPIError, match="unsupported startup parameter"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_no_tenant_setting_survives_its_transaction_on_the_shared_server_connections(
    pgbouncer, pooled_url, embedded, make_tenant
):
    acme, globex = await make_tenant(), await make_tenant()
    engine = create_app_engine(pooled_url, pool_size=4)
    raw = await pgbouncer.connect(embedded.postgres.roles.app)
    inside: list[int] = []
    between: list[tuple[int, str | None]] = []

    async def transactions(tenant: Any) -> None:
        for _ in range(15):
            async with tenant_transaction(engine, tenant.id) as db:
                who = await db.one_or_none(text(WHO))
                await asyncio.sleep(0)  # hold the server connection while the others wait for one
                owners = {row.tenant_id for row in await db.all(select(Customer.tenant_id))}  # RLS alone decides
            assert who is not None and who.tenant == str(tenant.id)
            assert owners == {tenant.id}
            inside.append(who.pid)

    async def raw_queries() -> None:
        for _ in range(60):
            row = await raw.fetchrow(WHO)  # outside any transaction, on whichever server connection is free
            between.append((row["pid"], row["tenant"]))
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(transactions(tenant) for tenant in (acme, globex, acme, globex)), raw_queries())
    finally:
        await raw.close()
        await engine.dispose()

    assert len(set(inside)) <= SERVER_CONNECTIONS  # 4 client connections took turns on them
    assert {pid for pid, _ in between} & set(inside)  # the raw queries ran where tenants had just been
    assert {tenant for _, tenant in between} <= {None, ""}, between


async def test_generated_operations_through_pgbouncer_never_cross_tenants(client, pooled, owner_engine, make_tenant):
    tenants = await fuzz_tenants(make_tenant, owner_engine)
    fuzz = IsolationFuzz(tenants, owner_engine, pooled[1].schema.as_str(), graphql_sender(client, tenants.actor))
    examples = examples_from_env(POOLER_EXAMPLES_ENV, 100)

    tally = await fuzz.run(examples)

    print(f"isolation fuzz through PgBouncer: {tally}")
    assert tally.examples >= examples
    assert tally.executed > tally.examples / 2, tally
