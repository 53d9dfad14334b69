"""Platform operations on tenants: the one named path that creates, lists, re-plans, suspends and resumes them,
and sets their custom domains.

Only the owner role's engine can use it (the application role may read its own tenant's
row and nothing more), and nothing on the request path calls it. Every change writes an
audit row (who, what, why) into the tenant's own `audit_log` in the change's transaction,
so no change is ever committed unaudited and the tenant's admins can read what was done to
their account. Running servers see a change once their tenant cache expires
(TENANT_CACHE_SECONDS, 5 s by default).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tenant import Plan, Role, TenantStatus
from db.buckets import PLAN_BUDGETS
from db.models import AuditEntry, Tenant, User
from db.transaction import TenantDB, tenant_transaction

log = logging.getLogger(__name__)

_tenants = Tenant.__table__
_users = User.__table__
_audit_log = AuditEntry.__table__
_COLUMNS = (
    _tenants.c.id,
    _tenants.c.slug,
    _tenants.c.name,
    _tenants.c.plan,
    _tenants.c.status,
    _tenants.c.rate_limit_per_minute,
    _tenants.c.custom_domain,
    _tenants.c.created_at,
)

# A DNS label too (public tracking serves `<slug>.<TRACKING_DOMAIN>`): no hyphen at either end.
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")  # a host name of two labels or more
MAX_BUDGET = 2_147_483_647  # the column is a PostgreSQL integer


class PlatformError(ValueError):
    """A refused platform operation; the message says what to change.

    `field` names the argument at fault (as the Python functions here name it) and `code`
    is a UserError code, so the admin API can answer with `userErrors` like the tenant API."""

    code = "INVALID"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownTenant(PlatformError):
    code = "NOT_FOUND"

    def __init__(self, slug: str) -> None:
        super().__init__(f"no tenant with slug {slug!r}", field="slug")


class DomainTaken(PlatformError):
    code = "ALREADY_EXISTS"

    def __init__(self, domain: str) -> None:
        super().__init__(f"{domain!r} is already another tenant's custom domain", field="domain")


@dataclass(frozen=True, slots=True)
class PlatformTenant:
    """A tenant as the platform sees it: the stored row, override and creation time included."""

    id: uuid.UUID
    slug: str
    name: str
    plan: Plan
    status: TenantStatus
    rate_limit_per_minute: int | None
    custom_domain: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> PlatformTenant:
        return cls(
            id=row.id,
            slug=row.slug,
            name=row.name,
            plan=Plan(row.plan),
            status=TenantStatus(row.status),
            rate_limit_per_minute=row.rate_limit_per_minute,
            custom_domain=row.custom_domain,
            created_at=row.created_at,
        )


async def create_tenant(
    engine: AsyncEngine,
    *,
    slug: str,
    name: str,
    plan: Plan,
    admin_email: str,
    admin_name: str | None = None,
    actor: str,
    reason: str | None = None,
) -> tuple[PlatformTenant, bool]:
    """The tenant SLUG and whether this call created it, with its first ADMIN user.

    Idempotent: for a slug that exists, the existing tenant comes back and nothing is
    written, whatever the other arguments say (a concurrent create of the same slug waits
    on the slug's unique index, then finds the winner's tenant)."""
    slug, name, admin_email = _slug(slug), _text("name", name, 200), _email(admin_email)
    admin_name = _text("admin_name", admin_name, 200) if admin_name and admin_name.strip() else None
    actor, reason, plan = _actor(actor), _reason(reason), Plan(plan)
    tenant_id, admin_id = uuid.uuid4(), uuid.uuid4()
    async with tenant_transaction(engine, tenant_id) as db:
        inserted = await db.write(
            upsert(_tenants)
            .values(id=tenant_id, slug=slug, name=name, plan=plan, status=TenantStatus.ACTIVE)
            .on_conflict_do_nothing(index_elements=["slug"])
            .returning(*_COLUMNS)
        )
        if not inserted:
            existing = await db.one_or_none(select(*_COLUMNS).where(_tenants.c.slug == slug))
            assert existing is not None  # tenants are never deleted
            return PlatformTenant.from_row(existing), False
        await db.write(
            insert(_users).values(tenant_id=tenant_id, id=admin_id, email=admin_email, name=admin_name, role=Role.ADMIN)
        )
        changes = {"slug": slug, "name": name, "plan": plan, "admin_user_id": admin_id, "admin_email": admin_email}
        await _audit(db, actor, "tenant.create", changes, reason)
    log.info("platform: %s created tenant %s (%s)", actor, slug, tenant_id)
    return PlatformTenant.from_row(inserted[0]), True


async def list_tenants(engine: AsyncEngine) -> list[PlatformTenant]:
    """Every tenant, oldest first. Reads `tenants` only, which RLS does not force on its owner."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(*_COLUMNS).order_by(_tenants.c.created_at, _tenants.c.slug))
        return [PlatformTenant.from_row(row) for row in rows]


