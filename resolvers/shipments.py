"""Shipments and their tracking events: what a courier moves, and where it has been."""

from __future__ import annotations

import functools
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, update
from sqlalchemy.dialects.postgresql import insert as upsert

from auth.tenant import Role
from db.models import ShipmentStatus
from resolvers.audit import record
from resolvers.context import Context
from resolvers.ids import id_of
from resolvers.loaders import events, shipments
from resolvers.outcomes import Checks, Outcome, already_exists, invalid, not_found
from resolvers.pagination import Page, PageRequest, fetch_page

FINAL = frozenset({ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED})
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud on the phone


def new_tracking_number() -> str:
    return "TQ" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


async def list_shipments(
    ctx: Context, first: int | None, after: str | None, status: ShipmentStatus | None
) -> Page[Row[Any]]:
    where = [shipments.c.deleted_at.is_(None)]
    if status is not None:
        where.append(shipments.c.status == status)
    return await fetch_page(ctx.db, shipments, PageRequest.parse(first, after), *where, newest_first=True)


async def _shipment(ctx: Context, global_id: str) -> Row[Any] | None:
    shipment_id = id_of(global_id, "Shipment")
    if shipment_id is None:
        return None
    return await ctx.loaders.shipment_by_id.load((ctx.db.tenant_id, shipment_id))


async def _change(ctx: Context, shipment: Row[Any], **values: Any) -> list[Row[Any]]:
    """Update one shipment of this tenant and return it as it now is."""
    new_values = {f"new_{name}": value for name, value in values.items()}
    statement = _update_statement(tuple(sorted(values)))
    return list(await ctx.db.write(statement, shipment_tenant=ctx.db.tenant_id, shipment=shipment.id, **new_values))


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Any:
    """The UPDATE of a shipment's `columns`, built once per set of columns (db/compiled_statements.py)."""
    return (
        update(shipments)
        .where(shipments.c.tenant_id == bindparam("shipment_tenant"), shipments.c.id == bindparam("shipment"))
        .values({name: bindparam(f"new_{name}", type_=shipments.c[name].type) for name in columns})
        .values(updated_at=func.now())
        .returning(*shipments.c)
    )


# The status UPDATE of `_change`, only for a live shipment that is neither delivered nor cancelled.
_MOVE_IF_OPEN = _update_statement(("status",)).where(
    shipments.c.deleted_at.is_(None), *(shipments.c.status != final for final in sorted(FINAL))
)


async def _move_if_open(ctx: Context, shipment_id: uuid.UUID, status: ShipmentStatus) -> Row[Any] | None:
    """Move a live shipment of this tenant that is neither delivered nor cancelled to `status`:
    the shipment as it now is, or None if there is no such shipment."""
    rows = await ctx.db.write(_MOVE_IF_OPEN, shipment_tenant=ctx.db.tenant_id, shipment=shipment_id, new_status=status)
    return rows[0] if rows else None


@functools.cache
def _event_statement(with_time: bool) -> Any:
    """The INSERT of a tracking event, with its `occurred_at` given or left to the database's clock."""
    values = {
        "tenant_id": bindparam("event_tenant"),
        "shipment_id": bindparam("event_shipment", type_=events.c.shipment_id.type),
        "status": bindparam("event_status", type_=events.c.status.type),
        "location": bindparam("event_location", type_=events.c.location.type),
        "note": bindparam("event_note", type_=events.c.note.type),
    }
    if with_time:
        values["occurred_at"] = bindparam("event_occurred_at", type_=events.c.occurred_at.type)
    return insert(events).values(values).returning(*events.c)


def _remember(ctx: Context, row: Row[Any]) -> None:
    """Later fields of this request must see the row as it is now, not as first loaded."""
    key = (row.tenant_id, row.id)
    ctx.loaders.shipment_by_id.clear(key).prime(key, row)
    ctx.loaders.shipment_by_tracking_number.clear((row.tenant_id, row.tracking_number)).prime(
        (row.tenant_id, row.tracking_number), row
    )


