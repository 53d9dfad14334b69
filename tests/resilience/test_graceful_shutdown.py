"""SIGTERM to `tenantql serve`: requests in flight finish, new connections are refused, the
usage meter is flushed, the pools are closed, and the process exits 0 within the grace period.

Requests are held in flight deterministically: two mutations wait on row locks that the test
holds as the owner (so they are inside PostgreSQL when the signal arrives), and two requests
are still sending their bodies.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text

from db.transaction import tenant_transaction
from db.usage import BATCHES_KEY, LIVE_KEY
from resolvers.ids import id_of
from tests.conftest import TenantHandle
from tests.live import free_port
from tests.resilience.conftest import OwnPostgres
from tests.resilience.traffic import CREATE_CUSTOMER, OPEN_SHIPMENTS, RECORD_EVENT, SHIPMENTS, eventually

GRACE_SECONDS = 10
NESTED = "{ shipments(first: 12) { edges { node { trackingNumber customer { name } events(last: 3) { status } } } } }"


@contextmanager
def serve(env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`tenantql serve --port P` as an operator starts it; killed at the end if it is still running."""
    port = free_port()
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tenantql", "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"serve exited:\n{log.read_text(errors='replace')}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve was not ready:\n{log.read_text(errors='replace')}"
            time.sleep(0.1)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


async def usage_points(postgres: OwnPostgres, tenant: TenantHandle) -> int:
    async with tenant_transaction(postgres.owner, tenant.id) as db:
        rows = await db.all(text("SELECT coalesce(sum(points), 0) AS points FROM usage"))
    return int(rows[0].points)


async def lock_waiters(postgres: OwnPostgres) -> int:
    return sum(row["wait_event_type"] == "Lock" for row in await postgres.app_backends())


class SlowBody:
    """A request body sent in two parts, the second only once `finish()` is called."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.started = asyncio.Event()
        self._finish = asyncio.Event()

    def finish(self) -> None:
        self._finish.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self.payload) // 2
        yield self.payload[:half]
        self.started.set()
        await self._finish.wait()
        yield self.payload[half:]


async def test_sigterm_drains_requests_in_flight_flushes_usage_and_closes_pools(
    postgres: OwnPostgres, make_own_tenant, own_redis, tmp_path: Path
):
    tenant = await make_own_tenant("shut")
    env = postgres.server_env(
        own_redis.url,
        DATABASE_OWNER_URL=postgres.owner_url,
        SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        USAGE_FLUSH_SECONDS="3600",  # only the flush at shutdown can write usage
        TENANTQL_HOME=str(tmp_path / "home"),
    )
    before = {row["pid"] for row in await postgres.app_backends()}
    costs: list[int] = []

    def ok(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        payload = next(iter(body["data"].values()))
        assert not (isinstance(payload, dict) and payload.get("userErrors")), body
        costs.append(body["extensions"]["cost"]["actualQueryCost"])
        return body

    with serve(env, tmp_path) as (process, port):
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            shipments = ok(await http.post("/graphql", json={"query": OPEN_SHIPMENTS}, headers=tenant.headers()))
            ok(await http.post("/graphql", json={"query": NESTED}, headers=tenant.headers()))
            nodes = [edge["node"] for edge in shipments["data"]["shipments"]["edges"]]
            targets = [node["id"] for node in nodes if node["status"] not in ("DELIVERED", "CANCELLED")][:2]
            serving = {row["pid"] for row in await postgres.app_backends()} - before
            assert serving, "the server holds connections of the application role"
            assert await usage_points(postgres, tenant) == 0

            def post(body: Any) -> asyncio.Task[httpx.Response]:
                headers = {**tenant.headers(), "Content-Type": "application/json"}
                return asyncio.create_task(http.post("/graphql", content=body, headers=headers))

            slow_bodies = [
                SlowBody(httpx.Request("POST", base, json={"query": SHIPMENTS}).read()),
                SlowBody(
                    httpx.Request(
                        "POST",
                        base,
                        json={
                            "query": CREATE_CUSTOMER,
                            "variables": {"input": {"name": "Late Customer", "email": "late@shut.example"}},
                        },
                    ).read()
                ),
            ]
            async with tenant_transaction(postgres.owner, tenant.id) as locks:
                await locks.all(
                    text("SELECT id FROM shipments WHERE id = ANY(:ids) FOR UPDATE"),
                    ids=[id_of(target, "Shipment") for target in targets],
                )
                blocked = [
                    asyncio.create_task(
                        http.post(
                            "/graphql",
                            json={
                                "query": RECORD_EVENT,
                                "variables": {"input": {"shipmentId": target, "status": "IN_TRANSIT", "note": "late"}},
                            },
                            headers=tenant.headers(),
                        )
                    )
                    for target in targets
                ]
                trickling = [post(body) for body in slow_bodies]
                await asyncio.wait_for(asyncio.gather(*(body.started.wait() for body in slow_bodies)), 10)

                async def both_waiting() -> bool:
                    return await lock_waiters(postgres) == len(targets)

                await eventually(both_waiting, what="the mutations wait on the owner's row locks")
                await asyncio.sleep(0.3)  # the bodies' first halves reach the server

                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()

                async def refused() -> bool:
                    return await asyncio.to_thread(refuses_connections, port)

                await eventually(refused, within=5, what="new connections refused after SIGTERM")
                in_flight = [task for task in [*blocked, *trickling] if not task.done()]
                assert len(in_flight) == 4, "all four requests were still in flight when the server stopped listening"
                await asyncio.sleep(1.0)  # the server waits for them, it does not cut them off
                assert process.poll() is None
                for body in slow_bodies:
                    body.finish()
            # The owner's transaction ends here: the row locks go, the mutations carry on.
            for response in await asyncio.wait_for(asyncio.gather(*blocked, *trickling), GRACE_SECONDS):
                ok(response)

        exit_code = await asyncio.to_thread(process.wait, GRACE_SECONDS + 10)
        stopped_after = time.monotonic() - signalled

    assert exit_code == 0, (tmp_path / "serve.log").read_text(errors="replace")
    assert stopped_after < GRACE_SECONDS, f"exited {stopped_after:.1f} s after SIGTERM"

    async def pools_closed() -> bool:
        return not ({row["pid"] for row in await postgres.app_backends()} - before)

    await eventually(pools_closed, within=5, what="no connection of the server left in pg_stat_activity")
    assert await usage_points(postgres, tenant) == sum(costs)  # the in-flight requests' usage included
    async with Redis.from_url(own_redis.url) as redis:
        assert not await redis.exists(LIVE_KEY, BATCHES_KEY)  # nothing left behind in Redis
