"""Token buckets: charge, refuse, refill, refund, expire.

Every behaviour runs against both stores, the shared one in the real embedded Redis and
the per-process one, so the fallback limits exactly as the script does."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from auth.tenant import Plan
from db.buckets import KEY_PREFIX, PLAN_BUDGETS, Buckets, Budget, LocalBuckets, RedisBuckets


@pytest.fixture
async def redis(urls):
    client = Redis.from_url(urls.redis_url, max_connections=200)
    yield client
    await client.aclose()


@pytest.fixture(params=["redis", "local"])
def buckets(request, redis) -> Buckets:
    return RedisBuckets(redis) if request.param == "redis" else LocalBuckets()


@pytest.fixture
def redis_buckets(redis) -> RedisBuckets:
    return RedisBuckets(redis)


class Clock:
    """A clock the test moves, so the local buckets' bookkeeping is checked without waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_plans_budget_per_minute_and_enterprise_can_be_set_per_tenant():
    assert Budget.for_plan(Plan.STARTER) == Budget(1_000, 1_000 / 60)
    assert Budget.for_plan(Plan.SCALE).capacity == 10_000
    assert Budget.for_plan(Plan.ENTERPRISE).capacity == PLAN_BUDGETS[Plan.ENTERPRISE] == 50_000
    assert Budget.for_plan(Plan.ENTERPRISE, override=120_000) == Budget(120_000, 2_000.0)
    assert Budget.for_plan(Plan.GROWTH, override=120_000).capacity == 5_000  # overrides are ENTERPRISE's only


async def test_a_new_bucket_is_full_and_a_charge_takes_from_it(buckets):
    tenant = uuid.uuid4()
    charge = await buckets.charge(tenant, Budget.per_minute(1_000), 250)
    assert charge.charged and 749 < charge.available <= 750.1
    assert charge.local is isinstance(buckets, LocalBuckets)


async def test_an_unpayable_charge_takes_nothing_and_says_when_it_could_be_paid(buckets):
    tenant, budget = uuid.uuid4(), Budget.per_minute(600)  # 10 points a second
    await buckets.charge(tenant, budget, 590)
    refused = await buckets.charge(tenant, budget, 100)
    assert not refused.charged
    assert 10 <= refused.available < 12
    assert 8.8 < refused.retry_after <= 9.0  # (100 - ~10) / 10 per second
    assert (await buckets.status(tenant, budget)).available < 12  # nothing was taken


async def test_the_bucket_refills_at_the_budgets_rate_and_never_past_its_capacity(buckets):
    tenant, budget = uuid.uuid4(), Budget(capacity=100, restore_rate=50)
    empty = await buckets.charge(tenant, budget, 100)
    await asyncio.sleep(0.4)
    refilled = await buckets.status(tenant, budget)
    assert 15 <= refilled.available - empty.available <= 30  # 0.4 s x 50/s = 20, give or take the clock
    await asyncio.sleep(2.2)
    assert (await buckets.status(tenant, budget)).available == 100


async def test_a_refund_gives_points_back_up_to_the_capacity(buckets):
    tenant, budget = uuid.uuid4(), Budget.per_minute(1_000)
    charged = await buckets.charge(tenant, budget, 400)
    refunded = await buckets.refund(tenant, budget, 300)
    assert 299 < refunded.available - charged.available < 301
    assert (await buckets.refund(tenant, budget, 10_000)).available == 1_000


async def test_buckets_are_per_tenant(buckets):
    budget = Budget.per_minute(100)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert (await buckets.charge(first, budget, 100)).charged
    assert not (await buckets.charge(first, budget, 50)).charged
    assert (await buckets.charge(second, budget, 50)).charged


async def test_concurrent_charges_never_overdraw(buckets):
    tenant, budget = uuid.uuid4(), Budget(capacity=50, restore_rate=0.001)
    results = await asyncio.gather(*(buckets.charge(tenant, budget, 1) for _ in range(120)))
    assert sum(result.charged for result in results) == 50


async def test_an_idle_tenants_key_expires_once_its_bucket_would_be_full(redis_buckets, redis):
    tenant, budget = uuid.uuid4(), Budget(capacity=100, restore_rate=100)
    await redis_buckets.charge(tenant, budget, 50)  # full again in 0.5 s
    ttl = await redis.pttl(KEY_PREFIX + str(tenant))
    assert 0 < ttl <= 1_500


async def script_calls(redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval", "script|load")}


async def test_one_round_trip_per_charge(redis_buckets, redis):
    tenant, budget = uuid.uuid4(), Budget.per_minute(1_000)
    await redis_buckets.charge(tenant, budget, 1)  # the script is loaded by now
    before = await script_calls(redis)
    for _ in range(5):
        await redis_buckets.charge(tenant, budget, 1)
    after = await script_calls(redis)
    assert {name: after[name] - before[name] for name in after} == {"evalsha": 5, "eval": 0, "script|load": 0}


async def test_local_buckets_keep_only_tenants_whose_buckets_are_not_full():
    clock = Clock()
    buckets, fast, slow = (
        LocalBuckets(clock),
        Budget(capacity=100, restore_rate=10),
        Budget(capacity=100, restore_rate=5),
    )
    idle, busy, refunded, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await buckets.charge(idle, fast, 20)  # full again in 2 s
    await buckets.charge(busy, slow, 100)  # full again in 20 s
    await buckets.charge(refunded, fast, 30)
    await buckets.refund(refunded, fast, 30)
    await buckets.status(other, fast)
    assert len(buckets) == 2  # a full bucket is the default: nothing to keep

    clock.now += LocalBuckets.sweep_interval - 1
    await buckets.status(other, fast)
    assert len(buckets) == 2  # idle entries are swept at most once per sweep_interval
    clock.now += 1
    await buckets.status(other, fast)
    assert len(buckets) == 1  # `idle` is full again and gone; `busy` is not yet
    assert (await buckets.status(busy, slow)).available == 50
    clock.now += 10
    assert (await buckets.status(busy, slow)).available == 100  # reading a full bucket forgets it too
    assert len(buckets) == 0


async def test_local_buckets_refill_by_their_clock():
    clock = Clock()
    buckets, budget, tenant = LocalBuckets(clock), Budget(capacity=100, restore_rate=10), uuid.uuid4()
    assert (await buckets.charge(tenant, budget, 100)).available == 0
    clock.now += 2.5
    refused = await buckets.charge(tenant, budget, 40)
    assert (refused.charged, refused.available, refused.retry_after) == (False, 25, 1.5)
    clock.now -= 60  # a clock never goes back, but if it did the bucket would not drain
    assert (await buckets.status(tenant, budget)).available == 25
