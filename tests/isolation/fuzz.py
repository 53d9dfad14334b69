"""Two tenants for isolation fuzzing, and a runner that sends generated operations as one of them.

The acting tenant is ENTERPRISE with a budget no run can spend, so operations execute rather
than queue for points. The other tenant's every text carries its slug, so one substring
finds any of its names, emails, phones, plates or places in a response; its ids, tracking
numbers, cursors and key prefixes are listed one by one. Its rows are read as the owner,
checksummed per table, before, during and after a run.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tenant import Plan, Role
from db.api_keys import create_key
from db.seed import DataSize
from db.transaction import tenant_transaction
from db.users import insert_user
from resolvers.ids import to_global_id
from resolvers.pagination import Cursor
from tests.conftest import TenantHandle
from tests.isolation.strategies import PROFILE, ArgumentValues, TenantValues, operations

FUZZ_SIZE = DataSize(customers=6, vehicles=3, drivers=4, shipments=10, events_per_shipment=2)
UNSPENDABLE_BUDGET = 100_000_000  # points per minute: THROTTLED never decides an example

# The global id type of each table's rows.
ROW_TYPES = {
    "customers": "Customer",
    "vehicles": "Vehicle",
    "drivers": "Driver",
    "shipments": "Shipment",
    "tracking_events": "TrackingEvent",
    "users": "User",
    "api_keys": "ApiKey",
    "audit_log": "AuditEntry",
}
PAGED_TABLES = ("customers", "vehicles", "drivers", "shipments", "audit_log")  # rows that page cursors name

# Every free text of the other tenant gets its slug (its emails have it already).
_MARK = (
    "UPDATE customers SET name = name || ' ' || :slug, phone = phone || ' ' || :slug WHERE tenant_id = :tenant_id",
    "UPDATE drivers SET name = name || ' ' || :slug, phone = coalesce(phone, '') || ' ' || :slug"
    " WHERE tenant_id = :tenant_id",
    "UPDATE vehicles SET plate = :slug || '-' || right(plate, 4) WHERE tenant_id = :tenant_id",
    "UPDATE shipments SET origin = origin || ' ' || :slug, destination = destination || ' ' || :slug"
    " WHERE tenant_id = :tenant_id",
    "UPDATE tracking_events SET location = coalesce(location, '') || ' ' || :slug,"
    " note = coalesce(note, '') || ' ' || :slug WHERE tenant_id = :tenant_id",
    "UPDATE users SET name = coalesce(name, '') || ' ' || :slug WHERE tenant_id = :tenant_id",
)
_AUDIT = text(
    "INSERT INTO audit_log (tenant_id, actor, action, changes)"
    " VALUES (:tenant_id, :actor, 'fuzz.seed', CAST(:changes AS jsonb))"
)
_USAGE = text(
    "INSERT INTO usage (tenant_id, day, api_key_id, points)"
    " VALUES (:tenant_id, current_date, NULL, 7), (:tenant_id, current_date, :api_key_id, 5)"
)
_TENANT_TABLES = text(
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid"
    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id' AND NOT a.attisdropped"
    " ORDER BY c.relname"
)


@dataclass
class FuzzTenants:
    actor: TenantHandle
    other: TenantHandle
    values: ArgumentValues
    secrets: list[str]  # strings that only the other tenant has


async def fuzz_tenants(make_tenant: Callable[..., Awaitable[TenantHandle]], owner: AsyncEngine) -> FuzzTenants:
    """An acting ENTERPRISE tenant and another tenant, each with rows in every tenant table."""
    actor = await make_tenant(Plan.ENTERPRISE, FUZZ_SIZE, slug=f"actor-{uuid.uuid4().hex[:8]}")
    other = await make_tenant(Plan.SCALE, FUZZ_SIZE, slug=f"other-{uuid.uuid4().hex[:8]}")
    async with owner.connect() as connection:
        await connection.execute(
            text("UPDATE tenants SET rate_limit_per_minute = :budget WHERE id = :id"),
            {"budget": UNSPENDABLE_BUDGET, "id": actor.id},
        )
    for tenant in (actor, other):
        await _add_rows(owner, tenant)
    async with tenant_transaction(owner, other.id) as db:
        for statement in _MARK:
            await db.write(text(statement), slug=other.slug)
    own_rows, other_rows = await _rows(owner, actor), await _rows(owner, other)
    credentials = {str(actor.user_id(role)) for role in Role}
    own = _values(actor, own_rows, skip_users=credentials)  # its users' tokens stay valid
    return FuzzTenants(
        actor=actor,
        other=other,
        values=ArgumentValues(own=own, other=_values(other, other_rows)),
        secrets=_secrets(other, other_rows),
    )


async def _add_rows(owner: AsyncEngine, tenant: TenantHandle) -> None:
    """API keys, more users, audit entries and usage, which seeding leaves out."""
    async with tenant_transaction(owner, tenant.id) as db:
        keys = [await create_key(db, name=f"key {i} {tenant.slug}", role=Role.VIEWER) for i in range(2)]
        for i in range(2):
            await insert_user(db, email=f"extra{i}@{tenant.slug}.example", name=f"Extra {i}", role=Role.MEMBER)
            await db.write(_AUDIT, actor=f"platform:test:{tenant.slug}", changes=json.dumps({"tenant": tenant.slug}))
        await db.write(_USAGE, api_key_id=keys[0].id)


async def _rows(owner: AsyncEngine, tenant: TenantHandle) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tenant in every table with a `tenant_id`, read as the owner."""
    tables = await tenant_tables(owner)
    async with tenant_transaction(owner, tenant.id) as db:
        return {
            table: [
                dict(row._mapping)
                for row in await db.all(text(f'SELECT * FROM "{table}" WHERE tenant_id = :tenant_id'))
            ]
            for table in tables
        }


