"""Users as their tenant's admins see and manage them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from resolvers.ids import to_global_id
from schema.types.payloads import UserError
from schema.types.viewer import Role


@strawberry.type(description="Someone who acts for the tenant. `id` is the `viewer.userId` of their requests.")
class User:
    id: strawberry.ID
    email: str
    name: str | None
    role: Role
    active: bool = strawberry.field(description="A deactivated user's tokens are refused.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", row.id)),
            email=row.email,
            name=row.name,
            role=row.role,
            active=row.active,
            created_at=row.created_at,
        )


@strawberry.input
class InviteUserInput:
    email: str
    role: Role
    name: str | None = None


@strawberry.type
class InviteUserPayload:
    user: User | None
    user_errors: list[UserError]


@strawberry.type
class ChangeUserRolePayload:
    user: User | None
    user_errors: list[UserError]


@strawberry.type
class DeactivateUserPayload:
    user: User | None
    user_errors: list[UserError]


__all__ = ["ChangeUserRolePayload", "DeactivateUserPayload", "InviteUserInput", "InviteUserPayload", "User"]
