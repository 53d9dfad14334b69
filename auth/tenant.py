"""Who a request acts for, fixed once its credentials are verified."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol


class Plan(enum.StrEnum):
    STARTER = "STARTER"
    GROWTH = "GROWTH"
    SCALE = "SCALE"
    ENTERPRISE = "ENTERPRISE"


class TenantStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class Role(enum.StrEnum):
    """Ordered: each role may do everything the roles below it may."""

    ADMIN = "ADMIN"
    MEMBER = "MEMBER"
    VIEWER = "VIEWER"

    @classmethod
    def from_claim(cls, value: object) -> Role | None:
        """Claims and the CLI spell roles in lowercase (`admin`); the enum in uppercase."""
        if isinstance(value, str) and value.islower():
            return cls.__members__.get(value.upper())
        return None

    def includes(self, other: Role) -> bool:
        return _RANK[self] >= _RANK[other]


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """The tenant as stored: what the credential check needs to know about it."""

    id: uuid.UUID
    slug: str
    name: str
    plan: Plan
    status: TenantStatus
    rate_limit_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The verified identity of one request; every tenant-scoped read and write starts here."""

    tenant_id: uuid.UUID
    slug: str
    name: str
    plan: Plan
    status: TenantStatus
    user_id: uuid.UUID | None
    role: Role
    request_id: str
    rate_limit_per_minute: int | None = None
    api_key_id: uuid.UUID | None = None


class TenantLookup(Protocol):
    """db/ implements it and tenantql/ passes it in, so auth/ never imports db/."""

    async def __call__(self, tenant_id: uuid.UUID, /) -> TenantRecord | None: ...


__all__ = ["Plan", "Role", "TenantContext", "TenantLookup", "TenantRecord", "TenantStatus"]
