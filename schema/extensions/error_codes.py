"""Give every error a code, and mask the ones a client was never meant to see."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from db.engine import database_unavailable
from resolvers.errors import ClientError
from schema.extensions.documents import (
    QUERY_TOO_DEEP,
    TOO_MANY_TOKENS,
    is_nesting_limit_error,
    is_token_limit_error,
)

log = logging.getLogger("tenantql.errors")

INTERNAL = "INTERNAL_SERVER_ERROR"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly"


class ErrorCodes(SchemaExtension):
    """Usage: `build_schema(extensions=[ErrorCodes])`.

    Client errors keep their message and code; errors of the GraphQL layer get the code
    of their kind; a database that cannot be reached gives SERVICE_UNAVAILABLE (the
    endpoint answers 503); anything else becomes INTERNAL_SERVER_ERROR with only the
    request id, and is logged with its traceback under that id.
    """

    def on_validate(self) -> Iterator[None]:
        yield
        # Coded here, by phase: some validation messages also start with "Variable '$".
        for error in self.execution_context.pre_execution_errors or ():
            if not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._coded(error) for error in result.errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, ClientError) or (error.extensions or {}).get("code"):
            return error
        if original is None or isinstance(original, GraphQLError):
            error.extensions = {**(error.extensions or {}), "code": _code_of(error)}
            return error
        request_id = _request_id(self.execution_context.context)
        if database_unavailable(original):
            log.warning("database unavailable in request %s: %s: %s", request_id, type(original).__name__, original)
            return GraphQLError(
                DATABASE_UNAVAILABLE_MESSAGE,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": SERVICE_UNAVAILABLE},
            )
        log.error("internal error in request %s at %s", request_id, error.path, exc_info=original)
        return internal_error(request_id, nodes=error.nodes, path=error.path)


def internal_error(request_id: str, *, nodes: Any = None, path: Any = None) -> GraphQLError:
    """What a client sees of a failure of the server's own: a code and the id to quote."""
    return GraphQLError(
        f"Internal server error (request id {request_id})",
        nodes=nodes,
        path=path,
        extensions={"code": INTERNAL, "requestId": request_id},
    )


def _request_id(context: Any) -> str:
    """The tenant API's context carries the request id on its tenant, the admin API's on itself."""
    return getattr(context, "request_id", None) or getattr(getattr(context, "tenant", None), "request_id", "-")


def _code_of(error: GraphQLError) -> str:
    if is_token_limit_error(error):
        return TOO_MANY_TOKENS
    if is_nesting_limit_error(error):
        return QUERY_TOO_DEEP
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$") or error.path:
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


__all__ = ["DATABASE_UNAVAILABLE_MESSAGE", "INTERNAL", "SERVICE_UNAVAILABLE", "ErrorCodes", "internal_error"]
