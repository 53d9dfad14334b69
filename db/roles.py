"""The two database roles, and the start-up check that the server runs as the right one.

The owner role owns the tables and runs migrations. The application role, which serves
requests, is no superuser, has no BYPASSRLS and owns nothing: for it, Row Level Security
is not a convention but the only way to the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

COMMANDS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


class UnsafeDatabaseRole(RuntimeError):
    """The server refuses to start: its role or the tables would not keep tenants apart."""


@dataclass(frozen=True, slots=True)
class RoleNames:
    owner: str = "tenantql_owner"
    app: str = "tenantql_app"
    database: str = "tenantql"


def bootstrap_sql(names: RoleNames) -> list[str]:
    """What a superuser runs once to create the roles (the embedded server does it itself)."""
    return [
        f'CREATE ROLE "{names.owner}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE',
        f'CREATE ROLE "{names.app}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB',
        f'CREATE DATABASE "{names.database}" OWNER "{names.owner}"',
    ]


async def check_application_role(engine: AsyncEngine) -> None:
    """Refuse to serve unless RLS binds this role on every tenant table."""
    async with engine.connect() as connection:
        problems = await _role_problems(connection) + await _table_problems(connection)
    if problems:
        raise UnsafeDatabaseRole(
            "refusing to start, the database would not keep tenants apart:\n  - " + "\n  - ".join(problems)
        )


async def _role_problems(connection: AsyncConnection) -> list[str]:
    role = (
        await connection.execute(
            text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        )
    ).one()
    problems = []
    if role.rolsuper:
        problems.append(f"role {role.rolname!r} is a superuser; use a role made with NOSUPERUSER")
    if role.rolbypassrls:
        problems.append(f"role {role.rolname!r} has BYPASSRLS; use a role made with NOBYPASSRLS")
    owned = (
        (
            await connection.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
                    "AND c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                )
            )
        )
        .scalars()
        .all()
    )
    if owned:
        problems.append(f"role {role.rolname!r} owns tables ({', '.join(sorted(owned))}); the owner role must")
    return problems


async def _table_problems(connection: AsyncConnection) -> list[str]:
    rows = (
        await connection.execute(
            text(
                """
                SELECT c.relname AS table_name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                       coalesce(array_agg(p.cmd) FILTER (WHERE p.cmd IS NOT NULL), '{}') AS commands
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                LEFT JOIN pg_policies p ON p.schemaname = n.nspname AND p.tablename = c.relname
                WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity
                ORDER BY c.relname
                """
            )
        )
    ).all()
    problems = []
    if not rows:
        problems.append("no table with a tenant_id column is visible: run `tenantql migrate` first")
    for row in rows:
        if not row.enabled:
            problems.append(f"table {row.table_name!r} does not have row level security enabled")
        if not row.forced:
            problems.append(f"table {row.table_name!r} does not force row level security")
        covered = COMMANDS if "ALL" in row.commands else COMMANDS & set(row.commands)
        if missing := sorted(COMMANDS - covered):
            problems.append(f"table {row.table_name!r} has no policy for {', '.join(missing)}")
    return problems


__all__ = ["RoleNames", "UnsafeDatabaseRole", "bootstrap_sql", "check_application_role"]
