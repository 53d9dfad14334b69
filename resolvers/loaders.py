"""DataLoaders: each fetches one kind of row in bulk, one SQL statement per batch.

Keys begin with the tenant id, so a cached row can only ever answer its own tenant, and
a loader asked for another tenant's key answers None without asking the database. A
request's loaders belong to its `Loaders`, each made on first use and never shared between
requests. Statements bind arrays (`= ANY(:ids)`), so each has one SQL text whatever the
batch size, and the prepared-statement cache stays warm.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from aiodataloader import DataLoader, Loader, enqueue_post_future_job
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

    def load(self, key: Any) -> Any:
        """The key's future; a cached one that was cancelled is asked for again.

        A resolver cancelled while it awaits (graphql-core cancels the fields beside one that
        failed) cancels the shared future with it; served from the cache, it would then fail
        every later field of the request that wants the same row."""
        cached = self._cache.get(key)
        if cached is not None and cached.cancelled():
            del self._cache[key]
        return super().load(key)

    async def load_many(self, keys: Iterable[Any]) -> list[Any]:  # type: ignore[override]
        """The values of many keys, batched as `load` batches them.

        A page's relations are some 150 keys for 50 shipments, and `load`'s way through
        aiodataloader (a cache-key call, a queue entry and a dispatch check per key) cost
        more than turning the statement's rows into objects. Here a key missing from the
        cache gets its future and queue entry directly, and the queue is scheduled for
        dispatch once, exactly where `load` would have scheduled it: the keys join the same
        batch as every other load of this tick. Each future is then awaited in turn rather
        than gathered, since `gather` wraps every future and calls back once per key."""
        cache, queue, create_future = self._cache, self._queue, self.loop.create_future
        was_empty = not queue
        futures = []
        for key in keys:
            future = cache.get(key)  # this loader's cache key is the key itself
            if future is None or future.cancelled():  # see `load`
                future = cache[key] = create_future()
                queue.append(Loader(key=key, future=future))
            futures.append(future)
        if was_empty and queue:
            enqueue_post_future_job(self.loop, self)
        return [await future for future in futures]

    def own(self, keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [key for key in keys if key[0] == self.db.tenant_id]


class _RowsBy(TenantLoader):
    """One row per key value of `column` (unique per tenant), in one statement per batch."""

    table: Table
    column = "id"
    live_only = False  # leave out soft-deleted rows
    statement: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        column = cls.table.c[cls.column]
        where = [cls.table.c.tenant_id == _TENANT, column == any_(bindparam("values", type_=ARRAY(column.type)))]
        if cls.live_only:
            where.append(cls.table.c.deleted_at.is_(None))
        cls.statement = select(cls.table).where(*where)

    async def batch_load_fn(self, keys: list[tuple[uuid.UUID, Any]]) -> list[Row[Any] | None]:
        values = [value for _, value in self.own(keys)]
        found: dict[Any, Row[Any]] = {}
        if values:
            rows = await self.db.all(self.statement, values=values)
            found = {getattr(row, self.column): row for row in rows}
        return [found.get(value) if tenant_id == self.db.tenant_id else None for tenant_id, value in keys]


class CustomerById(_RowsBy):
    table = customers


class VehicleById(_RowsBy):
    table = vehicles


class DriverById(_RowsBy):
    table = drivers


class ShipmentById(_RowsBy):
    table = shipments
    live_only = True


class ShipmentByTrackingNumber(_RowsBy):
    table = shipments
    column = "tracking_number"
    live_only = True


class _RowsPerParent(TenantLoader):
    """Rows of each parent for a parameter (a page size, a page); key `(tenant_id, parent_id, parameter)`.

    One statement per distinct parameter in the batch: usually one.
    """

    parent_column: str

    async def fetch(self, parameter: Any, parent_ids: list[uuid.UUID]) -> Sequence[Row[Any]]:
        raise NotImplementedError

    def shape(self, rows: list[Row[Any]], parameter: Any) -> Any:
        raise NotImplementedError

    async def batch_load_fn(self, keys: list[tuple[uuid.UUID, uuid.UUID, Any]]) -> list[Any]:
        by_parameter: dict[Any, list[uuid.UUID]] = defaultdict(list)
        for _, parent_id, parameter in self.own(keys):
            by_parameter[parameter].append(parent_id)
        found: dict[tuple[uuid.UUID, Any], list[Row[Any]]] = defaultdict(list)
        for parameter, parent_ids in by_parameter.items():
            for row in await self.fetch(parameter, parent_ids):
                found[(getattr(row, self.parent_column), parameter)].append(row)
        return [
            self.shape(found.get((parent_id, parameter), []) if tenant_id == self.db.tenant_id else [], parameter)
            for tenant_id, parent_id, parameter in keys
        ]


_wanted = func.unnest(_IDS).table_valued("id").render_derived(name="wanted")
_latest_events = (
    select(events)
    .where(events.c.tenant_id == _TENANT, events.c.shipment_id == _wanted.c.id)
    .order_by(events.c.occurred_at.desc(), events.c.id.desc())
    .limit(bindparam("size"))
    .lateral("latest")
)
_EVENTS_STATEMENT = select(_latest_events).select_from(_wanted).join(_latest_events, true())


class EventsByShipment(_RowsPerParent):
    """The last n events of each shipment, oldest first; key `(tenant_id, shipment_id, n)`."""

    parent_column = "shipment_id"

    async def fetch(self, size: int, shipment_ids: list[uuid.UUID]) -> Sequence[Row[Any]]:
        return await self.db.all(_EVENTS_STATEMENT, ids=shipment_ids, size=size) if size else ()

    def shape(self, rows: list[Row[Any]], size: int) -> list[Row[Any]]:
        return rows[::-1]


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


class ShipmentsByCustomer(_RowsPerParent):
    """A page of each customer's shipments; key `(tenant_id, customer_id, PageRequest)`."""

    parent_column = "customer_id"

    async def fetch(self, page: PageRequest, customer_ids: list[uuid.UUID]) -> Sequence[Row[Any]]:
        if page.first == 0:
            return ()
        params: dict[str, Any] = {"size": page.first + 1}
        if page.after is not None:
            params |= {"after_created_at": page.after.created_at, "after_id": page.after.id}
        return await self.db.all(_CUSTOMER_PAGE[page.after is not None], ids=customer_ids, **params)

    def shape(self, rows: list[Row[Any]], page: PageRequest) -> Page[Row[Any]]:
        return Page.from_rows(rows, page.first)


