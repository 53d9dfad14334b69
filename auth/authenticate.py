"""From request headers to a TenantContext, or an AuthError that says why not."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from auth.errors import AuthError, forbidden, suspended, unauthenticated
from auth.jwt import Claims, JWTVerifier
from auth.tenant import Plan, Role, TenantContext, TenantLookup, TenantStatus

API_KEY_PREFIX = "tql_"
API_KEY_PLANS = frozenset({Plan.SCALE, Plan.ENTERPRISE})


class ApiKeyVerifier(Protocol):
    """Turns an API key into the claims it stands for; db/ implements it."""

    async def __call__(self, key: str, /) -> tuple[Claims, uuid.UUID] | None: ...


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A token's user as stored now: the role it acts with and whether it may act at all."""

    role: Role
    active: bool


def role_now(user: UserRecord | None) -> Role:
    """The role a token's user acts with, as the database has the user now; AuthError if none.

    Read on every request (the request's transaction opens with the check, `db.users`), so a
    deactivation or demotion holds from the next request on, whatever the token's lifetime."""
    if user is None:
        raise unauthenticated("the token's user does not exist")
    if not user.active:
        raise unauthenticated("the user is deactivated")
    return user.role


def credential_from(headers: Mapping[str, str]) -> str:
    """The one credential of a request: `Authorization: Bearer …` or `X-API-Key`."""
    authorization = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        if api_key and api_key.strip() != value.strip():
            raise unauthenticated("send one credential, not two")
        return value.strip()
    if api_key:
        return api_key.strip()
    raise unauthenticated("a credential is required: send 'Authorization: Bearer <token>'")


class Authenticator:
    def __init__(
        self,
        verifier: JWTVerifier,
        tenants: TenantLookup,
        api_keys: ApiKeyVerifier | None = None,
    ) -> None:
        self.verifier = verifier
        self.tenants = tenants
        self.api_keys = api_keys

    async def authenticate(self, headers: Mapping[str, str], *, request_id: str) -> TenantContext:
        """Verify the credential, then the tenant it names; raises AuthError.

        For a user's token the role is the one the token claims, still to be confirmed
        against the user as stored now: the request opens its transaction with that check
        (`db.users.open_for_user`, then `role_now` when it differs) before anything executes.
        An API key acts for no user: its role is the key's own."""
        credential = credential_from(headers)
        api_key_id = None
        if credential.startswith(API_KEY_PREFIX):
            found = await self.api_keys(credential) if self.api_keys else None
            if found is None:
                raise unauthenticated("the API key is not valid")
            claims, api_key_id = found
        else:
            claims = await self.verifier.verify(credential)

        tenant = await self.tenants(claims.tenant_id)
        if tenant is None:
            raise unauthenticated("the token's tenant does not exist")
        try:
            requested = headers.get("x-tenant-id")
            if requested is not None and not _names(requested.strip(), tenant.id, tenant.slug):
                raise forbidden("X-Tenant-ID does not match the credential's tenant")
            if tenant.status is TenantStatus.SUSPENDED:
                raise suspended(tenant.slug)
            if api_key_id is not None and tenant.plan not in API_KEY_PLANS:
                raise forbidden(f"API keys need the SCALE or ENTERPRISE plan; this tenant is on {tenant.plan.value}")
        except AuthError as error:
            error.tenant = tenant.slug
            raise
        return TenantContext(
            tenant_id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            plan=tenant.plan,
            status=tenant.status,
            user_id=claims.user_id,
            role=claims.role,
            request_id=request_id,
            rate_limit_per_minute=tenant.rate_limit_per_minute,
            api_key_id=api_key_id,
        )


def _names(value: str, tenant_id: uuid.UUID, slug: str) -> bool:
    """`X-Tenant-ID` may carry the tenant's uuid (any case) or its slug."""
    if value == slug:
        return True
    try:
        return uuid.UUID(value) == tenant_id
    except ValueError:
        return False


__all__ = [
    "API_KEY_PLANS",
    "API_KEY_PREFIX",
    "ApiKeyVerifier",
    "AuthError",
    "Authenticator",
    "UserRecord",
    "credential_from",
    "role_now",
]