async def find_tenant(engine: AsyncEngine, slug: str) -> PlatformTenant:
    async with engine.connect() as connection:
        row = (await connection.execute(select(*_COLUMNS).where(_tenants.c.slug == slug))).one_or_none()
    if row is None:
        raise UnknownTenant(slug)
    return PlatformTenant.from_row(row)


async def set_plan(
    engine: AsyncEngine,
    slug: str,
    plan: Plan,
    *,
    rate_limit_per_minute: int | None = None,
    actor: str,
    reason: str | None,
) -> tuple[PlatformTenant, bool]:
    """Put the tenant on PLAN; the tenant after the call and whether anything changed.

    `rate_limit_per_minute` overrides an ENTERPRISE tenant's budget (points per minute); any
    other plan has its fixed budget, so a plan change without one also drops an old override."""
    plan = Plan(plan)
    if rate_limit_per_minute is not None:
        if plan is not Plan.ENTERPRISE:
            raise PlatformError(
                f"only an ENTERPRISE tenant's budget can be set; {plan.value} has a fixed budget of "
                f"{PLAN_BUDGETS[plan]} points per minute",
                field="rate_limit_per_minute",
            )
        if not 1 <= rate_limit_per_minute <= MAX_BUDGET:
            raise PlatformError(
                f"the budget must be 1 to {MAX_BUDGET} points per minute", field="rate_limit_per_minute"
            )
    wanted = {"plan": plan, "rate_limit_per_minute": rate_limit_per_minute}
    return await _change(engine, slug, "tenant.set_plan", wanted, actor=actor, reason=reason)


async def suspend(engine: AsyncEngine, slug: str, *, actor: str, reason: str) -> tuple[PlatformTenant, bool]:
    """Refuse the tenant's requests (TENANT_SUSPENDED) and keep all of its data."""
    if _reason(reason) is None:
        raise PlatformError("a suspension needs a reason", field="reason")
    return await _change(engine, slug, "tenant.suspend", {"status": TenantStatus.SUSPENDED}, actor=actor, reason=reason)


async def resume(
    engine: AsyncEngine, slug: str, *, actor: str, reason: str | None = None
) -> tuple[PlatformTenant, bool]:
    """Serve a suspended tenant again."""
    return await _change(engine, slug, "tenant.resume", {"status": TenantStatus.ACTIVE}, actor=actor, reason=reason)


async def set_custom_domain(
    engine: AsyncEngine,
    slug: str,
    domain: str | None,
    *,
    actor: str,
    reason: str | None = None,
    tracking_domain: str | None = None,
) -> tuple[PlatformTenant, bool]:
    """Serve the tenant's public tracking at DOMAIN as well as at its subdomain; None clears it.

    Stored lowercase, as hosts are compared. A host under TRACKING_DOMAIN always names a
    tenant by its slug, so a custom domain there could never be reached and is refused."""
    wanted = _domain(domain, tracking_domain) if domain is not None else None
    try:
        return await _change(
            engine, slug, "tenant.set_custom_domain", {"custom_domain": wanted}, actor=actor, reason=reason
        )
    except IntegrityError as error:
        if wanted is None or "uq_tenants_custom_domain" not in str(error.orig):
            raise
        raise DomainTaken(wanted) from None


