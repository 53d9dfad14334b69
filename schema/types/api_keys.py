"""API keys as their tenant's admins see them: never the key itself, except once at creation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from resolvers.ids import to_global_id
from schema.types.payloads import UserError
from schema.types.viewer import Role


@strawberry.type(description="A key that acts as its tenant with one role. The key itself is shown only at creation.")
class ApiKey:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    role: Role
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(description="Recorded at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(
            id=strawberry.ID(to_global_id("ApiKey", row.id)),
            name=row.name,
            prefix=row.prefix,
            role=row.role,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: Role


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None
    key: str | None = strawberry.field(description="The key: shown this once, never stored. Keep it secret.")
    user_errors: list[UserError]


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey | None
    user_errors: list[UserError]


__all__ = ["ApiKey", "CreateApiKeyInput", "CreateApiKeyPayload", "RevokeApiKeyPayload"]
