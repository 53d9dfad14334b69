"""Transactions that Row Level Security scopes to one tenant.

`BEGIN` and the tenant setting travel together in one simple-query round trip, the
setting is transaction-local (`set_config(..., true)`), and nothing ever sets it at
session level, so a connection handed back to the pool carries no tenant.
See docs/adr/0002-one-transaction-per-request.md for why a request holds one transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Executable, Insert, Row, Update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.compiled_statements import CompiledStatement, DriverError, compiled_statements, sqlalchemy_error
from db.statement_log import announce

T = TypeVar("T")


class TransactionEnded(RuntimeError):
    """A statement reached a `TenantDB` after its request closed it.

    graphql-core settles some sibling fields in the background after an error has decided
    the response; such a late statement gets this instead of a connection of its own that
    nothing would ever close."""


class CommitRefused(RuntimeError):
    """PostgreSQL answered a COMMIT with ROLLBACK: a statement of the transaction had failed.

    Its writes are gone, so the request must not be reported as done. Normally a failed
    statement fails its request first; this catches one whose error was swallowed (a
    resolver that caught it, a field settled in the background)."""


def begin_sql(tenant_id: uuid.UUID, then: str | None = None) -> str:
    """The statement that opens a tenant transaction, and `then` a check that must pass in it.

    It is sent as a simple query so `BEGIN`, `set_config` and the check share one round trip;
    that protocol takes no parameters, so the tenant is inlined, which is safe only because a
    `uuid.UUID` renders as hex digits and dashes. `then` is made the same way by its owner
    (`db.users.standing_check`), never from a client's text.
    """
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError(f"tenant_id must be a UUID, not {type(tenant_id).__name__}")
    opening = f"BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true)"
    return f"{opening}; {then}" if then else opening


class Unit:
    """What `TenantDB.atomic()` hands out: `discard()` undoes the unit's writes at its end."""

    __slots__ = ("discarded",)

    def __init__(self) -> None:
        self.discarded = False

    def discard(self) -> None:
        self.discarded = True


