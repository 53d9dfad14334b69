"""Tenant domains for public tracking: a tenant is found by the host an end customer visits.

A public tracking request carries no credential, so its tenant comes from the request
host: a custom domain stored here, or `<slug>.<TRACKING_DOMAIN>`. The application role
must read that one tenants row before any tenant is set, so, as for API keys (0002), the
select policy also admits the row whose `custom_domain` equals the transaction-local
`app.request_host`, or whose slug equals `app.request_slug`. An unset or empty setting is
NULL and matches nothing; the current-tenant policy stays as it was.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

REQUEST_HOST = "(select nullif(current_setting('app.request_host', true), ''))"
REQUEST_SLUG = "(select nullif(current_setting('app.request_slug', true), ''))"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("custom_domain", sa.Text(), nullable=True))
    # Stored lowercase, as hosts are compared: `Track.Example.com` and `track.example.com` are one domain.
    op.create_check_constraint(
        op.f("ck_tenants_custom_domain_lowercase"), "tenants", "custom_domain = lower(custom_domain)"
    )
    op.create_unique_constraint(op.f("uq_tenants_custom_domain"), "tenants", ["custom_domain"])
    op.execute(
        f"CREATE POLICY tenants_select_request_host ON tenants FOR SELECT"
        f" USING (custom_domain = {REQUEST_HOST} OR slug = {REQUEST_SLUG})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY tenants_select_request_host ON tenants")
    op.drop_constraint(op.f("uq_tenants_custom_domain"), "tenants", type_="unique")
    op.drop_constraint(op.f("ck_tenants_custom_domain_lowercase"), "tenants", type_="check")
    op.drop_column("tenants", "custom_domain")
