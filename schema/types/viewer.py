"""Who is asking: the caller's user, role and tenant."""

from __future__ import annotations

import strawberry

from auth.tenant import Plan as PlanValue
from auth.tenant import Role as RoleValue
from auth.tenant import TenantContext
from resolvers.ids import to_global_id
from schema.types.relay import Node

Role = strawberry.enum(RoleValue, name="Role")
Plan = strawberry.enum(PlanValue, name="Plan")


@strawberry.type
class Tenant(Node):
    slug: str
    name: str
    plan: Plan

    @classmethod
    def of(cls, tenant: TenantContext) -> Tenant:
        return cls(id=to_global_id("Tenant", tenant.tenant_id), slug=tenant.slug, name=tenant.name, plan=tenant.plan)


@strawberry.type
class Viewer:
    user_id: strawberry.ID | None
    role: Role
    tenant: Tenant

    @classmethod
    def of(cls, tenant: TenantContext) -> Viewer:
        user_id = to_global_id("User", tenant.user_id) if tenant.user_id else None
        return cls(user_id=user_id, role=tenant.role, tenant=Tenant.of(tenant))


__all__ = ["Plan", "Role", "Tenant", "Viewer"]
