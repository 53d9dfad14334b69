"""What operators read: JSON log lines without credentials, and per-tenant series in /metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from auth.tenant import Plan, Role
from db import platform
from resolvers import customers
from tenantql.app import create_app
from tenantql.logs import JSONFormatter
from tests.conftest import JWT_SECRET, tampered

OVER_COST = (
    "{ customers(first: 100) { edges { node { shipments(first: 10) { edges { node { customer { name } } } } } } } }"
)


class Lines(logging.Handler):
    """Every record the app logs, formatted as the server writes it with LOG_FORMAT=json."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JSONFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_every_log_line_is_json_and_holds_no_credential(client, make_tenant, graphql, monkeypatch):
    tenant = await make_tenant(Plan.SCALE)
    created = await graphql('mutation { createApiKey(input: {name: "k", role: VIEWER}) { key } }', as_tenant=tenant)
    key = created["data"]["createApiKey"]["key"]
    token = tenant.token()

    async def crash(*args, **kwargs):
        raise RuntimeError("the resolver failed")

    monkeypatch.setattr(customers, "list_customers", crash)
    lines, root = Lines(), logging.getLogger()
    root.addHandler(lines)
    level, root.level = root.level, logging.DEBUG
    try:
        for headers in (
            {"Authorization": f"Bearer {token}"},
            {"X-API-Key": key},
            {"Authorization": f"Bearer {tampered(token)}"},
            {"X-API-Key": tampered(key)},
        ):
            await client.post("/graphql", json={"query": "{ customers { edges { node { id } } } }"}, headers=headers)
    finally:
        root.removeHandler(lines)
        root.level = level

    assert any("internal error" in line for line in lines.lines), "the crash was logged"
    for line in lines.lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
        for secret in (token, token.split(".")[2], key, key.split("_", 2)[2], JWT_SECRET):
            assert secret not in line


async def test_metrics_carry_per_tenant_series_after_traffic(client, graphql, acme, globex):
    await graphql("{ shipments(first: 5) { edges { node { customer { name } } } } }", as_tenant=acme)
    await graphql(OVER_COST, as_tenant=globex)
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("tenantql_cost_points_total", (("tenant", acme.slug),))] == 7
    refused = ("tenantql_operations_refused_total", (("code", "MAX_COST_EXCEEDED"), ("tenant", globex.slug)))
    assert samples[refused] == 1
    assert samples[("tenantql_budgets_shared", ())] == 1


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def request_lines() -> Iterator[Lines]:
    """The lines of `tenantql.requests`, as `LOG_FORMAT=json` (which enables that logger at INFO) writes them."""
    lines, logger = Lines(), logging.getLogger("tenantql.requests")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


async def test_each_request_logs_one_json_line_with_what_it_was_and_no_credential(
    client, make_tenant, graphql, request_lines
):
    tenant = await make_tenant(Plan.SCALE)
    created = await graphql('mutation { createApiKey(input: {name: "k", role: VIEWER}) { key } }', as_tenant=tenant)
    key, token = created["data"]["createApiKey"]["key"], tenant.token()
    request_lines.lines.clear()
    ships = {"query": "query Ships { shipments(first: 3) { edges { node { customer { name } } } } }"}
    add = {"query": 'mutation Add { createCustomer(input: {name: "x"}) { customer { id } } }'}
    bearer = {"Authorization": f"Bearer {token}"}
    exchanges = {
        "ships": (ships | {"operationName": "Ships"}, bearer),
        "refused": (add, {"X-API-Key": key}),  # a viewer's key
        "stranger": (ships, {"Authorization": f"Bearer {tampered(token)}"}),
        "batch": ([ships, {"query": "{ viewer { role } }"}], bearer),
    }
    bodies = {}
    for request_id, (body, headers) in exchanges.items():
        response = await client.post("/graphql", json=body, headers={**headers, "X-Request-ID": request_id})
        bodies[request_id] = response.json()

    entries = {entry["request_id"]: entry for entry in map(json.loads, request_lines.lines)}
    assert len(request_lines.lines) == len(entries) == len(exchanges)
    cost = {
        request_id: sum(part["extensions"]["cost"]["actualQueryCost"] for part in body)
        for request_id, body in (("ships", [bodies["ships"]]), ("batch", bodies["batch"]))
    }
    fields = ("tenant", "operation_name", "operation_type", "cost", "status", "error_codes")
    assert {request_id: tuple(entry[field] for field in fields) for request_id, entry in entries.items()} == {
        "ships": (tenant.slug, "Ships", "query", cost["ships"], 200, []),
        "refused": (tenant.slug, "Add", "mutation", 0, 200, ["FORBIDDEN"]),
        "stranger": (None, None, "unknown", 0, 401, ["UNAUTHENTICATED"]),
        "batch": (tenant.slug, "Ships", "batch", cost["batch"], 200, []),  # its one named operation
    }
    assert cost["ships"] == 5 and cost["batch"] == 6  # 2 + 3 shipments of 1 customer each; plus a viewer
    for entry in entries.values():
        assert entry["logger"] == "tenantql.requests" and entry["level"] == "info"
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] > 0
    for line in request_lines.lines:
        for secret in (token, token.split(".")[2], key, key.split("_", 2)[2], JWT_SECRET):
            assert secret not in line


