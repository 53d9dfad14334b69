"""Every statement an engine runs for requests, whichever way it reaches the driver.

SQLAlchemy's `before_cursor_execute` event sees the statements SQLAlchemy executes; those
`TenantDB` runs on the driver directly (`db.compiled_statements`, most of a request's) do
not pass there, so they are announced here. The tests' and the bench's statement counts listen with `logged`,
which hears both; nothing listens in production, and announcing costs a dictionary lookup.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

Listener = Callable[[str], None]
_direct: weakref.WeakKeyDictionary[Engine, list[Listener]] = weakref.WeakKeyDictionary()


def announce(engine: AsyncEngine, statement: str) -> None:
    """Tell the listeners of `engine` about a statement sent without SQLAlchemy's execution."""
    listeners = _direct.get(engine.sync_engine)
    if listeners:
        for listener in listeners:
            listener(statement)


@contextmanager
def logged(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL of every statement `engine` runs, through SQLAlchemy or directly, while the block runs.

    The transaction's own `BEGIN; SELECT set_config(...)` and `COMMIT` are not in it: they are
    the same two for every transaction, and are counted as such."""
    statements: list[str] = []

    def through_sqlalchemy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sync_engine = engine.sync_engine
    direct = _direct.setdefault(sync_engine, [])
    event.listen(sync_engine, "before_cursor_execute", through_sqlalchemy)
    direct.append(statements.append)
    try:
        yield statements
    finally:
        event.remove(sync_engine, "before_cursor_execute", through_sqlalchemy)
        direct.remove(statements.append)


__all__ = ["announce", "logged"]
