"""The platform-admin schema served at `/admin/graphql`: tenants across the platform, and changes to them.

A schema of its own, not fields of the tenant schema, so that no tenant credential can
reach a platform operation, not even by introspection, and the tenant schema cannot
reach the owner role. Each mutation takes a `reason`, written with the operator's name
into the tenant's audit log, and answers like the tenant API's: the tenant (null on
failure) and `userErrors`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection
from strawberry.types import ExecutionContext

from auth.tenant import TenantStatus as TenantStatusValue
from db.platform import PlatformTenant as TenantRecord
from db.usage import TenantUsage as TenantUsageRecord
from resolvers import platform
from resolvers.ids import to_global_id
from resolvers.outcomes import Outcome
from resolvers.platform import Changed, PlatformInfo
from schema.extensions.documents import DocumentCache, Limits, PreparedDocuments
from schema.extensions.error_codes import ErrorCodes
from schema.types.payloads import UserError
from schema.types.usage import UsageDay
from schema.types.viewer import Plan

TenantStatus = strawberry.enum(TenantStatusValue, name="TenantStatus")


@strawberry.type(description="A tenant as the platform sees it.")
class PlatformTenant:
    id: strawberry.ID = strawberry.field(description="The id the tenant API gives it (`viewer { tenant { id } }`).")
    tenant_id: uuid.UUID = strawberry.field(description="The `tenant_id` claim of its users' tokens.")
    slug: str
    name: str
    plan: Plan
    status: TenantStatus
    rate_limit_per_minute: int | None = strawberry.field(
        description="An ENTERPRISE tenant's budget in points per minute; null: the plan's."
    )
    custom_domain: str | None = strawberry.field(description="Where public tracking is served besides its subdomain.")
    created_at: datetime

    @classmethod
    def of(cls, tenant: TenantRecord) -> PlatformTenant:
        return cls(
            id=strawberry.ID(to_global_id("Tenant", tenant.id)),
            tenant_id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            plan=tenant.plan,
            status=tenant.status,
            rate_limit_per_minute=tenant.rate_limit_per_minute,
            custom_domain=tenant.custom_domain,
            created_at=tenant.created_at,
        )


@strawberry.type(description="The cost points one tenant spent on the days asked for.")
class TenantUsage:
    slug: str
    tenant_id: uuid.UUID
    points: int = strawberry.field(description="The sum of `days`.")
    days: list[UsageDay] = strawberry.field(description="Days without usage are left out.")

    @classmethod
    def of(cls, usage: TenantUsageRecord) -> TenantUsage:
        days = [UsageDay.of(day) for day in usage.days]
        return cls(slug=usage.slug, tenant_id=usage.tenant_id, points=usage.points, days=days)


@strawberry.input
class CreateTenantInput:
    slug: str = strawberry.field(description="3 to 63 lowercase letters, digits and hyphens; also its subdomain.")
    name: str
    plan: Plan
    admin_email: str = strawberry.field(description="The tenant's first ADMIN user.")
    admin_name: str | None = None
    reason: str | None = strawberry.field(default=None, description="Why, for the tenant's audit log.")


@strawberry.type
class CreateTenantPayload:
    tenant: PlatformTenant | None
    created: bool = strawberry.field(description="False when the slug existed: that tenant, unchanged.")
    user_errors: list[UserError]


@strawberry.type
class TenantChange:
    tenant: PlatformTenant | None
    changed: bool = strawberry.field(description="False when the tenant already was so: nothing was written.")
    user_errors: list[UserError]

    @classmethod
    def of(cls, outcome: Outcome[Changed]) -> TenantChange:
        if not outcome.ok or outcome.value is None:
            return cls(tenant=None, changed=False, user_errors=UserError.all_of(outcome))
        tenant, changed = outcome.value
        return cls(tenant=PlatformTenant.of(tenant), changed=changed, user_errors=[])


@strawberry.type
class SetPlanPayload(TenantChange):
    pass


@strawberry.type
class SuspendTenantPayload(TenantChange):
    pass


@strawberry.type
class ResumeTenantPayload(TenantChange):
    pass


@strawberry.type
class SetCustomDomainPayload(TenantChange):
    pass


@strawberry.type
class Query:
    @strawberry.field(description="Every tenant, oldest first.")
    async def tenants(self, info: PlatformInfo) -> list[PlatformTenant]:
        return [PlatformTenant.of(tenant) for tenant in await platform.list_tenants(info.context)]

    @strawberry.field(description="The tenant with this slug; null if there is none.")
    async def tenant(self, info: PlatformInfo, slug: str) -> PlatformTenant | None:
        found = await platform.find_tenant(info.context, slug)
        return PlatformTenant.of(found) if found is not None else None

    @strawberry.field(
        description="Every tenant's cost points per UTC day from `from` to `to` (both included, at most 366 days), "
        "with what is not yet flushed; by slug."
    )
    async def usage(
        self, info: PlatformInfo, from_: Annotated[date, strawberry.argument(name="from")], to: date
    ) -> list[TenantUsage]:
        return [TenantUsage.of(tenant) for tenant in await platform.usage(info.context, from_, to)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Idempotent: for a slug that exists, that tenant comes back and nothing changes.")
    async def create_tenant(self, info: PlatformInfo, input: CreateTenantInput) -> CreateTenantPayload:
        outcome = await platform.create_tenant(
            info.context,
            slug=input.slug,
            name=input.name,
            plan=input.plan,
            admin_email=input.admin_email,
            admin_name=input.admin_name,
            reason=input.reason,
        )
        if not outcome.ok or outcome.value is None:
            return CreateTenantPayload(tenant=None, created=False, user_errors=UserError.all_of(outcome))
        tenant, created = outcome.value
        return CreateTenantPayload(tenant=PlatformTenant.of(tenant), created=created, user_errors=[])

    @strawberry.mutation(description="`rateLimitPerMinute` for ENTERPRISE only; without it the plan's budget holds.")
    async def set_plan(
        self,
        info: PlatformInfo,
        slug: str,
        plan: Plan,
        rate_limit_per_minute: int | None = None,
        reason: str | None = None,
    ) -> SetPlanPayload:
        outcome = await platform.set_plan(
            info.context, slug=slug, plan=plan, rate_limit_per_minute=rate_limit_per_minute, reason=reason
        )
        return SetPlanPayload.of(outcome)

    @strawberry.mutation(description="Its requests get TENANT_SUSPENDED; all its data is kept.")
    async def suspend_tenant(self, info: PlatformInfo, slug: str, reason: str) -> SuspendTenantPayload:
        return SuspendTenantPayload.of(await platform.suspend(info.context, slug=slug, reason=reason))

    @strawberry.mutation
    async def resume_tenant(self, info: PlatformInfo, slug: str, reason: str | None = None) -> ResumeTenantPayload:
        return ResumeTenantPayload.of(await platform.resume(info.context, slug=slug, reason=reason))

    @strawberry.mutation(description="Public tracking at this host too; null clears it.")
    async def set_custom_domain(
        self, info: PlatformInfo, slug: str, domain: str | None, reason: str | None = None
    ) -> SetCustomDomainPayload:
        outcome = await platform.set_custom_domain(info.context, slug=slug, domain=domain, reason=reason)
        return SetCustomDomainPayload.of(outcome)


class AdminSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Errors are logged once, by ErrorCodes, and only those that are the server's fault."""


def build_admin_schema(*, introspection: bool = True) -> AdminSchema:
    """The schema with the tenant schema's error codes and document limits, and no cost limit."""
    documents = DocumentCache(Limits(), maxsize=128)
    chain: list[Any] = [ErrorCodes, lambda: PreparedDocuments(documents)]
    if not introspection:
        chain.append(DisableIntrospection)
    return AdminSchema(query=Query, mutation=Mutation, extensions=chain)


__all__ = ["AdminSchema", "PlatformTenant", "build_admin_schema"]
