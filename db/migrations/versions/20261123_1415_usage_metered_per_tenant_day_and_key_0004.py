"""Usage metering: the cost points each tenant spent per day, and per API key.

`usage` holds one row per tenant, UTC day and API key (NULL: spent with users' tokens),
to which each flush adds its points. `usage_flushes` records which flushed batch of counts
each tenant has taken in, written in the same transaction as the points: a batch flushed
again after a crash is recognised and skipped, so no point counts twice
(docs/adr/0006-usage-metering.md). Both are tenant tables like the others: RLS enabled and
forced, one policy per command, written by the application role one tenant at a time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

CURRENT_TENANT = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)"
TABLES = ("usage", "usage_flushes")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_usage_tenant_id_tenants")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "api_key_id"],
            ["api_keys.tenant_id", "api_keys.id"],
            name=op.f("fk_usage_tenant_id_api_key_id_api_keys"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_usage")),
        # NULLS NOT DISTINCT (PostgreSQL 15): a day's token usage is one row, as each key's is.
        sa.UniqueConstraint(
            "tenant_id", "day", "api_key_id", name=op.f("uq_usage_tenant_id_day_api_key_id"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "usage_flushes",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("flushed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_usage_flushes_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "batch_id", name=op.f("pk_usage_flushes")),
    )
    # Old entries are pruned by each flush of the tenant.
    op.create_index(
        op.f("ix_usage_flushes_tenant_id_flushed_at"), "usage_flushes", ["tenant_id", "flushed_at"], unique=False
    )

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_select ON {table} FOR SELECT USING (tenant_id = {CURRENT_TENANT})")
        op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK (tenant_id = {CURRENT_TENANT})")
        op.execute(
            f"CREATE POLICY {table}_update ON {table} FOR UPDATE"
            f" USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
        )
        op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING (tenant_id = {CURRENT_TENANT})")

    app_role = app_role_name()
    if app_role:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO "{app_role}"')


def app_role_name() -> str | None:
    """The application role to grant, as in 0001: set by `tenantql migrate`, or `alembic -x app_role=NAME`."""
    context = op.get_context()
    name = context.config.attributes.get("app_role") if context.config else None
    name = name or context.get_x_argument(as_dictionary=True).get("app_role")
    if name and not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected role name: {name!r}")
    return name


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_flushes_tenant_id_flushed_at"), table_name="usage_flushes")
    op.drop_table("usage_flushes")
    op.drop_table("usage")
