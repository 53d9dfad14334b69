"""PostgreSQL killed under load and started again: quick clear failures meanwhile, recovery, no lost or leaked data.

The server under test is a live uvicorn process on this folder's PostgreSQL, which the test
kills (`pg_ctl stop -m immediate`, as a crash would) while several clients of two tenants
read and write, and then starts again (crash recovery included); another test freezes it
(SIGSTOP), the outage that closes no socket. `/ready` is polled during the kill, as a load
balancer would; its check runs through SQLAlchemy, which drops a whole pool when one of its
statements meets a dead connection, so the load test alone would not show that the request
path replaces dead connections by itself: the first test does.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import event, text

from auth.jwt import issue_platform_token
from auth.tenant import Role
from db.api_keys import create_key
from db.engine import STATEMENT_GRACE_SECONDS, create_app_engine, database_unavailable
from db.transaction import tenant_transaction
from tests.conftest import JWT_SECRET
from tests.live import running_server
from tests.resilience.conftest import OwnPostgres
from tests.resilience.traffic import MixedLoad, foreign_markers, leaks, mutations_lost_or_half_done

CONNECT_TIMEOUT = 1.0
POOL_TIMEOUT = 1.0
# A request may open up to three connections (tenant, user, its own transaction), each bounded
# by the connect timeout, after waiting for the pool at most once; plus a margin for a busy machine.
REQUEST_BOUND = 3 * CONNECT_TIMEOUT + POOL_TIMEOUT + 4.0
STATEMENT_TIMEOUT = 1.0
# A PostgreSQL that answers nothing: the three waits may each last a statement's whole time
# (the client gives up STATEMENT_GRACE_SECONDS after the statement timeout), and ending the
# request's transaction one more.
FROZEN_BOUND = 4 * (STATEMENT_TIMEOUT + STATEMENT_GRACE_SECONDS) + POOL_TIMEOUT + 4.0


async def test_pooled_connections_that_outlived_a_restart_are_replaced_not_handed_out(postgres: OwnPostgres):
    """No pre-ping, yet no request gets a dead connection: asyncpg knows it is closed, and checkout looks.

    `TenantDB` opens its transactions through asyncpg directly, where SQLAlchemy's own
    invalidation on disconnect errors never sees them: without the check at checkout, every
    connection pooled before the restart failed each request that drew it."""
    engine = create_app_engine(postgres.app_url, pool_size=4)
    opened: list[Any] = []
    handed_out_closed: list[bool] = []
    event.listen(engine.sync_engine.pool, "connect", lambda dbapi, record: opened.append(dbapi.driver_connection))
    event.listen(
        engine.sync_engine.pool,
        "checkout",
        lambda dbapi, record, proxy: handed_out_closed.append(dbapi.driver_connection.is_closed()),
    )
    tenant = uuid.uuid4()

    async def transaction(hold: float = 0.0) -> None:
        async with tenant_transaction(engine, tenant) as db:
            await db.all(text("SELECT 1"))
            await asyncio.sleep(hold)

    try:
        await asyncio.gather(*(transaction(hold=0.2) for _ in range(4)))
        pooled = list(opened)
        assert len(pooled) == 4 and engine.pool.checkedin() == 4

        await postgres.kill()
        await asyncio.sleep(0.2)
        assert all(connection.is_closed() for connection in pooled)  # asyncpg saw the sockets close
        with pytest.raises(Exception) as during:
            await transaction()
        assert database_unavailable(during.value), repr(during.value)

        await postgres.restart()
        handed_out_closed.clear()
        await asyncio.gather(*(transaction() for _ in range(8)))  # the first one after the restart included
        assert handed_out_closed and not any(handed_out_closed)
        assert len(opened) > len(pooled)
    finally:
        await engine.dispose()


async def test_a_transaction_cut_off_by_the_crash_counts_as_unavailable_and_leaves_nothing(postgres: OwnPostgres):
    engine = create_app_engine(postgres.app_url, pool_size=2)
    tenant = uuid.uuid4()
    try:

        async def slow() -> None:
            async with tenant_transaction(engine, tenant) as db:
                await db.all(text("SELECT pg_sleep(10)"))

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.5)
        await postgres.kill()
        with pytest.raises(Exception) as cut:
            await asyncio.wait_for(task, 10)
        assert database_unavailable(cut.value), repr(cut.value)
        await postgres.restart()
        async with tenant_transaction(engine, tenant) as db:
            assert (await db.all(text("SELECT 1 AS one")))[0].one == 1
    finally:
        await engine.dispose()


async def test_killing_postgres_under_mixed_tenant_load(
    postgres: OwnPostgres, make_own_tenant, own_redis, tmp_path: Path
):
    first, second = await make_own_tenant("pga"), await make_own_tenant("pgb")
    env = postgres.server_env(
        own_redis.url,
        DATABASE_POOL_SIZE="4",
        DATABASE_CONNECT_TIMEOUT_SECONDS=str(CONNECT_TIMEOUT),
        DATABASE_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
        TENANT_CACHE_SECONDS="0.5",
    )
    with running_server(env, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_BOUND) as http:
            load = MixedLoad(http, [first, second], clients_per_tenant=3)
            await load.prepare()
            markers = {
                tenant.id: foreign_markers(tenant, [s for c in load.clients if c.tenant is tenant for s in c.shipments])
                for tenant in (first, second)
            }
            load.start()
            await asyncio.sleep(1.5)

            await postgres.kill()
            killed = time.monotonic()
            ready_during = []
            while time.monotonic() - killed < 3.0:
                ready_during.append(await http.get("/ready"))
                await asyncio.sleep(0.3)
            restarting = time.monotonic()
            await postgres.restart()
            restarted = time.monotonic()
            await asyncio.sleep(3.0)
            answers = await load.stop()
            ready_after = await http.get("/ready")

    assert all(answer.failure is None for answer in answers), [a.failure for a in answers if a.failure][:5]
    slowest = max(answer.seconds for answer in answers)
    assert slowest < REQUEST_BOUND, f"a request took {slowest:.1f} s"
    assert {answer.status for answer in answers} <= {200, 503}
    unavailable = [answer for answer in answers if answer.status == 503]
    assert unavailable, "no request met the outage"
    for answer in unavailable:
        assert answer.codes == ["SERVICE_UNAVAILABLE"], answer.text
        assert answer.content_type.startswith("application/json") and "Traceback" not in answer.text
    bad = [answer.text for answer in answers if answer.status == 200 and not answer.ok]
    assert not bad, bad[:3]  # a 200 is a full success: never a masked internal error, never a half answer

    during = [answer for answer in answers if killed < answer.started and answer.ended < restarting]
    assert during and all(answer.status == 503 for answer in during)
    after = [answer for answer in answers if answer.started > restarted]
    assert len(after) > 20 and all(answer.ok for answer in after), [a.text for a in after if not a.ok][:3]
    kinds = {answer.kind for answer in after}
    assert kinds == {"shipments", "shipment", "customers", "createCustomer", "recordTrackingEvent"}

    assert [r.status_code for r in ready_during] == [503] * len(ready_during)
    assert all(r.json()["postgres"] is False for r in ready_during)
    assert ready_after.status_code == 200

    assert leaks(answers, markers) == []
    assert await mutations_lost_or_half_done(postgres.owner, answers) == []
    assert sum(a.ok for a in answers if a.kind == "recordTrackingEvent") > 10


@contextmanager
def frozen(postgres: OwnPostgres) -> Iterator[None]:
    """Every PostgreSQL process stopped (SIGSTOP), as a hung server or a lost network looks: its
    sockets stay open and nothing answers, so only the client's own timeouts end a wait."""
    postmaster = psutil.Process(int((postgres.server.data / "postmaster.pid").read_text().split()[0]))
    processes = [postmaster, *postmaster.children(recursive=True)]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)


