"""Each tenant's budget of query cost: a continuously refilling bucket in Redis.

One Lua script charges and refunds atomically, so every server process shares one bucket
per tenant. It reads the clock from the Redis server, never a process's own, and lets an
idle tenant's key expire once its bucket would be full again: a full bucket is the
default, so it needs no storage.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from auth.tenant import Plan

PLAN_BUDGETS = {Plan.STARTER: 1_000, Plan.GROWTH: 5_000, Plan.SCALE: 10_000, Plan.ENTERPRISE: 50_000}
KEY_PREFIX = "tql:bucket:"

# KEYS[1] the bucket; ARGV: capacity, restore rate per second, amount (negative refunds).
# Returns {charged 0/1, points available (string), seconds until the amount could be paid}.
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
return {charged, tostring(points), tostring(wait)}
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

    @property
    def seconds_until_full(self) -> int:
        return math.ceil((self.budget.capacity - self.available) / self.budget.restore_rate)


class RedisBuckets:
    """The shared buckets; one Redis round trip per charge or refund."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_SCRIPT)  # EVALSHA, loading the script only when missing

    async def charge(self, tenant_id: uuid.UUID, budget: Budget, amount: float) -> Charge:
        """Take `amount` if the bucket holds it; otherwise take nothing and say when it would."""
        return await self._run(tenant_id, budget, amount)

    async def refund(self, tenant_id: uuid.UUID, budget: Budget, amount: float) -> Charge:
        """Give back points charged but not used; the bucket never exceeds its capacity."""
        return await self._run(tenant_id, budget, -max(0.0, amount))

    async def status(self, tenant_id: uuid.UUID, budget: Budget) -> Charge:
        return await self._run(tenant_id, budget, 0)

    async def _run(self, tenant_id: uuid.UUID, budget: Budget, amount: float) -> Charge:
        charged, available, wait = await self._script(
            keys=[KEY_PREFIX + str(tenant_id)], args=[budget.capacity, budget.restore_rate, amount]
        )
        return Charge(bool(int(charged)), float(available), budget, float(wait))


__all__ = ["KEY_PREFIX", "PLAN_BUDGETS", "Budget", "Charge", "RedisBuckets"]
