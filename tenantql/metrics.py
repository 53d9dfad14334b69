"""`/metrics`: Prometheus text, read from the live services at scrape time.

Nothing on the request path touches prometheus_client: the cost limit keeps plain
counters and the buckets their state, and this collector turns them into metrics only
when scraped. Values are per process; label values are tenant slugs, never ids.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from tenantql.services import Services


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


async def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServicesCollector(request.app.state.services))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


__all__ = ["ServicesCollector", "metrics"]
