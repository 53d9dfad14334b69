"""Per-request accounting behind `/metrics` and the request log: plain counters, summed in process.

The GraphQL endpoint fills one RequestRecord as a request goes and hands it to
`RequestStats.record` once, at the end: a few dict increments, one bisect and, with
LOG_FORMAT=json, one log line. There is no lock (one event loop per process) and nothing
from prometheus_client; `tenantql.metrics` turns the counters into metric families only
when scraped. Labels are tenant slugs; `-` stands for a request whose credential named no
known tenant.
"""

from __future__ import annotations

import bisect
import logging
import math
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tenantql.requests")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds
NOISY_WINDOW_SECONDS = 60.0
NOISY_FACTOR = 2
NO_TENANT = "-"
UNKNOWN_OPERATION = "unknown"  # refused before an operation was read or parsed
BATCH = "batch"
MAX_LOGGED_NAME = 200  # operation names come from clients


@dataclass(slots=True)
class RequestRecord:
    """One request as the endpoint learns about it; `status` stays 500 unless a response is made."""

    request_id: str
    tenant: str | None = None
    operation_type: str = UNKNOWN_OPERATION  # query, mutation, subscription, batch
    operation_names: list[str] = field(default_factory=list)
    cost: int = 0  # actual cost points, summed over a batch's operations
    error_codes: list[str] = field(default_factory=list)
    status: int = 500

    @property
    def operation_name(self) -> str | None:
        """The name of the operation, or of each named operation of a batch, comma-separated."""
        return ",".join(self.operation_names)[:MAX_LOGGED_NAME] or None

    def add_operation(self, operation_type: str, name: str | None) -> None:
        """An operation of the request ran (or was refused): a batch keeps its type and gathers the names."""
        if self.operation_type != BATCH:
            self.operation_type = operation_type
        if name:
            self.operation_names.append(name)

    def add_body(self, body: dict[str, Any]) -> None:
        """Take in what one operation's response body reports: its errors' codes and its actual cost."""
        for error in body.get("errors", ()):
            self.error_codes.append((error.get("extensions") or {}).get("code", "INTERNAL_SERVER_ERROR"))
        cost = (body.get("extensions") or {}).get("cost")
        if cost:
            self.cost += cost["actualQueryCost"]


class Latency:
    """A histogram's bucket counts, each counted once (not cumulative) so an observation is one increment."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


class CostWindow:
    """Cost points per tenant over the last `seconds`, kept in slots of `slot_seconds`.

    Adding is one increment into the current slot; slots that have left the window are
    dropped when a new one starts, so memory is bounded by the tenants of one window."""

    def __init__(self, seconds: float = NOISY_WINDOW_SECONDS, slot_seconds: float = 5.0) -> None:
        self.slot_seconds = slot_seconds
        self.slots_kept = max(1, math.ceil(seconds / slot_seconds))
        self._slots: deque[tuple[int, Counter[str]]] = deque()

    def add(self, tenant: str, points: int, now: float) -> None:
        slot = int(now // self.slot_seconds)
        if not self._slots or self._slots[-1][0] != slot:
            while self._slots and self._slots[0][0] <= slot - self.slots_kept:
                self._slots.popleft()
            self._slots.append((slot, Counter()))
        self._slots[-1][1][tenant] += points

    def totals(self, now: float) -> Counter[str]:
        first = int(now // self.slot_seconds) - self.slots_kept + 1
        totals: Counter[str] = Counter()
        for slot, points in self._slots:
            if slot >= first:
                totals.update(points)
        return totals


class RequestStats:
    """What `/metrics` reports about GraphQL requests, per process. Usage: one per app, passed to the endpoint."""

    def __init__(self, *, window_seconds: float = NOISY_WINDOW_SECONDS) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()  # (tenant, operation type)
        self.errors: Counter[tuple[str, str]] = Counter()  # (tenant, code)
        self.latency: dict[str, Latency] = {}  # by operation type
        self.costs = CostWindow(window_seconds)

    def record(self, request: RequestRecord, duration: float, now: float) -> None:
        """Count a finished request; `now` is `time.monotonic()` at its end."""
        tenant = request.tenant or NO_TENANT
        self.requests[tenant, request.operation_type] += 1
        for code in request.error_codes:
            self.errors[tenant, code] += 1
        latency = self.latency.get(request.operation_type)
        if latency is None:
            latency = self.latency[request.operation_type] = Latency()
        latency.observe(duration)
        if request.tenant is not None and request.cost:
            self.costs.add(request.tenant, request.cost, now)
        if log.isEnabledFor(logging.INFO):
            log_request(request, duration)

    def noisy_neighbours(self, now: float) -> dict[str, bool]:
        """Each tenant that spent points in the window, and whether it spent more than
        NOISY_FACTOR times the median of those tenants (the lower middle one for an even
        count, so that of two tenants the one spending over twice the other stands out)."""
        spent = {tenant: points for tenant, points in self.costs.totals(now).items() if points > 0}
        if not spent:
            return {}
        median = statistics.median_low(spent.values())
        return {tenant: points > NOISY_FACTOR * median for tenant, points in spent.items()}


def log_request(request: RequestRecord, duration: float) -> None:
    """One line per request. It holds no header at all, so no token or key can reach it."""
    log.info(
        "graphql request",
        extra={
            "request_id": request.request_id,
            "tenant": request.tenant,
            "operation_name": request.operation_name,
            "operation_type": request.operation_type,
            "cost": request.cost,
            "status": request.status,
            "error_codes": sorted(set(request.error_codes)),
            "duration_ms": round(duration * 1000, 3),
        },
    )


__all__ = [
    "BATCH",
    "LATENCY_BUCKETS",
    "NOISY_FACTOR",
    "NOISY_WINDOW_SECONDS",
    "NO_TENANT",
    "UNKNOWN_OPERATION",
    "CostWindow",
    "Latency",
    "RequestRecord",
    "RequestStats",
]
