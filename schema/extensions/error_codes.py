"""Give every error a code, and mask the ones a client was never meant to see."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from resolvers.errors import ClientError
from schema.extensions.documents import (
    QUERY_TOO_DEEP,
    TOO_MANY_TOKENS,
    is_nesting_limit_error,
    is_token_limit_error,
)

log = logging.getLogger("tenantql.errors")

INTERNAL = "INTERNAL_SERVER_ERROR"


class ErrorCodes(SchemaExtension):
    """Usage: `build_schema(extensions=[ErrorCodes])`.

    Client errors keep their message and code; errors of the GraphQL layer get the code
    of their kind; anything else becomes INTERNAL_SERVER_ERROR with only the request id,
    and is logged with its traceback under that id.
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
        request_id = getattr(getattr(self.execution_context.context, "tenant", None), "request_id", "-")
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


__all__ = ["INTERNAL", "ErrorCodes", "internal_error"]
