"""Usage as a tenant's admins see it: the cost points its operations spent, per UTC day."""

from __future__ import annotations

from datetime import date

import strawberry

from db.usage import DayUsage, KeyUsage
from resolvers.ids import to_global_id


@strawberry.type(description="The points one API key spent on one day.")
class ApiKeyUsage:
    api_key_id: strawberry.ID = strawberry.field(description="The key's global id, as `apiKeys` gives it.")
    name: str | None
    prefix: str | None = strawberry.field(description="The key's first characters, to tell keys apart.")
    points: int

    @classmethod
    def of(cls, used: KeyUsage) -> ApiKeyUsage:
        return cls(
            api_key_id=strawberry.ID(to_global_id("ApiKey", used.api_key_id)),
            name=used.name,
            prefix=used.prefix,
            points=used.points,
        )


@strawberry.type(description="The cost points the tenant spent on one day (UTC): its operations' actualQueryCost.")
class UsageDay:
    day: date
    points: int = strawberry.field(description="All of the day's points, with users' tokens and with API keys.")
    api_keys: list[ApiKeyUsage] = strawberry.field(
        description="The part of `points` spent with each API key, most first; the rest was spent with tokens."
    )

    @classmethod
    def of(cls, day: DayUsage) -> UsageDay:
        return cls(day=day.day, points=day.points, api_keys=[ApiKeyUsage.of(used) for used in day.api_keys])


__all__ = ["ApiKeyUsage", "UsageDay"]
