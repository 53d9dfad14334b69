"""Each tenant's budget of query cost: a continuously refilling bucket in Redis.

One Lua script charges and refunds atomically, so every server process shares one bucket
per tenant. It reads the clock from the Redis server, never a process's own, and lets an
idle tenant's key expire once its bucket would be full again: a full bucket is the
default, so it needs no storage.

`LocalBuckets` does the same arithmetic in one process, for when Redis cannot be reached
(`db.bucket_failover`); both are `Buckets`, so callers never ask which one they hold.

A charge or refund given a `Meter` also counts the tenant's usage (`db.usage`): in the
same script, so metering costs no extra round trip, and only what the bucket really took
or gave back, so a refused charge counts nothing and the net is the operation's cost.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from redis.asyncio import Redis

from auth.tenant import Plan
from db.usage import LIVE_KEY, Meter, UsageCounts, today_number

PLAN_BUDGETS = {Plan.STARTER: 1_000, Plan.GROWTH: 5_000, Plan.SCALE: 10_000, Plan.ENTERPRISE: 50_000}
KEY_PREFIX = "tql:bucket:"

# KEYS[1] the bucket; ARGV: capacity, restore rate per second, amount (negative refunds).
# Metered (db.usage): KEYS[2] the usage hash; ARGV[4..7]: tenant, API key ('' for none), day
# ('' for today by the server's clock; a refund passes its charge's), points to count.
# Returns {charged 0/1, points available (string), seconds until the amount could be paid, usage day}.
_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(state[1])
local at = tonumber(state[2])
if points == nil or at == nil then
  points = capacity
else
  points = math.min(capacity, points + math.max(0, now - at) * rate)
end
local charged = 1
local wait = 0
if amount > points then
  charged = 0
  wait = (amount - points) / rate
else
  points = math.min(capacity, points - amount)
end
redis.call('HSET', KEYS[1], 'points', tostring(points), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate * 1000) + 1000)
local day = ''
if ARGV[4] then
  day = ARGV[6]
  if day == '' then day = tostring(math.floor(tonumber(clock[1]) / 86400)) end
  if charged == 1 and ARGV[7] ~= '0' then
    redis.call('HINCRBY', KEYS[2], ARGV[4] .. ':' .. day .. ':' .. ARGV[5], ARGV[7])
  end
end
return {charged, tostring(points), tostring(wait), day}
"""


@dataclass(frozen=True, slots=True)
class Budget:
    """A tenant's bucket: `capacity` points, refilling at `restore_rate` points a second."""

    capacity: int
    restore_rate: float

    @classmethod
    def per_minute(cls, points: int) -> Budget:
        """The contract's shape: the bucket holds one minute of budget."""
        return cls(capacity=points, restore_rate=points / 60)

    @classmethod
    def for_plan(cls, plan: Plan, override: int | None = None) -> Budget:
        if plan is Plan.ENTERPRISE and override:
            return cls.per_minute(override)
        return cls.per_minute(PLAN_BUDGETS[plan])


@dataclass(frozen=True, slots=True)
class Charge:
    """What a charge or refund left behind."""

    charged: bool
    available: float
    budget: Budget
    retry_after: float  # seconds until the refused amount could be paid; 0 when charged
    local: bool = False  # decided by this process's bucket, not the shared one
    usage_day: int | None = None  # the day (db.usage) a metered charge counted on; its refund counts there too

    @property
    def seconds_until_full(self) -> int:
        return math.ceil((self.budget.capacity - self.available) / self.budget.restore_rate)


class Buckets(Protocol):
    """Where budgets are kept; the cost limiter holds one and never asks which."""

    async def charge(
        self, tenant_id: uuid.UUID, budget: Budget, amount: int, *, meter: Meter | None = None
    ) -> Charge: ...

    async def refund(
        self,
        tenant_id: uuid.UUID,
        budget: Budget,
        amount: int,
        *,
        charge: Charge | None = None,
        meter: Meter | None = None,
    ) -> Charge: ...

    async def status(self, tenant_id: uuid.UUID, budget: Budget) -> Charge: ...


