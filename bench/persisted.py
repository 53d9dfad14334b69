"""Register Q1p/Q2p's documents with the server and check that hash-only requests run.

Automatic persisted queries (Apollo APQ): a request carrying
`extensions.persistedQuery = {"version": 1, "sha256Hash": <SHA-256 of the text>}` and no
`query` runs the document stored under that hash, or answers PERSISTED_QUERY_NOT_FOUND;
query and hash sent together register the text. The server keeps registered documents in
Redis, shared by every worker process and every tenant, so one registration per server
is enough (each worker then caches a document in memory on its first use, which the
warm-up covers).

Before Q1p/Q2p are measured the bench registers each document once (query and hash),
then sends a hash-only request with every tenant's token in rotation; each must answer
the expected data without `errors`. Otherwise the operation is not measured and the table
gives the reason (say, `PERSISTED_QUERIES=off` or a store that loses what it was given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from bench.dataset import TenantPlan, requests_for
from bench.load import PlannedRequest
from bench.operations import Operation


async def register_persisted(base_url: str, operation: Operation, tenants: Sequence[TenantPlan]) -> str | None:
    """Register `operation`'s document once, then check hash-only runs for every tenant.

    Returns None when it does, else the reason to print instead of numbers.
    """
    if not operation.persisted or not tenants:
        raise ValueError(f"{operation.name} is not a persisted operation, or no tenants were given")
    registration = requests_for(operation, tenants, register=True)[0]
    hash_only = requests_for(operation, tenants)[: len(tenants)]  # interleaved: one per tenant
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        status, answer = await _post(client, registration)
        if not _ran(status, answer, operation):
            return f"n/a (registering the document with its hash failed: {_why(status, answer)})"
        for request in hash_only:
            status, answer = await _post(client, request)
            if not _ran(status, answer, operation):
                return f"n/a (hash-only request failed after registering: {_why(status, answer)})"
    return None


async def _post(client: httpx.AsyncClient, request: PlannedRequest) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {request.token}", "Content-Type": "application/json"}
    response = await client.post("/graphql", content=request.body, headers=headers)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return response.status_code, {"errors": [{"message": response.text[:200]}]}
    return response.status_code, answer


def _ran(status: int, answer: dict[str, Any], operation: Operation) -> bool:
    """What wrk's script counts as a success: 2xx, no `errors`, the expected data."""
    if not 200 <= status < 300 or "errors" in answer or answer.get("data") is None:
        return False
    return operation.expect in orjson.dumps(answer["data"]).decode()


def _why(status: int, answer: dict[str, Any]) -> str:
    errors = answer.get("errors") or []
    if not errors:
        return f"HTTP {status}, no {'data' if answer.get('data') is None else 'expected data'}"
    first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
    code = (first.get("extensions") or {}).get("code")
    message = str(first.get("message", ""))[:200]
    return f"HTTP {status}, {code}: {message}" if code else f"HTTP {status}: {message}"


__all__ = ["register_persisted"]
