"""Shared fixtures: real embedded PostgreSQL and Redis, started once per test session.

Every test makes its own tenants (unique slugs), so tests never see each other's rows
and need no clean-up; the servers live in a temporary folder and go with it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Secret

from auth.jwt import issue_token
from auth.tenant import Plan, Role
from db.engine import create_app_engine, create_owner_engine
from db.migrate import upgrade
from db.models import Customer, Driver, Shipment, Vehicle
from db.seed import DataSize, ensure_tenant, seed_tenant_data, stable_id
from db.statement_log import logged
from db.transaction import tenant_transaction
from tenantql.app import create_app
from tenantql.embedded import EmbeddedRedis, EmbeddedServers, ServerURLs
from tenantql.settings import Settings

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
SMALL = DataSize(customers=5, vehicles=3, drivers=4, shipments=12, events_per_shipment=3)
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenantql")


@pytest.fixture(scope="session")
async def embedded(home: Path) -> AsyncIterator[EmbeddedServers]:
    servers = EmbeddedServers(home, durable=False)
    await servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
async def urls(embedded: EmbeddedServers) -> ServerURLs:
    roles = embedded.postgres.roles
    found = ServerURLs(
        database_url=embedded.postgres.url(roles.app),
        database_owner_url=embedded.postgres.url(roles.owner),
        redis_url=embedded.redis.url,
    )
    await upgrade(found.database_owner_url, found.database_url)
    return found


@pytest.fixture(scope="session")
def settings(urls: ServerURLs, home: Path) -> Settings:
    return Settings(
        database_url=urls.database_url,
        database_owner_url=urls.database_owner_url,
        redis_url=urls.redis_url,
        jwt_secret=Secret(JWT_SECRET),
        home=home,
        tenant_cache_seconds=0.5,
        database_pool_size=16,  # the 500-request isolation burst queues for connections on a busy machine
    )


@pytest.fixture(scope="session")
async def owner_engine(urls: ServerURLs) -> AsyncIterator[AsyncEngine]:
    engine = create_owner_engine(urls.database_owner_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(urls: ServerURLs) -> AsyncIterator[AsyncEngine]:
    """An application-role engine of the tests' own, for SQL-level checks."""
    engine = create_app_engine(urls.database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def application(settings: Settings) -> Any:
    """The Starlette app itself: its `state` holds the services once the lifespan has run."""
    return create_app(settings)


@pytest.fixture(scope="session")
async def app(application: Any) -> AsyncIterator[Any]:
    """The app as clients call it: wrapped by LifespanManager, which passes the lifespan state on."""
    async with LifespanManager(application) as manager:
        yield manager.app


@pytest.fixture(scope="session")
def services(app: Any, application: Any) -> Any:
    return application.state.services


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
        yield http


@dataclass
class TenantHandle:
    """A tenant made for one test, with its seeded rows' ids and tokens for each role."""

    id: uuid.UUID
    slug: str
    plan: Plan
    ids: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    tracking_numbers: list[str] = field(default_factory=list)

    def user_id(self, role: Role) -> uuid.UUID:
        return stable_id(self.slug, "user", role.value)

    def token(self, role: Role = Role.ADMIN, **overrides: Any) -> str:
        return issue_token(JWT_SECRET, tenant_id=self.id, user_id=self.user_id(role), role=role, **overrides)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    """A Valkey of the test's own, to stop and start without disturbing the session's."""
    redis = EmbeddedRedis(tmp_path, durable=False)
    await asyncio.to_thread(redis.start)
    try:
        yield redis
    finally:
        await asyncio.to_thread(redis.stop)


@pytest.fixture
def make_tenant(owner_engine: AsyncEngine) -> Callable[..., Any]:
    """`await make_tenant(plan=Plan.SCALE, size=SMALL)`: a fresh tenant with deterministic data."""

    async def make(plan: Plan = Plan.STARTER, size: DataSize = SMALL, slug: str | None = None) -> TenantHandle:
        slug = slug or f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"
        tenant_id = await ensure_tenant(owner_engine, slug, f"Tenant {slug}", plan)
        await seed_tenant_data(owner_engine, tenant_id, slug, size)
        handle = TenantHandle(id=tenant_id, slug=slug, plan=plan)
        async with tenant_transaction(owner_engine, tenant_id) as db:
            for name, model in (
                ("customers", Customer),
                ("vehicles", Vehicle),
                ("drivers", Driver),
                ("shipments", Shipment),
            ):
                handle.ids[name] = [
                    row.id for row in await db.all(select(model.id).where(model.tenant_id == tenant_id))
                ]
            handle.tracking_numbers = [
                row.tracking_number
                for row in await db.all(select(Shipment.tracking_number).where(Shipment.tenant_id == tenant_id))
            ]
        return handle

    return make


@pytest.fixture
async def acme(make_tenant: Callable[..., Any]) -> TenantHandle:
    return await make_tenant(Plan.STARTER)


@pytest.fixture
async def globex(make_tenant: Callable[..., Any]) -> TenantHandle:
    return await make_tenant(Plan.SCALE)


GraphQL = Callable[..., Any]


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQL:
    """`await graphql(QUERY, {"first": 5}, as_tenant=acme, role=Role.VIEWER)` → the response JSON.

    Asserts a 200 unless `status` says otherwise.
    """

    async def run(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_tenant: TenantHandle,
        role: Role = Role.ADMIN,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={**as_tenant.headers(role), **(headers or {})},
        )
        assert response.status_code == status, response.text
        return response.json()

    return run


@pytest.fixture
def sql_statements(services: Any) -> Any:
    """Every SQL statement the server's engine runs while the test runs, through SQLAlchemy or
    straight to the driver (`db.statement_log`), but for each transaction's own BEGIN and COMMIT."""
    with logged(services.engine) as statements:
        yield statements


def tampered(credential: str) -> str:
    """The credential with its last character replaced: never, by chance, the credential itself."""
    return credential[:-1] + ("A" if credential[-1] != "A" else "B")


def under_tenant(statements: list[str]) -> list[str]:
    """The statements run for a tenant: all but authentication's lookup of the tenant itself."""
    return [statement for statement in statements if "FROM tenants" not in statement]
