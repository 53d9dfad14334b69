"""Load a page's relations before its fields resolve, so nested fields answer without awaiting.

graphql-core wraps every awaitable field value in a task, so fifty shipments each awaiting
their customer, driver, vehicle and events cost hundreds of tasks per request. Loading
them here, through the same DataLoaders (same batches, same SQL), leaves the nested
resolvers with values at hand. A field that was not prefetched (a shipment reached through
`node`, a mutation payload) still loads on demand, so this is an optimisation, never a
requirement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from resolvers.context import Info
from resolvers.pagination import MAX_PAGE_SIZE
from schema.prefetched import prefetch_key
from schema.types.logistics import Customer, Driver, TrackingEvent, Vehicle


def fields_of(selections: Iterable[Any]) -> Iterator[SelectedField]:
    """The fields of a selection set, with fragments (named or inline) flattened in."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, InlineFragment | FragmentSpread):
            yield from fields_of(selection.selections)


def node_fields(info: Info) -> list[SelectedField]:
    """The fields asked of each node of the connection being resolved (`edges { node { … } }`)."""
    fields: list[SelectedField] = []
    for connection in info.selected_fields:
        for edges in fields_of(connection.selections):
            if edges.name == "edges":
                for node in fields_of(edges.selections):
                    if node.name == "node":
                        fields.extend(fields_of(node.selections))
    return fields


async def prefetch_shipments(info: Info, shipments: list[Any]) -> None:
    """Fill each shipment's `prefetched` with the relations the query asks for."""
    if not shipments:
        return
    fields = node_fields(info)
    names = {field.name for field in fields}
    work = []
    if "customer" in names:
        work.append(_customers(info, shipments))
    if "driver" in names:
        wants_vehicle = any(
            sub.name == "vehicle" for field in fields if field.name == "driver" for sub in fields_of(field.selections)
        )
        work.append(_drivers(info, shipments, wants_vehicle))
    sizes = {_whole_number(field.arguments.get("last", 10)) for field in fields if field.name == "events"}
    for size in sizes:
        if size is not None and 0 <= size <= MAX_PAGE_SIZE:  # a bad size is the resolver's to refuse
            work.append(_events(info, shipments, size))
    await asyncio.gather(*work)


def _whole_number(value: Any) -> int | None:
    """An `Int` argument's value. Strawberry's selected fields give a variable's value but a
    literal's source text (`events(last: 5)` arrives as "5"); validation has already made sure
    that text is an integer."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _customers(info: Info, shipments: list[Any]) -> None:
    tenant_id = info.context.db.tenant_id
    rows = await info.context.loaders.customer_by_id.load_many([(tenant_id, s.row.customer_id) for s in shipments])
    for shipment, row in zip(shipments, rows, strict=True):
        if row is not None:
            shipment.prefetched["customer"] = Customer.from_row(row)


async def _drivers(info: Info, shipments: list[Any], wants_vehicle: bool) -> None:
    tenant_id = info.context.db.tenant_id
    assigned = [s for s in shipments if s.row.driver_id is not None]
    for shipment in shipments:
        if shipment.row.driver_id is None:
            shipment.prefetched["driver"] = None
    rows = await info.context.loaders.driver_by_id.load_many([(tenant_id, s.row.driver_id) for s in assigned])
    drivers = [Driver.from_row(row) if row is not None else None for row in rows]
    for shipment, driver in zip(assigned, drivers, strict=True):
        shipment.prefetched["driver"] = driver
    if not wants_vehicle:
        return
    with_vehicle = [d for d in drivers if d is not None and d.vehicle_id is not None]
    vehicles = await info.context.loaders.vehicle_by_id.load_many([(tenant_id, d.vehicle_id) for d in with_vehicle])
    for driver, row in zip(with_vehicle, vehicles, strict=True):
        driver.prefetched["vehicle"] = Vehicle.from_row(row) if row is not None else None
    for driver in drivers:
        if driver is not None and driver.vehicle_id is None:
            driver.prefetched["vehicle"] = None


async def _events(info: Info, shipments: list[Any], size: int) -> None:
    tenant_id = info.context.db.tenant_id
    pages = await info.context.loaders.events_by_shipment.load_many([(tenant_id, s.row.id, size) for s in shipments])
    for shipment, rows in zip(shipments, pages, strict=True):
        shipment.prefetched[prefetch_key("events", {"last": size})] = [TrackingEvent.from_row(row) for row in rows]


__all__ = ["fields_of", "node_fields", "prefetch_shipments"]
