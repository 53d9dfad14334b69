"""What platform changes wrote to a tenant's audit log, read as the owner: for the tests of
the admin endpoint and of the `tenants` command, which must audit alike."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import AuditEntry
from db.transaction import tenant_transaction


async def audit_rows(owner_engine: AsyncEngine, tenant_id: uuid.UUID) -> list[Any]:
    """(actor, action, target_id, changes) of each row, oldest first."""
    async with tenant_transaction(owner_engine, tenant_id) as db:
        return list(
            await db.all(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.target_id, AuditEntry.changes)
                .where(AuditEntry.tenant_id == tenant_id)
                .order_by(AuditEntry.occurred_at, AuditEntry.id)
            )
        )
