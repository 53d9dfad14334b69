"""Errors a client is meant to see, each with its code; anything else is masked as internal."""

from __future__ import annotations


class ClientError(Exception):
    """An error whose message is safe to show; `extensions` travels into the GraphQL error."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.extensions = {"code": code or self.code}


class BadUserInput(ClientError):
    code = "BAD_USER_INPUT"


class Forbidden(ClientError):
    code = "FORBIDDEN"


class NotFound(ClientError):
    code = "NOT_FOUND"


__all__ = ["BadUserInput", "ClientError", "Forbidden", "NotFound"]
