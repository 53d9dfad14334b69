"""The root Mutation type: each field answers with a payload of the object and `userErrors`."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers import api_keys, customers, fleet, shipments
from resolvers import users as tenant_users
from resolvers.context import Info
from resolvers.outcomes import Outcome
from schema.types.api_keys import ApiKey, CreateApiKeyInput, CreateApiKeyPayload, RevokeApiKeyPayload
from schema.types.logistics import Customer, Driver, Shipment, TrackingEvent, Vehicle
from schema.types.payloads import (
    AssignDriverPayload,
    CancelShipmentPayload,
    CreateCustomerInput,
    CreateCustomerPayload,
    CreateDriverInput,
    CreateDriverPayload,
    CreateShipmentInput,
    CreateShipmentPayload,
    CreateVehicleInput,
    CreateVehiclePayload,
    RecordTrackingEventInput,
    RecordTrackingEventPayload,
    UserError,
)
from schema.types.users import ChangeUserRolePayload, DeactivateUserPayload, InviteUserInput, InviteUserPayload, User
from schema.types.viewer import Role


def _shipment(outcome: Outcome[Any]) -> Shipment | None:
    return Shipment.from_row(outcome.value) if outcome.ok else None


def _user(outcome: Outcome[Any]) -> User | None:
    return User.from_row(outcome.value) if outcome.ok else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Needs MEMBER.")
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> CreateCustomerPayload:
        outcome = await customers.create_customer(info.context, name=input.name, email=input.email, phone=input.phone)
        return CreateCustomerPayload(
            customer=Customer.from_row(outcome.value) if outcome.ok else None, user_errors=UserError.all_of(outcome)
        )

    @strawberry.mutation(description="Needs ADMIN.")
    async def create_vehicle(self, info: Info, input: CreateVehicleInput) -> CreateVehiclePayload:
        outcome = await fleet.create_vehicle(
            info.context, plate=input.plate, kind=input.kind, capacity_kg=input.capacity_kg
        )
        return CreateVehiclePayload(
            vehicle=Vehicle.from_row(outcome.value) if outcome.ok else None, user_errors=UserError.all_of(outcome)
        )

    @strawberry.mutation(description="Needs ADMIN.")
    async def create_driver(self, info: Info, input: CreateDriverInput) -> CreateDriverPayload:
        outcome = await fleet.create_driver(
            info.context, name=input.name, phone=input.phone, vehicle_id=input.vehicle_id
        )
        return CreateDriverPayload(
            driver=Driver.from_row(outcome.value) if outcome.ok else None, user_errors=UserError.all_of(outcome)
        )

    @strawberry.mutation(description="Needs MEMBER.")
    async def create_shipment(self, info: Info, input: CreateShipmentInput) -> CreateShipmentPayload:
        outcome = await shipments.create_shipment(
            info.context,
            customer_id=input.customer_id,
            origin=input.origin,
            destination=input.destination,
            weight_kg=input.weight_kg,
            tracking_number=input.tracking_number,
        )
        return CreateShipmentPayload(shipment=_shipment(outcome), user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Dispatch: needs MEMBER.")
    async def assign_driver(
        self, info: Info, shipment_id: strawberry.ID, driver_id: strawberry.ID
    ) -> AssignDriverPayload:
        outcome = await shipments.assign_driver(info.context, shipment_id=shipment_id, driver_id=driver_id)
        return AssignDriverPayload(shipment=_shipment(outcome), user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Adds an event and moves the shipment to its status. Needs MEMBER.")
    async def record_tracking_event(self, info: Info, input: RecordTrackingEventInput) -> RecordTrackingEventPayload:
        outcome = await shipments.record_tracking_event(
            info.context,
            shipment_id=input.shipment_id,
            status=input.status,
            location=input.location,
            note=input.note,
            occurred_at=input.occurred_at,
        )
        if not outcome.ok or outcome.value is None:
            return RecordTrackingEventPayload(tracking_event=None, shipment=None, user_errors=UserError.all_of(outcome))
        event, shipment = outcome.value
        return RecordTrackingEventPayload(
            tracking_event=TrackingEvent.from_row(event), shipment=Shipment.from_row(shipment), user_errors=[]
        )

    @strawberry.mutation(description="Needs ADMIN. The shipment reads back with status CANCELLED.")
    async def cancel_shipment(self, info: Info, id: strawberry.ID) -> CancelShipmentPayload:
        outcome = await shipments.cancel_shipment(info.context, shipment_id=id)
        return CancelShipmentPayload(shipment=_shipment(outcome), user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Needs ADMIN and the SCALE or ENTERPRISE plan. The key is in the payload, once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        outcome = await api_keys.create_api_key(info.context, name=input.name, role=input.role)
        if not outcome.ok or outcome.value is None:
            return CreateApiKeyPayload(api_key=None, key=None, user_errors=UserError.all_of(outcome))
        created, row = outcome.value
        return CreateApiKeyPayload(api_key=ApiKey.from_row(row), key=created.key, user_errors=[])

    @strawberry.mutation(description="Needs ADMIN. The key is refused from the next request on.")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyPayload:
        outcome = await api_keys.revoke_api_key(info.context, key_id=id)
        row = outcome.value if outcome.ok else None
        return RevokeApiKeyPayload(api_key=ApiKey.from_row(row) if row else None, user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Needs ADMIN. Adds an active user; an email already taken is ALREADY_EXISTS.")
    async def invite_user(self, info: Info, input: InviteUserInput) -> InviteUserPayload:
        outcome = await tenant_users.invite_user(info.context, email=input.email, name=input.name, role=input.role)
        return InviteUserPayload(user=_user(outcome), user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Needs ADMIN. Holds from the user's next request. The last active admin stays.")
    async def change_user_role(self, info: Info, id: strawberry.ID, role: Role) -> ChangeUserRolePayload:
        outcome = await tenant_users.change_user_role(info.context, user_id=id, role=role)
        return ChangeUserRolePayload(user=_user(outcome), user_errors=UserError.all_of(outcome))

    @strawberry.mutation(description="Needs ADMIN. The user's tokens are refused from the next request on.")
    async def deactivate_user(self, info: Info, id: strawberry.ID) -> DeactivateUserPayload:
        outcome = await tenant_users.deactivate_user(info.context, user_id=id)
        return DeactivateUserPayload(user=_user(outcome), user_errors=UserError.all_of(outcome))


__all__ = ["Mutation"]
