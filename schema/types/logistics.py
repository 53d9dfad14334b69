"""The courier's objects: shipments, customers, drivers, vehicles and tracking events."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import strawberry

from db.models import ShipmentStatus as ShipmentStatusValue
from db.models import VehicleKind as VehicleKindValue
from resolvers.context import Info
from resolvers.errors import BadUserInput
from resolvers.ids import to_global_id
from resolvers.pagination import MAX_PAGE_SIZE, PageRequest
from schema.directives import PAGE_SIZE
from schema.prefetched import prefetch_key
from schema.types.relay import Connection, Node

ShipmentStatus = strawberry.enum(ShipmentStatusValue, name="ShipmentStatus")
VehicleKind = strawberry.enum(VehicleKindValue, name="VehicleKind")


def global_id(type_name: str) -> Any:
    """The `id` field of a Node type whose objects keep their row's uuid in `row_id`.

    The global id is encoded only when a query asks for it: a page of fifty shipments with
    their customers, drivers and vehicles holds some 150 such objects, and most queries read
    them by their other fields."""

    def id_(self: Any) -> strawberry.ID:
        return strawberry.ID(to_global_id(type_name, self.row_id))

    return strawberry.field(resolver=id_)


@strawberry.type
class Vehicle(Node):
    id: strawberry.ID = global_id("Vehicle")
    plate: str
    kind: VehicleKind
    capacity_kg: float | None
    row_id: strawberry.Private[Any]

    @classmethod
    def from_row(cls, row: Any) -> Vehicle:
        return cls(row_id=row.id, plate=row.plate, kind=row.kind, capacity_kg=row.capacity_kg)


@strawberry.type
class Driver(Node):
    id: strawberry.ID = global_id("Driver")
    name: str
    phone: str | None
    row_id: strawberry.Private[Any]
    vehicle_id: strawberry.Private[Any]
    prefetched: strawberry.Private[dict[Any, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field
    def vehicle(self, info: Info) -> Vehicle | None:
        if "vehicle" in self.prefetched:
            return self.prefetched["vehicle"]
        if self.vehicle_id is None:
            return None
        return self._vehicle(info)  # type: ignore[return-value]

    async def _vehicle(self, info: Info) -> Vehicle | None:
        row = await info.context.loaders.vehicle_by_id.load((info.context.db.tenant_id, self.vehicle_id))
        return Vehicle.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, row: Any) -> Driver:
        return cls(row_id=row.id, name=row.name, phone=row.phone, vehicle_id=row.vehicle_id)


@strawberry.type
class TrackingEvent:
    status: ShipmentStatus
    location: str | None
    note: str | None
    occurred_at: datetime
    row_id: strawberry.Private[Any]

    @strawberry.field
    def id(self) -> strawberry.ID:
        # Computed only when asked for: most queries read events by status and time.
        return strawberry.ID(to_global_id("TrackingEvent", self.row_id))

    @classmethod
    def from_row(cls, row: Any) -> TrackingEvent:
        return cls(
            row_id=row.id,
            status=row.status,
            location=row.location,
            note=row.note,
            occurred_at=row.occurred_at,
        )


@strawberry.type
class Customer(Node):
    id: strawberry.ID = global_id("Customer")
    name: str
    email: str | None
    phone: str | None
    row_id: strawberry.Private[Any]

    @strawberry.field(directives=[PAGE_SIZE])
    async def shipments(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Shipment]:
        page = PageRequest.parse(first, after)
        tenant_id = info.context.db.tenant_id
        rows = await info.context.loaders.shipments_by_customer.load((tenant_id, self.row_id, page))
        return Connection.of(rows, Shipment.from_row)

    @classmethod
    def from_row(cls, row: Any) -> Customer:
        return cls(row_id=row.id, name=row.name, email=row.email, phone=row.phone)


@strawberry.type
class Shipment(Node):
    id: strawberry.ID = global_id("Shipment")
    tracking_number: str
    status: ShipmentStatus
    origin: str
    destination: str
    weight_kg: float
    created_at: datetime
    row: strawberry.Private[Any]
    row_id: strawberry.Private[Any]
    # Relations loaded ahead by schema.types.prefetch (see schema.prefetched); each resolver falls back to its loader.
    prefetched: strawberry.Private[dict[Any, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field
    def customer(self, info: Info) -> Customer:
        if "customer" in self.prefetched:
            return self.prefetched["customer"]
        return self._customer(info)  # type: ignore[return-value]  # an awaitable, which graphql-core awaits

    async def _customer(self, info: Info) -> Customer:
        row = await info.context.loaders.customer_by_id.load((info.context.db.tenant_id, self.row.customer_id))
        if row is None:  # the composite foreign key makes this impossible short of corruption
            raise LookupError(f"shipment {self.row.id} has no customer")
        return Customer.from_row(row)

    @strawberry.field
    def driver(self, info: Info) -> Driver | None:
        if "driver" in self.prefetched:
            return self.prefetched["driver"]
        if self.row.driver_id is None:
            return None
        return self._driver(info)  # type: ignore[return-value]

    async def _driver(self, info: Info) -> Driver | None:
        row = await info.context.loaders.driver_by_id.load((info.context.db.tenant_id, self.row.driver_id))
        return Driver.from_row(row) if row is not None else None

    @strawberry.field(description="The last `last` events, oldest first.")
    def events(self, info: Info, last: int = 10) -> list[TrackingEvent]:
        if last < 0 or last > MAX_PAGE_SIZE:
            raise BadUserInput(f"`last` must be between 0 and {MAX_PAGE_SIZE}")
        if (key := prefetch_key("events", {"last": last})) in self.prefetched:
            return self.prefetched[key]
        return self._events(info, last)  # type: ignore[return-value]

    async def _events(self, info: Info, last: int) -> list[TrackingEvent]:
        rows = await info.context.loaders.events_by_shipment.load((info.context.db.tenant_id, self.row.id, last))
        return [TrackingEvent.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: Any) -> Shipment:
        return cls(
            row_id=row.id,
            tracking_number=row.tracking_number,
            status=row.status,
            origin=row.origin,
            destination=row.destination,
            weight_kg=row.weight_kg,
            created_at=row.created_at,
            row=row,
        )


__all__ = ["Customer", "Driver", "Shipment", "ShipmentStatus", "TrackingEvent", "Vehicle", "VehicleKind"]
