"""SQL statements and Redis round trips per request, counted in process against the same servers the load runs on.

The app is built with `tenantql.app.create_app` and called through httpx's ASGI
transport; `db.statement_log.logged` records every statement its engine runs, through
SQLAlchemy or straight to the driver, as the tests' `sql_statements` fixture does. The
transaction's own two round trips (`BEGIN; SELECT set_config(...)` as one simple query, then
`COMMIT`) are not in it: they are reported separately as `+ 2`.
Each operation is sent once uncounted first, and each counted request is preceded by an
uncounted one with the same token, so the caches a loaded worker has warm (the tenant
directory's, a persisted document's text) are warm here too.
Hash-only (persisted) requests work here too: the documents were registered with the
running server beforehand, and the in-process app reads them from the same Redis.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.load import PlannedRequest
from db.statement_log import logged

if TYPE_CHECKING:
    from tenantql.settings import Settings

TRANSACTION_STATEMENTS = 2  # BEGIN+set_config (one simple query) and COMMIT, not seen by the listener
_WARM_QUERY = b'{"query": "{ viewer { role } }"}'
_WRITE_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
_READ_SOURCE = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)(\s*\()?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SqlCount:
    requests: int
    statements: int
    kinds: tuple[str, ...]  # e.g. "SELECT shipments", in the order of the first counted request
    redis_commands: int = 0  # commands the app's Redis client sent for the counted requests

    @property
    def per_request(self) -> float:
        return self.statements / self.requests if self.requests else 0.0

    @property
    def redis_per_request(self) -> float:
        """Redis round trips per request: each command the client sends waits for its answer."""
        return self.redis_commands / self.requests if self.requests else 0.0

    @property
    def total_per_request(self) -> float:
        return self.per_request + TRANSACTION_STATEMENTS


def statement_kind(sql: str) -> str:
    """A short name for a statement: its verb and the first table it names."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    if (write := _WRITE_TARGET.match(sql)) is not None:
        return f"{verb} {write[1]}"
    for match in _READ_SOURCE.finditer(sql):
        if not match[2] and match[1].upper() != "LATERAL":  # a table, not unnest(...) or LATERAL (...)
            return f"{verb} {match[1]}"
    return verb


async def count_statements(
    settings: Settings,
    requests: Mapping[str, Sequence[PlannedRequest]],
    *,
    samples: int = 5,
) -> dict[str, SqlCount]:
    """Statements per request for each named list of requests (the first `samples` of each)."""
    import httpx
    from asgi_lifespan import LifespanManager

    from tenantql.app import create_app

    app = create_app(settings)
    counts: dict[str, SqlCount] = {}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        redis = app.state.services.redis
        sent: list[Any] = []
        execute_command = redis.execute_command

        async def counted(*args: Any, **kwargs: Any) -> Any:
            sent.append(args[0])
            return await execute_command(*args, **kwargs)

        redis.execute_command = counted  # each call is one round trip: the client does not pipeline them
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://bench.invalid") as client:
                with logged(app.state.services.engine) as recorded:
                    for name, planned in requests.items():
                        total, commands, kinds = 0, 0, ()
                        chosen = list(planned[:samples])
                        # Once uncounted: a worker under load has its caches (a persisted document,
                        # prepared statements) warm, and the count is of such requests.
                        await post_in_process(client, chosen[0])
                        for n, request in enumerate(chosen):
                            await post_in_process(client, PlannedRequest(request.token, _WARM_QUERY))
                            recorded.clear()
                            sent.clear()
                            await post_in_process(client, request)
                            total += len(recorded)
                            commands += len(sent)
                            if n == 0:
                                kinds = tuple(statement_kind(sql) for sql in recorded)
                        counts[name] = SqlCount(len(chosen), total, kinds, redis_commands=commands)
        finally:
            del redis.execute_command
    return counts


async def post_in_process(client: Any, request: PlannedRequest) -> None:
    """Send a planned request to the app in process; anything but a clean answer stops the bench."""
    response = await client.post(
        "/graphql",
        content=request.body,
        headers={"Authorization": f"Bearer {request.token}", "Content-Type": "application/json"},
    )
    if response.status_code != 200 or b'"errors"' in response.content:
        raise RuntimeError(f"in-process request failed ({response.status_code}): {response.text[:300]}")


def summarize_kinds(kinds: Sequence[str]) -> str:
    """`SELECT shipments, SELECT customers x2`: what a request's statements were."""
    counted = Counter(kinds)
    return ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in counted.items())


__all__ = [
    "TRANSACTION_STATEMENTS",
    "SqlCount",
    "count_statements",
    "post_in_process",
    "statement_kind",
    "summarize_kinds",
]