async def test_metrics_count_requests_errors_and_latency_by_tenant_and_operation_type(
    client, graphql, acme, globex, make_tenant, owner_engine, services
):
    suspended = await make_tenant(Plan.STARTER)
    await platform.suspend(owner_engine, suspended.slug, actor="platform:test", reason="test")
    services.tenants.forget(suspended.id)
    before = samples_of((await client.get("/metrics")).text)

    await graphql("{ viewer { role } }", as_tenant=acme)
    await graphql("{ shipments(first: 2) { edges { node { id } } } }", as_tenant=acme, role=Role.VIEWER)
    await graphql('mutation { createCustomer(input: {name: "Ada"}) { customer { id } } }', as_tenant=acme)
    batch = [{"query": "{ viewer { role } }"}] * 2
    assert (await client.post("/graphql", json=batch, headers=acme.headers())).status_code == 200
    await graphql(OVER_COST, as_tenant=globex)
    await graphql("{ viewer { role } }", as_tenant=suspended, status=403)
    stranger = await client.post(
        "/graphql", json={"query": "{ viewer { role } }"}, headers={"Authorization": "Bearer x"}
    )
    assert stranger.status_code == 401

    after = samples_of((await client.get("/metrics")).text)

    def added(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    requests = "tenantql_requests_total"
    assert added(requests, tenant=acme.slug, operation_type="query") == 2
    assert added(requests, tenant=acme.slug, operation_type="mutation") == 1
    assert added(requests, tenant=acme.slug, operation_type="batch") == 1
    assert added(requests, tenant=globex.slug, operation_type="query") == 1
    assert added(requests, tenant=suspended.slug, operation_type="unknown") == 1
    assert added(requests, tenant="-", operation_type="unknown") == 1
    errors = "tenantql_errors_total"
    assert added(errors, tenant=globex.slug, code="MAX_COST_EXCEEDED") == 1
    assert added(errors, tenant=suspended.slug, code="TENANT_SUSPENDED") == 1
    assert added(errors, tenant="-", code="UNAUTHENTICATED") == 1
    assert added(errors, tenant=acme.slug, code="MAX_COST_EXCEEDED") == 0

    latency = "tenantql_request_duration_seconds"
    assert added(f"{latency}_count", operation_type="query") == 3
    assert added(f"{latency}_count", operation_type="unknown") == 2
    assert added(f"{latency}_sum", operation_type="query") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == f"{latency}_bucket" and dict(labels)["operation_type"] == "query"
    )
    assert [bound for bound, _ in buckets][-1] == float("inf") and len(buckets) == 12
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative
    assert buckets[-1][1] == after[(f"{latency}_count", (("operation_type", "query"),))]


async def test_the_noisy_neighbour_gauge_flags_the_tenant_that_spends_far_more_than_the_others(settings, make_tenant):
    heavy, *others = [await make_tenant(Plan.SCALE) for _ in range(4)]
    app = create_app(settings)  # an app of its own: no other test's tenants in its window
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t.test") as http:

            async def spend(tenant: Any, query: str, expected_cost: int) -> None:
                response = await http.post("/graphql", json={"query": query}, headers=tenant.headers())
                assert response.json()["extensions"]["cost"]["actualQueryCost"] == expected_cost, response.text

            for tenant in others:
                for _ in range(2):
                    await spend(tenant, "{ viewer { role } }", 1)
            for _ in range(3):
                await spend(heavy, "{ shipments(first: 12) { edges { node { customer { name } } } } }", 14)
            quiet = await make_tenant(Plan.SCALE)
            await spend(quiet, "{ rateLimit { maximumAvailable } }", 0)
            scraped = samples_of((await http.get("/metrics")).text)

    noisy = {
        dict(labels)["tenant"]: value for (name, labels), value in scraped.items() if name == "tenantql_noisy_neighbour"
    }
    assert noisy == {heavy.slug: 1, **{tenant.slug: 0 for tenant in others}}  # `quiet` spent nothing
