"""Engines for the two roles: the application role (requests) and the owner (migrations, onboarding)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLSTATEs of a server that went away or will not take the connection: connection exceptions
# (class 08), shutdowns and start-ups (57P01-57P03), and too many connections (53300).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_RECONNECT_WITHOUT_ROLLBACK = "8s2b"  # SQLAlchemy's PendingRollbackError for a connection it invalidated
# How much longer than PostgreSQL's statement_timeout the client waits for a statement: the
# server's timeout, with its clear error, comes first whenever the server still answers.
STATEMENT_GRACE_SECONDS = 2.0


class Pooler(StrEnum):
    """What the application role's URL reaches: PostgreSQL (or a session pooler), or a transaction pooler."""

    NONE = "none"
    TRANSACTION = "transaction"  # PgBouncer's pool_mode = transaction, or any pooler like it


POOLER_PARAMETER = "pooler"  # the URL's query parameter naming it: `?pooler=transaction`


def with_pooler(url: str, pooler: Pooler) -> str:
    """`url` naming `pooler`: every engine made from the URL is then configured for it."""
    parsed = make_url(url).difference_update_query([POOLER_PARAMETER])
    if pooler is not Pooler.NONE:
        parsed = parsed.update_query_dict({POOLER_PARAMETER: pooler.value})
    return parsed.render_as_string(hide_password=False)


def create_app_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 15_000,
    connect_timeout: float = 5.0,
    pool_timeout: float = 10.0,
) -> AsyncEngine:
    """The request path's engine.

    AUTOCOMMIT hands transaction control to `TenantDB`, which opens each transaction
    together with its tenant setting in one round trip. No pre-ping: it would cost a round
    trip per request. A connection its server closed (a restart, an outage) is replaced at
    checkout instead, which costs nothing (see `_discard_closed_connections`). A request
    waits at most `pool_timeout` seconds for a pooled connection and `connect_timeout` for
    a new one, and a statement at most `statement_timeout_ms` plus `STATEMENT_GRACE_SECONDS`
    on the client's side (asyncpg's `command_timeout`): PostgreSQL's own statement timeout
    cannot fire in a server that stopped answering. So an outage answers rather than hangs.
    """
    parsed = make_url(url)
    pooler = Pooler(parsed.query.get(POOLER_PARAMETER, Pooler.NONE))
    engine = create_async_engine(
        parsed.difference_update_query([POOLER_PARAMETER]),
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={
            "timeout": connect_timeout,
            "command_timeout": statement_timeout_ms / 1000 + STATEMENT_GRACE_SECONDS,
            **_connection_options(pooler, statement_timeout_ms),
        },
    )
    _discard_closed_connections(engine)
    return engine


def _connection_options(pooler: Pooler, statement_timeout_ms: int) -> dict[str, Any]:
    """asyncpg's options for each new connection.

    Straight to PostgreSQL, a connection starts with its timeouts and `jit` off, and caches
    its prepared statements. Behind a transaction pooler, consecutive transactions of one
    connection may run on different server connections, and PgBouncer (1.18) refuses start-up
    parameters it does not track: so no statement is named or cached, each is parsed again in
    the round trip that executes it, and the timeouts are set on the role instead
    (docs/adr/0008-transaction-poolers.md).
    """
    if pooler is Pooler.TRANSACTION:
        return {
            "server_settings": {"application_name": "tenantql"},
            "statement_cache_size": 0,  # asyncpg: unnamed statements, parsed again when executed
            "prepared_statement_cache_size": 0,  # SQLAlchemy's asyncpg dialect: no cache of its own
        }
    return {
        "server_settings": {
            "application_name": "tenantql",
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(max(statement_timeout_ms * 2, 30_000)),
            "jit": "off",
        },
    }


def create_owner_engine(url: str) -> AsyncEngine:
    """Onboarding and seeding as the owner. AUTOCOMMIT like the app engine, so that
    `tenant_transaction` works the same on both; migrations use their own engine."""
    engine = create_async_engine(
        url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=2, connect_args={"timeout": 5}
    )
    _discard_closed_connections(engine)
    return engine


def _discard_closed_connections(engine: AsyncEngine) -> None:
    """Never hand out a pooled connection that asyncpg already knows is closed.

    SQLAlchemy invalidates a connection when one of its own statements fails with a
    disconnect, but `TenantDB` opens every transaction through the asyncpg connection
    directly, where SQLAlchemy does not look: without this, the connections of a pool that
    outlived a database restart would fail every request that drew them, until recycled
    half an hour later. asyncpg marks a connection closed as soon as its socket does, so the
    check is a flag, not a round trip; raising DisconnectionError makes the pool open a
    fresh connection in its place.
    """

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def replace_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what caused it) means PostgreSQL could not be reached or went away.

    Such a request gets 503 SERVICE_UNAVAILABLE, not an internal error: nothing is wrong
    with it, and the same request succeeds once the database answers again.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, (OSError, TimeoutError, exc.TimeoutError)):  # no socket, refused, connect or pool timeout
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.PendingRollbackError) and error.code == _RECONNECT_WITHOUT_ROLLBACK:
        return True
    if isinstance(error, asyncpg.ConnectionDoesNotExistError):
        return True
    if isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error):
        return True
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES)


__all__ = [
    "POOLER_PARAMETER",
    "Pooler",
    "create_app_engine",
    "create_owner_engine",
    "database_unavailable",
    "with_pooler",
]