async def test_a_postgres_that_stops_answering_is_waited_for_only_within_the_timeouts(
    postgres: OwnPostgres, make_own_tenant, own_redis, tmp_path: Path
):
    tenant = await make_own_tenant("pgf")
    env = postgres.server_env(
        own_redis.url,
        DATABASE_POOL_SIZE="3",
        DATABASE_CONNECT_TIMEOUT_SECONDS=str(CONNECT_TIMEOUT),
        DATABASE_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
        DATABASE_STATEMENT_TIMEOUT_MS=str(int(STATEMENT_TIMEOUT * 1000)),
        TENANT_CACHE_SECONDS="0.5",
    )
    with running_server(env, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=FROZEN_BOUND + 5) as http:
            load = MixedLoad(http, [tenant], clients_per_tenant=3)
            await load.prepare()
            load.start()
            await asyncio.sleep(1.0)
            with frozen(postgres):
                froze = time.monotonic()
                await asyncio.sleep(2 * (STATEMENT_TIMEOUT + STATEMENT_GRACE_SECONDS))
                ready_during = await http.get("/ready")
            thawed = time.monotonic()
            await asyncio.sleep(3.0)
            answers = await load.stop()

    assert all(answer.failure is None for answer in answers), [a.failure for a in answers if a.failure][:5]
    slowest = max(answer.seconds for answer in answers)
    assert slowest < FROZEN_BOUND, f"a request took {slowest:.1f} s"
    assert {answer.status for answer in answers} <= {200, 503}
    for answer in answers:
        if answer.status == 503:
            assert answer.codes == ["SERVICE_UNAVAILABLE"], answer.text
        else:
            assert answer.ok, answer.text
    assert any(a.status == 503 for a in answers if froze < a.started and a.ended < thawed)
    assert ready_during.status_code == 503
    after = [answer for answer in answers if answer.started > thawed + 1.0]  # the pool has settled
    assert after and all(answer.ok for answer in after), [a.text for a in after if not a.ok][:3]
    assert await mutations_lost_or_half_done(postgres.owner, answers) == []


