"""The start-up self-check: the server refuses a role or a schema that would not keep tenants apart."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import create_app_engine
from db.roles import UnsafeDatabaseRole, check_application_role
from tenantql.services import Services


async def test_the_application_role_passes(app_engine):
    await check_application_role(app_engine)


async def test_a_superuser_is_refused(embedded):
    engine = create_app_engine(embedded.postgres.url("postgres"), pool_size=1)
    try:
        with pytest.raises(UnsafeDatabaseRole, match="superuser"):
            await check_application_role(engine)
    finally:
        await engine.dispose()


async def test_the_table_owner_is_refused(urls):
    engine = create_app_engine(urls.database_owner_url, pool_size=1)
    try:
        with pytest.raises(UnsafeDatabaseRole, match="owns tables"):
            await check_application_role(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("setup", "complaint"),
    [
        ("", "does not have row level security enabled"),
        ("ALTER TABLE scratch ENABLE ROW LEVEL SECURITY", "does not force row level security"),
        (
            "ALTER TABLE scratch ENABLE ROW LEVEL SECURITY; ALTER TABLE scratch FORCE ROW LEVEL SECURITY; "
            "CREATE POLICY scratch_select ON scratch FOR SELECT USING (true)",
            "has no policy for DELETE, INSERT, UPDATE",
        ),
    ],
)
async def test_a_tenant_table_without_forced_rls_and_policies_is_refused(owner_engine, app_engine, setup, complaint):
    async with owner_engine.connect() as connection:
        await connection.execute(text("CREATE TABLE scratch (tenant_id uuid NOT NULL, note text)"))
        for statement in filter(None, setup.split("; ")):
            await connection.execute(text(statement))
    try:
        with pytest.raises(UnsafeDatabaseRole, match=complaint):
            await check_application_role(app_engine)
    finally:
        async with owner_engine.connect() as connection:
            await connection.execute(text("DROP TABLE scratch"))


async def test_the_server_does_not_start_as_a_superuser(settings, embedded):
    from dataclasses import replace

    with pytest.raises(UnsafeDatabaseRole):
        await Services.open(replace(settings, database_url=embedded.postgres.url("postgres")))
