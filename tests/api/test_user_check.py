"""A user's request checks its user in its own transaction: the statement that opens it (ADR 0011)."""

from __future__ import annotations

from typing import Any

import tenantql.graphql_http as graphql_http
from auth.authenticate import UserRecord
from auth.tenant import Role
from db.users import StandingDiffers
from resolvers.ids import to_global_id
from tests.driver_log import DriverLog

READS = "{ viewer { role } customers(first: 1) { edges { node { name } } } }"


async def sent_by(client: Any, services: Any, headers: dict[str, str]) -> tuple[Any, list[str], DriverLog]:
    """A request reading a customer, what its connections sent to PostgreSQL, and the log."""
    log = DriverLog(services.engine)
    try:
        response = await client.post("/graphql", json={"query": READS}, headers=headers)
        return response, await log.settled(), log
    finally:
        log.close()


async def test_a_users_request_runs_its_user_check_in_its_own_transaction(client, services, acme):
    headers = acme.headers(Role.MEMBER)
    assert (await client.post("/graphql", json={"query": READS}, headers=headers)).status_code == 200  # tenant cached
    response, sent, log = await sent_by(client, services, headers)
    assert response.status_code == 200 and response.json()["data"]["viewer"]["role"] == "MEMBER"

    user = acme.user_id(Role.MEMBER)
    opening = f"SELECT set_config('app.tenant_id', '{acme.id}', true); SELECT user_standing_is('{user}', 'MEMBER')"
    assert sent[0] == f"BEGIN; {opening}"  # one round trip: the transaction, its tenant and the user check
    assert "FROM customers" in sent[1]
    assert sent[2:] == ["COMMIT"]
    assert log.checkouts == 1  # no connection of its own for the user check


async def test_a_refused_user_runs_nothing_and_holds_no_connection(client, services, acme, graphql):
    headers = acme.headers(Role.VIEWER)
    user = acme.user_id(Role.VIEWER)
    deactivate = "mutation ($id: ID!) { deactivateUser(id: $id) { userErrors { code } } }"
    await graphql(deactivate, {"id": to_global_id("User", user)}, as_tenant=acme)
    response, sent, _ = await sent_by(client, services, headers)
    assert response.status_code == 401
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["UNAUTHENTICATED"]
    assert len(sent) == 2 and sent[0].endswith(f"SELECT user_standing_is('{user}', 'VIEWER')")
    assert sent[1] == "ROLLBACK"
    assert services.engine.sync_engine.pool.checkedout() == 0


async def test_a_role_that_keeps_changing_is_answered_503_to_be_tried_again(client, services, acme, monkeypatch):
    opened: list[Any] = []

    async def always_changed(db: Any) -> None:
        opened.append(db)
        raise StandingDiffers(UserRecord(role=Role.VIEWER if len(opened) % 2 else Role.ADMIN, active=True))

    monkeypatch.setattr(graphql_http, "open_for_user", always_changed)
    response = await client.post("/graphql", json={"query": READS}, headers=acme.headers(Role.MEMBER))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert len(opened) == graphql_http._STANDING_ATTEMPTS
    assert services.engine.sync_engine.pool.checkedout() == 0
