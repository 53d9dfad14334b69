"""Who may use `/admin/graphql`: a platform operator's token, never a tenant's credential.

A platform-admin token is a JWT of the same issuer, secret or keys as tenants' tokens,
with `role: platform_admin` and no `tenant_id`. The tenant endpoint refuses it (401, like
an unknown role), and this one refuses every tenant credential: 401 when the credential
is missing or does not verify, 403 when it is a valid tenant token or API key, so a
tenant's admin learns that their credential is real but not enough.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auth.authenticate import API_KEY_PREFIX, ApiKeyVerifier, credential_from
from auth.errors import AuthError, forbidden, unauthenticated
from auth.jwt import PLATFORM_ADMIN_ROLE, JWTVerifier, claims_of

# The subject becomes part of audit rows (`platform:admin:<sub>`): one printable word.
SUBJECT = re.compile(r"[A-Za-z0-9._@+:-]{1,128}")


@dataclass(frozen=True, slots=True)
class PlatformAdmin:
    """A verified platform operator: the token's `sub`."""

    subject: str

    @property
    def actor(self) -> str:
        """How tenants' audit logs name this operator's changes."""
        return f"platform:admin:{self.subject}"


def platform_admin_of(payload: Mapping[str, Any]) -> PlatformAdmin:
    """The operator a verified token's payload names; raises AuthError for any other payload."""
    if payload.get("role") != PLATFORM_ADMIN_ROLE:
        try:
            claims_of(dict(payload))
        except AuthError:
            raise unauthenticated("the token is not a platform-admin token") from None
        raise forbidden("a tenant's token cannot run platform operations; use a platform-admin token")
    if "tenant_id" in payload:
        raise unauthenticated("a platform-admin token must not name a tenant")
    subject = payload.get("sub")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise unauthenticated("a platform-admin token needs a `sub` of 1 to 128 letters, digits or ._@+:-")
    return PlatformAdmin(subject)


class PlatformAuthenticator:
    """Usage: `await PlatformAuthenticator(verifier, api_keys).authenticate(request.headers)`."""

    def __init__(self, verifier: JWTVerifier, api_keys: ApiKeyVerifier | None = None) -> None:
        self.verifier = verifier
        self.api_keys = api_keys

    async def authenticate(self, headers: Mapping[str, str]) -> PlatformAdmin:
        credential = credential_from(headers)
        if credential.startswith(API_KEY_PREFIX):
            if self.api_keys is None or await self.api_keys(credential) is None:
                raise unauthenticated("the API key is not valid")
            raise forbidden("an API key acts for its tenant; platform operations need a platform-admin token")
        return platform_admin_of(await self.verifier.decode(credential))


__all__ = ["SUBJECT", "PlatformAdmin", "PlatformAuthenticator", "platform_admin_of"]
