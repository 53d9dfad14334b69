"""A tenant's users: who may act for it, with which role, and whether they still may.

The last active admin rule is kept by `lock_active_admins`: a change that could remove an
admin first locks every active admin row of the tenant, so two admins demoting each other
at once are serialized and the second one counts what the first one left.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert

from auth.authenticate import UserRecord
from auth.tenant import Role
from db.models import User
from db.transaction import TenantDB

users = User.__table__
STANDING_REFUSED = "TQ401"  # the SQLSTATE `user_standing_is` raises (migration 0005)


def standing_check(user_id: uuid.UUID, role: Role) -> str:
    """The check a request with a user's token opens its transaction with (`TenantDB(opening_check=…)`):
    it fails unless the user exists in the transaction's tenant, is active and has `role`.

    Inlined into a simple query like the tenant in `begin_sql`, and as safely: a `uuid.UUID`
    and a `Role`'s own value are the only text it ever holds."""
    if not isinstance(user_id, uuid.UUID):
        raise TypeError(f"user_id must be a UUID, not {type(user_id).__name__}")
    return f"SELECT user_standing_is('{user_id}', '{Role(role).value}')"


class StandingDiffers(Exception):
    """The user is not, or no longer, what the request's token said: `user` is how it is now
    (None: it does not exist in the tenant)."""

    def __init__(self, user: UserRecord | None) -> None:
        super().__init__("the user's standing differs from the token's")
        self.user = user


async def open_for_user(db: TenantDB) -> None:
    """Open `db`'s transaction, whose opening check is a `standing_check`; raises StandingDiffers.

    One round trip for `BEGIN`, the tenant setting and the check together (ADR 0011): the user
    is read on every request, never cached, so a deactivation or a demotion holds from the next
    request on, in every process."""
    try:
        await db.open()
    except asyncpg.PostgresError as error:
        if getattr(error, "sqlstate", None) != STANDING_REFUSED:
            raise
        raise StandingDiffers(_standing(getattr(error, "detail", None))) from None


def _standing(detail: str | None) -> UserRecord | None:
    """What `user_standing_is` found, from its error's DETAIL: `null` or `{"role": …, "active": …}`."""
    found = orjson.loads(detail or "null")
    return None if found is None else UserRecord(role=Role(found["role"]), active=bool(found["active"]))


async def list_users(db: TenantDB) -> list[Row[Any]]:
    return list(
        await db.all(select(users).where(users.c.tenant_id == db.tenant_id).order_by(users.c.created_at, users.c.id))
    )


async def insert_user(db: TenantDB, *, email: str, name: str | None, role: Role) -> Row[Any] | None:
    """The new active user, or None if the tenant already has one with this email."""
    rows = await db.write(
        insert(users)
        .values(tenant_id=db.tenant_id, email=email, name=name, role=role, active=True)
        .on_conflict_do_nothing(index_elements=["tenant_id", "email"])
        .returning(*users.c)
    )
    return rows[0] if rows else None


async def lock_active_admins(db: TenantDB) -> list[uuid.UUID]:
    """The ids of the tenant's active admins, locked until the transaction ends.

    Under READ COMMITTED a row another transaction demoted meanwhile is re-checked after
    its lock is released and drops out, so the count is the one this change would leave.
    Rows are locked in id order, so two such changes cannot deadlock each other.
    """
    rows = await db.all(
        select(users.c.id)
        .where(users.c.tenant_id == db.tenant_id, users.c.role == Role.ADMIN, users.c.active.is_(True))
        .order_by(users.c.id)
        .with_for_update()
    )
    return [row.id for row in rows]


async def find_user(db: TenantDB, user_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
    statement = select(users).where(users.c.tenant_id == db.tenant_id, users.c.id == user_id)
    return await db.one_or_none(statement.with_for_update() if for_update else statement)


async def update_user(db: TenantDB, user_id: uuid.UUID, **values: Any) -> Row[Any]:
    [row] = await db.write(
        update(users)
        .where(users.c.tenant_id == db.tenant_id, users.c.id == user_id)
        .values(**values)
        .returning(*users.c)
    )
    return row


__all__ = [
    "STANDING_REFUSED",
    "StandingDiffers",
    "find_user",
    "insert_user",
    "list_users",
    "lock_active_admins",
    "open_for_user",
    "standing_check",
    "update_user",
    "users",
]
