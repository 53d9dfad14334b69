"""The audit log: who changed what in a tenant, written in the same transaction as the change.

Because the row is written by the mutation's own transaction, a change that is rolled back
leaves no audit row, and a committed change always has one. Rows live under RLS like any
tenant table: a tenant's admins read their own log and nobody else's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, bindparam, insert, select

from auth.tenant import Role
from db.models import AuditEntry
from resolvers.context import Context
from resolvers.pagination import Page, PageRequest

_audit_log = AuditEntry.__table__
# Built once: every mutation writes one, and building it per call cost more than running it
# (db/compiled_statements.py).
_RECORD = insert(_audit_log).values(
    tenant_id=bindparam("audit_tenant"),
    actor=bindparam("audit_actor"),
    action=bindparam("audit_action"),
    target_id=bindparam("audit_target", type_=_audit_log.c.target_id.type),
    changes=bindparam("audit_changes", type_=_audit_log.c.changes.type),
)


def actor_of(ctx: Context) -> str:
    """`user:<id>`, or `api_key:<id>` for a request made with an API key."""
    tenant = ctx.tenant
    if tenant.api_key_id is not None:
        return f"api_key:{tenant.api_key_id}"
    return f"user:{tenant.user_id}" if tenant.user_id else "unknown"


async def record(
    ctx: Context, action: str, target_id: uuid.UUID | None, changes: Mapping[str, Any] | None = None
) -> None:
    """Write one audit row in the request's transaction; call it inside the mutation's `atomic()`."""
    await ctx.db.write(
        _RECORD,
        audit_tenant=ctx.db.tenant_id,
        audit_actor=actor_of(ctx),
        audit_action=action,
        audit_target=target_id,
        audit_changes=_jsonable(changes) if changes else None,
    )


async def list_audit_log(ctx: Context, first: int | None, after: str | None) -> Page[Row[Any]]:
    """The tenant's log, newest first, for its admins.

    Keyed on `(occurred_at, id)` like `ix_audit_log_tenant_newest`; `occurred_at` is also
    selected as `created_at`, the name page cursors are made from.
    """
    ctx.require(Role.ADMIN)
    request = PageRequest.parse(first, after)
    if request.first == 0:
        return Page([], False)
    table = _audit_log
    conditions = [table.c.tenant_id == ctx.db.tenant_id]
    if (past := request.after_clause(table.c.occurred_at, table.c.id, newest_first=True)) is not None:
        conditions.append(past)
    statement = (
        select(table, table.c.occurred_at.label("created_at"))
        .where(*conditions)
        .order_by(table.c.occurred_at.desc(), table.c.id.desc())
        .limit(request.first + 1)
    )
    return Page.from_rows(list(await ctx.db.all(statement)), request.first)


def _jsonable(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value if isinstance(value, str | int | float | bool | None) else str(value)
        for key, value in changes.items()
    }


__all__ = ["actor_of", "list_audit_log", "record"]
