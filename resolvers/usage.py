"""A tenant's usage as its admins read it: cost points per day, and the part of each API key."""

from __future__ import annotations

from datetime import date

from auth.tenant import Role
from db.usage import DayUsage, read_usage
from resolvers.context import Context
from resolvers.errors import BadUserInput

MAX_DAYS = 366


async def usage_between(ctx: Context, first: date, last: date) -> list[DayUsage]:
    ctx.require(Role.ADMIN)
    if last < first:
        raise BadUserInput(f"`to` ({last}) is before `from` ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadUserInput(f"at most {MAX_DAYS} days at a time; ask for the rest in another query")
    return await read_usage(ctx.db, first, last, pending=ctx.unflushed_usage)


__all__ = ["MAX_DAYS", "usage_between"]
