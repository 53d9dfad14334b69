"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from auth.tenant import Role, TenantContext
from db.transaction import TenantDB
from resolvers.errors import Forbidden
from resolvers.loaders import Loaders


@dataclass(slots=True)
class Context:
    """Built once per request by the HTTP layer; nothing in it outlives the request.

    `extensions` is where schema extensions keep per-request state (the cost of the
    operation, for one), keyed by the extension's name.
    """

    tenant: TenantContext
    db: TenantDB
    loaders: Loaders
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_request(cls, tenant: TenantContext, db: TenantDB) -> Context:
        return cls(tenant=tenant, db=db, loaders=Loaders.for_request(db))

    def require(self, role: Role) -> None:
        """Refuse the operation unless the caller's role includes `role`."""
        if not self.tenant.role.includes(role):
            raise Forbidden(f"this operation needs the {role.value} role; you are {self.tenant.role.value}")


Info = strawberry.Info[Context, None]

__all__ = ["Context", "Info"]
