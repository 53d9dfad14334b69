"""Tenants and demo data. Deterministic: the same call makes the same rows, so seeding twice adds nothing.

Rows are generated in PostgreSQL with `generate_series`, one statement per table, and
ids are derived from md5 of a name (`slug-kind-n`), so a benchmark data set of forty
thousand shipments takes seconds and every run sees the same data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tenant import Plan, Role, TenantStatus
from db.models import Tenant, User
from db.transaction import tenant_transaction

_tenants = Tenant.__table__
_users = User.__table__


@dataclass(frozen=True, slots=True)
class DataSize:
    customers: int = 40
    vehicles: int = 8
    drivers: int = 10
    shipments: int = 300
    events_per_shipment: int = 4


DEMO_TENANTS = (("acme", "Acme Couriers", Plan.STARTER), ("globex", "Globex Logistics", Plan.SCALE))


def stable_id(*parts: object) -> uuid.UUID:
    """The id PostgreSQL's `md5(...)::uuid` gives the same name: seeds and tests agree on ids."""
    import hashlib

    return uuid.UUID(hashlib.md5("-".join(map(str, parts)).encode()).hexdigest())


async def ensure_tenant(owner: AsyncEngine, slug: str, name: str, plan: Plan) -> uuid.UUID:
    """The tenant with this slug, created if missing (with one user per role)."""
    async with owner.connect() as connection:
        await connection.execute(
            insert(_tenants)
            .values(slug=slug, name=name, plan=plan, status=TenantStatus.ACTIVE)
            .on_conflict_do_nothing(index_elements=["slug"])
        )
        tenant_id = (await connection.execute(select(_tenants.c.id).where(_tenants.c.slug == slug))).scalar_one()
    async with tenant_transaction(owner, tenant_id) as db:
        for role in Role:
            email = f"{role.value.lower()}@{slug}.example"
            await db.write(
                insert(_users)
                .values(
                    tenant_id=tenant_id,
                    id=stable_id(slug, "user", role.value),
                    email=email,
                    name=f"{slug.title()} {role.value.title()}",
                    role=role,
                )
                .on_conflict_do_nothing()
            )
    return tenant_id


async def seed_tenant_data(owner: AsyncEngine, tenant_id: uuid.UUID, slug: str, size: DataSize) -> None:
    params = {
        "slug": slug,
        "customers": size.customers,
        "vehicles": size.vehicles,
        "drivers": size.drivers,
        "shipments": size.shipments,
        "events": size.events_per_shipment,
    }
    async with tenant_transaction(owner, tenant_id) as db:
        for statement in _SEED_STATEMENTS:
            await db.write(text(statement), **params)


async def seed_demo(owner: AsyncEngine, size: DataSize = DataSize()) -> list[tuple[str, uuid.UUID]]:
    """The demo tenants with a few hundred shipments each; nothing is added twice."""
    seeded = []
    for slug, name, plan in DEMO_TENANTS:
        tenant_id = await ensure_tenant(owner, slug, name, plan)
        await seed_tenant_data(owner, tenant_id, slug, size)
        seeded.append((slug, tenant_id))
    return seeded


async def is_empty(owner: AsyncEngine) -> bool:
    async with owner.connect() as connection:
        return (await connection.execute(select(_tenants.c.id).limit(1))).first() is None


_SEED_STATEMENTS = (
    """
    INSERT INTO customers (tenant_id, id, name, email, phone, created_at)
    SELECT :tenant_id, md5(:slug || '-customer-' || i)::uuid,
           (array['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken','Radia','Tim'])[1 + i % 10]
             || ' ' || (array['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson',
                              'Perlman','Berners-Lee'])[1 + (i / 10) % 10] || ' ' || i,
           'customer' || i || '@' || :slug || '.example',
           '+1-555-' || lpad(i::text, 4, '0'),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, :customers) AS i
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO vehicles (tenant_id, id, plate, kind, capacity_kg, created_at)
    SELECT :tenant_id, md5(:slug || '-vehicle-' || i)::uuid,
           upper(left(:slug, 3)) || '-' || lpad(i::text, 4, '0'),
           (array['BIKE','CAR','VAN','TRUCK'])[1 + i % 4],
           (array[20, 300, 1200, 8000])[1 + i % 4],
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, :vehicles) AS i
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO drivers (tenant_id, id, name, phone, vehicle_id, created_at)
    SELECT :tenant_id, md5(:slug || '-driver-' || i)::uuid,
           (array['Sam','Alex','Jo','Kim','Lee','Max','Noa','Ray'])[1 + i % 8] || ' Driver ' || i,
           '+1-555-9' || lpad(i::text, 3, '0'),
           CASE WHEN i <= :vehicles THEN md5(:slug || '-vehicle-' || i)::uuid END,
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, :drivers) AS i
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO shipments (tenant_id, id, tracking_number, customer_id, driver_id, status, origin, destination,
                           weight_kg, created_at, updated_at)
    SELECT :tenant_id, md5(:slug || '-shipment-' || i)::uuid,
           'TQ' || upper(substr(md5(:slug || '-tracking-' || i), 1, 10)),
           md5(:slug || '-customer-' || (1 + (i * 7) % :customers))::uuid,
           CASE WHEN i % 3 <> 0 AND :drivers > 0
                THEN md5(:slug || '-driver-' || (1 + i % greatest(:drivers, 1)))::uuid END,
           (array['CREATED','PICKED_UP','IN_TRANSIT','OUT_FOR_DELIVERY','DELIVERED','DELIVERED'])[1 + i % 6],
           (array['Berlin','Paris','Madrid','Rome','Vienna','Prague','Warsaw','Lisbon'])[1 + i % 8],
           (array['Amsterdam','Brussels','Copenhagen','Dublin','Oslo','Zurich','Milan','Lyon'])[1 + (i * 3) % 8],
           round((0.5 + (i % 97) * 0.75)::numeric, 3),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '10 minutes',
           timestamptz '2026-01-01 00:00:00+00' + i * interval '10 minutes'
    FROM generate_series(1, :shipments) AS i
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO tracking_events (tenant_id, id, shipment_id, status, location, note, occurred_at)
    SELECT :tenant_id, md5(:slug || '-event-' || i || '-' || k)::uuid,
           md5(:slug || '-shipment-' || i)::uuid,
           (array['CREATED','PICKED_UP','IN_TRANSIT','IN_TRANSIT','OUT_FOR_DELIVERY','DELIVERED'])[1 + (k - 1) % 6],
           (array['Depot','Hub North','Hub South','Sorting Center','Local Station'])[1 + (i + k) % 5],
           CASE WHEN k = 1 THEN 'Label created' END,
           timestamptz '2026-01-01 00:00:00+00' + i * interval '10 minutes' + k * interval '1 hour'
    FROM generate_series(1, :shipments) AS i, generate_series(1, :events) AS k
    ON CONFLICT DO NOTHING
    """,
)

__all__ = ["DEMO_TENANTS", "DataSize", "ensure_tenant", "is_empty", "seed_demo", "seed_tenant_data", "stable_id"]
