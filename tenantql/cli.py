"""`tenantql`: serve the API, migrate the database, print tokens, manage tenants and API keys, seed data."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Secret

from auth.authenticate import API_KEY_PLANS
from auth.jwt import issue_platform_token, issue_token
from auth.platform import SUBJECT
from auth.tenant import Plan, Role
from db import api_keys, platform
from db.engine import create_owner_engine
from db.migrate import upgrade
from db.models import Tenant, User
from db.persisted_queries import ManifestError, PersistedQueryStore, read_manifest
from db.seed import DEMO_TENANTS, DataSize, ensure_tenant, is_empty, seed_demo, seed_tenant_data
from db.transaction import tenant_transaction
from resolvers.ids import id_of
from tenantql.embedded import EmbeddedServers
from tenantql.logs import configure_logging
from tenantql.settings import Settings

log = logging.getLogger("tenantql")


def local_jwt_secret(settings: Settings) -> Settings:
    """With no JWT_SECRET and no JWKS, use a secret kept under TENANTQL_HOME.

    `serve` and `token` both read it, so a token printed by one works on the other.
    """
    if settings.jwt_secret or settings.jwt_jwks_url:
        return settings
    path = settings.home / "jwt-secret"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return replace(settings, jwt_secret=Secret(path.read_text().strip()))


async def start_embedded(settings: Settings) -> tuple[Settings, EmbeddedServers]:
    """Start (or reuse) the embedded servers under TENANTQL_HOME; the settings then name them."""
    embedded = EmbeddedServers(settings.home)
    urls = await embedded.start()
    configured = settings.with_servers(
        database_url=urls.database_url, database_owner_url=urls.database_owner_url, redis_url=urls.redis_url
    )
    return configured, embedded


@asynccontextmanager
async def servers_for(settings: Settings) -> AsyncIterator[Settings]:
    """The settings with server addresses; with no DATABASE_URL the embedded servers are started (and stopped after)."""
    if settings.database_url:  # these commands need only PostgreSQL
        yield settings
        return
    configured, embedded = await start_embedded(settings)
    try:
        yield configured
    finally:
        await asyncio.to_thread(embedded.stop)


@asynccontextmanager
async def owner_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    if not settings.database_owner_url:
        raise SystemExit("DATABASE_OWNER_URL is not set: this command runs as the owner role")
    engine = create_owner_engine(settings.database_owner_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def migrate(settings: Settings) -> None:
    if not settings.database_owner_url or not settings.database_url:
        raise SystemExit("migrations need DATABASE_OWNER_URL (to run as) and DATABASE_URL (the role to grant)")
    await upgrade(settings.database_owner_url, settings.database_url)


async def demo_token(engine: AsyncEngine, settings: Settings, slug: str, role: Role, ttl_seconds: int) -> str:
    async with engine.connect() as connection:
        tenant_id = (await connection.execute(select(Tenant.id).where(Tenant.slug == slug))).scalar()
    if tenant_id is None:
        raise SystemExit(f"no tenant with slug {slug!r}")
    async with tenant_transaction(engine, tenant_id) as db:
        user = await db.one_or_none(
            select(User.id).where(User.tenant_id == tenant_id, User.role == role, User.active.is_(True)).limit(1)
        )
    if user is None:
        raise SystemExit(f"tenant {slug!r} has no active {role.value.lower()} user")
    assert settings.jwt_secret is not None
    return issue_token(
        str(settings.jwt_secret),
        tenant_id=tenant_id,
        user_id=user.id,
        role=role,
        ttl_seconds=ttl_seconds,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def parse_ttl(value: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError("a duration like 90s, 30m, 1h or 7d")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def parse_role(value: str) -> Role:
    role = Role.from_claim(value.lower())
    if role is None:
        raise argparse.ArgumentTypeError("one of admin, member, viewer")
    return role


def parse_plan(value: str) -> Plan:
    plan = Plan.__members__.get(value.strip().upper())
    if plan is None:
        raise argparse.ArgumentTypeError(f"one of {', '.join(Plan)}")
    return plan


def parse_budget(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("a whole number of points per minute, at least 1")
    return int(value)


# --- commands ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    async def prepare(configured: Settings) -> Settings:
        """The demo: seed an empty database, print a token per demo tenant, pre-fill GraphiQL."""
        async with owner_engine(configured) as engine:
            if await is_empty(engine):
                log.info("empty database: seeding the demo tenants %s", ", ".join(s for s, _, _ in DEMO_TENANTS))
                await seed_demo(engine)
            tokens = {}
            for slug, _, _ in DEMO_TENANTS:
                try:
                    tokens[slug] = await demo_token(engine, configured, slug, Role.ADMIN, 7 * 86400)
                except SystemExit:
                    pass
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        url = f"http://{host}:{args.port}/graphql"
        print(f"\n  GraphiQL: {url}\n", flush=True)
        for slug, token in tokens.items():
            print(f"  {slug} admin token (7 days):\n    {token}\n", flush=True)
        return replace(configured, graphiql_token=tokens.get(DEMO_TENANTS[0][0]) if configured.graphiql else None)

    async def start() -> tuple[Settings, EmbeddedServers | None]:
        embedded = None
        configured = settings
        if not (settings.database_url and settings.redis_url):
            configured, embedded = await start_embedded(settings)
        try:
            if configured.database_owner_url:
                await migrate(configured)
            if embedded or args.demo:
                configured = await prepare(configured)
        except BaseException:
            if embedded:
                embedded.stop()
            raise
        return configured, embedded

    if bool(settings.database_url) != bool(settings.redis_url):
        raise SystemExit("set both DATABASE_URL and REDIS_URL, or neither (to use the embedded servers)")
    configured, embedded = asyncio.run(start())
    # uvicorn re-raises the signal that stopped it once it has drained; SIGTERM's default
    # action would then end the process before the embedded servers are stopped below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        configured.export()
        uvicorn.run(
            "tenantql.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=configured.shutdown_grace_seconds,
        )
    finally:
        if embedded:
            embedded.stop()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured:
            await migrate(configured)

    asyncio.run(run())
    print("database is at the latest migration")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    if args.platform_admin and (args.tenant or args.role):
        print("tenantql token: --platform-admin names no tenant: leave out --tenant and --role", file=sys.stderr)
        return 2
    if not args.platform_admin and not (args.tenant and args.role and args.subject is None):
        print("tenantql token: give --tenant and --role (or --platform-admin [--subject])", file=sys.stderr)
        return 2
    if settings.jwt_jwks_url and not os.environ.get("JWT_SECRET"):
        raise SystemExit("tokens are verified with JWT_JWKS_URL: issue them with your identity provider")
    if args.platform_admin:
        subject = args.subject or login()
        if not SUBJECT.fullmatch(subject):
            print(f"tenantql token: --subject {subject!r}: 1 to 128 letters, digits or ._@+:-", file=sys.stderr)
            return 2
        assert settings.jwt_secret is not None  # local_jwt_secret() made one if none was configured
        print(
            issue_platform_token(
                str(settings.jwt_secret),
                subject=subject,
                ttl_seconds=args.ttl,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
        )
        return 0

    async def run() -> str:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            return await demo_token(engine, configured, args.tenant, args.role, args.ttl)

    print(asyncio.run(run()))
    return 0


class CommandError(Exception):
    """A refusal the user can act on: printed as `tenantql <command>: <message>`, exit code 2."""


async def find_tenant(engine: AsyncEngine, slug: str) -> Any:
    """The tenant row (id, slug, plan, status) for SLUG; CommandError when there is none."""
    async with engine.connect() as connection:
        found = (
            await connection.execute(
                select(Tenant.id, Tenant.slug, Tenant.plan, Tenant.status).where(Tenant.slug == slug)
            )
        ).one_or_none()
    if found is None:
        raise CommandError(f"no tenant with slug {slug!r}")
    return found


def refusing(command: str, run: Any) -> int:
    """Run the coroutine `run()`; a CommandError or PlatformError becomes a message on stderr and exit code 2."""
    try:
        asyncio.run(run())
    except (CommandError, platform.PlatformError) as error:
        print(f"tenantql {command}: {error}", file=sys.stderr)
        return 2
    return 0


def key_matches(key: Any, wanted: str) -> bool:
    """KEY on the command line names a key by its id (uuid or global id), visible prefix or full text."""
    if wanted == key.prefix or wanted == str(key.id) or id_of(wanted, "ApiKey") == key.id:
        return True
    return wanted.startswith(api_keys.KEY_PREFIX) and api_keys.hash_of(wanted) == key.key_hash


def when(moment: datetime | None) -> str:
    """A moment as one word, in UTC (`2026-11-23T13:15:00Z`), or `-` for never."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    name = (args.name or f"{args.role.value.lower()} key").strip()
    if not name or len(name) > 100:
        print("tenantql keys create: --name must be 1 to 100 characters", file=sys.stderr)
        return 2

    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant = await find_tenant(engine, args.tenant)
            if tenant.plan not in API_KEY_PLANS:
                raise CommandError(
                    f"API keys need the SCALE or ENTERPRISE plan; tenant {tenant.slug!r} is on {tenant.plan.value}"
                )
            async with tenant_transaction(engine, tenant.id) as db:
                created = await api_keys.create_key(db, name=name, role=args.role)
        print(created.key, flush=True)
        print(
            f"created API key {created.prefix} ({name!r}, {args.role.value.lower()}) for tenant {tenant.slug!r}, "
            f"id {created.id}.\nThe key is shown this once and only its hash is stored: keep it now.",
            file=sys.stderr,
            flush=True,
        )

    return refusing("keys create", run)


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant = await find_tenant(engine, args.tenant)
            async with tenant_transaction(engine, tenant.id) as db:
                found = [key for key in await api_keys.list_keys(db) if key_matches(key, args.key.strip())]
                if not found:
                    raise CommandError(f"tenant {tenant.slug!r} has no API key {args.key!r}")
                [key] = found
                revoked_at = await api_keys.revoke_key(db, key.id)
        if key.revoked_at is not None:
            print(f"API key {key.prefix} of {tenant.slug!r} was already revoked at {when(key.revoked_at)}", flush=True)
        else:
            print(f"revoked API key {key.prefix} of {tenant.slug!r} at {when(revoked_at)}", flush=True)

    return refusing("keys revoke", run)


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant = await find_tenant(engine, args.tenant)
            async with tenant_transaction(engine, tenant.id) as db:
                keys = await api_keys.list_keys(db)
        if not keys:
            print(f"tenant {tenant.slug!r} has no API keys", file=sys.stderr, flush=True)
            return
        rows = [("PREFIX", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED")]
        rows += [
            (
                key.prefix,
                key.name,
                key.role.value.lower(),
                when(key.created_at),
                when(key.last_used_at),
                when(key.revoked_at),
            )
            for key in keys
        ]
        print_table(rows)

    return refusing("keys list", run)


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Rows as aligned columns, the first row being the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), flush=True)