class TenantDB:
    """One request's database access, bound to one tenant.

    The connection and its transaction open on the first statement (a request that
    reads nothing from the database costs no round trip), or at once with `open()` when an
    `opening_check` must pass before anything runs (a user's request, ADR 0011), and close
    when the request ends. Plain Core statements run on the driver, compiled by SQLAlchemy
    (`db.compiled_statements`, ADR 0012); the rest through SQLAlchemy. Statements are
    serialized, so sibling resolvers awaiting at once never hit asyncpg's "another operation
    is in progress".

    Every statement runs to its end even when the resolver awaiting it is cancelled (when
    one field fails, graphql-core cancels the fields awaited beside it): interrupted
    half-way, asyncpg would be left with a statement in flight and SQLAlchemy would
    invalidate the connection, failing every later statement of the request. The cancelled
    resolver stops waiting at once; the statement finishes in its own task, holding the
    lock, so `close()` runs after it.
    """

    def __init__(self, engine: AsyncEngine, tenant_id: uuid.UUID, *, opening_check: str | None = None) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self._begin_sql = begin_sql(tenant_id, opening_check)
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under `_connection`
        self._compiled = compiled_statements(engine)
        self._in_transaction = False
        self._has_writes = False
        self._savepoints = 0
        self._lock = asyncio.Lock()
        self._closed = False
        self._running: set[asyncio.Task[Any]] = set()

    async def _uninterrupted(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work` in a task of its own that a cancellation of the caller does not stop.

        The task is kept in `_running` until it ends: once its caller is cancelled nobody awaits
        it, and the event loop holds tasks only weakly."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the error of a statement nobody awaits any more is not logged as lost

    async def _begin(self) -> AsyncConnection:
        if self._closed:
            raise TransactionEnded("this request's transaction has already ended")
        if self._connection is None:
            self._connection = await self.engine.connect()
            self._driver = await _driver(self._connection)
        if not self._in_transaction:
            await self._driver.execute(self._begin_sql)
            self._in_transaction = True
        return self._connection

    async def open(self) -> None:
        """Begin the transaction now, with its opening check, rather than at the first statement.

        If the check fails its error is raised and the transaction stays unopened; `close()`
        then gives the connection back rolled back."""
        await self._uninterrupted(self._open())

    async def _open(self) -> None:
        async with self._lock:
            await self._begin()

    async def all(self, statement: Executable, /, **params: Any) -> Sequence[Row[Any]]:
        """Rows of a statement (SQLAlchemy `Row`s or named tuples: read them by attribute);
        a `:tenant_id` parameter is bound to this tenant."""
        return await self._uninterrupted(self._run(statement, params, writes=False))

    async def _run(self, statement: Executable, params: dict[str, Any], *, writes: bool) -> Sequence[Row[Any]]:
        if not isinstance(statement, (Insert, Update)):
            # A bind parameter here; for an INSERT or UPDATE it would be taken for a column value.
            params = {"tenant_id": self.tenant_id, **params}
        async with self._lock:
            connection = await self._begin()
            if writes:
                self._has_writes = True
            found = self._compiled.find(statement, params)
            if found is None:
                result = await connection.execute(statement, params)
                return result.all() if result.returns_rows else ()
            return await self._direct(*found)

    async def _direct(self, compiled: CompiledStatement, arguments: list[Any]) -> list[Any]:
        """A Core statement straight to the driver (`db.compiled_statements`), as SQLAlchemy would run it."""
        announce(self.engine, compiled.sql)
        try:
            records = await self._driver.fetch(compiled.sql, *arguments)
        except DriverError as error:
            raise sqlalchemy_error(compiled.sql, arguments, error) from error
        return compiled.rows(records)

    async def one_or_none(self, statement: Executable, /, **params: Any) -> Row[Any] | None:
        rows = await self.all(statement, **params)
        return rows[0] if rows else None

    async def write(self, statement: Executable, /, **params: Any) -> Sequence[Row[Any]]:
        """Run an INSERT/UPDATE/DELETE (with RETURNING, if any) and return its rows. An INSERT
        or UPDATE names its tenant itself: its parameters are bind parameters, never columns."""
        return await self._uninterrupted(self._run(statement, params, writes=True))

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[Unit]:
        """All or nothing for one unit of work, without touching earlier ones in the request.

        The unit is undone if it raises or if its body calls `discard()`. With nothing
        written yet, undoing rolls the whole transaction back (no savepoint needed, no extra
        round trip); once something is written, a savepoint protects it.
        """
        savepoint = await self._uninterrupted(self._savepoint())
        unit = Unit()
        try:
            yield unit
        except BaseException:
            await self._undo(savepoint)
            raise
        if unit.discarded:
            await self._undo(savepoint)

    async def _savepoint(self) -> str | None:
        """A savepoint protecting what is written so far, or None when there is nothing to protect."""
        async with self._lock:
            if not (self._has_writes and self._in_transaction):
                return None
            self._savepoints += 1
            savepoint = f"unit_{self._savepoints}"
            await self._begin()
            await self._driver.execute(f"SAVEPOINT {savepoint}")
            return savepoint

    async def _undo(self, savepoint: str | None) -> None:
        await self._uninterrupted(self._undo_unit(savepoint))

    async def _undo_unit(self, savepoint: str | None) -> None:
        async with self._lock:
            if savepoint is None:
                await self._end("ROLLBACK")
            else:
                await self._begin()
                await self._driver.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")

    async def close(self, *, commit: bool) -> None:
        """End the transaction and give the connection back to the pool; later statements are refused."""
        await self._uninterrupted(self._close(commit))

    async def _close(self, commit: bool) -> None:
        async with self._lock:
            self._closed = True
            try:
                await self._end("COMMIT" if commit else "ROLLBACK")
            finally:
                connection, self._connection, self._driver = self._connection, None, None
                if connection is not None:
                    await _release(connection)

    async def _end(self, command: str) -> None:
        if self._in_transaction and self._connection is not None:
            wrote = self._has_writes
            self._in_transaction = False
            self._has_writes = False
            status = await self._driver.execute(command)
            if command == "COMMIT" and status != "COMMIT" and wrote:
                raise CommitRefused(f"PostgreSQL answered COMMIT with {status}: the transaction's writes were undone")


async def _driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for the statements that take no parameters."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def _release(connection: AsyncConnection) -> None:
    """Return a connection to the pool, or discard it if it may still be inside a transaction."""
    try:
        driver = await _driver(connection)
        if driver.is_in_transaction():
            await driver.execute("ROLLBACK")
    except Exception:
        await connection.invalidate()
    finally:
        await connection.close()


@asynccontextmanager
async def tenant_transaction(engine: AsyncEngine, tenant_id: uuid.UUID) -> AsyncIterator[TenantDB]:
    """A TenantDB committed on success and rolled back on error: for work outside a request."""
    db = TenantDB(engine, tenant_id)
    try:
        yield db
    except BaseException:
        await db.close(commit=False)
        raise
    else:
        await db.close(commit=True)


__all__ = ["CommitRefused", "TenantDB", "TransactionEnded", "Unit", "begin_sql", "tenant_transaction"]
