"""Probes and browser-facing HTTP details: liveness, readiness, CORS, masking of uncoded errors."""

from __future__ import annotations

import socket
from dataclasses import replace

import httpx
from asgi_lifespan import LifespanManager
from graphql import GraphQLError
from redis.asyncio import Redis
from strawberry.types import ExecutionResult

from tenantql.app import create_app
from tenantql.graphql_http import result_body


async def test_health_and_ready_answer_200_while_both_servers_answer(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "postgres": True, "redis": True, "budgets": "shared"}


async def test_ready_is_degraded_but_200_when_redis_does_not_answer(client, services):
    """Tenants are still limited, per process, so the server still takes traffic."""
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    working, services.redis = services.redis, Redis(port=dead_port, socket_connect_timeout=0.2)
    try:
        ready = await client.get("/ready")
    finally:
        await services.redis.aclose()
        services.redis = working
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "postgres": True, "redis": False, "budgets": "shared"}


async def test_cors_allows_only_the_configured_origins(settings):
    app = create_app(replace(settings, cors_origins=("https://dispatch.example",)))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
            preflight = {
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            }
            allowed = await http.options("/graphql", headers={"Origin": "https://dispatch.example", **preflight})
            refused = await http.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dispatch.example"
    assert "access-control-allow-origin" not in refused.headers


def test_an_error_without_a_code_is_masked_with_the_request_id():
    secret = GraphQLError("password=hunter2 in connection string", original_error=RuntimeError("boom"))
    body, _ = result_body(ExecutionResult(data={"x": None}, errors=[secret]), "req-42")
    [error] = body["errors"]
    assert error["message"] == "Internal server error (request id req-42)"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
