"""GraphQL over HTTP: from a request to an authenticated, tenant-scoped execution and back.

Written on `Schema.execute` rather than Strawberry's view so that every refusal (a missing
credential, a malformed body, a mutation over GET) is a GraphQL-shaped error with a code,
and status codes follow the GraphQL over HTTP spec for both response media types.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from auth.errors import AuthError
from auth.tenant import TenantContext
from db.buckets import Charge
from db.transaction import TenantDB
from resolvers.context import Context
from schema.extensions.cost_limit import THROTTLED
from schema.extensions.error_codes import internal_error
from tenantql.persisted import PersistedQueryError
from tenantql.services import Services

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MAX_BODY_BYTES = 1_000_000
MAX_BATCH = 10
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_QUERY_ONLY = frozenset({OperationType.QUERY})
_QUERY_OR_MUTATION = frozenset({OperationType.QUERY, OperationType.MUTATION})


class RequestError(Exception):
    """The HTTP request itself is unusable: nothing was executed."""

    def __init__(
        self, message: str, *, code: str = "BAD_REQUEST", status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.status, self.headers = message, code, status, headers or {}


@dataclass(frozen=True, slots=True)
class Operation:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None = None


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def media_type_for(request: Request) -> str:
    """`application/graphql-response+json` when the client accepts it, else legacy JSON."""
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else JSON


class GraphQLEndpoint:
    """A Starlette endpoint; `get_context` builds each request's typed Context."""

    def __init__(self, graphiql_page: Any = None) -> None:
        self.graphiql_page = graphiql_page

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method == "GET" and self.graphiql_page is not None and _wants_html(request):
            return self.graphiql_page(request)
        media_type = media_type_for(request)
        request_id = request_id_of(request)
        services: Services = request.app.state.services
        try:
            if request.method not in ("GET", "POST"):
                raise RequestError(
                    "GraphQL is served over GET and POST",
                    code="METHOD_NOT_ALLOWED",
                    status=405,
                    headers={"Allow": "GET, POST"},
                )
            tenant = await services.authenticator.authenticate(request.headers, request_id=request_id)
            operations, batched = await _operations(request)
        except AuthError as error:
            headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
            return _error_response(error.message, error.code, error.status, media_type, request_id, headers)
        except RequestError as error:
            return _error_response(error.message, error.code, error.status, media_type, request_id, error.headers)

        context = await self.get_context(services, tenant)
        allowed = _QUERY_ONLY if request.method == "GET" else _QUERY_OR_MUTATION
        client_name = request.headers.get("apollographql-client-name")
        committed = False
        try:
            results = [
                await self._execute(services, context, operation, allowed, client_name) for operation in operations
            ]
            committed = True
        except RequestError as error:
            return _error_response(error.message, error.code, error.status, media_type, request_id, error.headers)
        finally:
            await context.db.close(commit=committed)

        bodies = [body for body, _ in results]
        status = 200
        if media_type == GRAPHQL_RESPONSE and not batched and results[0][1]:
            status = 400  # a request error: the operation never started executing
        headers = rate_limit_headers(context.throttle)
        waits = [wait for body in bodies if (wait := _retry_after(body)) is not None]
        if waits:
            headers["retry-after"] = str(max(waits))
            if len(waits) == len(bodies):
                status = 429  # nothing was executed
        return _json_response(bodies if batched else bodies[0], status, media_type, request_id, headers)

    async def get_context(self, services: Services, tenant: TenantContext) -> Context:
        return Context.for_request(tenant, TenantDB(services.engine, tenant.tenant_id))

    async def _execute(
        self,
        services: Services,
        context: Context,
        operation: Operation,
        allowed: frozenset[OperationType],
        client_name: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Run one operation; returns its response body and whether it was refused before execution.

        An operation answered without data (a refused or failed mutation nulls it) is rolled
        back: its response cannot tell the client about any write it made, so it makes none.
        """
        try:
            query = await services.persisted.query_text(
                operation.query, operation.extensions, operation.document_id, client_name=client_name
            )
        except PersistedQueryError as error:
            if error.status == 400:
                raise RequestError(error.message, code=error.code) from None
            # PERSISTED_QUERY_NOT_FOUND is 200 whatever the media type: Apollo clients then send the text.
            return error_body(error.message, error.code), error.status is None
        if query is None:
            raise RequestError("the request has no query")
        try:
            async with context.db.atomic() as unit:
                result = await services.schema.execute(
                    query,
                    variable_values=operation.variables,
                    context_value=context,
                    operation_name=operation.operation_name,
                    allowed_operation_types=allowed,
                    operation_extensions=operation.extensions,
                )
                if result.data is None and result.errors:
                    unit.discard()
        except InvalidOperationTypeError as error:
            kind = error.operation_type.value
            raise RequestError(
                f"a {kind} cannot be sent with GET; use POST",
                code="METHOD_NOT_ALLOWED",
                status=405,
                headers={"Allow": "POST"},
            ) from None
        except MissingQueryError:
            raise RequestError("the request has no query", code="BAD_REQUEST") from None
        except CannotGetOperationTypeError as error:
            raise RequestError(error.as_http_error_reason(), code="BAD_REQUEST") from None
        return result_body(result, context.tenant.request_id)


def result_body(result: ExecutionResult, request_id: str) -> tuple[dict[str, Any], bool]:
    """The response body of an executed operation, and whether it was refused before execution."""
    body: dict[str, Any] = {}
    refused = result.data is None and bool(result.errors) and all(not e.path for e in result.errors)
    if result.errors:
        body["errors"] = [format_error(error, request_id) for error in result.errors]
    if not refused:
        body["data"] = result.data
    if result.extensions:
        body["extensions"] = result.extensions
    return body, refused


def _retry_after(body: dict[str, Any]) -> int | None:
    """Seconds to wait, when the operation was refused for want of budget."""
    for error in body.get("errors", ()):
        extensions = error.get("extensions") or {}
        if extensions.get("code") == THROTTLED:
            return int(extensions.get("retryAfter", 1))
    return None


def rate_limit_headers(status: Charge | None) -> dict[str, str]:
    """A bucket as the request left it (IETF RateLimit header fields); none without one."""
    if status is None:
        return {}
    return {
        "ratelimit-limit": str(status.budget.capacity),
        "ratelimit-remaining": str(math.floor(status.available)),
        "ratelimit-reset": str(status.seconds_until_full),
    }


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    formatted = dict(error.formatted)
    if not (formatted.get("extensions") or {}).get("code"):
        # ErrorCodes codes every error it sees; one that escaped it is the server's fault.
        log.error("uncoded error in request %s", request_id, exc_info=error.original_error or error)
        return dict(internal_error(request_id, nodes=error.nodes, path=error.path).formatted)
    return formatted


async def _operations(request: Request) -> tuple[list[Operation], bool]:
    if request.method == "GET":
        params = request.query_params
        return [
            _operation(
                {
                    "query": params.get("query"),
                    "variables": json_value(params.get("variables"), "`variables`"),
                    "operationName": params.get("operationName"),
                    "extensions": json_value(params.get("extensions"), "`extensions`"),
                    "documentId": params.get("documentId"),
                }
            )
        ], False
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (JSON, GRAPHQL_RESPONSE):
        raise RequestError("send the request as application/json", code="UNSUPPORTED_MEDIA_TYPE", status=415)
    payload = json_value(await read_body(request), "the request body")
    if isinstance(payload, list):
        if not payload:
            raise RequestError("a batch must hold at least one operation")
        if len(payload) > MAX_BATCH:
            raise RequestError(f"a batch may hold at most {MAX_BATCH} operations", code="BATCH_TOO_LARGE")
        return [_operation(item) for item in payload], True
    return [_operation(payload)], False


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    too_large = RequestError(f"the request body may be at most {limit} bytes", code="PAYLOAD_TOO_LARGE", status=413)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def json_value(value: str | bytes | None, what: str) -> Any:
    """Parsed JSON; None for an absent or empty value; a 400 naming `what` for bad JSON."""
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RequestError(f"{what} is not valid JSON") from None


def _operation(payload: Any) -> Operation:
    if not isinstance(payload, dict):
        raise RequestError("the request body must be a JSON object with a `query`")
    query, variables = payload.get("query"), payload.get("variables")
    name, extensions = payload.get("operationName"), payload.get("extensions")
    document_id = payload.get("documentId")
    if query is not None and not isinstance(query, str):
        raise RequestError("`query` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError("`variables` must be an object")
    if name is not None and not isinstance(name, str):
        raise RequestError("`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError("`extensions` must be an object")
    if document_id is not None and (not isinstance(document_id, str) or not document_id):
        raise RequestError("`documentId` must be a non-empty string")
    if not query and document_id is None and "persistedQuery" not in (extensions or {}):
        raise RequestError("the request has no query")
    return Operation(query or None, variables, name or None, extensions, document_id)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and "query" not in request.query_params


def _headers(media_type: str, request_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Responses carry one tenant's data: no shared cache may keep them.
    return {
        "content-type": f"{media_type}; charset=utf-8",
        "cache-control": "private, no-store",
        "vary": "Authorization, X-API-Key",
        "x-request-id": request_id,
        **(extra or {}),
    }


def _json_response(
    body: Any, status: int, media_type: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=_headers(media_type, request_id, headers))


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _error_response(
    message: str, code: str, status: int, media_type: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return _json_response(error_body(message, code), status, media_type, request_id, headers)


__all__ = [
    "GRAPHQL_RESPONSE",
    "JSON",
    "GraphQLEndpoint",
    "RequestError",
    "error_body",
    "format_error",
    "json_value",
    "media_type_for",
    "rate_limit_headers",
    "read_body",
    "request_id_of",
    "result_body",
]
