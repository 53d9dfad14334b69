"""Users end to end: admins invite, list, change and deactivate them; the tenant keeps an active admin;
the database, not the token, says whether a user may act and with which role."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from auth.jwt import issue_token
from auth.tenant import Role
from db.models import User
from db.transaction import tenant_transaction
from resolvers.ids import from_global_id, to_global_id
from tests.conftest import JWT_SECRET, TenantHandle

USER_FIELDS = "id email name role active createdAt"
INVITE = f"""mutation ($input: InviteUserInput!) {{
  inviteUser(input: $input) {{ user {{ {USER_FIELDS} }} userErrors {{ field code message }} }}
}}"""
CHANGE_ROLE = f"""mutation ($id: ID!, $role: Role!) {{
  changeUserRole(id: $id, role: $role) {{ user {{ {USER_FIELDS} }} userErrors {{ field code message }} }}
}}"""
DEACTIVATE = f"""mutation ($id: ID!) {{
  deactivateUser(id: $id) {{ user {{ {USER_FIELDS} }} userErrors {{ field code message }} }}
}}"""
USERS = "{ users { id email role active } }"
WHO = "{ viewer { userId role } }"
AUDIT = "{ auditLog(first: 50) { edges { node { actor action targetId changes } } } }"


def gid(user_id: uuid.UUID) -> str:
    return to_global_id("User", user_id)


def bearer(tenant: TenantHandle, user_id: uuid.UUID, role: Role = Role.MEMBER) -> dict[str, str]:
    """A valid token for any user id: the role in it is only what the token says."""
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, tenant_id=tenant.id, user_id=user_id, role=role)}"}


async def ask(client: Any, query: str, variables: dict[str, Any] | None, headers: dict[str, str]) -> Any:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def invite(graphql, tenant, email: str, role: str = "MEMBER", name: str | None = None) -> dict[str, Any]:
    body = await graphql(INVITE, {"input": {"email": email, "role": role, "name": name}}, as_tenant=tenant)
    assert "errors" not in body, body
    return body["data"]["inviteUser"]


async def stored_users(owner_engine, tenant: TenantHandle) -> dict[uuid.UUID, tuple[str, bool]]:
    async with tenant_transaction(owner_engine, tenant.id) as db:
        rows = await db.all(select(User.id, User.role, User.active).where(User.tenant_id == tenant.id))
    return {row.id: (row.role.value, row.active) for row in rows}


async def test_an_admin_invites_lists_changes_and_deactivates_a_user(graphql, client, acme):
    invited = await invite(graphql, acme, "  New.Person@Example.COM ", name="New Person")
    user = invited["user"]
    assert invited["userErrors"] == []
    assert (user["email"], user["name"], user["role"], user["active"]) == (
        "new.person@example.com",
        "New Person",
        "MEMBER",
        True,
    )
    assert user["createdAt"]
    user_id = from_global_id(user["id"])[1]

    listed = (await graphql(USERS, as_tenant=acme))["data"]["users"]
    assert [u["email"] for u in listed].count("new.person@example.com") == 1
    assert {u["role"] for u in listed} == {"ADMIN", "MEMBER", "VIEWER"} and len(listed) == 4
    assert next(u for u in listed if u["role"] == "ADMIN")["id"] == gid(acme.user_id(Role.ADMIN))

    as_invited = (await ask(client, WHO, None, bearer(acme, user_id))).json()["data"]["viewer"]
    assert as_invited == {"userId": user["id"], "role": "MEMBER"}  # the id `users` shows is viewer.userId

    changed = (await graphql(CHANGE_ROLE, {"id": user["id"], "role": "VIEWER"}, as_tenant=acme))["data"]
    assert changed["changeUserRole"]["userErrors"] == []
    assert (changed["changeUserRole"]["user"]["role"], changed["changeUserRole"]["user"]["active"]) == ("VIEWER", True)

    deactivated = (await graphql(DEACTIVATE, {"id": user["id"]}, as_tenant=acme))["data"]["deactivateUser"]
    assert deactivated["userErrors"] == [] and deactivated["user"]["active"] is False
    listed = (await graphql(USERS, as_tenant=acme))["data"]["users"]
    assert {"id": user["id"], "email": user["email"], "role": "VIEWER", "active": False} in listed


async def test_an_email_already_taken_is_already_exists(graphql, owner_engine, acme):
    before = await stored_users(owner_engine, acme)
    for email in (f"member@{acme.slug}.example", f"MEMBER@{acme.slug.upper()}.example"):
        refused = await invite(graphql, acme, email, role="ADMIN")
        assert refused["user"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "email"], "ALREADY_EXISTS")]
    await invite(graphql, acme, "twice@example.com")
    again = await invite(graphql, acme, "twice@example.com", role="VIEWER")
    assert [e["code"] for e in again["userErrors"]] == ["ALREADY_EXISTS"]
    assert len(await stored_users(owner_engine, acme)) == len(before) + 1


@pytest.mark.parametrize(
    "email",
    ["", "   ", "no-at-sign", "a@b", "two@@example.com", "sp ace@example.com", "@example.com", "a@.io", "x" * 321],
)
async def test_an_email_that_is_not_one_is_invalid(graphql, acme, email):
    refused = await invite(graphql, acme, email)
    assert refused["user"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "email"], "INVALID")]


async def test_a_member_may_not_manage_users(client, graphql, owner_engine, acme):
    before = await stored_users(owner_engine, acme)
    headers = acme.headers(Role.MEMBER)
    viewer_id = gid(acme.user_id(Role.VIEWER))
    for query, variables in (
        (USERS, None),
        (INVITE, {"input": {"email": "sneaky@example.com", "role": "ADMIN"}}),
        (CHANGE_ROLE, {"id": gid(acme.user_id(Role.MEMBER)), "role": "ADMIN"}),
        (DEACTIVATE, {"id": viewer_id}),
    ):
        body = (await ask(client, query, variables, headers)).json()
        assert body["data"] is None and [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    assert await stored_users(owner_engine, acme) == before


async def test_the_only_admin_can_be_neither_demoted_nor_deactivated(graphql, owner_engine, acme):
    admin = gid(acme.user_id(Role.ADMIN))
    before = await stored_users(owner_engine, acme)
    for query, variables, name in (
        (CHANGE_ROLE, {"id": admin, "role": "MEMBER"}, "changeUserRole"),
        (CHANGE_ROLE, {"id": admin, "role": "VIEWER"}, "changeUserRole"),
        (DEACTIVATE, {"id": admin}, "deactivateUser"),
    ):
        payload = (await graphql(query, variables, as_tenant=acme))["data"][name]
        assert payload["user"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "INVALID")]
        assert "last active admin" in payload["userErrors"][0]["message"]
    assert await stored_users(owner_engine, acme) == before
    same = (await graphql(CHANGE_ROLE, {"id": admin, "role": "ADMIN"}, as_tenant=acme))["data"]["changeUserRole"]
    assert same["userErrors"] == [] and same["user"]["role"] == "ADMIN"  # keeping the role removes nobody


async def test_with_two_admins_one_can_be_demoted_but_not_the_second(client, graphql, acme):
    first, second = gid(acme.user_id(Role.ADMIN)), gid(acme.user_id(Role.MEMBER))
    promoted = (await graphql(CHANGE_ROLE, {"id": second, "role": "ADMIN"}, as_tenant=acme))["data"]
    assert promoted["changeUserRole"]["user"]["role"] == "ADMIN"

    demoted = (await graphql(CHANGE_ROLE, {"id": first, "role": "MEMBER"}, as_tenant=acme))["data"]
    assert demoted["changeUserRole"]["userErrors"] == [] and demoted["changeUserRole"]["user"]["role"] == "MEMBER"

    as_second = bearer(acme, acme.user_id(Role.MEMBER))  # a token that still says member: the database says admin
    for query, variables in ((CHANGE_ROLE, {"id": second, "role": "VIEWER"}), (DEACTIVATE, {"id": second})):
        body = (await ask(client, query, variables, as_second)).json()
        [payload] = body["data"].values()
        assert [e["code"] for e in payload["userErrors"]] == ["INVALID"], body


async def test_two_admins_demoting_themselves_at_once_leave_one(client, graphql, owner_engine, acme):
    """Each change counts two admins when it starts; the lock makes the second count one."""
    other = acme.user_id(Role.MEMBER)
    await graphql(CHANGE_ROLE, {"id": gid(other), "role": "ADMIN"}, as_tenant=acme)
    responses = await asyncio.gather(
        *(
            ask(client, CHANGE_ROLE, {"id": gid(user_id), "role": "VIEWER"}, bearer(acme, user_id, Role.ADMIN))
            for user_id in (acme.user_id(Role.ADMIN), other)
        )
    )
    payloads = [response.json()["data"]["changeUserRole"] for response in responses]
    assert sorted(len(payload["userErrors"]) for payload in payloads) == [0, 1], payloads
    stored = await stored_users(owner_engine, acme)
    assert sum(standing == ("ADMIN", True) for standing in stored.values()) == 1


async def test_a_deactivated_users_token_is_refused_on_the_next_request(client, graphql, acme):
    headers = acme.headers(Role.VIEWER)
    assert (await ask(client, WHO, None, headers)).status_code == 200
    await graphql(DEACTIVATE, {"id": gid(acme.user_id(Role.VIEWER))}, as_tenant=acme)
    response = await ask(client, WHO, None, headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert "data" not in body
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("the user is deactivated", "UNAUTHENTICATED")
    ]


async def test_a_token_of_a_user_the_tenant_does_not_have_is_refused(client, acme, globex):
    for headers in (bearer(acme, uuid.uuid4(), Role.ADMIN), bearer(acme, globex.user_id(Role.ADMIN), Role.ADMIN)):
        response = await ask(client, WHO, None, headers)
        assert response.status_code == 401, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_demoted_admins_token_loses_admin_rights_at_once(client, graphql, acme):
    old_admin = acme.headers(Role.ADMIN)
    await graphql(CHANGE_ROLE, {"id": gid(acme.user_id(Role.MEMBER)), "role": "ADMIN"}, as_tenant=acme)
    new_admin = bearer(acme, acme.user_id(Role.MEMBER))
    demoted = await ask(client, CHANGE_ROLE, {"id": gid(acme.user_id(Role.ADMIN)), "role": "VIEWER"}, new_admin)
    assert demoted.json()["data"]["changeUserRole"]["user"]["role"] == "VIEWER"

    assert (await ask(client, WHO, None, old_admin)).json()["data"]["viewer"]["role"] == "VIEWER"
    for query, variables in ((USERS, None), (INVITE, {"input": {"email": "late@example.com", "role": "ADMIN"}})):
        body = (await ask(client, query, variables, old_admin)).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body


async def test_another_tenants_user_ids_are_not_found_and_unchanged(graphql, owner_engine, acme, globex):
    before = await stored_users(owner_engine, globex)
    foreign = [gid(user_id) for user_id in before]
    elsewhere = [gid(uuid.uuid4()), to_global_id("Customer", acme.ids["customers"][0]), "not-an-id"]
    for user_id in foreign + elsewhere:
        for query, variables, name in (
            (CHANGE_ROLE, {"id": user_id, "role": "VIEWER"}, "changeUserRole"),
            (DEACTIVATE, {"id": user_id}, "deactivateUser"),
        ):
            payload = (await graphql(query, variables, as_tenant=acme))["data"][name]
            assert payload["user"] is None
            assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "NOT_FOUND")]
    assert await stored_users(owner_engine, globex) == before
    listed = (await graphql(USERS, as_tenant=acme))["data"]["users"]
    assert not {u["id"] for u in listed} & set(foreign)


async def test_each_change_is_audited_and_a_refused_one_is_not(graphql, acme):
    user = (await invite(graphql, acme, "audited@example.com", role="VIEWER", name="Audited"))["user"]
    user_uuid = from_global_id(user["id"])[1]
    await graphql(CHANGE_ROLE, {"id": user["id"], "role": "MEMBER"}, as_tenant=acme)
    await graphql(DEACTIVATE, {"id": user["id"]}, as_tenant=acme)
    await graphql(DEACTIVATE, {"id": gid(acme.user_id(Role.ADMIN))}, as_tenant=acme)  # refused: the last admin
    await graphql(DEACTIVATE, {"id": user["id"]}, as_tenant=acme)  # already done: nothing changes

    entries = [edge["node"] for edge in (await graphql(AUDIT, as_tenant=acme))["data"]["auditLog"]["edges"]]
    about_users = [entry for entry in reversed(entries) if entry["action"].startswith("user.")]
    assert [(entry["action"], entry["changes"]) for entry in about_users] == [
        ("user.invite", {"email": "audited@example.com", "name": "Audited", "role": "VIEWER"}),
        ("user.change_role", {"role": "MEMBER"}),
        ("user.deactivate", {"active": False}),
    ]
    assert {entry["actor"] for entry in about_users} == {f"user:{acme.user_id(Role.ADMIN)}"}
    assert {entry["targetId"] for entry in about_users} <= {str(user_uuid), user["id"]}