def _cursor(row: dict[str, Any]) -> str:
    return Cursor(row.get("created_at") or row["occurred_at"], row["id"]).encode()


def _values(
    tenant: TenantHandle, rows: dict[str, list[dict[str, Any]]], skip_users: Collection[str] = ()
) -> TenantValues:
    ids: dict[str, list[str]] = {type_name: [] for type_name in ROW_TYPES.values()}
    for table, type_name in ROW_TYPES.items():
        ids[type_name] = [to_global_id(type_name, row["id"]) for row in rows[table] if str(row["id"]) not in skip_users]
    ids["Tenant"] = [to_global_id("Tenant", tenant.id)]
    return TenantValues(
        ids=ids,
        raw_ids=[str(row["id"]) for table in ROW_TYPES for row in rows[table]],
        tracking_numbers=[row["tracking_number"] for row in rows["shipments"]],
        cursors=[_cursor(row) for table in PAGED_TABLES for row in rows[table]],
        emails=[row["email"] for table in ("users", "customers") for row in rows[table] if row["email"]],
    )


def _secrets(tenant: TenantHandle, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    found = {tenant.slug, str(tenant.id), to_global_id("Tenant", tenant.id)}
    for table, table_rows in rows.items():
        for row in table_rows:
            found |= {str(value) for value in row.values() if isinstance(value, uuid.UUID)}
            if table in ROW_TYPES:
                found.add(to_global_id(ROW_TYPES[table], row["id"]))
    found |= {row["tracking_number"] for row in rows["shipments"]}
    found |= {row["prefix"] for row in rows["api_keys"]}
    found |= {_cursor(row) for table in PAGED_TABLES for row in rows[table]}
    return sorted(found)


async def tenant_tables(owner: AsyncEngine) -> list[str]:
    """Every table with a `tenant_id` column, from the catalog: a table added later is covered too."""
    async with owner.connect() as connection:
        return [row.relname for row in await connection.execute(_TENANT_TABLES)]


def checksum_sql(tables: list[str]) -> TextClause:
    """(name, rows, md5 of the rows as text) of one tenant per table, and of its `tenants` row."""
    parts = [
        f"SELECT '{table}' AS name, count(*) AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
        f' AS digest FROM "{table}" t WHERE tenant_id = :tenant_id'
        for table in tables
    ]
    parts.append(
        "SELECT 'tenants', count(*), md5(coalesce(string_agg(t::text, ','), '')) FROM tenants t WHERE id = :tenant_id"
    )
    return text(" UNION ALL ".join(parts))


@dataclass
class Tally:
    """What a run did, to check that most operations really ran."""

    examples: int = 0
    executed: int = 0  # `data` was not null
    naming_other: int = 0  # operations with an id, tracking number or cursor of the other tenant
    roots: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return (
            f"{self.examples} operations, {self.naming_other} naming the other tenant's rows, "
            f"{self.executed} executed; statuses {dict(self.statuses)}; "
            f"error codes {dict(self.codes.most_common())}"
        )


Send = Callable[[str, Role], Awaitable[httpx.Response]]
ROLES = st.sampled_from([Role.ADMIN] * 6 + [Role.MEMBER, Role.VIEWER])  # ADMIN may run every mutation
_ROOT = re.compile(r"^ {2}(\w+)", re.MULTILINE)  # a root field, as graphql.print_ast indents it


ANSWER_SECONDS = 60  # far beyond any one request of the fuzz


class IsolationFuzz:
    """Send generated operations as the acting tenant; check each response, and the other
    tenant's rows before and after each.

    Hypothesis calls examples synchronously, so `run` goes in a worker thread and hands each
    request to the event loop the app lives on."""

    def __init__(self, tenants: FuzzTenants, owner: AsyncEngine, sdl: str, send: Send) -> None:
        self.tenants = tenants
        self.owner = owner
        self.send = send
        self.strategy = operations(sdl, tenants.values)
        self.tally = Tally()
        self.checksums: TextClause | None = None
        self.last: dict[str, tuple[int, str]] = {}  # the other tenant's rows after the last operation

    async def other_rows(self) -> dict[str, tuple[int, str]]:
        """Checksums of the other tenant's rows, read as the owner."""
        if self.checksums is None:
            self.checksums = checksum_sql(await tenant_tables(self.owner))
        async with tenant_transaction(self.owner, self.tenants.other.id) as db:
            return {row.name: (row.n, row.digest) for row in await db.all(self.checksums)}

    async def run(self, examples: int) -> Tally:
        """Run `examples` operations; the other tenant's rows must end as they began, and stay so after each."""
        self.last = before = await self.other_rows()
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._examples, loop, examples)
        changed = _changed(before, await self.other_rows())
        assert not changed, f"the other tenant's {changed} changed during the run"
        return self.tally

    def _examples(self, loop: asyncio.AbstractEventLoop, examples: int) -> None:
        def on_loop(awaitable: Awaitable[Any]) -> Any:
            future = asyncio.run_coroutine_threadsafe(awaitable, loop)  # type: ignore[arg-type]
            try:
                return future.result(timeout=ANSWER_SECONDS)
            except TimeoutError:  # a request that never answers fails the example, not the whole suite
                future.cancel()
                raise

        @settings(PROFILE, max_examples=examples)
        @given(operation=self.strategy, role=ROLES)
        def example(operation: str, role: Role) -> None:
            response = on_loop(self.send(operation, role))
            self.check(operation, role, response)
            before, self.last = self.last, on_loop(self.other_rows())  # so replays while shrinking compare anew
            changed = _changed(before, self.last)
            assert not changed, f"the other tenant's {changed} changed as {role.value} through {operation}"

        example()

    def check(self, operation: str, role: Role, response: httpx.Response) -> None:
        body = response.text
        where = f"as {role.value} through {operation}\n-> HTTP {response.status_code} {body[:2000]}"
        leaked = [secret for secret in self.tenants.secrets if secret in body]
        assert not leaked, f"the response holds the other tenant's {leaked} {where}"
        assert response.status_code < 500, f"a server error {where}"
        assert "INTERNAL_SERVER_ERROR" not in body, f"an internal error {where}"
        self._count(operation, response)

    def _count(self, operation: str, response: httpx.Response) -> None:
        tally = self.tally
        tally.examples += 1
        tally.statuses[response.status_code] += 1
        tally.roots.update(_ROOT.findall(operation))
        tally.naming_other += any(secret in operation for secret in self.tenants.secrets)
        payload = response.json()
        if isinstance(payload, dict):
            tally.executed += payload.get("data") is not None
            for error in payload.get("errors") or []:
                tally.codes[(error.get("extensions") or {}).get("code", "?")] += 1


def _changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def graphql_sender(client: httpx.AsyncClient, tenant: TenantHandle) -> Send:
    async def send(operation: str, role: Role) -> httpx.Response:
        return await client.post("/graphql", json={"query": operation}, headers=tenant.headers(role))

    return send


__all__ = [
    "FUZZ_SIZE",
    "FuzzTenants",
    "IsolationFuzz",
    "Tally",
    "checksum_sql",
    "fuzz_tenants",
    "graphql_sender",
    "tenant_tables",
]
