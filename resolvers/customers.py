"""Customers: the courier's clients, who send shipments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert

from auth.tenant import Role
from resolvers.audit import record
from resolvers.context import Context
from resolvers.loaders import customers
from resolvers.outcomes import Checks, Outcome
from resolvers.pagination import Page, PageRequest, fetch_page


async def list_customers(ctx: Context, first: int | None, after: str | None) -> Page[Row[Any]]:
    return await fetch_page(ctx.db, customers, PageRequest.parse(first, after), newest_first=False)


async def create_customer(ctx: Context, *, name: str, email: str | None, phone: str | None) -> Outcome[Row[Any]]:
    ctx.require(Role.MEMBER)
    checks = Checks()
    values = {
        "name": checks.text("name", name, required=True),
        "email": checks.email("email", email),
        "phone": checks.text("phone", phone, max_length=40),
    }
    if failed := checks.outcome():
        return failed
    async with ctx.db.atomic():
        [row] = await ctx.db.write(
            insert(customers).values(tenant_id=ctx.db.tenant_id, **values).returning(*customers.c)
        )
        await record(ctx, "customer.create", row.id, values)
    ctx.loaders.customer_by_id.prime((row.tenant_id, row.id), row)
    return Outcome(row)


__all__ = ["create_customer", "list_customers"]
