"""Usage metering below the API: counted with the budget's charges, flushed once, read under RLS.

These tests use a Redis of the module's own, so the session app's flusher never claims
their counts; PostgreSQL is the session's, and every test makes its own tenants.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from auth.tenant import Plan, Role
from db import api_keys
from db.buckets import Budget, LocalBuckets, RedisBuckets
from db.models import flushes_table, usage_table
from db.transaction import TenantDB, tenant_transaction
from db.usage import (
    LIVE_KEY,
    CountKey,
    Meter,
    PendingUsage,
    UsageCounts,
    all_tenants_usage,
    day_number,
    read_usage,
    today_number,
)
from db.usage_flusher import UsageFlusher
from tenantql.embedded import EmbeddedRedis

BUDGET = Budget.per_minute(100_000)


@pytest.fixture(scope="module")
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("usage-redis"), durable=False)
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def today() -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + today_number())


async def stored(owner_engine, tenant_id: uuid.UUID) -> dict[tuple[date, uuid.UUID | None], int]:
    """The tenant's `usage` rows, read by the owner with the tenant set (RLS binds the owner too)."""
    table = usage_table.c
    async with tenant_transaction(owner_engine, tenant_id) as db:
        rows = await db.all(select(table.day, table.api_key_id, table.points).where(table.tenant_id == tenant_id))
    return {(row.day, row.api_key_id): row.points for row in rows}


async def spend(buckets: RedisBuckets, meter: Meter, requested: int, actual: int) -> None:
    """What the cost limit does for one operation: charge the requested cost, refund the rest."""
    charge = await buckets.charge(meter.tenant_id, BUDGET, requested, meter=meter)
    assert charge.charged
    if requested > actual:
        await buckets.refund(meter.tenant_id, BUDGET, requested - actual, charge=charge, meter=meter)


async def test_the_budget_script_counts_the_net_points_of_metered_charges_only(redis):
    buckets, tenant = RedisBuckets(redis), uuid.uuid4()
    meter = Meter(tenant)
    await spend(buckets, meter, requested=52, actual=14)
    await buckets.charge(tenant, BUDGET, 30)  # not metered: public tracking's visitors, say
    refused = await buckets.charge(tenant, Budget(capacity=10, restore_rate=0.001), 500, meter=meter)
    assert not refused.charged
    field = CountKey(tenant, today_number(), None).field
    assert int(await redis.hget(LIVE_KEY, field)) == 14
    await redis.hdel(LIVE_KEY, field)  # a tenant that does not exist: no flush could take it


async def test_flushing_again_or_from_two_flushers_at_once_counts_each_point_once(
    redis, app_engine, owner_engine, make_tenant
):
    first, second = await make_tenant(Plan.STARTER), await make_tenant(Plan.SCALE)
    async with tenant_transaction(owner_engine, second.id) as db:
        key = await api_keys.create_key(db, name="scanner", role=Role.VIEWER)
    buckets = RedisBuckets(redis)
    # Abandoned batches are taken over at once, so both flushers go for every batch.
    flushers = [UsageFlusher(app_engine, PendingUsage(redis), stale_after=0) for _ in range(2)]
    expected = {first.id: 0, second.id: 0, key.id: 0}
    for round_ in range(5):
        for tenant_id, key_id in ((first.id, None), (second.id, None), (second.id, key.id)):
            await spend(buckets, Meter(tenant_id, key_id), requested=20 + round_, actual=7 + round_)
            expected[key_id or tenant_id] += 7 + round_
        await asyncio.gather(*(flusher.flush() for flusher in flushers))
        await flushers[0].flush()
    day = today()
    assert await stored(owner_engine, first.id) == {(day, None): expected[first.id]}
    assert await stored(owner_engine, second.id) == {(day, None): expected[second.id], (day, key.id): expected[key.id]}


async def test_a_batch_left_half_written_by_a_crashed_flusher_is_finished_once(
    redis, app_engine, owner_engine, make_tenant
):
    done, undone = await make_tenant(), await make_tenant()
    buckets, pending = RedisBuckets(redis), PendingUsage(redis)
    await spend(buckets, Meter(done.id), requested=40, actual=40)
    await spend(buckets, Meter(undone.id), requested=25, actual=25)
    # A flusher claimed the counts and wrote one tenant's part, then died.
    crashed = UsageFlusher(app_engine, pending)
    [batch_id] = await pending.claim(stale_after=300)
    counts = await pending.batch(batch_id)
    await crashed._write(done.id, uuid.UUID(batch_id), {k: n for k, n in counts.items() if k.tenant_id == done.id})
    # Its batch is still waiting in Redis, but a report does not count the part written twice.
    async with tenant_transaction(app_engine, done.id) as db:
        [report] = await read_usage(db, today(), today(), pending=pending)
    assert report.points == 40

    await UsageFlusher(app_engine, pending, stale_after=300).flush()  # not abandoned long enough yet
    assert await stored(owner_engine, undone.id) == {}
    await UsageFlusher(app_engine, pending, stale_after=0).flush()
    assert await stored(owner_engine, done.id) == {(today(), None): 40}
    assert await stored(owner_engine, undone.id) == {(today(), None): 25}
    assert not await redis.exists(f"tql:usage:batch:{batch_id}")


