"""Failover of the budgets against a real Redis of the test's own, stopped and started again.

The session's Redis is shared by every test, so these start their own `EmbeddedRedis`
and leave the session's alone.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from db.bucket_failover import PROBE_TASK_NAME, FailoverBuckets
from db.buckets import KEY_PREFIX, Budget
from db.redis_client import open_redis
from tenantql.embedded import EmbeddedRedis

TEN_A_SECOND = Budget.per_minute(600)


def client(url: str) -> Redis:
    """As the server opens its client (`db.redis_client.open_redis`), with a short timeout."""
    return open_redis(url, socket_timeout=0.5)


@pytest.fixture
async def redis(own_redis: EmbeddedRedis) -> AsyncIterator[Redis]:
    redis = client(own_redis.url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def buckets(redis: Redis) -> AsyncIterator[FailoverBuckets]:
    buckets = FailoverBuckets(redis, probe_interval=0.1)
    yield buckets
    await buckets.aclose()


async def outage(own_redis: EmbeddedRedis) -> None:
    await asyncio.to_thread(own_redis.stop)


async def recovery(own_redis: EmbeddedRedis) -> None:
    url = own_redis.url
    await asyncio.to_thread(own_redis.start)
    assert own_redis.url == url  # back on its recorded port, where the client looks


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


def probes() -> int:
    return sum(1 for task in asyncio.all_tasks() if task.get_name() == PROBE_TASK_NAME and not task.done())


def logged(caplog: pytest.LogCaptureFixture, level: int) -> int:
    return sum(1 for record in caplog.records if record.name == "tenantql.budgets" and record.levelno == level)


async def points_in_redis(redis: Redis, tenant: uuid.UUID) -> float | None:
    points = await redis.hget(KEY_PREFIX + str(tenant), "points")
    return None if points is None else float(points)


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


async def test_an_outage_is_limited_per_process_and_redis_takes_over_again_by_itself(
    own_redis: EmbeddedRedis, redis: Redis, buckets: FailoverBuckets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tenantql.budgets")
    tenant = uuid.uuid4()
    shared = await buckets.charge(tenant, TEN_A_SECOND, 100)
    assert (shared.charged, shared.local, buckets.shared) == (True, False, True)
    assert await points_in_redis(redis, tenant) == pytest.approx(500, abs=1)

    await outage(own_redis)
    local = await buckets.charge(tenant, TEN_A_SECOND, 550)  # the process's bucket holds the whole budget
    assert (local.charged, local.local) == (True, True)
    assert (buckets.shared, buckets.failovers, probes()) == (False, 1, 1)
    assert buckets.degraded_since is not None
    refused = await buckets.charge(tenant, TEN_A_SECOND, 100)
    assert (refused.charged, refused.local) == (False, True)  # still limited
    assert 4 < refused.retry_after <= 5
    more = [await buckets.charge(uuid.uuid4(), TEN_A_SECOND, 1) for _ in range(50)]
    assert all(charge.local and charge.charged for charge in more)
    assert logged(caplog, logging.WARNING) == 1  # once per outage, not per request

    await recovery(own_redis)
    await eventually(lambda: buckets.shared)
    assert (buckets.degraded_since, buckets.failovers, probes()) == (None, 1, 0)
    assert logged(caplog, logging.INFO) == 1
    again = await buckets.charge(tenant, TEN_A_SECOND, 100)
    assert (again.charged, again.local) == (True, False)
    assert await points_in_redis(redis, tenant) == pytest.approx(500, abs=1)  # a fresh Redis: a full bucket

    calls, points = await script_calls(redis), await points_in_redis(redis, tenant)
    refunded = await buckets.refund(tenant, TEN_A_SECOND, 550, charge=local)
    assert refunded.local  # refunded where it was charged ...
    assert (await script_calls(redis), await points_in_redis(redis, tenant)) == (calls, points)  # ... not in Redis


async def test_a_shared_charge_is_not_refunded_locally_while_redis_is_away(
    own_redis: EmbeddedRedis, buckets: FailoverBuckets
) -> None:
    tenant = uuid.uuid4()
    shared = await buckets.charge(tenant, TEN_A_SECOND, 500)
    await outage(own_redis)
    assert (await buckets.charge(tenant, TEN_A_SECOND, 100)).local
    refund = await buckets.refund(tenant, TEN_A_SECOND, 500, charge=shared)
    assert refund.local and 500 <= refund.available < 510  # the 500 points stay taken, in Redis


async def test_while_degraded_no_call_tries_redis(own_redis: EmbeddedRedis, redis: Redis) -> None:
    buckets = FailoverBuckets(redis, probe_interval=60)  # the probe will not look again during the test
    try:
        await outage(own_redis)
        assert (await buckets.charge(uuid.uuid4(), TEN_A_SECOND, 1)).local
        await recovery(own_redis)  # Redis is back, but only the probe may find that out
        calls = await script_calls(redis)
        charges = [await buckets.charge(uuid.uuid4(), TEN_A_SECOND, 1) for _ in range(20)]
        assert all(charge.local for charge in charges)
        assert (await buckets.status(uuid.uuid4(), TEN_A_SECOND)).local
        assert await script_calls(redis) == calls
        assert not buckets.shared
    finally:
        await buckets.aclose()


async def test_aclose_cancels_the_probe(own_redis: EmbeddedRedis, buckets: FailoverBuckets) -> None:
    await outage(own_redis)
    await buckets.charge(uuid.uuid4(), TEN_A_SECOND, 1)
    assert probes() == 1
    await buckets.aclose()
    assert probes() == 0
    assert not buckets.shared  # the buckets stay where they are


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_buckets_limit_per_process_when_redis_is_down_from_the_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tenantql.budgets")
    redis = client(f"redis://127.0.0.1:{closed_port()}/0")
    buckets = FailoverBuckets(redis, probe_interval=0.1)
    try:
        tenant, budget = uuid.uuid4(), Budget(capacity=50, restore_rate=0.001)
        charges = await asyncio.gather(*(buckets.charge(tenant, budget, 1) for _ in range(120)))
        assert all(charge.local for charge in charges)
        assert sum(charge.charged for charge in charges) == 50
        assert (buckets.shared, buckets.failovers, probes(), logged(caplog, logging.WARNING)) == (False, 1, 1, 1)
        await asyncio.sleep(0.35)  # a few failed probes change nothing
        assert (buckets.shared, buckets.failovers, logged(caplog, logging.WARNING)) == (False, 1, 1)
    finally:
        await buckets.aclose()
        await redis.aclose()
    assert probes() == 0
