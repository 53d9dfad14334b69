"""Public tracking: which tenant a request host names, and what an end customer may see of a shipment.

A tracking page carries no credential, so its tenant comes from the host it was asked
for: `<slug>.<TRACKING_DOMAIN>`, or a custom domain stored on the tenant. That tenants row
is read before any tenant is set, through the select policy of migration 0003, which
admits the one row whose slug or custom domain the transaction names. Everything after
runs under Row Level Security with the host's tenant, and reads only the public columns:
no query here can return a customer, an id, a note, a weight or an address.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tenant import TenantStatus
from db.models import ShipmentStatus
from db.transaction import tenant_transaction

MAX_EVENTS = 100  # newest first; a parcel with more has been travelling for a long time
MAX_TRACKING_NUMBER = 40  # the column's length: anything longer cannot exist
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_SELECT_BY_HOST = "SELECT id, slug, status FROM tenants WHERE custom_domain = $1 OR slug = $2"
_SET_HOST = "SELECT set_config('app.request_host', $1, true), set_config('app.request_slug', $2, true)"
# One round trip for the shipment and its events; the tenant_id conditions repeat what RLS enforces.
_SELECT_SHIPMENT = text(
    """
    SELECT s.tracking_number, s.status, e.status AS event_status, e.location, e.occurred_at
    FROM shipments s
    LEFT JOIN LATERAL (
        SELECT status, location, occurred_at, id FROM tracking_events
        WHERE tenant_id = s.tenant_id AND shipment_id = s.id
        ORDER BY occurred_at DESC, id DESC
        LIMIT :max_events
    ) e ON true
    WHERE s.tenant_id = :tenant_id AND s.tracking_number = :tracking_number AND s.deleted_at IS NULL
    ORDER BY e.occurred_at DESC, e.id DESC
    """
)


@dataclass(frozen=True, slots=True)
class HostName:
    """What a request host names: a tenant's slug under the tracking domain, or a custom domain."""

    slug: str | None = None
    domain: str | None = None

    @classmethod
    def parse(cls, host: str, tracking_domain: str | None) -> HostName | None:
        """`Acme.Track.Example.com:443` names slug `acme`; None for what is no host name at all."""
        name = host.strip().lower()
        if name.startswith("["):
            return None  # an IPv6 address names no tenant
        name = name.partition(":")[0].removesuffix(".")
        if not _HOST_NAME.match(name):
            return None
        suffix = f".{tracking_domain}" if tracking_domain else None
        if suffix and name.endswith(suffix):
            slug = name.removesuffix(suffix)
            return cls(slug=slug) if "." not in slug else None
        return cls(domain=name)


@dataclass(frozen=True, slots=True)
class TrackingSite:
    """The tenant a tracking host belongs to."""

    tenant_id: uuid.UUID
    slug: str
    status: TenantStatus


class TrackingHosts:
    """The tenant of each tracking host, cached briefly so a busy page is not a query per request.

    A suspension or a domain change is seen within `ttl_seconds`. Unknown hosts are cached
    too (a client cannot make it query the same wrong host over and over), and the cache is
    bounded, because the hosts come from clients."""

    def __init__(self, tracking_domain: str | None, *, ttl_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self.tracking_domain = tracking_domain.strip(".").lower() if tracking_domain else None
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._cache: dict[HostName, tuple[float, TrackingSite | None]] = {}

    async def find(self, engine: AsyncEngine, host: str) -> TrackingSite | None:
        """The host's tenant, whatever its status; None for a host of no tenant."""
        name = HostName.parse(host, self.tracking_domain)
        if name is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        site = await find_site(engine, name)
        if len(self._cache) >= self.max_entries:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
        self._cache[name] = (now + self.ttl, site)
        return site

    def forget(self) -> None:
        self._cache.clear()


async def find_site(engine: AsyncEngine, name: HostName) -> TrackingSite | None:
    """Read the one tenants row the host names, before any tenant is set (migration 0003's policy)."""
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        async with raw.transaction():
            await raw.execute(_SET_HOST, name.domain or "", name.slug or "")
            row = await raw.fetchrow(_SELECT_BY_HOST, name.domain, name.slug)
    if row is None:
        return None
    return TrackingSite(tenant_id=row["id"], slug=row["slug"], status=TenantStatus(row["status"]))


@dataclass(frozen=True, slots=True)
class PublicEvent:
    status: ShipmentStatus
    location: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class PublicShipment:
    """All an end customer learns of a shipment: nothing that names a person, a place of theirs or an id."""

    tracking_number: str
    status: ShipmentStatus
    events: tuple[PublicEvent, ...]


async def find_public_shipment(
    engine: AsyncEngine, tenant_id: uuid.UUID, tracking_number: str
) -> PublicShipment | None:
    """The tenant's shipment with that tracking number, unless deleted; read under RLS as that tenant."""
    if not tracking_number or len(tracking_number) > MAX_TRACKING_NUMBER:
        return None
    async with tenant_transaction(engine, tenant_id) as db:
        rows = await db.all(_SELECT_SHIPMENT, tracking_number=tracking_number, max_events=MAX_EVENTS)
    if not rows:
        return None
    events = tuple(
        PublicEvent(ShipmentStatus(row.event_status), row.location, row.occurred_at)
        for row in rows
        if row.event_status is not None
    )
    return PublicShipment(rows[0].tracking_number, ShipmentStatus(rows[0].status), events)


__all__ = [
    "HostName",
    "PublicEvent",
    "PublicShipment",
    "TrackingHosts",
    "TrackingSite",
    "find_public_shipment",
    "find_site",
]
