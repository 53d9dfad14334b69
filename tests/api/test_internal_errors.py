"""A failure of the server's own: masked for the client, logged in full under the request id."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.transaction import tenant_transaction
from resolvers import customers


async def test_a_crashing_resolver_is_masked_and_logged_with_the_request_id(client, acme, monkeypatch, caplog):
    async def crash(*args, **kwargs):
        raise RuntimeError("connection to 10.0.0.7 refused, password=hunter2")

    monkeypatch.setattr(customers, "list_customers", crash)
    with caplog.at_level(logging.ERROR, logger="tenantql.errors"):
        response = await client.post(
            "/graphql",
            json={"query": "{ viewer { role } customers { edges { node { id } } } }"},
            headers={**acme.headers(), "X-Request-ID": "req-abc-123"},
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc-123"
    body = response.json()
    assert body["data"] is None  # customers is non-null, so the error reaches the root
    [error] = body["errors"]
    assert error["message"] == "Internal server error (request id req-abc-123)"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-abc-123"}
    assert "hunter2" not in response.text and "Traceback" not in response.text
    [record] = [r for r in caplog.records if "req-abc-123" in r.getMessage()]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_a_request_id_that_is_not_safe_to_log_is_replaced(client, acme):
    response = await client.post(
        "/graphql", json={"query": "{ viewer { role } }"}, headers={**acme.headers(), "X-Request-ID": "a\nb" * 40}
    )
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32


async def test_a_write_undone_at_commit_is_never_answered_as_done(client, owner_engine, acme, monkeypatch, caplog):
    """A resolver that swallows a failed statement after writing leaves PostgreSQL to turn the
    COMMIT into a ROLLBACK: the client is told to try again, not that its customer exists."""

    async def careless_record(ctx: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await ctx.db.all(text("SELECT 1 / 0"))
        except DBAPIError:
            pass

    monkeypatch.setattr(customers, "record", careless_record)
    with caplog.at_level(logging.ERROR, logger="tenantql.graphql_http"):
        response = await client.post(
            "/graphql",
            json={"query": 'mutation { createCustomer(input: {name: "Lost At Commit"}) { customer { id } } }'},
            headers=acme.headers(),
        )

    assert response.status_code == 503, response.text
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert any("rolled back at COMMIT" in record.getMessage() for record in caplog.records)
    async with tenant_transaction(owner_engine, acme.id) as db:
        found = await db.all(text("SELECT id FROM customers WHERE name = 'Lost At Commit'"))
    assert found == []