class _Arithmetic:
    """Charge, refund and status as one operation on a bucket: add `amount` points' worth of
    use (negative to give back) if the bucket holds it. Each store says how in `_apply`."""

    async def charge(self, tenant_id: uuid.UUID, budget: Budget, amount: int, *, meter: Meter | None = None) -> Charge:
        """Take `amount` if the bucket holds it; otherwise take nothing and say when it would."""
        return await self._apply(tenant_id, budget, amount, meter)

    async def refund(
        self,
        tenant_id: uuid.UUID,
        budget: Budget,
        amount: int,
        *,
        charge: Charge | None = None,
        meter: Meter | None = None,
    ) -> Charge:
        """Give back points charged but not used; the bucket never exceeds its capacity.

        `charge` says which day its usage counted on; whether it was local matters only to
        buckets that can move (`FailoverBuckets`): one store has one place to refund to."""
        return await self._apply(tenant_id, budget, -max(0, amount), meter, charge.usage_day if charge else None)

    async def status(self, tenant_id: uuid.UUID, budget: Budget) -> Charge:
        return await self._apply(tenant_id, budget, 0)

    async def _apply(
        self, tenant_id: uuid.UUID, budget: Budget, amount: int, meter: Meter | None = None, day: int | None = None
    ) -> Charge:
        raise NotImplementedError


class RedisBuckets(_Arithmetic):
    """The shared buckets; one Redis round trip per charge or refund."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_SCRIPT)  # EVALSHA, loading the script only when missing

    async def _apply(
        self, tenant_id: uuid.UUID, budget: Budget, amount: int, meter: Meter | None = None, day: int | None = None
    ) -> Charge:
        keys: list[str] = [KEY_PREFIX + str(tenant_id)]
        args: list[object] = [budget.capacity, budget.restore_rate, amount]
        if meter is not None:
            keys.append(LIVE_KEY)
            args += [str(meter.tenant_id), str(meter.api_key_id or ""), "" if day is None else day, amount]
        charged, available, wait, usage_day = await self._script(keys=keys, args=args)
        return Charge(
            bool(int(charged)), float(available), budget, float(wait), usage_day=int(usage_day) if usage_day else None
        )


class _Level(NamedTuple):
    points: float
    at: float  # clock reading when `points` was true
    full_at: float  # when the bucket will be full again, and the entry can go


class LocalBuckets(_Arithmetic):
    """One process's buckets, with the script's arithmetic on the process's monotonic clock.

    Only a bucket that is not full is stored, and one that would be full again is dropped,
    so memory follows the tenants active in the last minute, not every tenant ever seen.
    Metered charges count into `usage`, which outlives the levels: `clear()` keeps it."""

    sweep_interval = 10.0  # seconds between scans for idle tenants' entries

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        usage: UsageCounts | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock  # for usage days, which are calendar days
        self._levels: dict[uuid.UUID, _Level] = {}
        self._next_sweep = clock() + self.sweep_interval
        self.usage = usage if usage is not None else UsageCounts()

    def __len__(self) -> int:
        return len(self._levels)

    def clear(self) -> None:
        self._levels.clear()

    async def _apply(
        self, tenant_id: uuid.UUID, budget: Budget, amount: int, meter: Meter | None = None, day: int | None = None
    ) -> Charge:
        # No await in here: on one event loop a charge is as atomic as the script.
        now = self._clock()
        self._sweep(now)
        capacity, rate = budget.capacity, budget.restore_rate
        level = self._levels.get(tenant_id)
        points = capacity if level is None else min(capacity, level.points + max(0.0, now - level.at) * rate)
        charged, wait = True, 0.0
        if amount > points:
            charged, wait = False, (amount - points) / rate
        else:
            points = min(capacity, points - amount)
        if points >= capacity:
            self._levels.pop(tenant_id, None)
        else:
            self._levels[tenant_id] = _Level(points, now, now + (capacity - points) / rate)
        if meter is not None:
            day = today_number(self._wall_clock) if day is None else day
            if charged:
                self.usage.add(meter, day, amount)
        return Charge(charged, float(points), budget, wait, local=True, usage_day=day)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        for tenant_id in [tenant_id for tenant_id, level in self._levels.items() if level.full_at <= now]:
            del self._levels[tenant_id]


__all__ = ["KEY_PREFIX", "PLAN_BUDGETS", "Buckets", "Budget", "Charge", "LocalBuckets", "RedisBuckets"]
