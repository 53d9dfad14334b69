"""Why a credential was refused: a code and an HTTP status, with no web framework attached."""

from __future__ import annotations


class AuthError(Exception):
    """A refused credential. The HTTP layer turns it into a response; token code never does.

    `tenant` is the slug of the tenant the credential named, when it named a known one, so
    that a refusal (a suspension, a deactivated user) is counted against that tenant."""

    def __init__(self, message: str, *, code: str = "UNAUTHENTICATED", status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.tenant: str | None = None


def unauthenticated(message: str) -> AuthError:
    return AuthError(message, code="UNAUTHENTICATED", status=401)


def forbidden(message: str) -> AuthError:
    return AuthError(message, code="FORBIDDEN", status=403)


def suspended(slug: str) -> AuthError:
    return AuthError(f"tenant {slug!r} is suspended", code="TENANT_SUSPENDED", status=403)


__all__ = ["AuthError", "forbidden", "suspended", "unauthenticated"]
