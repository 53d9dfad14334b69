"""Servers of the resilience tests' own, which they kill, stop and start again.

The session's PostgreSQL and Redis serve every other test, so these tests never touch
them: they share one PostgreSQL of this folder's own (durable, so a killed server keeps
every commit, as in production) and start a Valkey of their own where they need one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Secret

from auth.tenant import Plan
from db.engine import create_owner_engine
from db.migrate import upgrade
from db.models import Shipment
from db.seed import DataSize, ensure_tenant, seed_tenant_data
from db.transaction import tenant_transaction
from tenantql.embedded import EmbeddedPostgres
from tenantql.settings import Settings
from tests.conftest import JWT_SECRET, SMALL, TenantHandle
from tests.live import server_environment

UNLIMITED = 10_000_000  # points per minute: load tests measure outages, not budgets


@dataclass
class OwnPostgres:
    server: EmbeddedPostgres
    app_url: str
    owner_url: str
    owner: AsyncEngine  # set-up and checks as the owner role (RLS is forced on it too: see tenant_transaction)

    async def kill(self) -> None:
        await asyncio.to_thread(self.server.kill)

    async def restart(self) -> None:
        await asyncio.to_thread(self.server.restart)

    def server_env(self, redis_url: str, **extra: str) -> dict[str, str]:
        """The environment of a server on this PostgreSQL and `redis_url`, with the tests' JWT secret."""
        settings = Settings(database_url=self.app_url, redis_url=redis_url, jwt_secret=Secret(JWT_SECRET))
        return server_environment(settings, **extra)

    async def app_backends(self) -> list[asyncpg.Record]:
        """The application role's server connections, as `pg_stat_activity` lists them.

        Read as the superuser: to other roles, the owner included, PostgreSQL hides the
        state and wait event of sessions that are not their own."""
        connection = await asyncpg.connect(self.server.url("postgres", "postgres", driver="postgresql"))
        try:
            return await connection.fetch(
                "SELECT pid, state, wait_event_type FROM pg_stat_activity "
                "WHERE usename = $1 AND backend_type = 'client backend'",
                self.server.roles.app,
            )
        finally:
            await connection.close()


@pytest.fixture(scope="package")
async def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OwnPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("resilience"), durable=True)
    await server.start()
    try:
        roles = server.roles
        app_url, owner_url = server.url(roles.app), server.url(roles.owner)
        await upgrade(owner_url, app_url)
        owner = create_owner_engine(owner_url)
        try:
            yield OwnPostgres(server, app_url, owner_url, owner)
        finally:
            await owner.dispose()
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def postgres(own_postgres: OwnPostgres) -> OwnPostgres:
    """The folder's PostgreSQL, running: started again if a failed test left it down."""
    if not own_postgres.server.is_running():
        await own_postgres.restart()
    return own_postgres


MakeTenant = Callable[..., Awaitable[TenantHandle]]


@pytest.fixture
def make_own_tenant(postgres: OwnPostgres) -> MakeTenant:
    """`await make_own_tenant("a", plan=Plan.STARTER)`: a fresh tenant with data in the folder's PostgreSQL.

    Without a plan it is ENTERPRISE with a budget no load here reaches."""

    async def make(label: str, *, plan: Plan | None = None, size: DataSize = SMALL) -> TenantHandle:
        slug = f"{label}-{uuid.uuid4().hex[:10]}"
        tenant_id = await ensure_tenant(postgres.owner, slug, f"Tenant {slug}", plan or Plan.ENTERPRISE)
        await seed_tenant_data(postgres.owner, tenant_id, slug, size)
        if plan is None:
            async with postgres.owner.connect() as connection:
                await connection.execute(
                    text("UPDATE tenants SET rate_limit_per_minute = :budget WHERE id = :id"),
                    {"budget": UNLIMITED, "id": tenant_id},
                )
        handle = TenantHandle(id=tenant_id, slug=slug, plan=plan or Plan.ENTERPRISE)
        async with tenant_transaction(postgres.owner, tenant_id) as db:
            rows = await db.all(select(Shipment.tracking_number).where(Shipment.tenant_id == tenant_id))
        handle.tracking_numbers = [row.tracking_number for row in rows]
        return handle

    return make
