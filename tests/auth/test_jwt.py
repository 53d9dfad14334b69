"""JWTVerifier: which tokens pass, and that every refusal is a 401 UNAUTHENTICATED AuthError."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from auth.errors import AuthError
from auth.jwt import Claims, JWKSKeys, JWTVerifier, VerifiedTokens, issue_token
from auth.tenant import Role
from tests.jwks import JWKS_PATH, KeyServer

SECRET = "unit-test-secret-long-enough-for-every-hs-algorithm-0123456789abcdef"
TENANT = uuid.uuid4()
USER = uuid.uuid4()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"sub": str(USER), "tenant_id": str(TENANT), "role": "member", "iat": now, "exp": now + 300}
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    """A token built byte by byte, for what PyJWT refuses to make (`alg: none`, HS256 with a PEM key)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


async def refused(verifier: JWTVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    assert (caught.value.code, caught.value.status) == ("UNAUTHENTICATED", 401)
    return caught.value


@pytest.fixture
def verifier() -> JWTVerifier:
    return JWTVerifier(secret=SECRET)


async def test_a_token_from_issue_token_gives_its_claims(verifier):
    token = issue_token(SECRET, tenant_id=TENANT, user_id=USER, role=Role.VIEWER)
    found = await verifier.verify(token)
    assert (found.tenant_id, found.user_id, found.role) == (TENANT, USER, Role.VIEWER)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 5000, "eyJhbGciOiJIUzI1NiJ9..", "Bearer x"])
async def test_a_malformed_token_is_refused(verifier, token):
    await refused(verifier, token)


async def test_a_token_signed_with_another_secret_is_refused(verifier):
    error = await refused(verifier, jwt.encode(claims(), SECRET + "-other", algorithm="HS256"))
    assert "signature" in error.message


async def test_an_expired_token_is_refused(verifier):
    error = await refused(verifier, jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"))
    assert "expired" in error.message


async def test_a_token_without_exp_is_refused(verifier):
    error = await refused(verifier, jwt.encode(claims(exp=None), SECRET, algorithm="HS256"))
    assert "exp" in error.message


async def test_a_token_not_yet_valid_is_refused(verifier):
    await refused(verifier, jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}])
async def test_an_unsigned_alg_none_token_is_refused(verifier, header):
    await refused(verifier, hand_made(header, claims()))


async def test_an_unlisted_algorithm_is_refused_even_with_the_right_secret(verifier):
    await refused(verifier, jwt.encode(claims(), SECRET, algorithm="HS512"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"tenant_id": None},
        {"tenant_id": "acme"},
        {"tenant_id": ""},
        {"tenant_id": 42},
        {"tenant_id": [str(TENANT)]},
        {"sub": None},
        {"sub": "not-a-uuid"},
        {"role": None},
        {"role": "owner"},
        {"role": "superadmin"},
        {"role": ""},
        {"role": ["admin"]},
    ],
    ids=repr,
)
async def test_a_token_with_a_missing_or_bad_claim_is_refused(verifier, overrides):
    await refused(verifier, jwt.encode(claims(**overrides), SECRET, algorithm="HS256"))


def test_a_verifier_needs_a_key_and_refuses_unknown_algorithms():
    with pytest.raises(ValueError):
        JWTVerifier()
    with pytest.raises(ValueError):
        JWTVerifier(secret=SECRET, algorithms=("none",))
    with pytest.raises(ValueError):
        JWTVerifier(secret=SECRET, algorithms=("RS256",))  # no JWKS to check it with


async def test_issuer_and_audience_are_checked_when_configured():
    strict = JWTVerifier(secret=SECRET, issuer="https://id.example", audience="tenantql")
    good = claims(iss="https://id.example", aud="tenantql")
    assert (await strict.verify(jwt.encode(good, SECRET, algorithm="HS256"))).tenant_id == TENANT
    for bad in ({"iss": "https://evil.example"}, {"iss": None}, {"aud": "other"}, {"aud": None}):
        await refused(strict, jwt.encode(claims(**{**good, **bad}), SECRET, algorithm="HS256"))
    lenient = JWTVerifier(secret=SECRET)
    assert (await lenient.verify(jwt.encode(claims(iss="anyone"), SECRET, algorithm="HS256"))).role is Role.MEMBER


# JWKS: RS256 and ES256 keys served by a real HTTP server on 127.0.0.1.


@pytest.fixture
def key_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = KeyServer()
    yield server
    server.close()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private_key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def signed(private_key: Any, algorithm: str, kid: str | None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims(**overrides), private_key, algorithm=algorithm, headers=headers)


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"rsa": rsa_key(), "ec": ec.generate_private_key(ec.SECP256R1()), "rsa-next": rsa_key()}


def jwks_verifier(server: KeyServer, **options: Any) -> JWTVerifier:
    return JWTVerifier(jwks=JWKSKeys(server.url, min_refresh_interval=0), **options)


async def test_rs256_and_es256_tokens_verify_by_kid(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"), jwk(keys["ec"], "ec-1"))
    verifier = jwks_verifier(key_server)
    assert (await verifier.verify(signed(keys["rsa"], "RS256", "rsa-1"))).tenant_id == TENANT
    assert (await verifier.verify(signed(keys["ec"], "ES256", "ec-1"))).tenant_id == TENANT
    assert key_server.fetches[JWKS_PATH] == 1  # the second kid was already known


async def test_a_token_of_a_rotated_in_key_verifies_once_the_jwks_lists_it(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "2026-01"))
    verifier = jwks_verifier(key_server)
    assert (await verifier.verify(signed(keys["rsa"], "RS256", "2026-01"))).role is Role.MEMBER
    rotated = signed(keys["rsa-next"], "RS256", "2026-02")
    await refused(verifier, rotated)

    key_server.publish(jwk(keys["rsa"], "2026-01"), jwk(keys["rsa-next"], "2026-02"))
    assert (await verifier.verify(rotated)).role is Role.MEMBER


