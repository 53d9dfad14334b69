"""What operators read: JSON log lines without credentials, and per-tenant series in /metrics."""

from __future__ import annotations

import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from auth.tenant import Plan
from resolvers import customers
from tenantql.logs import JSONFormatter
from tests.conftest import JWT_SECRET

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
            {"Authorization": f"Bearer {token[:-2]}xx"},  # a tampered token
            {"X-API-Key": key[:-1] + "0"},
        ):
            await client.post("/graphql", json={"query": "{ customers { edges { node { id } } } }"}, headers=headers)
    finally:
        root.removeHandler(lines)
        root.level = level

    assert any("internal error" in line for line in lines.lines), "the crash was logged"
    for line in lines.lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
        for secret in (token, token.split(".")[2], key, key.split("_")[-1], JWT_SECRET):
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
