"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry

from auth.tenant import Role, TenantContext
from db.buckets import Charge
from db.transaction import TenantDB
from db.usage import PendingUsage
from resolvers.errors import Forbidden
from resolvers.loaders import Loaders


@dataclass(slots=True)
class Context:
    """Built once per request by the HTTP layer; nothing in it outlives the request.

    `throttle` is the tenant's bucket as the last charge left it, and `unflushed_usage` the
    process's usage counts not yet flushed to PostgreSQL (so a `usage` report is current);
    both are set by the cost limit before the operation executes.
    """

    tenant: TenantContext
    db: TenantDB
    loaders: Loaders
    throttle: Charge | None = None
    unflushed_usage: PendingUsage | None = None

    @classmethod
    def for_request(cls, tenant: TenantContext, db: TenantDB) -> Context:
        return cls(tenant=tenant, db=db, loaders=Loaders(db))

    def release(self) -> None:
        """Drop what the request loaded once it has answered (see `Loaders.release`)."""
        self.loaders.release()

    def budget_status(self) -> Charge:
        if self.throttle is None:
            raise RuntimeError("the schema runs without its cost limit: no budget was charged")
        return self.throttle

    def require(self, role: Role) -> None:
        """Refuse the operation unless the caller's role includes `role`."""
        if not self.tenant.role.includes(role):
            raise Forbidden(f"this operation needs the {role.value} role; you are {self.tenant.role.value}")


Info = strawberry.Info[Context, None]

__all__ = ["Context", "Info"]
