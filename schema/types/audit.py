"""The audit log as a tenant's admins read it: one entry per committed change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from resolvers.ids import to_global_id

# The first part of an action names what it changed, so its target can be a global id.
_TARGET_TYPES = {
    "customer": "Customer",
    "vehicle": "Vehicle",
    "driver": "Driver",
    "shipment": "Shipment",
    "api_key": "ApiKey",
    "user": "User",
    "tenant": "Tenant",
}


def target_global_id(action: str, target_id: Any) -> str | None:
    """The target's global id when the action says its type, else the bare uuid."""
    if target_id is None:
        return None
    type_name = _TARGET_TYPES.get(action.partition(".")[0])
    return to_global_id(type_name, target_id) if type_name else str(target_id)


@strawberry.type(description="One change to the tenant's data: who made it, what, to which object, and when.")
class AuditEntry:
    id: strawberry.ID
    actor: str = strawberry.field(description="`user:<uuid>` or `api_key:<uuid>`.")
    action: str = strawberry.field(description="`<object>.<verb>`, such as `shipment.cancel`.")
    target_id: strawberry.ID | None = strawberry.field(
        description="The changed object's global id, or its bare uuid when the action does not name a type."
    )
    changes: JSON | None = strawberry.field(description="The fields the change set; never a secret.")
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        target = target_global_id(row.action, row.target_id)
        return cls(
            id=strawberry.ID(to_global_id("AuditEntry", row.id)),
            actor=row.actor,
            action=row.action,
            target_id=strawberry.ID(target) if target is not None else None,
            changes=row.changes,
            occurred_at=row.occurred_at,
        )


__all__ = ["AuditEntry", "target_global_id"]