async def test_the_local_fallback_counts_charges_and_refunds_and_its_counts_are_flushed(
    redis, app_engine, owner_engine, make_tenant
):
    tenant = await make_tenant()
    counts = UsageCounts()
    local, meter = LocalBuckets(usage=counts), Meter(tenant.id)
    charge = await local.charge(tenant.id, BUDGET, 52, meter=meter)
    local.clear()  # Redis answered again: the levels go, the counts stay
    await local.refund(tenant.id, BUDGET, 38, charge=charge, meter=meter)
    await local.charge(tenant.id, Budget(capacity=10, restore_rate=0.001), 500, meter=meter)  # refused
    assert counts.snapshot() == {CountKey(tenant.id, charge.usage_day, None): 14}
    await UsageFlusher(app_engine, PendingUsage(redis, counts)).flush()
    assert len(counts) == 0
    assert await stored(owner_engine, tenant.id) == {(today(), None): 14}


async def test_a_report_adds_what_waits_in_redis_and_in_process_to_what_was_flushed(
    redis, app_engine, owner_engine, make_tenant
):
    tenant, other = await make_tenant(Plan.SCALE), await make_tenant()
    async with tenant_transaction(owner_engine, tenant.id) as db:
        key = await api_keys.create_key(db, name="dock door", role=Role.MEMBER)
    counts = UsageCounts()
    buckets, pending = RedisBuckets(redis), PendingUsage(redis, counts)
    await spend(buckets, Meter(tenant.id, key.id), requested=30, actual=30)
    await spend(buckets, Meter(other.id), requested=99, actual=99)
    await UsageFlusher(app_engine, pending).flush()
    await spend(buckets, Meter(tenant.id), requested=12, actual=5)  # waits in Redis
    counts.add(Meter(tenant.id, key.id), today_number(), 3)  # waits in process
    counts.add(Meter(tenant.id), day_number(today() - timedelta(days=400)), 8)  # outside the range

    async with tenant_transaction(app_engine, tenant.id) as db:
        [day] = await read_usage(db, today() - timedelta(days=1), today(), pending=pending)
    assert (day.day, day.points) == (today(), 30 + 5 + 3)
    [used] = day.api_keys
    assert (used.api_key_id, used.name, used.prefix, used.points) == (key.id, "dock door", key.prefix, 33)

    everyone = {report.tenant_id: report for report in await all_tenants_usage(owner_engine, today(), today())}
    assert everyone[tenant.id].points == 30 and everyone[other.id].points == 99  # flushed only
    everyone = await all_tenants_usage(owner_engine, today(), today(), pending=pending)
    assert {report.tenant_id: report.points for report in everyone}[tenant.id] == 38


async def test_usage_rows_are_tenant_rows_under_row_level_security(app_engine, owner_engine, make_tenant):
    acme, globex = await make_tenant(), await make_tenant()
    for tenant, points in ((acme, 5), (globex, 7)):
        async with tenant_transaction(owner_engine, tenant.id) as db:
            await db.write(usage_table.insert().values(tenant_id=tenant.id, day=today(), points=points))
            await db.write(flushes_table.insert().values(tenant_id=tenant.id, batch_id=uuid.uuid4()))

    async with tenant_transaction(app_engine, acme.id) as db:
        seen = {row.tenant_id for row in await db.all(text("SELECT tenant_id FROM usage"))}
        ledger = {row.tenant_id for row in await db.all(text("SELECT tenant_id FROM usage_flushes"))}
        changed = await db.write(
            text("UPDATE usage SET points = 0 WHERE tenant_id = :other RETURNING id"), other=globex.id
        )
        [report] = await read_usage(db, today(), today(), pending=None)
    assert seen == ledger == {acme.id} and changed == []
    assert report.points == 5
    for table in ("usage", "usage_flushes"):
        with pytest.raises(DBAPIError, match="row-level security"):
            async with tenant_transaction(app_engine, acme.id) as db:
                columns = "day, points" if table == "usage" else "batch_id"
                values = "current_date, 1" if table == "usage" else "gen_random_uuid()"
                await db.write(
                    text(f"INSERT INTO {table} (tenant_id, {columns}) VALUES (:other, {values})"), other=globex.id
                )

    async with owner_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, array_agg(p.cmd ORDER BY p.cmd) AS commands"
                " FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname"
                " WHERE c.relname IN ('usage', 'usage_flushes') GROUP BY 1, 2, 3"
            )
        )
        tables = {row.relname: (row.relrowsecurity, row.relforcerowsecurity, row.commands) for row in rows}
    everything = (True, True, ["DELETE", "INSERT", "SELECT", "UPDATE"])
    assert tables == {"usage": everything, "usage_flushes": everything}


async def test_counts_a_flush_could_not_write_stay_for_the_next_when_the_connection_drops(
    redis, app_engine, owner_engine, make_tenant, monkeypatch
):
    """A connection lost under the flusher (here at the BEGIN it sends to the driver itself)
    fails that tenant's write only: its counts wait for the next flush, none is lost."""
    tenant = await make_tenant()
    counts = UsageCounts()
    counts.add(Meter(tenant.id), today_number(), 21)
    flusher = UsageFlusher(app_engine, PendingUsage(redis, counts))
    begin = TenantDB._begin

    async def dropped(self: TenantDB) -> Any:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(TenantDB, "_begin", dropped)
    await flusher.flush()
    assert counts.snapshot() == {CountKey(tenant.id, today_number(), None): 21}
    monkeypatch.setattr(TenantDB, "_begin", begin)
    await flusher.flush()
    assert len(counts) == 0
    assert await stored(owner_engine, tenant.id) == {(today(), None): 21}