async def test_a_token_whose_kid_is_unknown_or_absent_is_refused(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    verifier = jwks_verifier(key_server)
    await refused(verifier, signed(keys["rsa"], "RS256", "someone-elses"))
    await refused(verifier, signed(keys["rsa"], "RS256", None))


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    verifier = jwks_verifier(key_server)
    await refused(verifier, signed(keys["rsa-next"], "RS256", "rsa-1"))


async def test_an_algorithm_that_does_not_match_the_kids_key_is_refused(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"), jwk(keys["ec"], "ec-1"))
    verifier = jwks_verifier(key_server)
    await refused(verifier, signed(keys["ec"], "ES256", "rsa-1"))
    await refused(verifier, signed(keys["rsa"], "RS256", "ec-1"))


def public_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("with_secret", [True, False], ids=["secret-and-jwks", "jwks-only"])
async def test_hs256_signed_with_the_rsa_public_key_is_refused(key_server, keys, with_secret):
    """HS/RS confusion: a public key must never be accepted as an HMAC secret."""
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    verifier = JWTVerifier(
        secret=SECRET if with_secret else None, jwks=JWKSKeys(key_server.url, min_refresh_interval=0)
    )
    pem = public_pem(keys["rsa"])
    for kid in ("rsa-1", None):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        forged = hand_made(header, claims(role="admin"), lambda data: hmac.new(pem, data, hashlib.sha256).digest())
        await refused(verifier, forged)


async def test_alg_none_with_a_known_kid_is_refused(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    await refused(jwks_verifier(key_server), hand_made({"alg": "none", "kid": "rsa-1"}, claims()))


async def test_jwks_tokens_have_issuer_and_audience_checked(key_server, keys):
    key_server.publish(jwk(keys["ec"], "ec-1"))
    verifier = jwks_verifier(key_server, issuer="https://id.example", audience="tenantql")
    good = {"iss": "https://id.example", "aud": "tenantql"}
    assert (await verifier.verify(signed(keys["ec"], "ES256", "ec-1", **good))).user_id == USER
    await refused(verifier, signed(keys["ec"], "ES256", "ec-1", **{**good, "iss": "https://evil.example"}))
    await refused(verifier, signed(keys["ec"], "ES256", "ec-1", **{**good, "aud": "someone-else"}))
    await refused(verifier, signed(keys["ec"], "ES256", "ec-1"))


async def test_an_unknown_kid_does_not_refetch_within_the_refresh_interval(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    verifier = JWTVerifier(jwks=JWKSKeys(key_server.url, min_refresh_interval=60))
    await verifier.verify(signed(keys["rsa"], "RS256", "rsa-1"))
    for n in range(5):
        await refused(verifier, signed(keys["rsa"], "RS256", f"made-up-{n}"))
    assert key_server.fetches[JWKS_PATH] == 1


async def test_an_unreachable_jwks_keeps_the_keys_it_had(key_server, keys):
    key_server.publish(jwk(keys["rsa"], "rsa-1"))
    verifier = jwks_verifier(key_server)
    await verifier.verify(signed(keys["rsa"], "RS256", "rsa-1"))
    key_server.http.shutdown()
    key_server.http.server_close()
    await refused(verifier, signed(keys["rsa"], "RS256", "rsa-2"))  # triggers a refresh that fails
    assert (await verifier.verify(signed(keys["rsa"], "RS256", "rsa-1"))).tenant_id == TENANT


async def test_a_verified_token_is_checked_once_and_then_answered_from_memory(verifier, monkeypatch):
    decoded: list[str] = []
    decode = verifier.decode

    async def counting(token: str) -> dict[str, Any]:
        decoded.append(token)
        return await decode(token)

    monkeypatch.setattr(verifier, "decode", counting)
    token = issue_token(SECRET, tenant_id=TENANT, user_id=USER, role=Role.ADMIN)
    for _ in range(3):
        assert (await verifier.verify(token)).role is Role.ADMIN
    assert decoded == [token]

    header, _, signature = token.split(".")
    tampered_payload = b64url(json.dumps(claims(role="admin", tenant_id=str(uuid.uuid4()))).encode())
    for forged in (f"{header}.{tampered_payload}.{signature}", token + "x", token[:-1]):
        await refused(verifier, forged)  # only the exact text that passed is remembered
    assert len(decoded) == 4


async def test_a_remembered_token_is_refused_once_its_exp_has_passed():
    verifier = JWTVerifier(secret=SECRET, leeway=0)
    exp = int(time.time()) + 1
    token = jwt.encode(claims(exp=exp), SECRET, algorithm="HS256")
    await verifier.verify(token)
    assert verifier.verified.get(token) is not None
    await asyncio.sleep(exp - time.time() + 0.05)
    assert verifier.verified.get(token) is None
    await refused(verifier, token)


async def test_refused_tokens_are_never_remembered(verifier):
    for token in (
        jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
        jwt.encode(claims(), SECRET + "-other", algorithm="HS256"),
        jwt.encode(claims(role="platform_admin"), SECRET, algorithm="HS256"),
    ):
        await refused(verifier, token)
        assert verifier.verified.get(token) is None
        await refused(verifier, token)


def test_the_memory_keeps_at_most_its_size():
    memory = VerifiedTokens(size=3)
    payload = claims()
    remembered = Claims(user_id=USER, tenant_id=TENANT, role=Role.MEMBER)
    for n in range(5):
        memory.add(f"token-{n}", remembered, payload)
    assert [memory.get(f"token-{n}") for n in range(5)] == [None, None, remembered, remembered, remembered]
