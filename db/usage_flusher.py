"""The usage flusher: moves metered usage from Redis and this process into PostgreSQL.

Claiming a batch, writing it tenant by tenant under RLS with a ledger of what was written,
and forgetting it are described in db.usage; this module runs them on a timer and once
more at shutdown, with its own connection and Redis client so it never competes with
requests.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.compiled_statements import DriverError
from db.engine import create_app_engine
from db.models import flushes_table, usage_table
from db.redis_client import open_redis
from db.transaction import tenant_transaction
from db.usage import REDIS_AWAY, CountKey, PendingUsage, UsageCounts, day_of

log = logging.getLogger("tenantql.usage")

LEDGER_KEPT = timedelta(days=7)  # far longer than a claimed batch waits for a flusher
_UNIQUE_DAY = "uq_usage_tenant_id_day_api_key_id"


class UsageFlusher:
    """Moves counted usage into PostgreSQL every `every` seconds, and once more when closed.

    Usage: `flusher = UsageFlusher.connect(database_url, redis_url, counts)` in the lifespan,
    `await flusher.aclose()` at its end."""

    def __init__(
        self, engine: AsyncEngine, pending: PendingUsage, *, every: float = 60.0, stale_after: float = 300.0
    ) -> None:
        if every <= 0:
            raise ValueError("the flush interval must be positive")
        self.engine = engine
        self.pending = pending
        self.every = every
        self.stale_after = stale_after
        self._held: set[str] = set()  # batches this flusher claimed and could not finish yet
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._owned = False

    @classmethod
    def connect(
        cls,
        database_url: str,
        redis_url: str,
        counts: UsageCounts,
        *,
        every: float = 60.0,
        statement_timeout_ms: int = 15_000,
    ) -> UsageFlusher:
        """A started flusher with a connection and a Redis client of its own, closed with it:
        a flush never waits for the request pool, nor a request for a flush."""
        engine = create_app_engine(database_url, pool_size=1, statement_timeout_ms=statement_timeout_ms)
        redis = open_redis(redis_url, socket_timeout=5.0)
        flusher = cls(engine, PendingUsage(redis, counts), every=every)
        flusher._owned = True
        flusher.start()
        return flusher

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval(), name="tenantql-usage-flusher")

    async def aclose(self) -> None:
        """Stop the timer (never mid-flush), flush once more, and hand to Redis what PostgreSQL refused."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task])
        try:
            await self.flush()
            if left := self.pending.counts.take():
                try:
                    await self.pending.hand_over(left)
                except REDIS_AWAY:
                    log.error("usage lost at shutdown, neither PostgreSQL nor Redis took it: %s", _describe(left))
        finally:
            if self._owned:
                await self.pending.redis.aclose()
                await self.engine.dispose()

    async def flush(self) -> None:
        """Move what this process counted, then every batch it can claim; failures stay for the next flush."""
        async with self._lock:
            if counts := self.pending.counts.take():
                written = await self._write_all(counts, uuid.uuid4())
                self.pending.counts.give_back({key: n for key, n in counts.items() if key.tenant_id not in written})
            try:
                claimed = await self.pending.claim(stale_after=self.stale_after)
            except REDIS_AWAY as error:
                log.warning("usage stays in Redis until it answers: %s: %s", type(error).__name__, error)
                claimed = []
            for batch_id in sorted(self._held.union(claimed)):
                await self._flush_batch(batch_id)

    async def _every_interval(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.every)
            except TimeoutError:
                try:
                    await self.flush()
                except Exception:  # the next flush tries again; the timer must outlive a bad one
                    log.exception("usage flush failed")

    async def _flush_batch(self, batch_id: str) -> None:
        self._held.add(batch_id)
        try:
            counts = await self.pending.batch(batch_id)
            written = await self._write_all(counts, uuid.UUID(batch_id))
            if written >= {key.tenant_id for key in counts}:
                await self.pending.forget(batch_id)
                self._held.discard(batch_id)
        except REDIS_AWAY as error:
            log.warning("usage batch %s stays in Redis: %s: %s", batch_id, type(error).__name__, error)

    async def _write_all(self, counts: dict[CountKey, int], batch_id: uuid.UUID) -> set[uuid.UUID]:
        """Write each tenant's counts in its own transaction; the tenants now in PostgreSQL."""
        by_tenant: defaultdict[uuid.UUID, dict[CountKey, int]] = defaultdict(dict)
        for key, points in counts.items():
            by_tenant[key.tenant_id][key] = points
        written = set()
        for tenant_id, rows in by_tenant.items():
            try:
                await self._write(tenant_id, batch_id, rows)
            except (SQLAlchemyError, OSError, *DriverError) as error:  # the opening BEGIN goes to the driver itself
                log.warning("usage of tenant %s waits for the next flush: %s", tenant_id, error)
            else:
                written.add(tenant_id)
        return written

    async def _write(self, tenant_id: uuid.UUID, batch_id: uuid.UUID, counts: dict[CountKey, int]) -> None:
        """Add one tenant's part of a batch to `usage`, unless an earlier try already did."""
        async with tenant_transaction(self.engine, tenant_id) as db:
            first_time = await db.write(
                upsert(flushes_table)
                .values(tenant_id=tenant_id, batch_id=batch_id)
                .on_conflict_do_nothing()
                .returning(flushes_table.c.batch_id)
            )
            if not first_time:
                return
            rows = [
                {"tenant_id": tenant_id, "day": day_of(key.day), "api_key_id": key.api_key_id, "points": points}
                for key, points in counts.items()
                if points
            ]
            if rows:
                statement = upsert(usage_table).values(rows)
                await db.write(
                    statement.on_conflict_do_update(
                        constraint=_UNIQUE_DAY,
                        set_={"points": usage_table.c.points + statement.excluded.points, "updated_at": func.now()},
                    )
                )
            await db.write(
                delete(flushes_table).where(
                    flushes_table.c.tenant_id == tenant_id, flushes_table.c.flushed_at < func.now() - LEDGER_KEPT
                )
            )


# -- reading -----------------------------------------------------------------------------------


def _describe(counts: dict[CountKey, int]) -> str:
    return ", ".join(f"{key.field}={points}" for key, points in sorted(counts.items()))


__all__ = ["LEDGER_KEPT", "UsageFlusher"]