_L = TypeVar("_L", bound="TenantLoader")


def _made_on_first_use(kind: type[_L]) -> cached_property[_L]:
    """An attribute of `Loaders`: a loader of `kind` for the request, made when first read."""
    return cached_property(lambda loaders: kind(loaders.db))


class Loaders:
    """The request's DataLoaders, each made the first time a resolver asks for it.

    An operation uses two or three of them (Q1: the shipment by tracking number and its
    customer; `{ viewer { role } }`: none). Making and releasing all seven took 12 µs of
    every request, about 1% of the smallest; made as needed, 0.5 µs for none and 5 µs for
    Q1's two. Once made, a loader is a plain attribute."""

    def __init__(self, db: TenantDB) -> None:
        self.db = db

    customer_by_id = _made_on_first_use(CustomerById)
    vehicle_by_id = _made_on_first_use(VehicleById)
    driver_by_id = _made_on_first_use(DriverById)
    shipment_by_id = _made_on_first_use(ShipmentById)
    shipment_by_tracking_number = _made_on_first_use(ShipmentByTrackingNumber)
    events_by_shipment = _made_on_first_use(EventsByShipment)
    shipments_by_customer = _made_on_first_use(ShipmentsByCustomer)

    def release(self) -> None:
        """Let go of every row the request loaded, once the request has answered.

        graphql-core's executor holds the request's context and sits in a reference cycle of
        its own (it hands resolvers bound methods of itself), so whatever the context reaches
        waits for the cyclic garbage collector: for Q2, some 1,900 objects a request (rows,
        their UUIDs, the loaders' futures). Under load those survived into the oldest
        generation, and collecting them was the longest pause a request could land in.
        Emptied caches leave refcounting to free the rows the moment the response is sent."""
        for made in vars(self).values():
            if isinstance(made, TenantLoader):
                made.clear_all()


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
