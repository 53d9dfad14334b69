"""A tenant's users, managed by its admins; the tenant always keeps one active admin."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Row

from auth.tenant import Role
from db import users
from resolvers.audit import record
from resolvers.context import Context
from resolvers.ids import id_of
from resolvers.outcomes import Checks, Outcome, already_exists, invalid, not_found

# One `@`, something on each side, a dot in the domain and no spaces: not RFC 5322, but it
# refuses what is surely a typo and lets through every address a mail server would take.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


async def list_users(ctx: Context) -> list[Row[Any]]:
    ctx.require(Role.ADMIN)
    return await users.list_users(ctx.db)


async def invite_user(ctx: Context, *, email: str, name: str | None, role: Role) -> Outcome[Row[Any]]:
    """Add an active user. Emails are kept in lowercase, so `Ann@x.io` and `ann@x.io` are one user."""
    ctx.require(Role.ADMIN)
    checks = Checks()
    address = checks.text("email", email, required=True, max_length=320)
    if address and not checks.errors and not _EMAIL.match(address):
        checks.fail("email", "email is not an email address")
    display_name = checks.text("name", name)
    if failed := checks.outcome():
        return failed
    values = {"email": (address or "").lower(), "name": display_name, "role": role}
    async with ctx.db.atomic():
        row = await users.insert_user(ctx.db, **values)
        if row is not None:  # a taken email inserted nothing: nothing to audit
            await record(ctx, "user.invite", row.id, values)
    if row is None:
        return already_exists(("input", "email"), "a user with this email already exists")
    return Outcome(row)


async def change_user_role(ctx: Context, *, user_id: str, role: Role) -> Outcome[Row[Any]]:
    ctx.require(Role.ADMIN)
    return await _change(ctx, user_id, "user.change_role", {"role": role})


async def deactivate_user(ctx: Context, *, user_id: str) -> Outcome[Row[Any]]:
    """Deactivate a user: their tokens are refused from the next request on."""
    ctx.require(Role.ADMIN)
    return await _change(ctx, user_id, "user.deactivate", {"active": False})


async def _change(ctx: Context, global_id: str, action: str, values: dict[str, Any]) -> Outcome[Row[Any]]:
    """Apply `values` to one user, refusing to leave the tenant without an active admin.

    The tenant's active admins are locked before the user is read (always in this order, so
    concurrent changes cannot deadlock), and the count is taken under that lock.
    """
    user_id = id_of(global_id, "User")
    if user_id is None:
        return not_found(("id",), "user")
    removes_an_admin = values.get("role", Role.ADMIN) is not Role.ADMIN or values.get("active") is False
    async with ctx.db.atomic():
        admins = await users.lock_active_admins(ctx.db) if removes_an_admin else []
        user = await users.find_user(ctx.db, user_id, for_update=True)
        if user is None:
            return not_found(("id",), "user")
        if admins == [user.id]:
            return invalid(("id",), "this is the tenant's last active admin: make another user ADMIN first")
        changes = {key: value for key, value in values.items() if getattr(user, key) != value}
        if not changes:
            return Outcome(user)
        user = await users.update_user(ctx.db, user_id, **changes)
        await record(ctx, action, user_id, changes)
    return Outcome(user)


__all__ = ["change_user_role", "deactivate_user", "invite_user", "list_users"]
