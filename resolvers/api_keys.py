"""API keys, managed by a tenant's admins: a key acts as its tenant with the role it was given."""

from __future__ import annotations

from typing import Any

from auth.authenticate import API_KEY_PLANS
from auth.tenant import Role
from db import api_keys
from db.api_keys import NewKey
from resolvers.audit import record
from resolvers.context import Context
from resolvers.errors import Forbidden
from resolvers.ids import id_of
from resolvers.outcomes import Checks, Outcome, not_found


async def list_api_keys(ctx: Context) -> list[Any]:
    ctx.require(Role.ADMIN)
    return await api_keys.list_keys(ctx.db)


async def create_api_key(ctx: Context, *, name: str, role: Role) -> Outcome[tuple[NewKey, Any]]:
    ctx.require(Role.ADMIN)
    if ctx.tenant.plan not in API_KEY_PLANS:
        raise Forbidden(f"API keys need the SCALE or ENTERPRISE plan; this tenant is on {ctx.tenant.plan.value}")
    checks = Checks()
    key_name = checks.text("name", name, required=True, max_length=100)
    if failed := checks.outcome():
        return failed
    async with ctx.db.atomic():
        created = await api_keys.create_key(ctx.db, name=key_name or "", role=role)
        # The key and its hash are secrets: the log keeps only what the key list shows.
        await record(ctx, "api_key.create", created.id, {"name": key_name, "role": role, "prefix": created.prefix})
        row = next(key for key in await api_keys.list_keys(ctx.db) if key.id == created.id)
    return Outcome((created, row))


async def revoke_api_key(ctx: Context, *, key_id: str) -> Outcome[Any]:
    ctx.require(Role.ADMIN)
    found = id_of(key_id, "ApiKey")
    if found is None:
        return not_found(("id",), "API key")
    async with ctx.db.atomic():
        revoked_at = await api_keys.revoke_key(ctx.db, found)
        if revoked_at is not None:
            await record(ctx, "api_key.revoke", found, {"revoked_at": revoked_at})
    if revoked_at is None:
        return not_found(("id",), "API key")
    row = next(key for key in await api_keys.list_keys(ctx.db) if key.id == found)
    return Outcome(row)


__all__ = ["create_api_key", "list_api_keys", "revoke_api_key"]
