"""The per-request counters behind /metrics: the cost window forgets, and the median decides who is noisy."""

from __future__ import annotations

from tenantql.request_stats import LATENCY_BUCKETS, CostWindow, RequestRecord, RequestStats


def spent(stats: RequestStats, tenant: str, points: int, now: float) -> None:
    stats.record(RequestRecord("r", tenant=tenant, operation_type="query", cost=points), 0.01, now)


def test_points_leave_the_window_a_minute_after_they_were_spent():
    window = CostWindow(seconds=60, slot_seconds=5)
    window.add("acme", 10, now=1000.0)
    window.add("acme", 5, now=1030.0)
    window.add("globex", 7, now=1059.0)

    assert window.totals(now=1059.0) == {"acme": 15, "globex": 7}
    assert window.totals(now=1065.0) == {"acme": 5, "globex": 7}  # the first slot (1000-1004 s) has left
    assert window.totals(now=1200.0) == {}
    window.add("acme", 1, now=1200.0)
    assert len(window._slots) == 1  # the old slots were dropped, not kept forever


def test_a_tenant_is_noisy_above_twice_the_median_of_the_tenants_that_spent_points():
    stats = RequestStats()
    assert stats.noisy_neighbours(now=0.0) == {}
    spent(stats, "alone", 1_000, now=0.0)
    assert stats.noisy_neighbours(now=0.0) == {"alone": False}  # its own median

    for tenant, points in (("a", 10), ("b", 12), ("c", 20), ("d", 25)):
        spent(stats, tenant, points, now=1.0)
    # Median of 10, 12, 20, 25, 1000 is 20: only `alone` spent more than 40.
    assert stats.noisy_neighbours(now=1.0) == {"alone": True, "a": False, "b": False, "c": False, "d": False}

    two = RequestStats()
    spent(two, "small", 10, now=0.0)
    spent(two, "big", 21, now=0.0)
    assert two.noisy_neighbours(now=0.0) == {"small": False, "big": True}  # the lower middle of two is 10
    spent(two, "none", 0, now=0.0)  # spent nothing: not among the tenants of the window
    assert "none" not in two.noisy_neighbours(now=0.0)


def test_latency_is_counted_once_per_bucket_and_summed():
    stats = RequestStats()
    for seconds in (0.001, 0.005, 0.03, 100.0):
        stats.record(RequestRecord("r", operation_type="query"), seconds, now=0.0)
    latency = stats.latency["query"]
    assert len(latency.counts) == len(LATENCY_BUCKETS) + 1
    assert latency.counts[0] == 2  # 0.005 itself falls in the bucket `le="0.005"`
    assert latency.counts[LATENCY_BUCKETS.index(0.05)] == 1 and latency.counts[-1] == 1
    assert round(latency.total, 3) == 100.036
    assert stats.requests == {("-", "query"): 4}
