"""Vehicles and the drivers who drive them: managed by a tenant's admins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert
from sqlalchemy.dialects.postgresql import insert as upsert

from auth.tenant import Role
from db.models import VehicleKind
from resolvers.audit import record
from resolvers.context import Context
from resolvers.ids import id_of
from resolvers.loaders import drivers, vehicles
from resolvers.outcomes import Checks, Outcome, already_exists, not_found
from resolvers.pagination import Page, PageRequest, fetch_page


async def list_vehicles(ctx: Context, first: int | None, after: str | None) -> Page[Row[Any]]:
    return await fetch_page(ctx.db, vehicles, PageRequest.parse(first, after), newest_first=False)


async def list_drivers(ctx: Context, first: int | None, after: str | None) -> Page[Row[Any]]:
    return await fetch_page(ctx.db, drivers, PageRequest.parse(first, after), newest_first=False)


async def create_vehicle(
    ctx: Context, *, plate: str, kind: VehicleKind, capacity_kg: float | None
) -> Outcome[Row[Any]]:
    ctx.require(Role.ADMIN)
    checks = Checks()
    plate_value = checks.text("plate", plate, required=True, max_length=20)
    capacity = checks.number("capacityKg", capacity_kg, positive=False, maximum=100_000)
    if failed := checks.outcome():
        return failed
    values = {"plate": (plate_value or "").upper(), "kind": kind, "capacity_kg": capacity}
    statement = (
        upsert(vehicles)
        .values(tenant_id=ctx.db.tenant_id, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "plate"])
        .returning(*vehicles.c)
    )
    async with ctx.db.atomic():
        rows = await ctx.db.write(statement)
        if rows:  # a duplicate plate inserted nothing: nothing to audit
            await record(ctx, "vehicle.create", rows[0].id, values)
    if not rows:
        return already_exists(("input", "plate"), "a vehicle with this plate already exists")
    ctx.loaders.vehicle_by_id.prime((rows[0].tenant_id, rows[0].id), rows[0])
    return Outcome(rows[0])


async def create_driver(ctx: Context, *, name: str, phone: str | None, vehicle_id: str | None) -> Outcome[Row[Any]]:
    ctx.require(Role.ADMIN)
    checks = Checks()
    values: dict[str, Any] = {
        "name": checks.text("name", name, required=True),
        "phone": checks.text("phone", phone, max_length=40),
    }
    if failed := checks.outcome():
        return failed
    if vehicle_id is not None:
        vehicle_uuid = id_of(vehicle_id, "Vehicle")
        vehicle = await ctx.loaders.vehicle_by_id.load((ctx.db.tenant_id, vehicle_uuid)) if vehicle_uuid else None
        if vehicle is None:
            return not_found(("input", "vehicleId"), "vehicle")
        values["vehicle_id"] = vehicle.id
    async with ctx.db.atomic():
        [row] = await ctx.db.write(insert(drivers).values(tenant_id=ctx.db.tenant_id, **values).returning(*drivers.c))
        await record(ctx, "driver.create", row.id, values)
    ctx.loaders.driver_by_id.prime((row.tenant_id, row.id), row)
    return Outcome(row)


__all__ = ["create_driver", "create_vehicle", "list_drivers", "list_vehicles"]
