"""DataLoaders: each fetches one kind of row in bulk, one SQL statement per batch.

Keys begin with the tenant id, so a cached row can only ever answer its own tenant, and
a loader asked for another tenant's key answers None without asking the database. All
loaders of a request are built together by `Loaders.for_request`, never shared between
requests. Statements bind arrays (`= ANY(:ids)`), so each has one SQL text whatever the
batch size, and the prepared-statement cache stays warm.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy import Row, Table, any_, bindparam, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from db.models import Customer, Driver, Shipment, TrackingEvent, Vehicle
from db.transaction import TenantDB
from resolvers.pagination import Page, PageRequest

TenantKey = tuple[uuid.UUID, uuid.UUID]  # (tenant_id, id)

customers: Table = Customer.__table__  # type: ignore[assignment]
vehicles: Table = Vehicle.__table__  # type: ignore[assignment]
drivers: Table = Driver.__table__  # type: ignore[assignment]
shipments: Table = Shipment.__table__  # type: ignore[assignment]
events: Table = TrackingEvent.__table__  # type: ignore[assignment]

_IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
_TENANT = bindparam("tenant_id", type_=UUID(as_uuid=True))


class TenantLoader(DataLoader):  # type: ignore[misc]
    """A loader whose keys start with a tenant id: keys of other tenants are answered None."""

    def __init__(self, db: TenantDB) -> None:
        super().__init__()
        self.db = db

    def own(self, keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [key for key in keys if key[0] == self.db.tenant_id]


class _RowsById(TenantLoader):
    table: Table
    live_only = False

    async def batch_load_fn(self, keys: list[TenantKey]) -> list[Row[Any] | None]:
        ids = [id_ for _, id_ in self.own(keys)]
        found: dict[uuid.UUID, Row[Any]] = {}
        if ids:
            rows = await self.db.all(self.statement(), ids=ids)
            found = {row.id: row for row in rows}
        return [found.get(id_) if tenant_id == self.db.tenant_id else None for tenant_id, id_ in keys]

    @classmethod
    def statement(cls) -> Any:
        if "_statement" not in cls.__dict__:
            where = [cls.table.c.tenant_id == _TENANT, cls.table.c.id == any_(_IDS)]
            if cls.live_only:
                where.append(cls.table.c.deleted_at.is_(None))
            cls._statement = select(cls.table).where(*where)
        return cls._statement


class CustomerById(_RowsById):
    table = customers


class VehicleById(_RowsById):
    table = vehicles


class DriverById(_RowsById):
    table = drivers


class ShipmentById(_RowsById):
    table = shipments
    live_only = True


class ShipmentByTrackingNumber(TenantLoader):
    _statement = select(shipments).where(
        shipments.c.tenant_id == _TENANT,
        shipments.c.tracking_number == any_(bindparam("numbers", type_=ARRAY(shipments.c.tracking_number.type))),
        shipments.c.deleted_at.is_(None),
    )

    async def batch_load_fn(self, keys: list[tuple[uuid.UUID, str]]) -> list[Row[Any] | None]:
        numbers = [number for _, number in self.own(keys)]
        found: dict[str, Row[Any]] = {}
        if numbers:
            rows = await self.db.all(self._statement, numbers=numbers)
            found = {row.tracking_number: row for row in rows}
        return [found.get(number) if tenant_id == self.db.tenant_id else None for tenant_id, number in keys]


_wanted = func.unnest(_IDS).table_valued("id").render_derived(name="wanted")
_latest_events = (
    select(events)
    .where(events.c.tenant_id == _TENANT, events.c.shipment_id == _wanted.c.id)
    .order_by(events.c.occurred_at.desc(), events.c.id.desc())
    .limit(bindparam("size"))
    .lateral("latest")
)
_EVENTS_STATEMENT = select(_latest_events).select_from(_wanted).join(_latest_events, true())


class EventsByShipment(TenantLoader):
    """The last n events of each shipment, oldest first; key `(tenant_id, shipment_id, n)`."""

    async def batch_load_fn(self, keys: list[tuple[uuid.UUID, uuid.UUID, int]]) -> list[list[Row[Any]]]:
        by_size: dict[int, list[uuid.UUID]] = defaultdict(list)
        for _, shipment_id, size in self.own(keys):
            by_size[size].append(shipment_id)
        found: dict[tuple[uuid.UUID, int], list[Row[Any]]] = defaultdict(list)
        for size, ids in by_size.items():
            if size == 0:
                continue
            for row in await self.db.all(_EVENTS_STATEMENT, ids=ids, size=size):
                found[(row.shipment_id, size)].append(row)
        return [
            list(reversed(found.get((shipment_id, size), []))) if tenant_id == self.db.tenant_id else []
            for tenant_id, shipment_id, size in keys
        ]


def _customer_page_statement(with_cursor: bool) -> Any:
    condition = [
        shipments.c.tenant_id == _TENANT,
        shipments.c.customer_id == _wanted.c.id,
        shipments.c.deleted_at.is_(None),
    ]
    if with_cursor:
        condition.append(
            tuple_(shipments.c.created_at, shipments.c.id)
            < tuple_(
                bindparam("after_created_at", type_=shipments.c.created_at.type),
                bindparam("after_id", type_=UUID(as_uuid=True)),
            )
        )
    page = (
        select(shipments)
        .where(*condition)
        .order_by(shipments.c.created_at.desc(), shipments.c.id.desc())
        .limit(bindparam("size"))
        .lateral("page")
    )
    return select(page).select_from(_wanted).join(page, true())


_CUSTOMER_PAGE = {False: _customer_page_statement(False), True: _customer_page_statement(True)}


class ShipmentsByCustomer(TenantLoader):
    """A page of each customer's shipments; key `(tenant_id, customer_id, PageRequest)`."""

    async def batch_load_fn(self, keys: list[tuple[uuid.UUID, uuid.UUID, PageRequest]]) -> list[Page[Row[Any]]]:
        by_page: dict[PageRequest, list[uuid.UUID]] = defaultdict(list)
        for _, customer_id, page in self.own(keys):
            by_page[page].append(customer_id)
        found: dict[tuple[uuid.UUID, PageRequest], list[Row[Any]]] = defaultdict(list)
        for page, ids in by_page.items():
            if page.first == 0:
                continue
            params: dict[str, Any] = {"size": page.first + 1}
            if page.after is not None:
                params |= {"after_created_at": page.after.created_at, "after_id": page.after.id}
            for row in await self.db.all(_CUSTOMER_PAGE[page.after is not None], ids=ids, **params):
                found[(row.customer_id, page)].append(row)
        return [
            Page.from_rows(found.get((customer_id, page), []), page.first)
            if tenant_id == self.db.tenant_id
            else Page([], False)
            for tenant_id, customer_id, page in keys
        ]


@dataclass(frozen=True, slots=True)
class Loaders:
    customer_by_id: CustomerById
    vehicle_by_id: VehicleById
    driver_by_id: DriverById
    shipment_by_id: ShipmentById
    shipment_by_tracking_number: ShipmentByTrackingNumber
    events_by_shipment: EventsByShipment
    shipments_by_customer: ShipmentsByCustomer

    @classmethod
    def for_request(cls, db: TenantDB) -> Loaders:
        return cls(
            customer_by_id=CustomerById(db),
            vehicle_by_id=VehicleById(db),
            driver_by_id=DriverById(db),
            shipment_by_id=ShipmentById(db),
            shipment_by_tracking_number=ShipmentByTrackingNumber(db),
            events_by_shipment=EventsByShipment(db),
            shipments_by_customer=ShipmentsByCustomer(db),
        )


__all__ = [
    "CustomerById",
    "DriverById",
    "EventsByShipment",
    "Loaders",
    "ShipmentById",
    "ShipmentByTrackingNumber",
    "ShipmentsByCustomer",
    "TenantKey",
    "VehicleById",
]