async def create_shipment(
    ctx: Context,
    *,
    customer_id: str,
    origin: str,
    destination: str,
    weight_kg: float,
    tracking_number: str | None,
) -> Outcome[Row[Any]]:
    ctx.require(Role.MEMBER)
    checks = Checks()
    values: dict[str, Any] = {
        "origin": checks.text("origin", origin, required=True, max_length=500),
        "destination": checks.text("destination", destination, required=True, max_length=500),
        "weight_kg": checks.number("weightKg", weight_kg, maximum=100_000),
    }
    given_number = checks.text("trackingNumber", tracking_number, max_length=40)
    if tracking_number is not None and not given_number:
        checks.fail("trackingNumber", "trackingNumber must not be empty")
    if failed := checks.outcome():
        return failed
    customer_uuid = id_of(customer_id, "Customer")
    customer = await ctx.loaders.customer_by_id.load((ctx.db.tenant_id, customer_uuid)) if customer_uuid else None
    if customer is None:
        return not_found(("input", "customerId"), "customer")

    for _ in range(3 if given_number is None else 1):
        statement = (
            upsert(shipments)
            .values(
                tenant_id=ctx.db.tenant_id,
                customer_id=customer.id,
                tracking_number=given_number or new_tracking_number(),
                **values,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "tracking_number"])
            .returning(*shipments.c)
        )
        async with ctx.db.atomic():
            rows = await ctx.db.write(statement)
            if rows:  # a taken tracking number inserted nothing: try another, or refuse
                created = rows[0]
                await record(
                    ctx,
                    "shipment.create",
                    created.id,
                    {"customer_id": created.customer_id, "tracking_number": created.tracking_number, **values},
                )
        if rows:
            _remember(ctx, rows[0])
            return Outcome(rows[0])
    return already_exists(("input", "trackingNumber"), "a shipment with this tracking number already exists")


async def assign_driver(ctx: Context, *, shipment_id: str, driver_id: str) -> Outcome[Row[Any]]:
    ctx.require(Role.MEMBER)
    shipment = await _shipment(ctx, shipment_id)
    if shipment is None:
        return not_found(("shipmentId",), "shipment")
    driver_uuid = id_of(driver_id, "Driver")
    driver = await ctx.loaders.driver_by_id.load((ctx.db.tenant_id, driver_uuid)) if driver_uuid else None
    if driver is None:
        return not_found(("driverId",), "driver")
    if shipment.status in FINAL:
        return invalid(("shipmentId",), f"a {shipment.status.value} shipment cannot be assigned")
    async with ctx.db.atomic():
        [row] = await _change(ctx, shipment, driver_id=driver.id)
        await record(ctx, "shipment.assign_driver", row.id, {"driver_id": driver.id})
    _remember(ctx, row)
    return Outcome(row)


async def record_tracking_event(
    ctx: Context,
    *,
    shipment_id: str,
    status: ShipmentStatus,
    location: str | None,
    note: str | None,
    occurred_at: datetime | None,
) -> Outcome[tuple[Row[Any], Row[Any]]]:
    """Add an event and move the shipment to its status, together or not at all."""
    ctx.require(Role.MEMBER)
    checks = Checks()
    location = checks.text("location", location, max_length=500)
    note = checks.text("note", note, max_length=2000)
    if occurred_at is not None and occurred_at.tzinfo is None:
        checks.fail("occurredAt", "occurredAt must carry a time zone offset")
    if status is ShipmentStatus.CANCELLED:
        checks.fail("status", "use cancelShipment to cancel a shipment")
    if failed := checks.outcome():
        return failed
    event_values: dict[str, Any] = {"status": status, "location": location, "note": note}
    if occurred_at is not None:
        event_values["occurred_at"] = occurred_at
    shipment_uuid = id_of(shipment_id, "Shipment")
    async with ctx.db.atomic():
        # Checked and moved in one statement: a shipment closed by a concurrent request is never moved.
        moved = await _move_if_open(ctx, shipment_uuid, status) if shipment_uuid is not None else None
        if moved is not None:
            [event] = await ctx.db.write(
                _event_statement(occurred_at is not None),
                event_tenant=ctx.db.tenant_id,
                event_shipment=moved.id,
                **{f"event_{name}": value for name, value in event_values.items()},
            )
            await record(ctx, "shipment.record_event", moved.id, {"event_id": event.id, **event_values})
    if moved is None:  # not this tenant's live shipment, or a closed one: say which
        shipment = await _shipment(ctx, shipment_id)
        if shipment is None:
            return not_found(("input", "shipmentId"), "shipment")
        return invalid(("input", "shipmentId"), f"a {shipment.status.value} shipment takes no more events")
    _remember(ctx, moved)
    ctx.loaders.events_by_shipment.clear_all()
    return Outcome((event, moved))


async def cancel_shipment(ctx: Context, *, shipment_id: str) -> Outcome[Row[Any]]:
    ctx.require(Role.ADMIN)
    shipment = await _shipment(ctx, shipment_id)
    if shipment is None:
        return not_found(("id",), "shipment")
    if shipment.status in FINAL:
        return invalid(("id",), f"a {shipment.status.value} shipment cannot be cancelled")
    async with ctx.db.atomic():
        [row] = await _change(ctx, shipment, status=ShipmentStatus.CANCELLED)
        await ctx.db.write(
            insert(events).values(tenant_id=ctx.db.tenant_id, shipment_id=row.id, status=ShipmentStatus.CANCELLED)
        )
        await record(ctx, "shipment.cancel", row.id, {"status": ShipmentStatus.CANCELLED})
    _remember(ctx, row)
    return Outcome(row)


__all__ = [
    "assign_driver",
    "cancel_shipment",
    "create_shipment",
    "list_shipments",
    "new_tracking_number",
    "record_tracking_event",
]
