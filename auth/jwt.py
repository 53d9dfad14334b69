"""Verify a bearer JWT and read the claims a request needs.

HS256 tokens are checked against the shared secret, RS256/ES256 tokens against the key
their `kid` names in the JWKS. The algorithm is checked against the allow-list before
any key is chosen, and each family is checked only with its own kind of key, so
`alg: none` and HS/RS confusion (an RSA public key used as an HMAC secret) cannot pass.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

from auth.errors import unauthenticated
from auth.tenant import Role

PLATFORM_ADMIN_ROLE = "platform_admin"  # the `role` of a platform operator's token, which names no tenant
SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"})


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: uuid.UUID | None  # None for an API key, which acts for its tenant, not for a user
    tenant_id: uuid.UUID
    role: Role


class JWKSKeys:
    """Signing keys from a JWKS URL, cached and refreshed when an unknown `kid` appears.

    Refreshes are spaced out, so tokens with made-up `kid`s cannot make us hammer the
    identity provider.
    """

    def __init__(self, url: str, *, max_age: float = 300.0, min_refresh_interval: float = 30.0) -> None:
        self.url = url
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> PyJWK | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self.max_age
        if kid not in self._keys or stale:
            async with self._lock:
                if (kid not in self._keys or stale) and time.monotonic() - self._fetched_at > self.min_refresh_interval:
                    await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            document = await asyncio.to_thread(self._fetch)
            keys = PyJWKSet.from_dict(document).keys
        except Exception:  # an unreachable provider keeps the keys we had
            self._fetched_at = time.monotonic()
            return
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = time.monotonic()

    def _fetch(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            return json.loads(response.read())


class VerifiedTokens:
    """Tokens this process has verified, with their claims, for at most `seconds` each.

    A client sends the same token with every request until it expires, and checking its
    signature and claims again costs some 150 µs of CPU (PyJWT parses the token twice and
    checks it character by character), a twentieth of a small query. A token is found by
    its exact text, so only a token that passed every check is ever answered from here, and
    never beyond its own `exp`. The price: a JWKS key withdrawn by the identity provider keeps
    verifying the tokens it already verified for up to `seconds` (the key set itself is
    cached for longer). What a token names is still checked on every request: its tenant's
    status and its user's role and standing are read afresh by the authenticator.
    """

    def __init__(self, *, seconds: float = 60.0, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._claims: dict[str, tuple[float, Claims]] = {}

    def get(self, token: str) -> Claims | None:
        found = self._claims.get(token)
        if found is None:
            return None
        if found[0] <= time.time():
            del self._claims[token]
            return None
        return found[1]

    def add(self, token: str, claims: Claims, payload: dict[str, Any]) -> None:
        if self.seconds <= 0:
            return
        expires = min(float(payload["exp"]), time.time() + self.seconds)
        if len(self._claims) >= self.size:
            del self._claims[next(iter(self._claims))]  # the oldest entry
        self._claims[token] = (expires, claims)


class JWTVerifier:
    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks: JWKSKeys | None = None,
        algorithms: tuple[str, ...] = (),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 5.0,
        verified: VerifiedTokens | None = None,
    ) -> None:
        if secret is None and jwks is None:
            raise ValueError("configure JWT_SECRET or JWT_JWKS_URL")
        default = (("HS256",) if secret else ()) + (("RS256", "ES256") if jwks else ())
        self.algorithms = frozenset(algorithms or default)
        if unknown := self.algorithms - SYMMETRIC - ASYMMETRIC:
            raise ValueError(f"unsupported JWT algorithms: {', '.join(sorted(unknown))}")
        if self.algorithms & SYMMETRIC and not secret:
            raise ValueError("an HS algorithm is allowed but no JWT_SECRET is set")
        if self.algorithms & ASYMMETRIC and not jwks:
            raise ValueError("an RS/ES algorithm is allowed but no JWT_JWKS_URL is set")
        self.secret = secret
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.verified = VerifiedTokens() if verified is None else verified

    async def verify(self, token: str) -> Claims:
        """The claims of a tenant's token; a platform-admin token is refused, like one of an unknown role."""
        if (claims := self.verified.get(token)) is not None:
            return claims
        payload = await self.decode(token)
        claims = claims_of(payload)
        self.verified.add(token, claims, payload)
        return claims

    async def decode(self, token: str) -> dict[str, Any]:
        """The payload of a token whose signature, algorithm, expiry, issuer and audience hold."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise unauthenticated(f"token algorithm {algorithm!r} is not accepted")
        key = await self._key_for(algorithm, header)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("token has expired") from None
        except jwt.InvalidSignatureError:
            raise unauthenticated("token signature is invalid") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated("token issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated("token audience is not accepted") from None
        except jwt.ImmatureSignatureError:
            raise unauthenticated("token is not valid yet") from None
        except jwt.MissingRequiredClaimError as error:
            raise unauthenticated(f"token lacks the {error.claim!r} claim") from None
        except jwt.PyJWTError:
            raise unauthenticated("token is invalid") from None
        return payload

    async def _key_for(self, algorithm: str, header: dict[str, Any]) -> Any:
        if algorithm in SYMMETRIC:
            return self.secret
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or self.jwks is None:
            raise unauthenticated("token names no known signing key")
        key = await self.jwks.get(kid)
        # A key that names its algorithm is used for that algorithm only.
        if key is None or key.algorithm_name not in (algorithm, None, "UNKNOWN"):
            raise unauthenticated("token names no known signing key")
        return key.key


def claims_of(payload: dict[str, Any]) -> Claims:
    """A verified payload as a tenant's claims; raises AuthError for any other payload."""
    if payload.get("role") == PLATFORM_ADMIN_ROLE:
        raise unauthenticated("a platform-admin token is accepted at /admin/graphql only")
    tenant_id = _uuid(payload.get("tenant_id"))
    if tenant_id is None:
        raise unauthenticated("token has no valid tenant_id claim")
    user_id = _uuid(payload.get("sub"))
    if user_id is None:
        raise unauthenticated("token has no valid sub claim")
    role = Role.from_claim(payload.get("role"))
    if role is None:
        raise unauthenticated("token role is not one of admin, member, viewer")
    return Claims(user_id=user_id, tenant_id=tenant_id, role=role)


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def issue_token(
    secret: str,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token, as `tenantql token` prints it."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "role": role.value.lower(),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm="HS256")


def issue_platform_token(
    secret: str,
    *,
    subject: str,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 platform-admin token, as `tenantql token --platform-admin` prints it: no `tenant_id`."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": subject, "role": PLATFORM_ADMIN_ROLE, "iat": now, "exp": now + ttl_seconds}
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm="HS256")


__all__ = [
    "PLATFORM_ADMIN_ROLE",
    "Claims",
    "JWKSKeys",
    "JWTVerifier",
    "VerifiedTokens",
    "claims_of",
    "issue_platform_token",
    "issue_token",
]
