"""What an engine's connections send to PostgreSQL through asyncpg, whoever sends it.

SQLAlchemy's events see only the statements SQLAlchemy executes; the transaction's own
`BEGIN; SELECT set_config(...)`, its checks, COMMIT and ROLLBACK go to the driver directly.
A query logger on every connection the pool hands out sees them all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class DriverLog:
    """Usage: `log = DriverLog(engine)`, then `await log.settled()` for what was sent; `close()` after.
    `checkouts` counts the connections the pool handed out meanwhile."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sent: list[str] = []
        self.checkouts = 0
        self._pool = engine.sync_engine.pool
        self._drivers: list[Any] = []
        event.listen(self._pool, "checkout", self._checked_out)

    def _checked_out(self, dbapi_connection: Any, *args: Any) -> None:
        self.checkouts += 1
        driver = dbapi_connection.driver_connection
        if driver not in self._drivers:
            driver.add_query_logger(self._log)
            self._drivers.append(driver)

    def _log(self, record: Any) -> None:
        self.sent.append(" ".join(record.query.split()))

    async def settled(self) -> list[str]:
        """What was sent, once asyncpg's query loggers (called back with `call_soon`) have run."""
        for _ in range(3):
            await asyncio.sleep(0)
        return self.sent

    def close(self) -> None:
        event.remove(self._pool, "checkout", self._checked_out)
        for driver in self._drivers:
            driver.remove_query_logger(self._log)


__all__ = ["DriverLog"]
