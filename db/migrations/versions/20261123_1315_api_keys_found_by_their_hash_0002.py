"""API keys found by their hash, before the tenant is known.

A request authenticated by an API key names no tenant: the key does. So the key's row
must be readable before `app.tenant_id` is set, without opening the table to everyone.
The select policy also admits the one row whose hash the transaction sets in
`app.api_key_hash`: only a caller holding the key can compute that hash, so knowing the
key is the capability, and no role needs BYPASSRLS. Writes stay tenant-scoped.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:15:00
"""

from collections.abc import Sequence

from alembic import op

CURRENT_TENANT = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)"
PRESENTED_KEY = "(select nullif(current_setting('app.api_key_hash', true), ''))"

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ux_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.execute("DROP POLICY api_keys_select ON api_keys")
    op.execute(
        f"CREATE POLICY api_keys_select ON api_keys FOR SELECT"
        f" USING (tenant_id = {CURRENT_TENANT} OR key_hash = {PRESENTED_KEY})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY api_keys_select ON api_keys")
    op.execute(f"CREATE POLICY api_keys_select ON api_keys FOR SELECT USING (tenant_id = {CURRENT_TENANT})")
    op.drop_index("ux_api_keys_key_hash", table_name="api_keys")
