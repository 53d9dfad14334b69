"""The user check of a request, run by the statement that opens its transaction.

Every request with a user's token must act with the role the user has now, and not at
all once the user is deactivated. `user_standing_is(user_id, role)` reads the user under
the transaction's own tenant (RLS applies: it runs as the caller) and raises SQLSTATE
`TQ401` unless the user exists, is active and has `role`; its DETAIL is what was found, as
JSON: `null`, or `{"role": …, "active": …}`. The request opens its transaction
with `BEGIN; SELECT set_config('app.tenant_id', …, true); SELECT user_standing_is(…)` in one
round trip, as PostgREST runs its pre-request function (docs/adr/0011-user-check-opens-the-request-transaction.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_TENANT = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION user_standing_is(wanted_user uuid, wanted_role text) RETURNS boolean
        LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
        DECLARE
            found_role text;
            found_active boolean;
        BEGIN
            SELECT u.role, u.active INTO found_role, found_active
              FROM public.users u
             WHERE u.tenant_id = {CURRENT_TENANT} AND u.id = wanted_user;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the user does not exist' USING ERRCODE = 'TQ401', DETAIL = 'null';
            ELSIF NOT found_active OR found_role <> wanted_role THEN
                RAISE EXCEPTION 'the user is not active with the role asked for' USING ERRCODE = 'TQ401',
                    DETAIL = json_build_object('role', found_role, 'active', found_active)::text;
            END IF;
            RETURN true;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS user_standing_is(uuid, text)")