async def _change(
    engine: AsyncEngine, slug: str, action: str, wanted: dict[str, Any], *, actor: str, reason: str | None
) -> tuple[PlatformTenant, bool]:
    """Apply WANTED to the tenant's row and audit it, in one transaction; no difference, no write."""
    actor, reason = _actor(actor), _reason(reason)
    tenant_id = (await find_tenant(engine, slug)).id
    async with tenant_transaction(engine, tenant_id) as db:
        # Locked, so two operators changing one tenant at once each audit what they really changed.
        row = await db.one_or_none(select(*_COLUMNS).where(_tenants.c.id == tenant_id).with_for_update())
        if row is None:
            raise UnknownTenant(slug)
        before = PlatformTenant.from_row(row)
        different = {column: value for column, value in wanted.items() if getattr(before, column) != value}
        if not different:
            return before, False
        [after] = await db.write(
            update(_tenants).where(_tenants.c.id == tenant_id).values(**different).returning(*_COLUMNS)
        )
        changes = {**different, **{f"{column}_before": getattr(before, column) for column in different}}
        await _audit(db, actor, action, changes, reason)
    log.info("platform: %s did %s on tenant %s", actor, action, slug)
    return PlatformTenant.from_row(after), True


async def _audit(db: TenantDB, actor: str, action: str, changes: dict[str, Any], reason: str | None) -> None:
    await db.write(
        insert(_audit_log).values(
            tenant_id=db.tenant_id,
            actor=actor,
            action=action,
            target_id=db.tenant_id,
            changes={**{key: _jsonable(value) for key, value in changes.items()}, "reason": reason},
        )
    )


def _jsonable(value: object) -> object:
    return value if isinstance(value, int | float | bool | None) or type(value) is str else str(value)


def _slug(slug: str) -> str:
    if not SLUG.fullmatch(slug):
        raise PlatformError(
            f"invalid slug {slug!r}: 3 to 63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit",
            field="slug",
        )
    return slug


def _email(email: str) -> str:
    email = email.strip()
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise PlatformError(f"invalid admin email {email!r}", field="admin_email")
    return email


def _domain(domain: str, tracking_domain: str | None) -> str:
    name = domain.strip().lower().removesuffix(".")
    if not DOMAIN.fullmatch(name) or name.rpartition(".")[2].isdigit():
        raise PlatformError(f"invalid domain {domain!r}: a host name like track.example.com", field="domain")
    if tracking_domain and (name == tracking_domain or name.endswith(f".{tracking_domain}")):
        raise PlatformError(
            f"{name!r} is under TRACKING_DOMAIN ({tracking_domain}), whose hosts name tenants by slug", field="domain"
        )
    return name


def _text(field: str, value: str | None, limit: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit:
        raise PlatformError(f"the {field.replace('_', ' ')} must be 1 to {limit} characters", field=field)
    return value


def _actor(actor: str) -> str:
    """`platform:<channel>:<who>`, e.g. `platform:cli:alice`: a tenant's log tells platform work from its users'."""
    if not actor.startswith("platform:") or len(actor) > 200:
        raise PlatformError(
            f"the actor must name a platform operator, like 'platform:cli:alice', not {actor!r}", field="actor"
        )
    return actor


def _reason(reason: str | None) -> str | None:
    reason = (reason or "").strip()
    if len(reason) > 1000:
        raise PlatformError("the reason must be at most 1000 characters", field="reason")
    return reason or None


__all__ = [
    "DomainTaken",
    "PlatformError",
    "PlatformTenant",
    "UnknownTenant",
    "create_tenant",
    "find_tenant",
    "list_tenants",
    "resume",
    "set_custom_domain",
    "set_plan",
    "suspend",
]
