"""The tables. Every tenant table is keyed by `(tenant_id, id)` and references only its own tenant.

Composite foreign keys carry `tenant_id`, so a shipment can never point at another tenant's
customer even if application code asked it to; uniqueness is per tenant, so a duplicate
can only ever collide with the caller's own rows.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from auth.tenant import Plan, Role, TenantStatus  # identity enums: auth/ owns them, db/ stores them

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ShipmentStatus(enum.StrEnum):
    CREATED = "CREATED"
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class VehicleKind(enum.StrEnum):
    BIKE = "BIKE"
    CAR = "CAR"
    VAN = "VAN"
    TRUCK = "TRUCK"


def _enum(kind: type[enum.StrEnum]) -> Enum:
    # A VARCHAR with a CHECK: adding a value later is a plain migration, not ALTER TYPE.
    return Enum(kind, name=kind.__name__.lower(), native_enum=False, create_constraint=True, length=24)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _tenant_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=text("now()"), nullable=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    """A courier company. The only table without `tenant_id`: it *is* the tenant."""

    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint("custom_domain = lower(custom_domain)", name="custom_domain_lowercase"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(Text)
    plan: Mapped[Plan] = mapped_column(_enum(Plan), server_default=Plan.STARTER.value)
    status: Mapped[TenantStatus] = mapped_column(_enum(TenantStatus), server_default=TenantStatus.ACTIVE.value)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)  # ENTERPRISE override
    custom_domain: Mapped[str | None] = mapped_column(Text, unique=True)  # public tracking host, lowercase
    created_at: Mapped[datetime] = _created_at()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(_enum(Role))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (Index(None, "tenant_id", "created_at", "id"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = _created_at()


class Vehicle(Base):
    __tablename__ = "vehicles"
    __table_args__ = (UniqueConstraint("tenant_id", "plate"), Index(None, "tenant_id", "created_at", "id"))

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    plate: Mapped[str] = mapped_column(String(20))
    kind: Mapped[VehicleKind] = mapped_column(_enum(VehicleKind))
    capacity_kg: Mapped[float | None] = mapped_column(Numeric(10, 2, asdecimal=False))
    created_at: Mapped[datetime] = _created_at()


class Driver(Base):
    __tablename__ = "drivers"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "vehicle_id"], ["vehicles.tenant_id", "vehicles.id"]),
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "vehicle_id"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    vehicle_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _created_at()


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "tracking_number"),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "driver_id"], ["drivers.tenant_id", "drivers.id"]),
        # Keyset pagination, newest first: one index per way the list is filtered.
        Index("ix_shipments_tenant_newest", "tenant_id", text("created_at DESC"), text("id DESC")),
        Index("ix_shipments_tenant_status_newest", "tenant_id", "status", text("created_at DESC"), text("id DESC")),
        Index(
            "ix_shipments_tenant_customer_newest", "tenant_id", "customer_id", text("created_at DESC"), text("id DESC")
        ),
        Index(None, "tenant_id", "driver_id"),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    tracking_number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    driver_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[ShipmentStatus] = mapped_column(_enum(ShipmentStatus), server_default=ShipmentStatus.CREATED.value)
    origin: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(Text)
    weight_kg: Mapped[float] = mapped_column(Numeric(10, 3, asdecimal=False))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "shipment_id"], ["shipments.tenant_id", "shipments.id"]),
        Index(
            "ix_tracking_events_tenant_shipment_latest",
            "tenant_id",
            "shipment_id",
            text("occurred_at DESC"),
            text("id DESC"),
        ),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    shipment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[ShipmentStatus] = mapped_column(_enum(ShipmentStatus))
    location: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    """Stored as a hash; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "prefix"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[Role] = mapped_column(_enum(Role))
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_newest", "tenant_id", text("occurred_at DESC"), text("id DESC")),)

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(80))
    target_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    changes: Mapped[dict | None] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = _created_at()


TENANT_TABLES = tuple(table for table in Base.metadata.sorted_tables if "tenant_id" in table.columns)

# Usage metering (db.usage, migration 0004): tenant tables under RLS like the ones above,
# written in bulk by the usage flusher and read by SQL Core, so plain tables rather than classes.
usage_table = Table(
    "usage",
    Base.metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("day", Date, nullable=False),
    Column("api_key_id", UUID(as_uuid=True)),  # NULL: spent with users' tokens
    Column("points", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    ForeignKeyConstraint(["tenant_id", "api_key_id"], ["api_keys.tenant_id", "api_keys.id"]),
    UniqueConstraint("tenant_id", "day", "api_key_id", postgresql_nulls_not_distinct=True),
)
flushes_table = Table(
    "usage_flushes",
    Base.metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("batch_id", UUID(as_uuid=True), primary_key=True),
    Column("flushed_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

__all__ = [
    "TENANT_TABLES",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Customer",
    "Driver",
    "Plan",
    "Role",
    "Shipment",
    "ShipmentStatus",
    "Tenant",
    "TenantStatus",
    "TrackingEvent",
    "User",
    "Vehicle",
    "VehicleKind",
    "flushes_table",
    "usage_table",
]
