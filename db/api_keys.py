"""API keys: made once, stored as a hash, found by that hash, revoked for good.

A key is `tql_<prefix>_<secret>`: the prefix (8 characters) is stored and shown to tell
keys apart; the secret is 256 random bits shown once and never stored. Because keys are
that random, a plain SHA-256 is enough to store them (a slow password hash would only
slow every request) and lets a key be found by an index on its hash.

A key names its tenant, so its row is read before any tenant is set: the transaction
sets `app.api_key_hash`, which the `api_keys` select policy admits (migration 0002).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.jwt import Claims
from auth.tenant import Role
from db.models import ApiKey
from db.transaction import TenantDB

KEY_PREFIX = "tql_"
_SELECT_BY_HASH = "SELECT tenant_id, id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
_TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = $1 AND id = $2"


def hash_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as created: `key` is shown to its owner this once."""

    id: uuid.UUID
    key: str
    prefix: str


def make_key() -> tuple[str, str]:
    """A fresh key and its visible prefix."""
    prefix = KEY_PREFIX + secrets.token_hex(4)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


async def create_key(db: TenantDB, *, name: str, role: Role) -> NewKey:
    key, prefix = make_key()
    [row] = await db.write(
        ApiKey.__table__.insert()
        .values(tenant_id=db.tenant_id, name=name, prefix=prefix, key_hash=hash_of(key), role=role)
        .returning(ApiKey.__table__.c.id)
    )
    return NewKey(id=row.id, key=key, prefix=prefix)


async def revoke_key(db: TenantDB, key_id: uuid.UUID) -> datetime | None:
    """Revoke the tenant's key; its revocation time, or None if the tenant has no such key."""
    table = ApiKey.__table__
    rows = await db.write(
        update(table)
        .where(table.c.tenant_id == db.tenant_id, table.c.id == key_id)
        .values(revoked_at=text("coalesce(revoked_at, now())"))
        .returning(table.c.revoked_at)
    )
    return rows[0].revoked_at if rows else None


async def list_keys(db: TenantDB) -> list[ApiKey]:
    table = ApiKey.__table__
    rows = await db.all(select(table).where(table.c.tenant_id == db.tenant_id).order_by(table.c.created_at, table.c.id))
    return list(rows)


class ApiKeyDirectory:
    """Implements auth's ApiKeyVerifier: the claims a key stands for, checked on every request.

    Nothing about a key is cached, so a revocation holds from the next request on. Use
    is recorded in `last_used_at` at most once a minute per key and process, so a busy key
    does not turn every request into a write.
    """

    def __init__(self, engine: AsyncEngine, *, touch_every: float = 60.0) -> None:
        self.engine = engine
        self.touch_every = touch_every
        self._touched: dict[uuid.UUID, float] = {}

    async def __call__(self, key: str, /) -> tuple[Claims, uuid.UUID] | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        key_hash = hash_of(key)
        async with self.engine.connect() as connection:
            driver = await connection.get_raw_connection()
            raw = driver.driver_connection
            async with raw.transaction():
                await raw.execute("SELECT set_config('app.api_key_hash', $1, true)", key_hash)
                row = await raw.fetchrow(_SELECT_BY_HASH, key_hash)
                if row is None:
                    return None
                if self._due(row["id"]):
                    await raw.execute("SELECT set_config('app.tenant_id', $1, true)", str(row["tenant_id"]))
                    await raw.execute(_TOUCH, row["tenant_id"], row["id"])
        claims = Claims(user_id=None, tenant_id=row["tenant_id"], role=Role(row["role"]))
        return claims, row["id"]

    def _due(self, key_id: uuid.UUID) -> bool:
        now = time.monotonic()
        if self._touched.get(key_id, -self.touch_every) + self.touch_every > now:
            return False
        self._touched[key_id] = now
        return True


__all__ = ["KEY_PREFIX", "ApiKeyDirectory", "NewKey", "create_key", "hash_of", "list_keys", "make_key", "revoke_key"]
