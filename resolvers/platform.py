"""What the platform-admin API's fields do: `db.platform` as the operator of one request.

Every change goes through `db.platform`, the one path that works across tenants, with the
owner role's engine that only the admin endpoint holds. A refusal there (an unknown slug,
a bad email, a domain taken) comes back as an Outcome's errors, for `userErrors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.platform import PlatformAdmin
from auth.tenant import Plan
from db import platform
from db.platform import PlatformError, PlatformTenant
from db.usage import PendingUsage, TenantUsage, all_tenants_usage
from resolvers.errors import BadUserInput
from resolvers.outcomes import FieldError, Outcome
from resolvers.usage import MAX_DAYS

Changed = tuple[PlatformTenant, bool]  # the tenant after the call, and whether it changed


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """Built once per admin request; `forget` tells this process's tenant caches of a change at once.

    Other processes see the change when their caches expire (TENANT_CACHE_SECONDS)."""

    admin: PlatformAdmin
    engine: AsyncEngine  # the owner role's
    request_id: str
    forget: Callable[[uuid.UUID], None]
    tracking_domain: str | None = None
    unflushed_usage: PendingUsage | None = None  # counted and not yet in PostgreSQL


PlatformInfo = strawberry.Info[PlatformContext, None]


async def list_tenants(context: PlatformContext) -> list[PlatformTenant]:
    return await platform.list_tenants(context.engine)


async def find_tenant(context: PlatformContext, slug: str) -> PlatformTenant | None:
    try:
        return await platform.find_tenant(context.engine, slug)
    except platform.UnknownTenant:
        return None


async def usage(context: PlatformContext, first: date, last: date) -> list[TenantUsage]:
    """Every tenant's cost points per day, with what is not yet flushed, as tenants' admins see their own."""
    if last < first:
        raise BadUserInput(f"`to` ({last}) is before `from` ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadUserInput(f"at most {MAX_DAYS} days at a time; ask for the rest in another query")
    return await all_tenants_usage(context.engine, first, last, pending=context.unflushed_usage)


async def create_tenant(
    context: PlatformContext,
    *,
    slug: str,
    name: str,
    plan: Plan,
    admin_email: str,
    admin_name: str | None,
    reason: str | None,
) -> Outcome[Changed]:
    return await _outcome(
        platform.create_tenant(
            context.engine,
            slug=slug,
            name=name,
            plan=plan,
            admin_email=admin_email,
            admin_name=admin_name,
            actor=context.admin.actor,
            reason=reason,
        ),
        prefix=("input",),
    )


async def set_plan(
    context: PlatformContext, *, slug: str, plan: Plan, rate_limit_per_minute: int | None, reason: str | None
) -> Outcome[Changed]:
    change = platform.set_plan(
        context.engine,
        slug,
        plan,
        rate_limit_per_minute=rate_limit_per_minute,
        actor=context.admin.actor,
        reason=reason,
    )
    return await _changed(context, change)


async def suspend(context: PlatformContext, *, slug: str, reason: str) -> Outcome[Changed]:
    return await _changed(context, platform.suspend(context.engine, slug, actor=context.admin.actor, reason=reason))


async def resume(context: PlatformContext, *, slug: str, reason: str | None) -> Outcome[Changed]:
    return await _changed(context, platform.resume(context.engine, slug, actor=context.admin.actor, reason=reason))


async def set_custom_domain(
    context: PlatformContext, *, slug: str, domain: str | None, reason: str | None
) -> Outcome[Changed]:
    change = platform.set_custom_domain(
        context.engine,
        slug,
        domain,
        actor=context.admin.actor,
        reason=reason,
        tracking_domain=context.tracking_domain,
    )
    return await _changed(context, change)


async def _changed(context: PlatformContext, change: Awaitable[Changed]) -> Outcome[Changed]:
    outcome = await _outcome(change)
    if outcome.ok and outcome.value is not None and outcome.value[1]:
        context.forget(outcome.value[0].id)
    return outcome


async def _outcome(change: Awaitable[Changed], prefix: tuple[str, ...] = ()) -> Outcome[Changed]:
    try:
        return Outcome(await change)
    except PlatformError as error:
        path = (*prefix, _camel(error.field)) if error.field else prefix
        return Outcome(errors=[FieldError(path, str(error), error.code)])


def _camel(name: str) -> str:
    """`admin_email` as the GraphQL argument is spelled: `adminEmail`."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


__all__ = [
    "Changed",
    "PlatformContext",
    "PlatformInfo",
    "create_tenant",
    "find_tenant",
    "list_tenants",
    "resume",
    "set_custom_domain",
    "set_plan",
    "suspend",
    "usage",
]
