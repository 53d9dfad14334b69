"""Forged and misused credentials, one table: each refused with its status and code, and none
of them gets a statement run for its tenant beyond the authenticator's own lookups.

The server under attack is configured as strictly as a deployment can be: HS256 with a
shared secret and RS256 with a JWKS, both allowed (the configuration in which HS/RS confusion
would bite), an issuer and an audience, and an owner URL, so `/admin/graphql` is served too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.jwt import issue_platform_token
from auth.tenant import Plan, Role
from db.api_keys import create_key, revoke_key
from db.seed import ensure_tenant, seed_tenant_data, stable_id
from db.transaction import tenant_transaction
from tenantql.admin import PATH as ADMIN
from tenantql.app import create_app
from tests.conftest import JWT_SECRET, SMALL, tampered
from tests.driver_log import DriverLog
from tests.jwks import KeyServer

ISSUER = "https://id.tenantql.example"
AUDIENCE = "tenantql-api"
KID = "2026-01"
QUERY = "{ viewer { role tenant { slug } } customers(first: 1) { edges { node { id name } } } }"
ADMIN_QUERY = "{ tenants { slug } }"


# -- what PostgreSQL sees ---------------------------------------------------------------------

# Every statement a refused credential may cause, and why. Anything else fails the test.
STATEMENTS: list[tuple[str, re.Pattern[str]]] = [
    # The authenticator's lookups, each in a short transaction of its own:
    ("tenant", re.compile(r"^SELECT tenants\.id, .* FROM tenants WHERE tenants\.id = ")),  # the tenant it names
    # A user's token: the request's transaction opens with the check of its user, now (ADR 0011).
    # Refused, it is rolled back with nothing else run in it.
    (
        "user",
        re.compile(
            r"^BEGIN; SELECT set_config\('app\.tenant_id', '[0-9a-f-]{36}', true\); "
            r"SELECT user_standing_is\('[0-9a-f-]{36}', '(ADMIN|MEMBER|VIEWER)'\)$"
        ),
    ),
    ("key", re.compile(r"^SELECT tenant_id, id, role FROM api_keys WHERE key_hash = \$1 AND revoked_at IS NULL$")),
    ("key use", re.compile(r"^UPDATE api_keys SET last_used_at = now\(\) WHERE tenant_id = \$1 AND id = \$2$")),
    # ... and how those transactions are opened and closed:
    ("tenant transaction", re.compile(r"^BEGIN; SELECT set_config\('app\.tenant_id', '[0-9a-f-]{36}', true\)$")),
    ("key hash setting", re.compile(r"^SELECT set_config\('app\.api_key_hash', \$1, true\)$")),
    ("key tenant setting", re.compile(r"^SELECT set_config\('app\.tenant_id', \$1, true\)$")),
    ("rollback", re.compile(r"^ROLLBACK;?$")),
    ("transaction control", re.compile(r"^(BEGIN|COMMIT);?$")),
    # A connection the pool opens meanwhile: the driver and SQLAlchemy read the server's settings.
    ("connection set-up", re.compile(r"pg_catalog|current_schema\(\)|^show |^select 1$", re.IGNORECASE)),
]
LOOKUPS = frozenset({"tenant", "user", "key", "key use"})


class Statements:
    """Every statement an engine sends, both ways it sends them: through SQLAlchemy (the tenant
    lookup) and straight to asyncpg (`DriverLog`: each tenant transaction's opening with its
    user check, the key lookups, every operation's statements). `sql_statements` of conftest
    leaves out transaction control: a request transaction being opened would pass it unseen."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._through_sqlalchemy: list[str] = []
        self._engine = engine.sync_engine
        self._driver = DriverLog(engine)
        event.listen(self._engine, "before_cursor_execute", self._sqlalchemy_sent)

    def _sqlalchemy_sent(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._through_sqlalchemy.append(statement)

    @property
    def seen(self) -> list[str]:
        return self._through_sqlalchemy + self._driver.sent

    def clear(self) -> None:
        self._through_sqlalchemy.clear()
        self._driver.sent.clear()

    async def settle(self) -> None:
        await self._driver.settled()

    def kinds(self) -> Counter[str]:
        """The statements seen, by kind; fails on one that is not a refused credential's."""
        found: Counter[str] = Counter()
        for statement in self.seen:
            flat = " ".join(statement.split())
            kind = next((kind for kind, pattern in STATEMENTS if pattern.search(flat)), None)
            assert kind is not None, f"a statement no refused credential may cause: {flat}"
            found[kind] += 1
        return found

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._sqlalchemy_sent)
        self._driver.close()


# -- keys and a JWKS endpoint of the identity provider ------------------------------------------


ATTACKER_JWKS = "/attacker/jwks.json"  # where a forged header would have keys fetched from


def public_jwk(private_key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}


def public_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> str:
    """A token built byte by byte, for what PyJWT refuses to make (`alg: none`, HS256 keyed by a PEM)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()) if sign else b'')}"


def hs512(claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():  # PyJWT finds the secret short for HS512, which is not the point here
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, JWT_SECRET, algorithm="HS512")


def hmac_sha256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


# -- the world the attacks run in ---------------------------------------------------------------


@dataclass
class Tenant:
    id: uuid.UUID
    slug: str

    def user(self, role: Role) -> uuid.UUID:
        return stable_id(self.slug, "user", role.value)


@dataclass
class World:
    http: httpx.AsyncClient
    statements: Statements
    keys: KeyServer
    acme: Tenant  # SCALE, so that it may hold API keys
    globex: Tenant  # SCALE
    suspended: Tenant
    signing_key: rsa.RSAPrivateKey  # the identity provider's, published under KID
    attacker_key: rsa.RSAPrivateKey  # published only at the attacker's own URL
    acme_key: str
    globex_key: str
    revoked_key: str
    deactivated: uuid.UUID  # acme's viewer, deactivated

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """acme's admin, valid for five minutes, of the configured issuer and audience; None drops a claim."""
        now = int(time.time())
        claims = {
            "sub": str(self.acme.user(Role.ADMIN)),
            "tenant_id": str(self.acme.id),
            "role": "admin",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        return {name: value for name, value in claims.items() if value is not None}

    def hs256(self, secret: str = JWT_SECRET, **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), secret, algorithm="HS256")

    def rs256(
        self, key: rsa.RSAPrivateKey | None = None, headers: dict[str, Any] | None = None, **overrides: Any
    ) -> str:
        return jwt.encode(
            self.claims(**overrides),
            key or self.signing_key,
            algorithm="RS256",
            headers={name: value for name, value in {"kid": KID, **(headers or {})}.items() if value is not None},
        )

    def platform(self, secret: str = JWT_SECRET, **extra: Any) -> str:
        token = issue_platform_token(secret, subject="ops-alice", issuer=ISSUER, audience=AUDIENCE)
        if not extra:
            return token
        return jwt.encode({**jwt.decode(token, options={"verify_signature": False}), **extra}, secret, "HS256")


async def make_tenant(owner_engine: AsyncEngine, plan: Plan) -> Tenant:
    slug = f"cred-{uuid.uuid4().hex[:10]}"
    tenant_id = await ensure_tenant(owner_engine, slug, f"Tenant {slug}", plan)
    await seed_tenant_data(owner_engine, tenant_id, slug, SMALL)
    return Tenant(tenant_id, slug)


async def new_key(owner_engine: AsyncEngine, tenant: Tenant, *, revoked: bool = False) -> str:
    async with tenant_transaction(owner_engine, tenant.id) as db:
        made = await create_key(db, name="scanner", role=Role.ADMIN)
        if revoked:
            await revoke_key(db, made.id)
    return made.key


@pytest.fixture(scope="module")
async def world(settings: Any, owner_engine: AsyncEngine) -> AsyncIterator[World]:
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = KeyServer({ATTACKER_JWKS: {"keys": [public_jwk(attacker_key, "attacker")]}})
    keys.publish(public_jwk(signing_key, KID))
    acme, globex = await make_tenant(owner_engine, Plan.SCALE), await make_tenant(owner_engine, Plan.SCALE)
    suspended = await make_tenant(owner_engine, Plan.SCALE)
    async with owner_engine.connect() as connection:
        await connection.execute(text("UPDATE tenants SET status = 'SUSPENDED' WHERE id = :id"), {"id": suspended.id})
    async with tenant_transaction(owner_engine, acme.id) as db:
        await db.write(
            text("UPDATE users SET active = false WHERE tenant_id = :tenant_id AND id = :id"),
            id=acme.user(Role.VIEWER),
        )
    strict = replace(
        settings,
        jwt_jwks_url=keys.url,
        jwt_algorithms=("HS256", "RS256"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_PROXY", "127.0.0.1")  # the JWKS is fetched with urllib, which honours proxies
        patch.setenv("no_proxy", "127.0.0.1")
        application = create_app(strict)
        async with LifespanManager(application) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
                statements = Statements(application.state.services.engine)
                try:
                    yield World(
                        http=http,
                        statements=statements,
                        keys=keys,
                        acme=acme,
                        globex=globex,
                        suspended=suspended,
                        signing_key=signing_key,
                        attacker_key=attacker_key,
                        acme_key=await new_key(owner_engine, acme),
                        globex_key=await new_key(owner_engine, globex),
                        revoked_key=await new_key(owner_engine, acme, revoked=True),
                        deactivated=acme.user(Role.VIEWER),
                    )
                finally:
                    statements.close()
                    keys.close()


# -- the catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    headers: Callable[[World], dict[str, str]]
    status: int
    code: str
    lookups: frozenset[str] = frozenset()  # what the authenticator may read to refuse it (see STATEMENTS)
    path: str = "/graphql"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def swapped_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


TENANT = frozenset({"tenant"})
KEY = frozenset({"key"})  # looked up by its hash, not found
FOUND_KEY = KEY | {"key use"}  # found: its use is recorded, at most once a minute

ATTACKS = [
    # Forged signatures and algorithms: refused before any lookup.
    Attack("alg none", lambda w: bearer(hand_made({"alg": "none", "typ": "JWT"}, w.claims())), 401, "UNAUTHENTICATED"),
    Attack("alg None, capitalised", lambda w: bearer(hand_made({"alg": "None"}, w.claims())), 401, "UNAUTHENTICATED"),
    Attack(
        "HS256 keyed by the provider's RSA public key (HS/RS confusion)",
        lambda w: bearer(hand_made({"alg": "HS256", "kid": KID}, w.claims(), hmac_sha256(public_pem(w.signing_key)))),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "HS512, an algorithm not allowed, with the real secret",
        lambda w: bearer(hs512(w.claims())),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "signed with another secret",
        lambda w: bearer(w.hs256(secret="another-secret-that-is-long-enough-for-hs256-0123456789")),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "RS256 by an unknown key under the provider's kid",
        lambda w: bearer(w.rs256(key=w.attacker_key)),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "kid of no published key",
        lambda w: bearer(w.rs256(headers={"kid": "2099-12"})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack("RS256 without a kid", lambda w: bearer(w.rs256(headers={"kid": None})), 401, "UNAUTHENTICATED"),
    Attack(
        "kid path traversal, HS256 keyed by the empty file it names",
        lambda w: bearer(
            hand_made({"alg": "HS256", "kid": "../../../../../../dev/null"}, w.claims(), hmac_sha256(b""))
        ),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "kid SQL injection",
        lambda w: bearer(w.rs256(headers={"kid": "x' UNION SELECT 'secret' --"})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "kid of 10,000 characters",
        lambda w: bearer(w.rs256(headers={"kid": "k" * 10_000})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "jku naming the attacker's JWKS",
        lambda w: bearer(w.rs256(key=w.attacker_key, headers={"kid": "attacker", "jku": w.keys.url_of(ATTACKER_JWKS)})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "jwk header carrying the attacker's own key",
        lambda w: bearer(w.rs256(key=w.attacker_key, headers={"jwk": public_jwk(w.attacker_key, KID)})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "x5u naming the attacker's certificate",
        lambda w: bearer(w.rs256(key=w.attacker_key, headers={"x5u": w.keys.url_of(ATTACKER_JWKS)})),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "payload tampered, signature kept (viewer made admin)",
        lambda w: bearer(swapped_payload(w.rs256(role="viewer"), w.claims(role="admin"))),
        401,
        "UNAUTHENTICATED",
    ),
    Attack(
        "payload tampered, signature kept (moved to another tenant)",
        lambda w: bearer(swapped_payload(w.hs256(), w.claims(tenant_id=str(w.globex.id)))),
        401,
        "UNAUTHENTICATED",
    ),
    # Genuine signatures, claims that do not hold.
    Attack("expired", lambda w: bearer(w.hs256(exp=int(time.time()) - 60)), 401, "UNAUTHENTICATED"),
    Attack("without exp", lambda w: bearer(w.hs256(exp=None)), 401, "UNAUTHENTICATED"),
    Attack("nbf in the future", lambda w: bearer(w.rs256(nbf=int(time.time()) + 600)), 401, "UNAUTHENTICATED"),
    Attack("iat in the future", lambda w: bearer(w.hs256(iat=int(time.time()) + 600)), 401, "UNAUTHENTICATED"),
    Attack("wrong issuer", lambda w: bearer(w.hs256(iss="https://evil.example")), 401, "UNAUTHENTICATED"),
    Attack("no issuer", lambda w: bearer(w.rs256(iss=None)), 401, "UNAUTHENTICATED"),
    Attack("wrong audience", lambda w: bearer(w.hs256(aud="another-api")), 401, "UNAUTHENTICATED"),
    Attack("no audience", lambda w: bearer(w.rs256(aud=None)), 401, "UNAUTHENTICATED"),
    Attack("no tenant_id", lambda w: bearer(w.hs256(tenant_id=None)), 401, "UNAUTHENTICATED"),
    Attack("tenant_id not a uuid", lambda w: bearer(w.hs256(tenant_id="acme")), 401, "UNAUTHENTICATED"),
    Attack("tenant_id carrying SQL", lambda w: bearer(w.hs256(tenant_id="' OR 1=1 --")), 401, "UNAUTHENTICATED"),
    Attack("unknown role", lambda w: bearer(w.hs256(role="owner")), 401, "UNAUTHENTICATED"),
    Attack("role in capitals", lambda w: bearer(w.rs256(role="ADMIN")), 401, "UNAUTHENTICATED"),
    Attack("platform_admin token on /graphql", lambda w: bearer(w.platform()), 401, "UNAUTHENTICATED"),
    Attack(
        "platform_admin token naming a tenant on /graphql",
        lambda w: bearer(w.platform(tenant_id=str(w.acme.id))),
        401,
        "UNAUTHENTICATED",
    ),
    # Valid tokens that name what does not exist or may not act: refused after reading it.
    Attack("unknown tenant", lambda w: bearer(w.hs256(tenant_id=str(uuid.uuid4()))), 401, "UNAUTHENTICATED", TENANT),
    Attack(
        "deactivated user",
        lambda w: bearer(w.hs256(sub=str(w.deactivated), role="viewer")),
        401,
        "UNAUTHENTICATED",
        TENANT | {"user"},
    ),
    Attack(
        "another tenant's user under this tenant",
        lambda w: bearer(w.hs256(sub=str(w.globex.user(Role.ADMIN)))),
        401,
        "UNAUTHENTICATED",
        TENANT | {"user"},
    ),
    Attack(
        "valid token, X-Tenant-ID of another tenant",
        lambda w: {**bearer(w.rs256()), "X-Tenant-ID": str(w.globex.id)},
        403,
        "FORBIDDEN",
        TENANT,
    ),
    Attack(
        "valid token, X-Tenant-ID of another tenant's slug",
        lambda w: {**bearer(w.hs256()), "X-Tenant-ID": w.globex.slug},
        403,
        "FORBIDDEN",
        TENANT,
    ),
    Attack(
        "suspended tenant", lambda w: bearer(w.hs256(tenant_id=str(w.suspended.id))), 403, "TENANT_SUSPENDED", TENANT
    ),
    # API keys.
    Attack("revoked API key", lambda w: {"X-API-Key": w.revoked_key}, 401, "UNAUTHENTICATED", KEY),
    Attack("malformed API key", lambda w: {"X-API-Key": "tql_zzzz_not-a-key"}, 401, "UNAUTHENTICATED", KEY),
    Attack("API key of 10,000 characters", lambda w: bearer("tql_" + "k" * 10_000), 401, "UNAUTHENTICATED"),
    Attack(
        "API key one character off",
        lambda w: {"X-API-Key": tampered(w.acme_key)},
        401,
        "UNAUTHENTICATED",
        KEY,
    ),
    Attack(
        "another tenant's API key, X-Tenant-ID disagreeing",
        lambda w: {"X-API-Key": w.globex_key, "X-Tenant-ID": w.acme.slug},
        403,
        "FORBIDDEN",
        FOUND_KEY | TENANT,
    ),
    Attack(
        "two credentials of two tenants",
        lambda w: {**bearer(w.hs256()), "X-API-Key": w.globex_key},
        401,
        "UNAUTHENTICATED",
    ),
    # No credential, only a claim to a tenant.
    Attack("only X-Tenant-ID", lambda w: {"X-Tenant-ID": str(w.acme.id)}, 401, "UNAUTHENTICATED"),
    Attack("Basic auth", lambda w: {"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, "UNAUTHENTICATED"),
    # The platform endpoint: tenant credentials are real but not enough; forgeries are not real.
    Attack("tenant admin token on /admin/graphql", lambda w: bearer(w.hs256()), 403, "FORBIDDEN", path=ADMIN),
    Attack(
        "tenant API key on /admin/graphql", lambda w: {"X-API-Key": w.acme_key}, 403, "FORBIDDEN", FOUND_KEY, path=ADMIN
    ),
    Attack(
        "platform token signed with another secret",
        lambda w: bearer(w.platform(secret="another-secret-that-is-long-enough-for-hs256-0123456789")),
        401,
        "UNAUTHENTICATED",
        path=ADMIN,
    ),
    Attack(
        "platform token, alg none",
        lambda w: bearer(hand_made({"alg": "none"}, jwt.decode(w.platform(), options={"verify_signature": False}))),
        401,
        "UNAUTHENTICATED",
        path=ADMIN,
    ),
]


async def send(world: World, path: str, headers: dict[str, str]) -> httpx.Response:
    query = ADMIN_QUERY if path == ADMIN else QUERY
    return await world.http.post(path, json={"query": query}, headers=headers)


async def test_the_catalogue_holds_at_least_15_attacks_and_the_strict_server_serves_genuine_credentials(world):
    assert len(ATTACKS) >= 15 and len({attack.name for attack in ATTACKS}) == len(ATTACKS)
    for headers in (bearer(world.hs256()), bearer(world.rs256()), {"X-API-Key": world.acme_key}):
        response = await send(world, "/graphql", headers)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["tenant"] == {"slug": world.acme.slug}
    admin = await send(world, ADMIN, bearer(world.platform()))
    assert admin.status_code == 200, admin.text
    assert world.acme.slug in {tenant["slug"] for tenant in admin.json()["data"]["tenants"]}


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
async def test_a_forged_or_misused_credential_is_refused_and_runs_nothing_for_a_tenant(world, attack):
    headers = attack.headers(world)
    world.statements.clear()
    response = await send(world, attack.path, headers)
    await world.statements.settle()

    assert response.status_code == attack.status, response.text
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == [attack.code]
    if attack.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert "ratelimit-limit" not in response.headers  # no budget was read or charged

    kinds = world.statements.kinds()
    assert set(kinds) & LOOKUPS <= attack.lookups, kinds
    # Every transaction opened under a tenant is one of the lookups' own, and a refused user's
    # check is rolled back: nothing of the request ran.
    assert kinds["tenant transaction"] == kinds["tenant"], kinds
    assert kinds["rollback"] >= kinds["user"], kinds
    assert kinds["key tenant setting"] == kinds["key use"], kinds
    assert world.keys.fetches[ATTACKER_JWKS] == 0  # a header never chooses where keys come from


async def test_the_statement_check_sees_a_request_that_runs(world):
    """The catalogue's statement check is not vacuous: a genuine request's transaction fails it."""
    world.statements.clear()
    assert (await send(world, "/graphql", bearer(world.hs256()))).status_code == 200
    await world.statements.settle()
    with pytest.raises(AssertionError, match="no refused credential may cause"):
        world.statements.kinds()
