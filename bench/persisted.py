"""Whether the server answers persisted queries, asked the way an Apollo client asks.

Automatic persisted queries: a hash-only request either runs or fails with
PERSISTED_QUERY_NOT_FOUND; the client then sends query and hash together, which
registers the hash, and hash-only requests run from then on. The bench registers each
operation once per tenant (a store may be per tenant) and checks that hash-only works
for every tenant before it measures Q1p/Q2p; otherwise it reports why not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from bench.dataset import TenantPlan, requests_for
from bench.operations import Operation

NOT_BUILT = "n/a (persisted queries not built yet)"


async def persisted_unavailable(base_url: str, operation: Operation, tenants: Sequence[TenantPlan]) -> str | None:
    """None when hash-only requests of `operation` run for every tenant, else the reason to print."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for tenant, request in zip(tenants, requests_for(operation, tenants)[: len(tenants)], strict=True):
            headers = {"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"}
            status, answer = await _post(client, request.body, headers)
            if _ran(status, answer):
                continue
            if _code(answer) not in ("PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "BAD_REQUEST"):
                return f"n/a (hash-only request failed: {_message(answer)})"
            variables = _variables(request.body)
            status, answer = await _post(client, operation.registration_body(variables), headers)
            if not _ran(status, answer):
                return f"n/a (registering the hash failed: {_message(answer)})"
            status, answer = await _post(client, request.body, headers)
            if not _ran(status, answer):
                if _code(answer) in ("BAD_REQUEST", "PERSISTED_QUERY_NOT_SUPPORTED") or "no query" in _message(answer):
                    return NOT_BUILT
                return f"n/a (hash-only request failed after registering: {_message(answer)})"
    return None


async def _post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await client.post("/graphql", content=body, headers=headers)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {"errors": [{"message": response.text[:200]}]}


def _ran(status: int, answer: dict[str, Any]) -> bool:
    return status == 200 and not answer.get("errors") and answer.get("data") is not None


def _code(answer: dict[str, Any]) -> str | None:
    errors = answer.get("errors") or [{}]
    return (errors[0].get("extensions") or {}).get("code")


def _message(answer: dict[str, Any]) -> str:
    errors = answer.get("errors") or [{}]
    return str(errors[0].get("message", "no data"))[:200]


def _variables(body: bytes) -> dict[str, Any]:
    variables: dict[str, Any] = orjson.loads(body).get("variables") or {}
    return variables


__all__ = ["NOT_BUILT", "persisted_unavailable"]