TRACK = "query T($n: String!) { trackShipment(trackingNumber: $n) { status } }"


async def test_tracking_admin_and_key_requests_answer_503_while_postgres_is_down(
    postgres: OwnPostgres, make_own_tenant, own_redis, tmp_path: Path
):
    """Every endpoint, not only `/graphql` with a token: a lost database is a 503 with its code, never a 500."""
    tenant = await make_own_tenant("pgx")
    async with tenant_transaction(postgres.owner, tenant.id) as db:
        key = (await create_key(db, name="outage", role=Role.VIEWER)).key
    env = postgres.server_env(
        own_redis.url,
        DATABASE_OWNER_URL=postgres.owner_url,
        TRACKING_DOMAIN="track.test",
        DATABASE_CONNECT_TIMEOUT_SECONDS=str(CONNECT_TIMEOUT),
        DATABASE_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
        TENANT_CACHE_SECONDS="0.5",
    )
    platform = issue_platform_token(JWT_SECRET, subject="operator")
    requests = {
        "tracking": (
            "/track/graphql",
            {"query": TRACK, "variables": {"n": tenant.tracking_numbers[0]}},
            {"Host": f"{tenant.slug}.track.test"},
        ),
        "admin": ("/admin/graphql", {"query": "{ tenants { slug } }"}, {"Authorization": f"Bearer {platform}"}),
        "api key": ("/graphql", {"query": "{ viewer { role } }"}, {"X-API-Key": key}),
        "token": ("/graphql", {"query": "{ viewer { role } }"}, tenant.headers()),
    }
    with running_server(env, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_BOUND) as http:

            async def ask(name: str) -> httpx.Response:
                path, body, headers = requests[name]
                return await http.post(path, json=body, headers=headers)

            for name in requests:
                before = await ask(name)
                assert before.status_code == 200 and "errors" not in before.json(), (name, before.text)
            await postgres.kill()
            try:
                await asyncio.sleep(1.0)  # past TENANT_CACHE_SECONDS and the tracking hosts' cache
                during = {name: await ask(name) for name in requests}
            finally:
                await postgres.restart()
            await asyncio.sleep(1.0)
            after = {name: await ask(name) for name in requests}

    for name, answer in during.items():
        assert answer.status_code == 503, (name, answer.status_code, answer.text)
        assert [e["extensions"]["code"] for e in answer.json()["errors"]] == ["SERVICE_UNAVAILABLE"], (
            name,
            answer.text,
        )
        assert answer.headers["retry-after"] == "1", name
        assert answer.headers["cache-control"] == after[name].headers["cache-control"], name  # each endpoint's own
        assert answer.headers.get("vary") == after[name].headers.get("vary"), name
    for name, answer in after.items():
        assert answer.status_code == 200 and "errors" not in answer.json(), (name, answer.text)
