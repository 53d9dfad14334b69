"""The data the load runs on: seeded with `tenantql seed`, then read back through the API.

Seeding goes through the project's own command, so the bench measures the data a user
would have. Tokens are minted the way `tenantql token` mints them (the tenant's first
active MEMBER, signed with the server's secret), and each tenant's tracking numbers and
shipment ids come from the API itself, so every request body names rows of its own tenant.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from bench.config import DataSet
from bench.load import PlannedRequest
from bench.operations import PLAN, Operation

if TYPE_CHECKING:
    from tenantql.settings import Settings

FINAL_STATUSES = frozenset({"DELIVERED", "CANCELLED"})
SEEDED_TABLES = ("tenants", "users", "customers", "vehicles", "drivers", "shipments", "tracking_events")
TOKEN_TTL_SECONDS = 4 * 3600


@dataclass(frozen=True, slots=True)
class TenantPlan:
    slug: str
    tenant_id: uuid.UUID
    token: str  # a MEMBER's: reads, and records tracking events
    tracking_numbers: tuple[str, ...]
    open_shipment_ids: tuple[str, ...]  # global ids of shipments that still take events


def seed(tenantql: Path, data: DataSet, env: dict[str, str]) -> str:
    """Run `tenantql seed` with the standard sizes; a second run adds nothing."""
    completed = subprocess.run(
        [str(tenantql), *data.seed_args()], env=env, capture_output=True, text=True, check=False, timeout=900
    )
    if completed.returncode != 0:
        raise RuntimeError(f"tenantql seed failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed.stdout


async def vacuum_analyze(owner_url: str) -> None:
    """Statistics and visibility maps as autovacuum would leave them, and on disk, before
    anything is measured.

    Right after a first seed the tables have no statistics yet, and autovacuum catches up
    at a moment of its choosing, in the middle of some run; doing it first makes a fresh
    home measure like a reused one. The seed's server writes its pages (some 90 MB) when it
    stops, into the kernel's cache, which writes them to disk half a minute later, in the
    middle of the first runs: on a clean clone those were the slowest of the bench (Q1 765
    req/s, p99 63 ms, against 885-1,001 and 29-41 ms on reused homes) until the bench
    synced first (Q1 990 req/s, p99 30 ms, on the next clean clone).
    """
    import asyncpg

    from bench.ceiling import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(owner_url))
    try:
        await connection.execute(f"VACUUM (ANALYZE) {', '.join(SEEDED_TABLES)}")
    finally:
        await connection.close()
    await asyncio.to_thread(os.sync)


UNLIMITED_BUDGET = 100_000_000  # points per minute: far beyond what one machine can spend


async def lift_budgets(owner_url: str, slugs: Sequence[str], *, reason: str) -> None:
    """Put the load's tenants on ENTERPRISE with a budget no run can spend.

    A SCALE tenant refills 167 points a second and Q2 costs 252, so at the target speeds the
    runs would measure the budgets, not the server. Every request is still charged and
    refunded in Redis as usual: only the refusals go. The change goes through the platform's
    own path (`db.platform.set_plan`), audited like an operator's.
    """
    from auth.tenant import Plan
    from db.engine import create_owner_engine
    from db.platform import set_plan

    engine = create_owner_engine(owner_url)
    try:
        for slug in slugs:
            await set_plan(
                engine,
                slug,
                Plan.ENTERPRISE,
                rate_limit_per_minute=UNLIMITED_BUDGET,
                actor="platform:bench",
                reason=reason,
            )
    finally:
        await engine.dispose()


async def mint_tokens(settings: Settings, slugs: Sequence[str]) -> dict[str, tuple[uuid.UUID, str]]:
    """`tenantql token --role member` for each slug, in one process: slug → (tenant id, token)."""
    from sqlalchemy import select

    from auth.tenant import Role
    from db.models import Tenant
    from tenantql.cli import demo_token, owner_engine

    tokens = {}
    async with owner_engine(settings) as engine:
        async with engine.connect() as connection:
            ids = dict((await connection.execute(select(Tenant.slug, Tenant.id).where(Tenant.slug.in_(slugs)))).all())
        for slug in slugs:
            if slug not in ids:
                raise SystemExit(f"tenant {slug!r} is missing: was the data set seeded?")
            tokens[slug] = (ids[slug], await demo_token(engine, settings, slug, Role.MEMBER, TOKEN_TTL_SECONDS))
    return tokens


async def plan_tenants(
    base_url: str,
    tokens: dict[str, tuple[uuid.UUID, str]],
    *,
    per_tenant: int = 20,
    client: httpx.AsyncClient | None = None,
) -> list[TenantPlan]:
    """Each tenant's newest shipments, read through the API with its own token (through
    `client` when given, say one calling the app in process)."""
    plans = []
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
        for slug, (tenant_id, token) in tokens.items():
            answer = await post(client, token, orjson.dumps({"query": PLAN, "variables": {"first": 100}}))
            nodes = [edge["node"] for edge in answer["data"]["shipments"]["edges"]]
            open_ids = [node["id"] for node in nodes if node["status"] not in FINAL_STATUSES]
            if not nodes or not open_ids:
                raise SystemExit(f"tenant {slug} has no shipments to benchmark with")
            plans.append(
                TenantPlan(
                    slug=slug,
                    tenant_id=tenant_id,
                    token=token,
                    tracking_numbers=tuple(node["trackingNumber"] for node in nodes[:per_tenant]),
                    open_shipment_ids=tuple(open_ids[:per_tenant]),
                )
            )
    return plans


async def post(client: httpx.AsyncClient, token: str, body: bytes) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    answer: dict[str, Any] = response.json()
    if response.status_code != 200 or answer.get("errors"):
        raise RuntimeError(f"the API refused a planning request ({response.status_code}): {response.text[:500]}")
    return answer


def requests_for(
    operation: Operation, tenants: Sequence[TenantPlan], *, first: int = 50, register: bool = False
) -> list[PlannedRequest]:
    """The requests wrk rotates through, interleaved so that consecutive ones go to different tenants.

    `register=True` gives the bodies that register a persisted query (query and hash together)."""
    per_tenant: list[list[PlannedRequest]] = []
    for tenant in tenants:
        if operation.operation_name == "Q1":
            variables = [{"trackingNumber": number} for number in tenant.tracking_numbers]
        elif operation.operation_name == "Q2":
            variables = [{"first": first}]
        elif operation.operation_name == "Q3":
            variables = [{"shipmentId": shipment_id} for shipment_id in tenant.open_shipment_ids]
        else:
            raise ValueError(f"no variables for {operation.name}")
        body = operation.registration_body if register else operation.body
        per_tenant.append([PlannedRequest(tenant.token, body(v)) for v in variables])
    longest = max(len(requests) for requests in per_tenant)
    return [requests[i] for i in range(longest) for requests in per_tenant if i < len(requests)]


__all__ = [
    "FINAL_STATUSES",
    "TenantPlan",
    "mint_tokens",
    "plan_tenants",
    "post",
    "requests_for",
    "seed",
    "vacuum_analyze",
]