def login() -> str:
    """Who runs this command, as the operating system names them."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry, e.g. a container's bare uid
        return f"uid{os.getuid()}"


def operator() -> str:
    """Who runs a platform command, as the tenant's audit log names them: `platform:cli:<os user>`."""
    return f"platform:cli:{login()}"


def applied_within(settings: Settings) -> str:
    return f"running servers apply it within {settings.tenant_cache_seconds:g} s (TENANT_CACHE_SECONDS)"


def cmd_tenants_create(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant, created = await platform.create_tenant(
                engine,
                slug=args.slug,
                name=args.name,
                plan=args.plan,
                admin_email=args.admin_email,
                admin_name=args.admin_name,
                actor=operator(),
                reason=args.reason,
            )
        print(tenant.id, flush=True)
        if created:
            message = f"created tenant {tenant.slug!r} ({tenant.plan.value}) with admin {args.admin_email.strip()}"
        else:
            message = f"tenant {tenant.slug!r} already existed (created {when(tenant.created_at)}): nothing changed"
            if tenant.plan is not args.plan:
                message += f"; it is on {tenant.plan.value}, use `tenantql tenants set-plan` to change that"
        print(message, file=sys.stderr, flush=True)

    return refusing("tenants create", run)


def cmd_tenants_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenants = await platform.list_tenants(engine)
        if not tenants:
            print("no tenants yet: `tenantql tenants create` makes one", file=sys.stderr, flush=True)
            return
        rows = [("SLUG", "PLAN", "STATUS", "BUDGET", "DOMAIN", "CREATED", "NAME")]
        rows += [
            (
                tenant.slug,
                tenant.plan.value,
                tenant.status.value,
                str(tenant.rate_limit_per_minute) if tenant.rate_limit_per_minute else "-",
                tenant.custom_domain or "-",
                when(tenant.created_at),
                tenant.name,
            )
            for tenant in tenants
        ]
        print_table(rows)

    return refusing("tenants list", run)


def cmd_tenants_set_plan(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant, changed = await platform.set_plan(
                engine,
                args.slug,
                args.plan,
                rate_limit_per_minute=args.budget,
                actor=operator(),
                reason=args.reason,
            )
        budget = f" with a budget of {tenant.rate_limit_per_minute} points per minute" if args.budget else ""
        if changed:
            print(f"tenant {tenant.slug!r} is now on {tenant.plan.value}{budget}; {applied_within(configured)}")
        else:
            print(f"tenant {tenant.slug!r} was already on {tenant.plan.value}{budget}: nothing changed")

    return refusing("tenants set-plan", run)


def cmd_tenants_suspend(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant, changed = await platform.suspend(engine, args.slug, actor=operator(), reason=args.reason)
        if changed:
            print(
                f"suspended tenant {tenant.slug!r}, keeping its data; its requests get TENANT_SUSPENDED: "
                f"{applied_within(configured)}"
            )
        else:
            print(f"tenant {tenant.slug!r} was already suspended: nothing changed")

    return refusing("tenants suspend", run)


def cmd_tenants_resume(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant, changed = await platform.resume(engine, args.slug, actor=operator(), reason=args.reason)
        if changed:
            print(f"resumed tenant {tenant.slug!r}; {applied_within(configured)}")
        else:
            print(f"tenant {tenant.slug!r} was not suspended: nothing changed")

    return refusing("tenants resume", run)


def cmd_tenants_set_domain(args: argparse.Namespace, settings: Settings) -> int:
    if (args.domain is None) != args.clear:
        print("tenantql tenants set-domain: give a DOMAIN or --clear", file=sys.stderr)
        return 2

    async def run() -> None:
        async with servers_for(settings) as configured, owner_engine(configured) as engine:
            tenant, changed = await platform.set_custom_domain(
                engine,
                args.slug,
                args.domain,
                actor=operator(),
                reason=args.reason,
                tracking_domain=configured.tracking_domain,
            )
        where = f"at {tenant.custom_domain}" if tenant.custom_domain else "at no custom domain"
        if changed:
            print(f"tenant {tenant.slug!r} now serves public tracking {where}; {applied_within(configured)}")
        else:
            print(f"tenant {tenant.slug!r} already served public tracking {where}: nothing changed")

    return refusing("tenants set-domain", run)


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    size = DataSize(
        customers=max(1, args.customers or args.shipments // 10),
        vehicles=args.vehicles,
        drivers=args.drivers,
        shipments=args.shipments,
        events_per_shipment=args.events,
    )

    async def run() -> None:
        async with servers_for(settings) as configured:
            await migrate(configured)
            async with owner_engine(configured) as engine:
                for n in range(1, args.tenants + 1):
                    slug = f"{args.prefix}-{n:03d}"
                    tenant_id = await ensure_tenant(engine, slug, f"{args.prefix.title()} {n}", args.plan)
                    await seed_tenant_data(engine, tenant_id, slug, size)
                    print(f"seeded {slug} ({tenant_id})", flush=True)

    asyncio.run(run())
    return 0


def cmd_persisted_load(args: argparse.Namespace, settings: Settings) -> int:
    try:
        operations = read_manifest(args.file)
    except ManifestError as error:
        print(f"tenantql persisted load: {error}", file=sys.stderr)
        return 2

    async def run() -> None:
        async with servers_for(settings) as configured:
            if not configured.redis_url:
                raise SystemExit("tenantql persisted load: set REDIS_URL (the store every server reads)")
            async with Redis.from_url(configured.redis_url) as redis:
                count = await PersistedQueryStore(redis).load_manifest(operations, replace=not args.add)
            print(f"trusted {count} operations of {args.file}", flush=True)

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantql",
        description="A multi-tenant GraphQL API for courier companies. Settings come from the environment and .env; "
        "with no DATABASE_URL and REDIS_URL, embedded servers are started under $TENANTQL_HOME (./.tenantql).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the API server",
        description="Start the API, migrating first when DATABASE_OWNER_URL is set. With no DATABASE_URL/REDIS_URL, "
        "also start embedded PostgreSQL and Redis, migrate, seed the demo tenants acme (STARTER) and globex (SCALE) "
        "when the database is empty, and print the GraphiQL URL and a demo token per tenant. "
        "Ctrl-C or SIGTERM stops everything it started.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="with your own servers too: seed the demo tenants when empty and print their tokens",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate_cmd = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Run the migrations as the owner role (DATABASE_OWNER_URL), granting the application role "
        "(DATABASE_URL's user) what it needs.",
    )
    migrate_cmd.set_defaults(handler=cmd_migrate)

    token = commands.add_parser(
        "token",
        help="print a signed JWT for a tenant's user, or for a platform admin",
        description="Print an HS256 token signed with the configured JWT_SECRET (or the local one `serve` uses), "
        "for the first active user with ROLE in the tenant SLUG; with --platform-admin, a token for "
        "/admin/graphql that names no tenant (role platform_admin, sub = --subject or your login).",
    )
    token.add_argument("--tenant", metavar="SLUG", help="the tenant's slug, e.g. acme")
    token.add_argument("--role", type=parse_role, metavar="ROLE", help="admin, member or viewer")
    token.add_argument(
        "--platform-admin", action="store_true", help="a platform-admin token, for /admin/graphql, instead"
    )
    token.add_argument(
        "--subject", metavar="NAME", help="with --platform-admin: who, as audit logs name them (default your login)"
    )
    token.add_argument("--ttl", type=parse_ttl, default=3600, metavar="DURATION", help="lifetime, e.g. 30m, 1h, 7d")
    token.set_defaults(handler=cmd_token)

    keys = commands.add_parser(
        "keys",
        help="API keys of SCALE and ENTERPRISE tenants",
        description="Create, list and revoke a tenant's API keys. A key is sent as `X-API-Key: tql_…` or "
        "`Authorization: Bearer tql_…` and acts as its tenant with the role it was given.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    keys_create = keys_commands.add_parser(
        "create",
        help="create an API key and print it (once)",
        description="Create an API key for the tenant SLUG (SCALE or ENTERPRISE plan only) and print it alone on "
        "stdout. Only its hash is stored: it cannot be shown again.",
    )
    keys_create.add_argument("--tenant", required=True, metavar="SLUG", help="the tenant's slug, e.g. globex")
    keys_create.add_argument("--role", required=True, type=parse_role, metavar="ROLE", help="admin, member or viewer")
    keys_create.add_argument("--name", metavar="NAME", help="what the key is for (default '<role> key')")
    keys_create.set_defaults(handler=cmd_keys_create)
    keys_revoke = keys_commands.add_parser(
        "revoke",
        help="revoke an API key for good",
        description="Revoke the tenant's key KEY: its id, its visible prefix (tql_xxxxxxxx) or the key itself. "
        "Requests with it are refused from then on. Revoking a revoked key changes nothing.",
    )
    keys_revoke.add_argument("--tenant", required=True, metavar="SLUG", help="the tenant's slug")
    keys_revoke.add_argument("key", metavar="KEY", help="the key's id, prefix (tql_xxxxxxxx) or full text")
    keys_revoke.set_defaults(handler=cmd_keys_revoke)
    keys_list = keys_commands.add_parser(
        "list",
        help="list a tenant's API keys (never the keys themselves)",
        description="List the tenant's API keys: prefix, name, role, when created, last used and revoked.",
    )
    keys_list.add_argument("--tenant", required=True, metavar="SLUG", help="the tenant's slug")
    keys_list.set_defaults(handler=cmd_keys_list)

    tenants = commands.add_parser(
        "tenants",
        help="onboard tenants, change their plans, suspend and resume them",
        description="Platform operations on tenants, run as the owner role (DATABASE_OWNER_URL). Every change is "
        "written to the tenant's audit log as `platform:cli:<your login>`, with the reason given.",
    )
    tenants_commands = tenants.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    tenants_create = tenants_commands.add_parser(
        "create",
        help="create a tenant with its first admin user (idempotent)",
        description="Create the tenant SLUG with an ADMIN user and print its id. For a slug that exists, print "
        "the existing tenant's id and change nothing, whatever the other options say.",
    )
    tenants_create.add_argument(
        "--slug", required=True, metavar="SLUG", help="3 to 63 lowercase letters, digits and hyphens, e.g. acme"
    )
    tenants_create.add_argument("--name", required=True, metavar="NAME", help="the company's name")
    tenants_create.add_argument("--admin-email", required=True, metavar="EMAIL", help="the first admin's email")
    tenants_create.add_argument("--admin-name", metavar="NAME", help="the first admin's name")
    tenants_create.add_argument(
        "--plan", type=parse_plan, default="STARTER", metavar="PLAN", help=f"{', '.join(Plan)} (default STARTER)"
    )
    tenants_create.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    tenants_create.set_defaults(handler=cmd_tenants_create)
    tenants_list = tenants_commands.add_parser(
        "list",
        help="list every tenant",
        description="List the tenants: slug, plan, status, budget override (ENTERPRISE, points per minute), "
        "when created and name.",
    )
    tenants_list.set_defaults(handler=cmd_tenants_list)
    tenants_set_plan = tenants_commands.add_parser(
        "set-plan",
        help="move a tenant to another plan",
        description="Put the tenant SLUG on PLAN. Its budget is the plan's, or with --budget (ENTERPRISE only) "
        "N points per minute; without --budget an earlier override is dropped.",
    )
    tenants_set_plan.add_argument("slug", metavar="SLUG", help="the tenant's slug")
    tenants_set_plan.add_argument("plan", type=parse_plan, metavar="PLAN", help=", ".join(Plan))
    tenants_set_plan.add_argument(
        "--budget", type=parse_budget, metavar="N", help="ENTERPRISE only: the budget in points per minute"
    )
    tenants_set_plan.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    tenants_set_plan.set_defaults(handler=cmd_tenants_set_plan)
    tenants_suspend = tenants_commands.add_parser(
        "suspend",
        help="refuse a tenant's requests, keeping its data",
        description="Suspend the tenant SLUG: its requests get HTTP 403 TENANT_SUSPENDED; all its data is kept.",
    )
    tenants_suspend.add_argument("slug", metavar="SLUG", help="the tenant's slug")
    tenants_suspend.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit log")
    tenants_suspend.set_defaults(handler=cmd_tenants_suspend)
    tenants_resume = tenants_commands.add_parser(
        "resume", help="serve a suspended tenant again", description="Serve the suspended tenant SLUG again."
    )
    tenants_resume.add_argument("slug", metavar="SLUG", help="the tenant's slug")
    tenants_resume.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    tenants_resume.set_defaults(handler=cmd_tenants_resume)
    tenants_set_domain = tenants_commands.add_parser(
        "set-domain",
        help="serve a tenant's public tracking at a custom domain",
        description="Serve the public tracking of the tenant SLUG at DOMAIN (stored lowercase) as well as at "
        "<slug>.<TRACKING_DOMAIN>; --clear removes the custom domain. Point the domain's DNS at the servers.",
    )
    tenants_set_domain.add_argument("slug", metavar="SLUG", help="the tenant's slug")
    tenants_set_domain.add_argument("domain", nargs="?", metavar="DOMAIN", help="a host name, e.g. track.example.com")
    tenants_set_domain.add_argument("--clear", action="store_true", help="remove the custom domain")
    tenants_set_domain.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    tenants_set_domain.set_defaults(handler=cmd_tenants_set_domain)

    seed = commands.add_parser(
        "seed",
        help="create tenants with generated data",
        description="Create tenants PREFIX-001 … PREFIX-N, each with deterministic customers, vehicles, drivers, "
        "shipments and tracking events. Running it again adds nothing that exists.",
    )
    seed.add_argument("--tenants", type=int, default=2, metavar="N", help="how many tenants (default 2)")
    seed.add_argument("--shipments", type=int, default=300, metavar="M", help="shipments per tenant (default 300)")
    seed.add_argument("--customers", type=int, default=0, metavar="N", help="customers per tenant (default M/10)")
    seed.add_argument("--vehicles", type=int, default=30, metavar="N", help="vehicles per tenant (default 30)")
    seed.add_argument("--drivers", type=int, default=40, metavar="N", help="drivers per tenant (default 40)")
    seed.add_argument("--events", type=int, default=5, metavar="N", help="tracking events per shipment (default 5)")
    seed.add_argument(
        "--plan",
        type=parse_plan,
        default="SCALE",
        metavar="PLAN",
        help="STARTER, GROWTH, SCALE or ENTERPRISE (default SCALE)",
    )
    seed.add_argument("--prefix", default="tenant", help="slug prefix (default 'tenant')")
    seed.set_defaults(handler=cmd_seed)

    persisted = commands.add_parser("persisted", help="trusted documents for persisted queries")
    persisted_commands = persisted.add_subparsers(dest="persisted_command", required=True, metavar="COMMAND")
    load = persisted_commands.add_parser(
        "load",
        help="trust the operations of an Apollo persisted query manifest",
        description="Store the operations of FILE (an Apollo persisted query manifest) in Redis, where every "
        "server finds them by id or by the SHA-256 of their text. They replace the operations trusted before, "
        "which every server stops running within 30 seconds; with --add they join them.",
    )
    load.add_argument("file", metavar="FILE", help="the manifest (JSON)")
    load.add_argument("--add", action="store_true", help="keep the operations trusted before")
    load.set_defaults(handler=cmd_persisted_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    settings = local_jwt_secret(settings)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
