"""Keep limiting query cost when Redis is away: shared buckets while it answers, per-process ones meanwhile.

A limiter that fails requests when its store is down turns a Redis outage into an API
outage, and one that stops limiting invites the overload it exists to prevent. So the
first call that cannot reach Redis is answered by this process's `LocalBuckets`, and so is
every call after it, with no Redis attempt (no added latency), until a background ping
finds Redis again; then the shared buckets take over and the local ones are forgotten.

Trade-off: each process's bucket holds the tenant's whole budget, so with N processes a
tenant may spend up to N times its budget during an outage. Dividing the budget by the
number of processes was not done because a process does not know how many siblings it
has (they scale, restart and die independently), and a wrong guess would throttle a
tenant that is well within its budget. Points charged or refunded in Redis stay there:
a refund of a shared charge that cannot reach Redis is dropped, never given locally, so
an outage never creates points.

How soon an outage is noticed is the client's affair: its socket timeouts and retry
policy decide how long the first failing call takes before it is answered locally.

Usage (`db.usage`) follows the points: counted in Redis with a shared charge, in this
process's `usage` with a local one, and not at all for a refund that is dropped, so a
tenant's usage is what its buckets really took. The local counts survive the return to
Redis; the usage flusher moves them to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import redis.exceptions
from redis.asyncio import Redis

from db.buckets import Budget, Charge, LocalBuckets, RedisBuckets
from db.usage import Meter, UsageCounts

log = logging.getLogger("tenantql.budgets")

# What "Redis cannot be reached" looks like; anything else (a script error, say) is a bug and propagates.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, asyncio.TimeoutError)
PROBE_TASK_NAME = "tenantql-budgets-probe"


class FailoverBuckets:
    """Redis buckets that fall back to per-process ones and return by themselves.

    Usage: `buckets = FailoverBuckets(redis)` in the lifespan, `await buckets.aclose()` at its end.
    `usage` is where metered charges that Redis did not take are counted."""

    def __init__(self, redis: Redis, *, probe_interval: float = 1.0, usage: UsageCounts | None = None) -> None:
        self.redis = redis
        self.probe_interval = probe_interval
        self.failovers = 0  # times the buckets went local, for /metrics
        self.degraded_since: float | None = None  # wall-clock time (time.time()) they went local
        self._shared = RedisBuckets(redis)
        self._local = LocalBuckets(usage=usage)
        self._probe: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def shared(self) -> bool:
        """True while the buckets live in Redis, shared by every process."""
        return self.degraded_since is None

    @property
    def usage(self) -> UsageCounts:
        return self._local.usage

    async def charge(self, tenant_id: uuid.UUID, budget: Budget, amount: int, *, meter: Meter | None = None) -> Charge:
        """Take `amount` if the bucket holds it; otherwise take nothing and say when it would."""
        if self.shared:
            try:
                return await self._shared.charge(tenant_id, budget, amount, meter=meter)
            except UNREACHABLE as error:
                self._go_local(error)
        return await self._local.charge(tenant_id, budget, amount, meter=meter)

    async def refund(
        self,
        tenant_id: uuid.UUID,
        budget: Budget,
        amount: int,
        *,
        charge: Charge | None = None,
        meter: Meter | None = None,
    ) -> Charge:
        """Give points back to the bucket that `charge` took them from (without it: the one in use now).

        A local charge is refunded locally even after Redis is back (a no-op by then, the local
        buckets being cleared); a shared one that cannot reach Redis is dropped."""
        local = charge.local if charge is not None else not self.shared
        if local:
            return await self._local.refund(tenant_id, budget, amount, charge=charge, meter=meter)
        if self.shared:
            try:
                return await self._shared.refund(tenant_id, budget, amount, charge=charge, meter=meter)
            except UNREACHABLE as error:
                self._go_local(error)
        return await self._local.status(tenant_id, budget)

    async def status(self, tenant_id: uuid.UUID, budget: Budget) -> Charge:
        if self.shared:
            try:
                return await self._shared.status(tenant_id, budget)
            except UNREACHABLE as error:
                self._go_local(error)
        return await self._local.status(tenant_id, budget)

    async def aclose(self) -> None:
        """Stop probing; the buckets stay where they are."""
        self._closed = True
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.wait([probe])  # unlike awaiting it, never mistakes its cancellation for ours

    def _go_local(self, error: BaseException) -> None:
        if not self.shared:
            return  # a concurrent call failed first: one warning and one probe per outage
        self.degraded_since = time.time()
        self.failovers += 1
        log.warning(
            "Redis unreachable (%s: %s): query budgets are kept per process until it answers again",
            type(error).__name__,
            error,
        )
        if not self._closed:
            self._probe = asyncio.create_task(self._probe_until_redis_answers(), name=PROBE_TASK_NAME)

    async def _probe_until_redis_answers(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.redis.ping()
            except Exception as error:  # whatever keeps PING from answering keeps the buckets local
                log.debug("Redis still unreachable (%s: %s)", type(error).__name__, error)
            else:
                break
        outage = time.time() - (self.degraded_since or time.time())
        self.degraded_since = None
        self._local.clear()
        self._probe = None
        log.info("Redis answers again after %.1f s: query budgets are shared again", outage)


__all__ = ["PROBE_TASK_NAME", "UNREACHABLE", "FailoverBuckets"]
