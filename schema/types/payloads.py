"""Mutation inputs and payloads. A payload holds the object (null on failure) and `userErrors`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from resolvers.outcomes import FieldError, Outcome
from schema.types.logistics import (
    Customer,
    Driver,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
    Vehicle,
    VehicleKind,
)


@strawberry.type(description="Why a mutation did not happen. `code`: NOT_FOUND, ALREADY_EXISTS or INVALID.")
class UserError:
    field: list[str] | None
    message: str
    code: str

    @classmethod
    def all_of(cls, outcome: Outcome[Any]) -> list[UserError]:
        return [cls.of(error) for error in outcome.errors]

    @classmethod
    def of(cls, error: FieldError) -> UserError:
        return cls(field=list(error.field) or None, message=error.message, code=error.code)


@strawberry.input
class CreateCustomerInput:
    name: str
    email: str | None = None
    phone: str | None = None


@strawberry.input
class CreateVehicleInput:
    plate: str
    kind: VehicleKind
    capacity_kg: float | None = None


@strawberry.input
class CreateDriverInput:
    name: str
    phone: str | None = None
    vehicle_id: strawberry.ID | None = None


@strawberry.input
class CreateShipmentInput:
    customer_id: strawberry.ID
    origin: str
    destination: str
    weight_kg: float
    tracking_number: str | None = strawberry.field(default=None, description="Generated when absent.")


@strawberry.input
class RecordTrackingEventInput:
    shipment_id: strawberry.ID
    status: ShipmentStatus
    location: str | None = None
    note: str | None = None
    occurred_at: datetime | None = None


@strawberry.type
class CreateCustomerPayload:
    customer: Customer | None
    user_errors: list[UserError]


@strawberry.type
class CreateVehiclePayload:
    vehicle: Vehicle | None
    user_errors: list[UserError]


@strawberry.type
class CreateDriverPayload:
    driver: Driver | None
    user_errors: list[UserError]


@strawberry.type
class CreateShipmentPayload:
    shipment: Shipment | None
    user_errors: list[UserError]


@strawberry.type
class AssignDriverPayload:
    shipment: Shipment | None
    user_errors: list[UserError]


@strawberry.type
class RecordTrackingEventPayload:
    tracking_event: TrackingEvent | None
    shipment: Shipment | None
    user_errors: list[UserError]


@strawberry.type
class CancelShipmentPayload:
    shipment: Shipment | None
    user_errors: list[UserError]


__all__ = [
    "AssignDriverPayload",
    "CancelShipmentPayload",
    "CreateCustomerInput",
    "CreateCustomerPayload",
    "CreateDriverInput",
    "CreateDriverPayload",
    "CreateShipmentInput",
    "CreateShipmentPayload",
    "CreateVehicleInput",
    "CreateVehiclePayload",
    "RecordTrackingEventInput",
    "RecordTrackingEventPayload",
    "UserError",
]
