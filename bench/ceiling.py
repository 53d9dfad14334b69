"""The ceiling: the same data as Q1 and Q2, fetched with asyncpg directly and the minimum SQL.

One statement per level, under Row Level Security as the application role, exactly as a
hand-written data layer would: `BEGIN; SELECT set_config(...)` as one simple query, then
for Q2 the page of shipments, customers by `id = ANY`, drivers by id, their vehicles by
id, the last 5 events per shipment via LATERAL, and `COMMIT` (Q1: the shipment by
tracking number and its customer). No GraphQL, no HTTP, no JSON: what is left is the
database's work and asyncpg's, the most the server could approach. It runs in one
process with the server's concurrency and a pool as large as the server's (workers x
DATABASE_POOL_SIZE), for the same fixed time. Run as `python -m bench.ceiling SPEC.json`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

PAGE = """SELECT id, tracking_number, status, customer_id, driver_id FROM shipments
WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2"""
CUSTOMERS = "SELECT id, name FROM customers WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
DRIVERS = "SELECT id, name, vehicle_id FROM drivers WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
VEHICLES = "SELECT id, plate FROM vehicles WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
LAST_EVENTS = """SELECT latest.shipment_id, latest.status, latest.occurred_at
FROM unnest($2::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (
  SELECT e.shipment_id, e.status, e.occurred_at FROM tracking_events AS e
  WHERE e.tenant_id = $1 AND e.shipment_id = wanted.id
  ORDER BY e.occurred_at DESC, e.id DESC LIMIT 5
) AS latest"""
BY_TRACKING_NUMBER = """SELECT id, tracking_number, status, customer_id FROM shipments
WHERE tenant_id = $1 AND tracking_number = $2 AND deleted_at IS NULL"""
CUSTOMER = "SELECT id, name FROM customers WHERE tenant_id = $1 AND id = $2"


@dataclass(frozen=True, slots=True)
class CeilingSpec:
    dsn: str  # the application role's, as asyncpg takes it (postgresql://…)
    operation: str  # "Q1" or "Q2"
    tenants: list[tuple[str, list[str]]]  # (tenant id, tracking numbers)
    first: int = 50
    concurrency: int = 16
    pool_size: int = 20
    seconds: float = 10.0
    warmup_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class CeilingResult:
    operation: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    statements_per_request: int  # BEGIN+set_config and COMMIT included
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def nested_shipments(connection: asyncpg.Connection, opening: str, tenant_id: uuid.UUID, first: int) -> int:
    """Q2's data; `opening` is the server's own `begin_sql(tenant_id)`, so both pay the same for RLS."""
    await connection.execute(opening)
    try:
        page = await connection.fetch(PAGE, tenant_id, first)
        customer_ids = list({row["customer_id"] for row in page})
        driver_ids = list({row["driver_id"] for row in page if row["driver_id"] is not None})
        shipment_ids = [row["id"] for row in page]
        customers = await connection.fetch(CUSTOMERS, tenant_id, customer_ids)
        drivers = await connection.fetch(DRIVERS, tenant_id, driver_ids)
        vehicle_ids = list({row["vehicle_id"] for row in drivers if row["vehicle_id"] is not None})
        vehicles = await connection.fetch(VEHICLES, tenant_id, vehicle_ids)
        events = await connection.fetch(LAST_EVENTS, tenant_id, shipment_ids)
        await connection.execute("COMMIT")
    except BaseException:
        await connection.execute("ROLLBACK")
        raise
    if not page or not customers:
        raise LookupError("no shipments: is this tenant seeded?")
    return len(page) + len(customers) + len(drivers) + len(vehicles) + len(events)


async def shipment_by_tracking_number(
    connection: asyncpg.Connection, opening: str, tenant_id: uuid.UUID, number: str
) -> int:
    await connection.execute(opening)
    try:
        shipment = await connection.fetchrow(BY_TRACKING_NUMBER, tenant_id, number)
        if shipment is None:
            raise LookupError(f"no shipment {number}")
        customer = await connection.fetchrow(CUSTOMER, tenant_id, shipment["customer_id"])
        await connection.execute("COMMIT")
    except BaseException:
        await connection.execute("ROLLBACK")
        raise
    return 1 + (customer is not None)


STATEMENTS = {"Q1": 4, "Q2": 7}


async def run(spec: CeilingSpec) -> CeilingResult:
    work = _work(spec)
    pool = await asyncpg.create_pool(
        spec.dsn,
        min_size=spec.pool_size,
        max_size=spec.pool_size,
        reset=_keep,  # COMMIT already cleared the transaction-local tenant; a reset would be one more round trip
        server_settings={"application_name": "tenantql-bench-ceiling", "jit": "off"},
    )
    try:
        await _drive(pool, work, spec.concurrency, spec.warmup_seconds, [])
        latencies: list[float] = []
        errors: list[BaseException] = []
        started = time.perf_counter()
        await _drive(pool, work, spec.concurrency, spec.seconds, latencies, errors)
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    latencies.sort()
    return CeilingResult(
        operation=spec.operation,
        requests=len(latencies),
        seconds=elapsed,
        errors=len(errors),
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        statements_per_request=STATEMENTS[spec.operation],
        first_error=repr(errors[0]) if errors else None,
    )


Work = Callable[[asyncpg.Connection, int], Awaitable[int]]


def _work(spec: CeilingSpec) -> Work:
    """The request number n → one transaction, rotating over tenants (and tracking numbers) like wrk does."""
    from db.transaction import begin_sql

    tenants = [(uuid.UUID(raw), numbers) for raw, numbers in spec.tenants]
    openings = [begin_sql(tenant_id) for tenant_id, _ in tenants]

    async def q1(connection: asyncpg.Connection, n: int) -> int:
        i = n % len(tenants)
        tenant_id, numbers = tenants[i]
        number = numbers[(n // len(tenants)) % len(numbers)]
        return await shipment_by_tracking_number(connection, openings[i], tenant_id, number)

    async def q2(connection: asyncpg.Connection, n: int) -> int:
        i = n % len(tenants)
        return await nested_shipments(connection, openings[i], tenants[i][0], spec.first)

    return {"Q1": q1, "Q2": q2}[spec.operation]


async def _drive(
    pool: asyncpg.Pool,
    work: Work,
    concurrency: int,
    seconds: float,
    latencies: list[float],
    errors: list[BaseException] | None = None,
) -> None:
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with pool.acquire() as connection:
                    await work(connection, next(counter))
            except Exception as error:
                if errors is None:
                    raise
                errors.append(error)
                continue
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _keep(connection: asyncpg.Connection) -> None:
    return None


def _percentile(ordered: Sequence[float], percent: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """`postgresql+asyncpg://…` (SQLAlchemy's form) → `postgresql://…` (asyncpg's)."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    raw: dict[str, Any] = json.loads(Path(args[0]).read_text())
    spec = CeilingSpec(**{**raw, "tenants": [tuple(t) for t in raw["tenants"]]})
    try:
        import uvloop  # the server runs on uvloop (uvicorn[standard]); so does its ceiling
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(asdict(result)))
    return 0


__all__ = ["CeilingResult", "CeilingSpec", "asyncpg_dsn", "nested_shipments", "run", "shipment_by_tracking_number"]

if __name__ == "__main__":
    sys.exit(main())
