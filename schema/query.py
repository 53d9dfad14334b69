"""The root Query type."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from resolvers import api_keys, customers, fleet, nodes, shipments
from resolvers.audit import list_audit_log
from resolvers.context import Info
from resolvers.usage import usage_between
from resolvers.users import list_users
from schema.directives import PAGE_SIZE, Cost, ListSize
from schema.types.api_keys import ApiKey
from schema.types.audit import AuditEntry
from schema.types.logistics import Customer, Driver, Shipment, ShipmentStatus, Vehicle
from schema.types.prefetch import prefetch_shipments
from schema.types.relay import Connection, Node
from schema.types.throttle import ThrottleStatus
from schema.types.usage import UsageDay
from schema.types.users import User
from schema.types.viewer import Tenant, Viewer

# Priced as a month of days; the actual cost counts the days returned.
USAGE_DAYS = ListSize(assumed_size=31, require_one_slicing_argument=False)

_NODE_TYPES = {"Shipment": Shipment, "Customer": Customer, "Driver": Driver, "Vehicle": Vehicle}


@strawberry.type
class Query:
    @strawberry.field(description="The caller: user, role and tenant.")
    def viewer(self, info: Info) -> Viewer:
        return Viewer.of(info.context.tenant)

    @strawberry.field(description="Any object by its global id; null if it does not exist for you.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        found = await nodes.load_node(info.context, id)
        if found is None:
            return None
        type_name, value = found
        if type_name == "Tenant":
            return Tenant.of(value)
        return _NODE_TYPES[type_name].from_row(value)

    @strawberry.field(description="Shipments, newest first.", directives=[PAGE_SIZE])
    async def shipments(
        self, info: Info, first: int | None = None, after: str | None = None, status: ShipmentStatus | None = None
    ) -> Connection[Shipment]:
        page = await shipments.list_shipments(info.context, first, after, status)
        connection = Connection.of(page, Shipment.from_row)
        await prefetch_shipments(info, [edge.node for edge in connection.edges])
        return connection

    @strawberry.field
    async def shipment(self, info: Info, tracking_number: str) -> Shipment | None:
        if len(tracking_number) > 40 or "\x00" in tracking_number:  # no stored number is longer or has NUL
            return None
        row = await info.context.loaders.shipment_by_tracking_number.load((info.context.db.tenant_id, tracking_number))
        return Shipment.from_row(row) if row is not None else None

    @strawberry.field(description="Customers, oldest first.", directives=[PAGE_SIZE])
    async def customers(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Customer]:
        return Connection.of(await customers.list_customers(info.context, first, after), Customer.from_row)

    @strawberry.field(description="Drivers, oldest first.", directives=[PAGE_SIZE])
    async def drivers(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Driver]:
        return Connection.of(await fleet.list_drivers(info.context, first, after), Driver.from_row)

    @strawberry.field(description="Vehicles, oldest first.", directives=[PAGE_SIZE])
    async def vehicles(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Vehicle]:
        return Connection.of(await fleet.list_vehicles(info.context, first, after), Vehicle.from_row)

    @strawberry.field(description="The tenant's API keys (never the keys themselves). Needs ADMIN.")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        return [ApiKey.from_row(row) for row in await api_keys.list_api_keys(info.context)]

    @strawberry.field(description="The tenant's users, deactivated ones included, oldest first. Needs ADMIN.")
    async def users(self, info: Info) -> list[User]:
        return [User.from_row(row) for row in await list_users(info.context)]

    @strawberry.field(description="Changes to the tenant's data, newest first. Needs ADMIN.", directives=[PAGE_SIZE])
    async def audit_log(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[AuditEntry]:
        return Connection.of(await list_audit_log(info.context, first, after), AuditEntry.from_row)

    @strawberry.field(
        description=(
            "Cost points spent per UTC day from `from` to `to` (both included, at most 366 days), with what is not "
            "yet flushed; days without usage are left out. Needs ADMIN."
        ),
        directives=[USAGE_DAYS],
    )
    async def usage(
        self, info: Info, from_: Annotated[date, strawberry.argument(name="from")], to: date
    ) -> list[UsageDay]:
        return [UsageDay.of(day) for day in await usage_between(info.context, from_, to)]

    @strawberry.field(
        description="The tenant's budget of query cost, after this operation was charged. Costs nothing.",
        directives=[Cost(weight="0")],
    )
    def rate_limit(self, info: Info) -> ThrottleStatus:
        return ThrottleStatus.of(info.context.budget_status())


__all__ = ["Query"]
