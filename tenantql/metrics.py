"""`/metrics`: Prometheus text, read from the live services at scrape time.

Nothing on the request path touches prometheus_client: the cost limit and the GraphQL
endpoint (`tenantql.request_stats`) keep plain counters and the buckets their state, and
these collectors turn them into metrics only when scraped. Values are per process; label
values are tenant slugs, never ids.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

from tenantql.request_stats import LATENCY_BUCKETS, NOISY_FACTOR, NOISY_WINDOW_SECONDS, RequestStats
from tenantql.services import Services

_BOUNDS = [*(floatToGoString(bound) for bound in LATENCY_BUCKETS), "+Inf"]


class ServicesCollector(Collector):
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        buckets, costs = self.services.buckets, self.services.costs
        yield GaugeMetricFamily(
            "tenantql_budgets_shared",
            "1 while tenants' budgets are kept in Redis, shared by all processes; 0 while per process.",
            value=1 if buckets.shared else 0,
        )
        yield CounterMetricFamily(
            "tenantql_budgets_failovers",
            "Times this process lost Redis and went on limiting with per-process buckets.",
            value=buckets.failovers,
        )
        points = CounterMetricFamily("tenantql_cost_points", "Cost points charged, after refunds.", labels=["tenant"])
        for slug, value in sorted(costs.points.items()):
            points.add_metric([slug], value)
        yield points
        refused = CounterMetricFamily(
            "tenantql_operations_refused",
            "Operations refused by the cost limit (THROTTLED, MAX_COST_EXCEEDED).",
            labels=["tenant", "code"],
        )
        for (slug, code), value in sorted(costs.refusals.items()):
            refused.add_metric([slug, code], value)
        yield refused


class RequestsCollector(Collector):
    """GraphQL requests per tenant and operation type, errors by code, latency, and noisy neighbours."""

    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        requests = CounterMetricFamily(
            "tenantql_requests",
            "GraphQL requests by tenant (`-`: none known) and operation type (query, mutation, subscription, "
            "batch; unknown: refused before an operation was read).",
            labels=["tenant", "operation_type"],
        )
        for (slug, operation_type), value in sorted(stats.requests.items()):
            requests.add_metric([slug, operation_type], value)
        yield requests
        errors = CounterMetricFamily(
            "tenantql_errors",
            "Errors in GraphQL responses by tenant (`-`: none known) and `extensions.code`, refusals included.",
            labels=["tenant", "code"],
        )
        for (slug, code), value in sorted(stats.errors.items()):
            errors.add_metric([slug, code], value)
        yield errors
        latency = HistogramMetricFamily(
            "tenantql_request_duration_seconds",
            "Time from a GraphQL request's arrival until its response was sent, by operation type.",
            labels=["operation_type"],
        )
        for operation_type, histogram in sorted(stats.latency.items()):
            running, buckets = 0, []
            for bound, count in zip(_BOUNDS, histogram.counts, strict=True):
                running += count
                buckets.append((bound, running))
            latency.add_metric([operation_type], buckets, sum_value=histogram.total)
        yield latency
        noisy = GaugeMetricFamily(
            "tenantql_noisy_neighbour",
            f"1 for a tenant whose cost points over the last {NOISY_WINDOW_SECONDS:g} s exceed {NOISY_FACTOR} times "
            "the median of the tenants that spent points in that window (the lower middle one for an even "
            "count); 0 for the other tenants of the window.",
            labels=["tenant"],
        )
        for slug, flagged in sorted(stats.noisy_neighbours(time.monotonic()).items()):
            noisy.add_metric([slug], 1 if flagged else 0)
        yield noisy


async def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServicesCollector(request.app.state.services))
    registry.register(RequestsCollector(request.app.state.request_stats))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


__all__ = ["RequestsCollector", "ServicesCollector", "metrics"]
