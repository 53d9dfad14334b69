"""The tenant's budget of query cost, as the `rateLimit` field shows it."""

from __future__ import annotations

import math

import strawberry

from db.buckets import Charge


@strawberry.type(description="The tenant's bucket of cost points, after this operation was charged.")
class ThrottleStatus:
    maximum_available: int = strawberry.field(description="Points the bucket holds when full: a minute of budget.")
    currently_available: int = strawberry.field(description="Points left now.")
    restore_rate: float = strawberry.field(description="Points the bucket regains each second.")

    @classmethod
    def of(cls, status: Charge) -> ThrottleStatus:
        return cls(
            maximum_available=status.budget.capacity,
            currently_available=math.floor(status.available),
            restore_rate=round(status.budget.restore_rate, 3),
        )


__all__ = ["ThrottleStatus"]
