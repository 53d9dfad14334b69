"""Credentials over HTTP: each refusal has its status and code, and no `data`."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from sqlalchemy import update

from auth.tenant import Role
from db.models import Tenant

QUERY = "{ viewer { role tenant { slug } } customers(first: 1) { edges { node { id } } } }"


@pytest.fixture
def sign(services: Any, acme: Any) -> Any:
    """`sign(**claims)`: an HS256 token with the server's secret, acme's claims unless overridden."""
    secret = str(services.settings.jwt_secret)

    def make(**overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "sub": str(acme.user_id(Role.ADMIN)),
            "tenant_id": str(acme.id),
            "role": "admin",
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        return jwt.encode({key: value for key, value in claims.items() if value is not None}, secret, algorithm="HS256")

    return make


async def post(client: Any, headers: dict[str, str]) -> Any:
    return await client.post("/graphql", json={"query": QUERY}, headers=headers)


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == [code]
    assert body["errors"][0]["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_a_valid_token_is_answered(client, acme):
    response = await post(client, acme.headers(Role.VIEWER))
    assert response.status_code == 200
    assert response.json()["data"]["viewer"] == {"role": "VIEWER", "tenant": {"slug": acme.slug}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic x"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer a.b.c"},
        {"X-API-Key": "tql_not_a_key_we_gave_out"},
    ],
    ids=repr,
)
async def test_a_missing_or_malformed_credential_is_401(client, acme, headers):
    assert_refused(await post(client, headers), 401, "UNAUTHENTICATED")


async def test_a_get_with_a_query_and_no_credential_is_401(client):
    response = await client.get("/graphql", params={"query": QUERY})
    assert_refused(response, 401, "UNAUTHENTICATED")


async def test_a_token_with_a_wrong_signature_is_401(client, acme):
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "tenant_id": str(acme.id), "role": "admin", "exp": int(time.time()) + 300},
        "not-the-server-secret-but-long-enough-0123456789",
        algorithm="HS256",
    )
    assert_refused(await post(client, bearer(token)), 401, "UNAUTHENTICATED")


async def test_a_token_whose_payload_was_edited_is_401(client, acme, globex):
    header, _, signature = acme.token(Role.VIEWER).split(".")
    edited = b64url(
        {"sub": str(uuid.uuid4()), "tenant_id": str(globex.id), "role": "admin", "exp": int(time.time()) + 300}
    )
    assert_refused(await post(client, bearer(f"{header}.{edited}.{signature}")), 401, "UNAUTHENTICATED")


async def test_an_expired_token_is_401(client, sign):
    assert_refused(await post(client, bearer(sign(exp=int(time.time()) - 120))), 401, "UNAUTHENTICATED")


async def test_a_token_without_exp_is_401(client, sign):
    assert_refused(await post(client, bearer(sign(exp=None))), 401, "UNAUTHENTICATED")


async def test_an_alg_none_token_is_401(client, acme):
    payload = {"sub": str(uuid.uuid4()), "tenant_id": str(acme.id), "role": "admin", "exp": int(time.time()) + 300}
    for header in ({"alg": "none"}, {"alg": "none", "typ": "JWT"}):
        token = f"{b64url(header)}.{b64url(payload)}."
        assert_refused(await post(client, bearer(token)), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "claims",
    [
        {"tenant_id": None},
        {"tenant_id": "not-a-uuid"},
        {"tenant_id": 12345},
        {"role": "owner"},
        {"role": None},
        {"sub": None},
    ],
    ids=repr,
)
async def test_a_token_with_a_missing_or_bad_claim_is_401(client, sign, claims):
    assert_refused(await post(client, bearer(sign(**claims))), 401, "UNAUTHENTICATED")


async def test_a_token_of_a_tenant_that_does_not_exist_is_401(client, sign):
    assert_refused(await post(client, bearer(sign(tenant_id=str(uuid.uuid4())))), 401, "UNAUTHENTICATED")


async def set_status(owner_engine: Any, tenant_id: uuid.UUID, status: str) -> None:
    async with owner_engine.connect() as connection:
        await connection.execute(
            update(Tenant.__table__).where(Tenant.__table__.c.id == tenant_id).values(status=status)
        )


async def test_a_suspended_tenant_is_403_and_a_resumed_one_is_answered_again(
    client, owner_engine, services, make_tenant
):
    tenant = await make_tenant()
    assert (await post(client, tenant.headers())).status_code == 200  # now in the tenant cache

    await set_status(owner_engine, tenant.id, "SUSPENDED")
    services.tenants.forget(tenant.id)
    for role in Role:
        assert_refused(await post(client, tenant.headers(role)), 403, "TENANT_SUSPENDED")

    await set_status(owner_engine, tenant.id, "ACTIVE")
    services.tenants.forget(tenant.id)
    assert (await post(client, tenant.headers())).status_code == 200


async def test_a_suspension_takes_effect_once_the_tenant_cache_expires(client, owner_engine, services, make_tenant):
    tenant = await make_tenant()
    assert (await post(client, tenant.headers())).status_code == 200
    await set_status(owner_engine, tenant.id, "SUSPENDED")
    await asyncio.sleep(services.settings.tenant_cache_seconds + 0.1)
    assert_refused(await post(client, tenant.headers()), 403, "TENANT_SUSPENDED")


@pytest.mark.parametrize("which", ["uuid", "slug", "random uuid", "random slug"])
async def test_an_x_tenant_id_naming_another_tenant_is_403(client, acme, globex, which):
    value = {
        "uuid": str(globex.id),
        "slug": globex.slug,
        "random uuid": str(uuid.uuid4()),
        "random slug": "no-such-tenant",
    }[which]
    response = await post(client, {**acme.headers(), "X-Tenant-ID": value})
    assert_refused(response, 403, "FORBIDDEN")


@pytest.mark.parametrize("which", ["uuid", "upper-case uuid", "slug"])
async def test_an_x_tenant_id_naming_the_credentials_tenant_is_accepted(client, acme, which):
    value = {"uuid": str(acme.id), "upper-case uuid": str(acme.id).upper(), "slug": acme.slug}[which]
    response = await post(client, {**acme.headers(Role.MEMBER), "X-Tenant-ID": value})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"]["tenant"]["slug"] == acme.slug
