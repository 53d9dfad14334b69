"""The tenant directory: who a token's `tenant_id` is, cached briefly in-process.

A request needs its tenant's plan and status before it runs. Caching for a few seconds
keeps that off the hot path, and a plan change or suspension still takes effect within
the cache lifetime. Concurrent misses for one tenant share a single query.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tenant import Plan, TenantRecord, TenantStatus
from db.models import Tenant
from db.transaction import tenant_transaction

_tenants = Tenant.__table__
_SELECT_TENANT = select(
    _tenants.c.id,
    _tenants.c.slug,
    _tenants.c.name,
    _tenants.c.plan,
    _tenants.c.status,
    _tenants.c.rate_limit_per_minute,
)


class TenantDirectory:
    """Implements auth's TenantLookup. Reads under RLS: the application role sees only
    the tenants row of the tenant its transaction is set to."""

    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self._cache: dict[uuid.UUID, tuple[float, TenantRecord | None]] = {}
        self._pending: dict[uuid.UUID, asyncio.Future[TenantRecord | None]] = {}

    async def __call__(self, tenant_id: uuid.UUID, /) -> TenantRecord | None:
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if (pending := self._pending.get(tenant_id)) is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TenantRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[tenant_id] = future
        try:
            record = await self._load(tenant_id)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        else:
            future.set_result(record)
            self._cache[tenant_id] = (time.monotonic() + self.ttl, record)
            return record
        finally:
            del self._pending[tenant_id]

    def forget(self, tenant_id: uuid.UUID | None = None) -> None:
        """Drop cached entries, so the next request reads the tenant afresh."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def _load(self, tenant_id: uuid.UUID) -> TenantRecord | None:
        async with tenant_transaction(self.engine, tenant_id) as db:
            row = await db.one_or_none(_SELECT_TENANT.where(_tenants.c.id == tenant_id))
        if row is None:
            return None
        return TenantRecord(
            id=row.id,
            slug=row.slug,
            name=row.name,
            plan=Plan(row.plan),
            status=TenantStatus(row.status),
            rate_limit_per_minute=row.rate_limit_per_minute,
        )


__all__ = ["TenantDirectory"]
