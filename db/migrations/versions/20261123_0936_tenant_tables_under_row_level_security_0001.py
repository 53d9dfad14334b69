"""Tenant tables under row level security.

Every table with `tenant_id` gets RLS enabled and forced (so even the owner is bound)
and one policy per command. The tenant comes from the transaction-local setting
`app.tenant_id`; the sub-select makes PostgreSQL evaluate it once per statement, and
an unset tenant yields NULL, which matches no row. `tenants` itself is readable by the
application role only for the tenant in effect.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 09:36:13.099620
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

CURRENT_TENANT = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)"
TENANT_TABLES = ("users", "customers", "vehicles", "drivers", "shipments", "tracking_events", "api_keys", "audit_log")

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('plan', sa.Enum('STARTER', 'GROWTH', 'SCALE', 'ENTERPRISE', name='plan', native_enum=False, create_constraint=True, length=24), server_default='STARTER', nullable=False),
    sa.Column('status', sa.Enum('ACTIVE', 'SUSPENDED', name='tenantstatus', native_enum=False, create_constraint=True, length=24), server_default='ACTIVE', nullable=False),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('slug', name=op.f('uq_tenants_slug'))
    )
    op.create_table('api_keys',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('prefix', sa.String(length=24), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('role', sa.Enum('ADMIN', 'MEMBER', 'VIEWER', name='role', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('tenant_id', 'prefix', name=op.f('uq_api_keys_tenant_id_prefix'))
    )
    op.create_table('audit_log',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('target_id', sa.UUID(), nullable=True),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_audit_log_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_tenant_newest', 'audit_log', ['tenant_id', sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('customers',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_customers_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_customers'))
    )
    op.create_index(op.f('ix_customers_tenant_id_created_at_id'), 'customers', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_table('users',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('role', sa.Enum('ADMIN', 'MEMBER', 'VIEWER', name='role', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_users_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_users')),
    sa.UniqueConstraint('tenant_id', 'email', name=op.f('uq_users_tenant_id_email'))
    )
    op.create_table('vehicles',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('plate', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.Enum('BIKE', 'CAR', 'VAN', 'TRUCK', name='vehiclekind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('capacity_kg', sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_vehicles_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_vehicles')),
    sa.UniqueConstraint('tenant_id', 'plate', name=op.f('uq_vehicles_tenant_id_plate'))
    )
    op.create_index(op.f('ix_vehicles_tenant_id_created_at_id'), 'vehicles', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_table('drivers',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('vehicle_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'vehicle_id'], ['vehicles.tenant_id', 'vehicles.id'], name=op.f('fk_drivers_tenant_id_vehicle_id_vehicles')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_drivers_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_drivers'))
    )
    op.create_index(op.f('ix_drivers_tenant_id_created_at_id'), 'drivers', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_index(op.f('ix_drivers_tenant_id_vehicle_id'), 'drivers', ['tenant_id', 'vehicle_id'], unique=False)
    op.create_table('shipments',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tracking_number', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('driver_id', sa.UUID(), nullable=True),
    sa.Column('status', sa.Enum('CREATED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED', 'CANCELLED', name='shipmentstatus', native_enum=False, create_constraint=True, length=24), server_default='CREATED', nullable=False),
    sa.Column('origin', sa.Text(), nullable=False),
    sa.Column('destination', sa.Text(), nullable=False),
    sa.Column('weight_kg', sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_shipments_tenant_id_customer_id_customers')),
    sa.ForeignKeyConstraint(['tenant_id', 'driver_id'], ['drivers.tenant_id', 'drivers.id'], name=op.f('fk_shipments_tenant_id_driver_id_drivers')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_shipments_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_shipments')),
    sa.UniqueConstraint('tenant_id', 'tracking_number', name=op.f('uq_shipments_tenant_id_tracking_number'))
    )
    op.create_index('ix_shipments_tenant_customer_newest', 'shipments', ['tenant_id', 'customer_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index(op.f('ix_shipments_tenant_id_driver_id'), 'shipments', ['tenant_id', 'driver_id'], unique=False)
    op.create_index('ix_shipments_tenant_newest', 'shipments', ['tenant_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_shipments_tenant_status_newest', 'shipments', ['tenant_id', 'status', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('tracking_events',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('shipment_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.Enum('CREATED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED', 'CANCELLED', name='shipmentstatus', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'shipment_id'], ['shipments.tenant_id', 'shipments.id'], name=op.f('fk_tracking_events_tenant_id_shipment_id_shipments')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tracking_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_tracking_events'))
    )
    op.create_index('ix_tracking_events_tenant_shipment_latest', 'tracking_events', ['tenant_id', 'shipment_id', sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)

    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_select ON {table} FOR SELECT USING (tenant_id = {CURRENT_TENANT})")
        op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK (tenant_id = {CURRENT_TENANT})")
        op.execute(
            f"CREATE POLICY {table}_update ON {table} FOR UPDATE"
            f" USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
        )
        op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING (tenant_id = {CURRENT_TENANT})")

    # Not forced: the owner (migrations, onboarding) manages tenants; the application role
    # can read only the row of the tenant its transaction acts for.
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenants_select_current ON tenants FOR SELECT USING (id = {CURRENT_TENANT})")

    app_role = app_role_name()
    if app_role:
        op.execute(f'GRANT USAGE ON SCHEMA public TO "{app_role}"')
        op.execute(f'GRANT SELECT ON tenants TO "{app_role}"')
        tables = ", ".join(TENANT_TABLES)
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO "{app_role}"')


def app_role_name() -> str | None:
    """The application role to grant: set by `tenantql migrate`, or `alembic -x app_role=NAME`."""
    context = op.get_context()
    name = context.config.attributes.get("app_role") if context.config else None
    name = name or context.get_x_argument(as_dictionary=True).get("app_role")
    if name and not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected role name: {name!r}")
    return name


def downgrade() -> None:
    for table in TENANT_TABLES:
        for command in ("select", "insert", "update", "delete"):
            op.execute(f"DROP POLICY IF EXISTS {table}_{command} ON {table}")
    op.execute("DROP POLICY IF EXISTS tenants_select_current ON tenants")
    op.drop_index('ix_tracking_events_tenant_shipment_latest', table_name='tracking_events')
    op.drop_table('tracking_events')
    op.drop_index('ix_shipments_tenant_status_newest', table_name='shipments')
    op.drop_index('ix_shipments_tenant_newest', table_name='shipments')
    op.drop_index(op.f('ix_shipments_tenant_id_driver_id'), table_name='shipments')
    op.drop_index('ix_shipments_tenant_customer_newest', table_name='shipments')
    op.drop_table('shipments')
    op.drop_index(op.f('ix_drivers_tenant_id_vehicle_id'), table_name='drivers')
    op.drop_index(op.f('ix_drivers_tenant_id_created_at_id'), table_name='drivers')
    op.drop_table('drivers')
    op.drop_index(op.f('ix_vehicles_tenant_id_created_at_id'), table_name='vehicles')
    op.drop_table('vehicles')
    op.drop_table('users')
    op.drop_index(op.f('ix_customers_tenant_id_created_at_id'), table_name='customers')
    op.drop_table('customers')
    op.drop_index('ix_audit_log_tenant_newest', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_keys')
    op.drop_table('tenants')
