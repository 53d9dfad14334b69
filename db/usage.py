"""Usage metering: the cost points each tenant, and each of its API keys, spent per UTC day.

Nothing is written to PostgreSQL per request. The budget's script (`db.buckets`) counts
each charge and refund in the Redis hash `tql:usage`, field `<tenant>:<day>:<api key or
empty>` (day: days since 1970-01-01, UTC), in the round trip it makes anyway; what Redis
cannot count (during an outage, or an operation that cost more than it was charged) this
process counts in `UsageCounts`. A `UsageFlusher` (db.usage_flusher) moves both into the
`usage` table:

1. claim: one script renames the hash to `tql:usage:batch:<uuid>` and notes the batch in
   `tql:usage:batches` with the time, so new counts start a new hash;
2. write: per tenant, one transaction under RLS adds the batch's points to `usage` and
   records `(tenant, batch)` in `usage_flushes`; a batch recorded there before is skipped;
3. forget: the batch's hash is deleted.

A flusher that dies between steps leaves its batch claimed, and any flusher takes over a
batch claimed more than `stale_after` seconds ago; step 2 makes that replay harmless, so
no point is lost or counted twice. docs/adr/0006-usage-metering.md has the reasons.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

import redis.exceptions
from redis.asyncio import Redis
from sqlalchemy import (
    Row,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import ApiKey, Tenant, flushes_table, usage_table
from db.transaction import TenantDB

log = logging.getLogger("tenantql.usage")

LIVE_KEY = "tql:usage"
BATCH_PREFIX = "tql:usage:batch:"
BATCHES_KEY = "tql:usage:batches"
_EPOCH = date(1970, 1, 1)
# Redis cannot be reached (as db.bucket_failover sees it); any other error is a bug and propagates.
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, asyncio.TimeoutError)

_api_keys = ApiKey.__table__
_tenants = Tenant.__table__

# KEYS[1] the live hash, KEYS[2] the claimed batches (id -> claim time); ARGV: a new batch id,
# the batch key prefix, seconds after which a claimed batch counts as abandoned.
# Returns the ids to flush: the abandoned ones (claimed anew) and the new one, if any counts.
_CLAIM = """
local now = tonumber(redis.call('TIME')[1])
local batches = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
for _, id in ipairs(batches) do redis.call('ZADD', KEYS[2], now, id) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], ARGV[2] .. ARGV[1])
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  table.insert(batches, ARGV[1])
end
return batches
"""
# KEYS as for _CLAIM; ARGV: the batch key prefix, a field prefix ('' for every tenant).
# Returns {batch id or '' for the live hash, field, points, ...}: one consistent snapshot.
_PENDING = """
local found = {}
local function collect(key, batch)
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if string.sub(entries[i], 1, #ARGV[2]) == ARGV[2] then
      table.insert(found, batch)
      table.insert(found, entries[i])
      table.insert(found, entries[i + 1])
    end
  end
end
collect(KEYS[1], '')
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do collect(ARGV[1] .. id, id) end
return found
"""


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def day_of(number: int) -> date:
    return _EPOCH + timedelta(days=number)


def today_number(clock: Callable[[], float] = time.time) -> int:
    """Today in UTC as the budget script counts days, from this process's wall clock."""
    return int(clock() // 86_400)


class Meter(NamedTuple):
    """Whose usage a charge counts: the tenant, and the API key its request came with."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID | None = None


class CountKey(NamedTuple):
    tenant_id: uuid.UUID
    day: int  # days since 1970-01-01, UTC
    api_key_id: uuid.UUID | None

    @property
    def field(self) -> str:
        return f"{self.tenant_id}:{self.day}:{self.api_key_id or ''}"

    @classmethod
    def parse(cls, field: bytes | str) -> CountKey:
        tenant, day, key = (field.decode() if isinstance(field, bytes) else field).split(":")
        return cls(uuid.UUID(tenant), int(day), uuid.UUID(key) if key else None)


class UsageCounts:
    """Points this process counted itself: charges while Redis was away, and what operations
    cost beyond what they were charged. Nothing here awaits, so a count is never torn."""

    def __init__(self) -> None:
        self._counts: defaultdict[CountKey, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, meter: Meter, day: int, points: int) -> None:
        if points:
            self._counts[CountKey(meter.tenant_id, day, meter.api_key_id)] += points

    def snapshot(self) -> dict[CountKey, int]:
        return dict(self._counts)

    def take(self) -> dict[CountKey, int]:
        counts, self._counts = self._counts, defaultdict(int)
        return {key: points for key, points in counts.items() if points}

    def give_back(self, counts: dict[CountKey, int]) -> None:
        for key, points in counts.items():
            self._counts[key] += points


class Waiting(NamedTuple):
    """Points counted and not yet in PostgreSQL; `batch` is None until a flush claims them."""

    batch: uuid.UUID | None
    key: CountKey
    points: int


class PendingUsage:
    """Everything counted and not yet flushed: Redis's hashes and this process's own counts."""

    def __init__(self, redis: Redis, counts: UsageCounts | None = None) -> None:
        self.redis = redis
        self.counts = counts if counts is not None else UsageCounts()
        self._claim = redis.register_script(_CLAIM)
        self._pending = redis.register_script(_PENDING)

    async def read(self, tenant_id: uuid.UUID | None, first: date, last: date) -> list[Waiting]:
        """The waiting counts of one tenant (None: of all) from day `first` to `last`.

        Without Redis, only this process's counts: a usage report should not fail with it."""
        prefix = f"{tenant_id}:" if tenant_id is not None else ""
        try:
            flat = await self._pending(keys=[LIVE_KEY, BATCHES_KEY], args=[BATCH_PREFIX, prefix])
        except REDIS_AWAY as error:
            log.warning("usage waiting in Redis left out of a report: %s: %s", type(error).__name__, error)
            flat = []
        waiting = [
            Waiting(uuid.UUID(batch.decode()) if batch else None, CountKey.parse(field), int(points))
            for batch, field, points in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
        ]
        waiting += [Waiting(None, key, points) for key, points in self.counts.snapshot().items()]
        span = range(day_number(first), day_number(last) + 1)
        return [w for w in waiting if w.key.day in span and (tenant_id is None or w.key.tenant_id == tenant_id)]

    async def claim(self, *, stale_after: float) -> list[str]:
        """Rename the live hash into a new batch; the ids of it and of abandoned batches."""
        ids = await self._claim(keys=[LIVE_KEY, BATCHES_KEY], args=[str(uuid.uuid4()), BATCH_PREFIX, stale_after])
        return [id_.decode() for id_ in ids]

    async def batch(self, batch_id: str) -> dict[CountKey, int]:
        fields = await self.redis.hgetall(BATCH_PREFIX + batch_id)
        return {CountKey.parse(field): int(points) for field, points in fields.items()}

    async def forget(self, batch_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.delete(BATCH_PREFIX + batch_id).zrem(BATCHES_KEY, batch_id).execute()

    async def hand_over(self, counts: dict[CountKey, int]) -> None:
        """Give this process's counts to Redis, for another process to flush."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, points in counts.items():
                pipe.hincrby(LIVE_KEY, key.field, points)
            await pipe.execute()


@dataclass(frozen=True, slots=True)
class KeyUsage:
    api_key_id: uuid.UUID
    name: str | None  # None only for a key that no longer exists
    prefix: str | None
    points: int


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    points: int  # with tokens and with every API key
    api_keys: tuple[KeyUsage, ...]  # the part spent with each key, most first


@dataclass(frozen=True, slots=True)
class TenantUsage:
    tenant_id: uuid.UUID
    slug: str
    days: tuple[DayUsage, ...]

    @property
    def points(self) -> int:
        return sum(day.points for day in self.days)


Run = Callable[[Any], Awaitable[Sequence[Row[Any]]]]  # a statement's rows, read with one tenant set


async def read_usage(db: TenantDB, first: date, last: date, *, pending: PendingUsage | None) -> list[DayUsage]:
    """The tenant's usage per day from `first` to `last`, with what still waits to be flushed.

    Read in this order so that a flush running meanwhile can make a report miss points for a
    moment, never count them twice: the table, then Redis, then which of the batches seen in
    Redis the table already holds (those are left out)."""
    stored = await _stored(db.all, db.tenant_id, first, last)
    waiting = await pending.read(db.tenant_id, first, last) if pending is not None else []
    return await _days(db.all, db.tenant_id, stored, waiting)


async def all_tenants_usage(
    owner_engine: AsyncEngine, first: date, last: date, *, pending: PendingUsage | None = None
) -> list[TenantUsage]:
    """Every tenant's usage per day from `first` to `last`, by slug: for platform operators.

    A cross-tenant read on the owner's engine, the platform's named path (as `db.platform`):
    RLS is forced on the owner too, so each tenant is read with its own tenant set, all in
    one REPEATABLE READ transaction. Its snapshot is taken before Redis is read, so, as in
    `read_usage`, a concurrent flush can hide points for a moment but never count them twice.
    `pending` (`PendingUsage(redis)` will do) adds what Redis holds unflushed."""
    async with owner_engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        async with connection.begin():

            async def run(statement: Any) -> Sequence[Row[Any]]:
                return (await connection.execute(statement)).all()

            tenants = await run(select(_tenants.c.id, _tenants.c.slug).order_by(_tenants.c.slug))
            waiting: defaultdict[uuid.UUID, list[Waiting]] = defaultdict(list)
            for entry in await pending.read(None, first, last) if pending is not None else []:
                waiting[entry.key.tenant_id].append(entry)
            report = []
            for tenant in tenants:
                await connection.execute(text("SELECT set_config('app.tenant_id', :id, true)"), {"id": str(tenant.id)})
                stored = await _stored(run, tenant.id, first, last)
                days = await _days(run, tenant.id, stored, waiting[tenant.id])
                report.append(TenantUsage(tenant.id, tenant.slug, tuple(days)))
            return report


async def _stored(run: Run, tenant_id: uuid.UUID, first: date, last: date) -> Sequence[Row[Any]]:
    table = usage_table.c
    return await run(
        select(table.day, table.api_key_id, table.points).where(
            table.tenant_id == tenant_id, table.day.between(first, last)
        )
    )


async def _days(run: Run, tenant_id: uuid.UUID, stored: Iterable[Row[Any]], waiting: list[Waiting]) -> list[DayUsage]:
    totals: defaultdict[tuple[date, uuid.UUID | None], int] = defaultdict(int)
    for row in stored:
        totals[row.day, row.api_key_id] += row.points
    if batches := {entry.batch for entry in waiting if entry.batch is not None}:
        flushed = flushes_table.c
        done = {
            row.batch_id
            for row in await run(
                select(flushed.batch_id).where(flushed.tenant_id == tenant_id, flushed.batch_id.in_(batches))
            )
        }
        waiting = [entry for entry in waiting if entry.batch not in done]
    for entry in waiting:
        totals[day_of(entry.key.day), entry.key.api_key_id] += entry.points
    keys: dict[uuid.UUID, Row[Any]] = {}
    if key_ids := {key_id for _, key_id in totals if key_id is not None}:
        c = _api_keys.c
        rows = await run(select(c.id, c.name, c.prefix).where(c.tenant_id == tenant_id, c.id.in_(key_ids)))
        keys = {row.id: row for row in rows}
    by_day: defaultdict[date, dict[uuid.UUID | None, int]] = defaultdict(dict)
    for (day, key_id), points in totals.items():
        by_day[day][key_id] = points
    report = []
    for day, parts in sorted(by_day.items()):
        per_key = [
            KeyUsage(key_id, getattr(keys.get(key_id), "name", None), getattr(keys.get(key_id), "prefix", None), n)
            for key_id, n in parts.items()
            if key_id is not None and n
        ]
        per_key.sort(key=lambda used: (-used.points, str(used.api_key_id)))
        if (total := sum(parts.values())) or per_key:
            report.append(DayUsage(day, total, tuple(per_key)))
    return report


__all__ = [
    "BATCHES_KEY",
    "BATCH_PREFIX",
    "LIVE_KEY",
    "REDIS_AWAY",
    "CountKey",
    "DayUsage",
    "KeyUsage",
    "Meter",
    "PendingUsage",
    "TenantUsage",
    "UsageCounts",
    "Waiting",
    "all_tenants_usage",
    "day_number",
    "day_of",
    "read_usage",
    "today_number",
]
