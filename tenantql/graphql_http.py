"""GraphQL over HTTP: from a request to an authenticated, tenant-scoped execution and back.

Written on `Schema.execute` rather than Strawberry's view so that every refusal (a missing
credential, a malformed body, a mutation over GET) is a GraphQL-shaped error with a code,
and status codes follow the GraphQL over HTTP spec for both response media types.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError, get_operation_ast
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from auth.authenticate import role_now
from auth.errors import AuthError
from auth.tenant import TenantContext
from db.buckets import Charge
from db.engine import database_unavailable
from db.transaction import CommitRefused, TenantDB
from db.users import StandingDiffers, open_for_user, standing_check
from resolvers.context import Context
from schema import TenantQLSchema
from schema.extensions.cost_limit import THROTTLED
from schema.extensions.error_codes import DATABASE_UNAVAILABLE_MESSAGE, SERVICE_UNAVAILABLE, internal_error
from tenantql.persisted import PersistedQueryError
from tenantql.request_stats import BATCH, UNKNOWN_OPERATION, RequestRecord, RequestStats
from tenantql.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caching:
    """What an endpoint's responses tell caches: `Cache-Control`, and the request headers they vary on."""

    cache_control: str
    vary: str | None = None


# Responses carry one tenant's data, chosen by its credential: no shared cache may keep them.
TENANT_DATA = Caching("private, no-store", vary="Authorization, X-API-Key")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MAX_BODY_BYTES = 1_000_000
BODY_READ_TIMEOUT_SECONDS = 30.0  # the default of the setting of that name
MAX_BATCH = 10
_STANDING_ATTEMPTS = 3  # openings of a request's transaction while its user's role keeps changing
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
    """A Starlette endpoint; `get_context` builds each request's typed Context.

    Each GraphQL request is counted once, when its response has been sent, in `stats`."""

    def __init__(self, graphiql_page: Any = None, stats: RequestStats | None = None) -> None:
        self.graphiql_page = graphiql_page
        self.stats = stats if stats is not None else RequestStats()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        if request.method == "GET" and self.graphiql_page is not None and _wants_html(request):
            await self.graphiql_page(request)(scope, receive, send)
            return
        started = time.monotonic()
        record = RequestRecord(request_id_of(request))
        try:
            response = await self.handle(request, record)
            record.status = response.status_code
            await response(scope, receive, send)
        finally:
            ended = time.monotonic()
            self.stats.record(record, ended - started, ended)

    async def handle(self, request: Request, record: RequestRecord | None = None) -> Response:
        """The response to a GraphQL request; `record` learns what the request was and how it ended."""
        record = record if record is not None else RequestRecord(request_id_of(request))
        media_type = media_type_for(request)
        request_id = record.request_id
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
            record.tenant = tenant.slug
            operations, batched = await _operations(request)
            # Only now, with the whole body read, may the request hold a connection.
            context = await self._context_for(services, tenant)
        except AuthError as error:
            record.tenant = error.tenant
            record.error_codes.append(error.code)
            headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
            return _error_response(error.message, error.code, error.status, media_type, request_id, headers)
        except RequestError as error:
            record.error_codes.append(error.code)
            return _error_response(error.message, error.code, error.status, media_type, request_id, error.headers)
        except Exception as error:
            if not database_unavailable(error):
                raise
            return _unavailable(record, media_type, error)
        if batched:
            record.operation_type = BATCH

        allowed = _QUERY_ONLY if request.method == "GET" else _QUERY_OR_MUTATION
        client_name = request.headers.get("apollographql-client-name")
        committed = False
        try:
            results = [
                await self._execute(services, context, operation, allowed, client_name, record)
                for operation in operations
            ]
            # A database outage in any operation rolls the request back: its answer cannot be trusted.
            committed = not any(lost_the_database(body) for body, _ in results)
        except RequestError as error:
            record.error_codes.append(error.code)
            return _error_response(error.message, error.code, error.status, media_type, request_id, error.headers)
        except Exception as error:
            if not database_unavailable(error):
                raise
            outage: BaseException | None = error
        else:
            outage = None
        finally:
            try:
                await context.db.close(commit=committed)
            except CommitRefused as error:  # a failed statement's error was lost on the way: a bug
                log.error("request %s was rolled back at COMMIT", request_id, exc_info=error)
                committed, outage = False, error
            except Exception as error:
                if not database_unavailable(error):
                    raise
                committed, outage = False, error  # COMMIT may not have happened: never answer success
            finally:
                context.release()
        if not committed:
            return _unavailable(record, media_type, outage)

        bodies = [body for body, _ in results]
        for body in bodies:
            record.add_body(body)
        status = 200
        if media_type == GRAPHQL_RESPONSE and not batched and results[0][1]:
            status = 400  # a request error: the operation never started executing
        headers = rate_limit_headers(context.throttle)
        waits = [wait for body in bodies if (wait := _retry_after(body)) is not None]
        if waits:
            headers["retry-after"] = str(max(waits))
            if len(waits) == len(bodies):
                status = 429  # nothing was executed
        return json_response(bodies if batched else bodies[0], status, media_type, request_id, headers)

    async def get_context(self, services: Services, tenant: TenantContext) -> Context:
        """The request's context; a user's token opens its transaction with the user check."""
        check = standing_check(tenant.user_id, tenant.role) if tenant.user_id is not None else None
        return Context.for_request(tenant, TenantDB(services.engine, tenant.tenant_id, opening_check=check))

    async def _context_for(self, services: Services, tenant: TenantContext) -> Context:
        """The context of an authenticated request, its user confirmed as the database has it now.

        A user's token opens the request's transaction at once with the check of its user
        (ADR 0011): still there, active, and with the role the token claims. A user whose role
        changed since the token was issued acts with the new one: the transaction is opened
        again with the check of that role. AuthError when the user is gone or deactivated."""
        if tenant.user_id is None:
            return await self.get_context(services, tenant)  # an API key: no user to check
        for _ in range(_STANDING_ATTEMPTS):
            context = await self.get_context(services, tenant)
            try:
                await open_for_user(context.db)
                return context
            except StandingDiffers as differs:
                await context.db.close(commit=False)
                try:
                    tenant = dataclasses.replace(tenant, role=role_now(differs.user))
                except AuthError as error:
                    error.tenant = tenant.slug
                    raise
            except BaseException:
                await context.db.close(commit=False)
                raise
        # The role changed at every attempt: answer as for a moment of contention, to be tried again.
        raise RequestError(
            "the user's role is changing; try again", code=SERVICE_UNAVAILABLE, status=503, headers={"Retry-After": "1"}
        )

    async def _execute(
        self,
        services: Services,
        context: Context,
        operation: Operation,
        allowed: frozenset[OperationType],
        client_name: str | None = None,
        record: RequestRecord | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Run one operation; returns its response body and whether it was refused before execution.

        `record`, when given, learns the operation's type and name.

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
        body, refused = result_body(result, context.tenant.request_id)
        if record is not None:
            record.add_operation(*describe_operation(services.schema, query, operation.operation_name))
        return body, refused


def describe_operation(schema: TenantQLSchema, query: str, operation_name: str | None) -> tuple[str, str | None]:
    """The type (query, mutation, subscription) and name of the operation that ran, read from the
    document the schema's cache parsed to run it; `unknown` when it never parsed."""
    document = schema.documents.parsed(query)
    operation = get_operation_ast(document, operation_name) if document is not None else None
    if operation is None:
        return UNKNOWN_OPERATION, operation_name
    return operation.operation.value, operation.name.value if operation.name else None


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


def lost_the_database(body: dict[str, Any]) -> bool:
    """Whether an executed operation's body says PostgreSQL failed it: its answer cannot be trusted."""
    return any((error.get("extensions") or {}).get("code") == SERVICE_UNAVAILABLE for error in body.get("errors", ()))


def database_unavailable_response(
    media_type: str,
    request_id: str,
    error: BaseException | None = None,
    headers: dict[str, str] | None = None,
    caching: Caching = TENANT_DATA,
) -> Response:
    """503 SERVICE_UNAVAILABLE with `Retry-After`: every endpoint's answer when PostgreSQL cannot be reached."""
    if error is not None:
        log.warning("database unavailable in request %s: %s: %s", request_id, type(error).__name__, error)
    body = error_body(DATABASE_UNAVAILABLE_MESSAGE, SERVICE_UNAVAILABLE)
    return json_response(body, 503, media_type, request_id, {**(headers or {}), "retry-after": "1"}, caching)


def _unavailable(record: RequestRecord, media_type: str, error: BaseException | None) -> Response:
    """503 SERVICE_UNAVAILABLE for a request that PostgreSQL failed: nothing it did was committed."""
    record.error_codes.append(SERVICE_UNAVAILABLE)
    return database_unavailable_response(media_type, record.request_id, error)


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


async def request_payload(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's GraphQL parameters as JSON: from the query string of a GET, else from a JSON
    body of at most `limit` bytes (415 for any other media type). Every endpoint reads its
    operations through this."""
    if request.method == "GET":
        params = request.query_params
        return {
            "query": params.get("query"),
            "variables": json_value(params.get("variables"), "`variables`"),
            "operationName": params.get("operationName"),
            "extensions": json_value(params.get("extensions"), "`extensions`"),
            "documentId": params.get("documentId"),
        }
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (JSON, GRAPHQL_RESPONSE):
        raise RequestError("send the request as application/json", code="UNSUPPORTED_MEDIA_TYPE", status=415)
    return json_value(await read_body(request, limit), "the request body")


async def _operations(request: Request) -> tuple[list[Operation], bool]:
    payload = await request_payload(request)
    if isinstance(payload, list):
        if not payload:
            raise RequestError("a batch must hold at least one operation")
        if len(payload) > MAX_BATCH:
            raise RequestError(f"a batch may hold at most {MAX_BATCH} operations", code="BATCH_TOO_LARGE")
        return [_operation(item) for item in payload], True
    return [_operation(payload)], False


async def read_body(request: Request, limit: int = MAX_BODY_BYTES, seconds: float | None = None) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes, and with 408
    unless all of it arrives within `seconds` (by default the app's BODY_READ_TIMEOUT_SECONDS).

    Uvicorn has no deadline for a body, so without one a client trickling a byte at a time holds
    the request open for as long as it likes (ADR 0010)."""
    too_large = RequestError(f"the request body may be at most {limit} bytes", code="PAYLOAD_TOO_LARGE", status=413)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    seconds = body_read_timeout(request) if seconds is None else seconds
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except ClientDisconnect:
        # Nobody will read the answer; without this, uvicorn logs the request as a crash.
        raise RequestError("the client went away before sending the whole body") from None
    except TimeoutError:
        raise RequestError(
            f"the request body did not arrive within {seconds:g} seconds",
            code="REQUEST_TIMEOUT",
            status=408,
            headers={"Connection": "close"},  # the rest of the body may still come: never read it as a request
        ) from None
    return b"".join(chunks)


def body_read_timeout(request: Request) -> float:
    """BODY_READ_TIMEOUT_SECONDS of the app serving `request`, for every endpoint that reads a body."""
    services = getattr(getattr(request.scope.get("app"), "state", None), "services", None)
    return services.settings.body_read_timeout_seconds if services is not None else BODY_READ_TIMEOUT_SECONDS


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


def text_operation(payload: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    """The query, variables and operation name of a body that must carry the query's text:
    for the endpoints that take no persisted queries (admin, public tracking)."""
    operation = _operation(payload)
    if operation.query is None:
        raise RequestError("the request has no query")
    return operation.query, operation.variables, operation.operation_name


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and "query" not in request.query_params


def json_response(
    body: Any,
    status: int,
    media_type: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    caching: Caching = TENANT_DATA,
) -> Response:
    """A JSON response as every GraphQL endpoint sends it: its media type, caching and request id."""
    base = {"content-type": f"{media_type}; charset=utf-8", "cache-control": caching.cache_control}
    if caching.vary:
        base["vary"] = caching.vary
    base["x-request-id"] = request_id
    return Response(orjson.dumps(body), status_code=status, headers={**base, **(headers or {})})


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _error_response(
    message: str, code: str, status: int, media_type: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(message, code), status, media_type, request_id, headers)


__all__ = [
    "GRAPHQL_RESPONSE",
    "JSON",
    "TENANT_DATA",
    "Caching",
    "GraphQLEndpoint",
    "RequestError",
    "body_read_timeout",
    "database_unavailable_response",
    "describe_operation",
    "error_body",
    "format_error",
    "json_response",
    "json_value",
    "lost_the_database",
    "media_type_for",
    "rate_limit_headers",
    "read_body",
    "request_id_of",
    "request_payload",
    "result_body",
]
