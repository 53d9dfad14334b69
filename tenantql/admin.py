"""`POST /admin/graphql`: platform operations for a platform-admin token, through the owner role.

The owner role's engine is opened by this endpoint in the app's lifespan and held by it
alone: the tenant endpoint's Services never see it, so no tenant request can reach a
connection that Row Level Security does not bind. Without DATABASE_OWNER_URL the server
has no such engine and this path answers 503 ADMIN_NOT_CONFIGURED; `/graphql` is unaffected.
See docs/adr/0007-platform-admin-endpoint.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from auth.errors import AuthError
from auth.platform import PlatformAuthenticator
from db.engine import create_owner_engine, database_unavailable
from db.public_tracking import TrackingHosts
from resolvers.platform import PlatformContext
from schema.admin import build_admin_schema
from tenantql.graphql_http import (
    GRAPHQL_RESPONSE,
    Caching,
    RequestError,
    database_unavailable_response,
    error_body,
    json_response,
    lost_the_database,
    media_type_for,
    request_id_of,
    request_payload,
    result_body,
    text_operation,
)
from tenantql.services import Services

# Platform answers are an operator's, chosen by the token: no shared cache may keep them.
CACHING = Caching("private, no-store", vary="Authorization")

log = logging.getLogger(__name__)

PATH = "/admin/graphql"
ADMIN_NOT_CONFIGURED = "ADMIN_NOT_CONFIGURED"
MAX_BODY_BYTES = 100_000
_QUERY_OR_MUTATION = frozenset({OperationType.QUERY, OperationType.MUTATION})


class AdminEndpoint:
    """Usage: `AdminEndpoint(settings.database_owner_url)` as the route, `async with endpoint.serving()`
    in the app's lifespan."""

    def __init__(
        self,
        owner_url: str | None,
        *,
        introspection: bool = True,
        tracking_domain: str | None = None,
        tracking_hosts: TrackingHosts | None = None,
    ) -> None:
        self.owner_url = owner_url
        self.tracking_domain = tracking_domain
        self.tracking_hosts = tracking_hosts  # public tracking's cache of hosts, told of a domain change
        self.schema = build_admin_schema(introspection=introspection)
        self.engine: AsyncEngine | None = None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Hold the owner role's engine (it connects on first use) for the life of the app."""
        if self.owner_url is None:
            log.info("no DATABASE_OWNER_URL: %s answers %s", PATH, ADMIN_NOT_CONFIGURED)
            yield
            return
        self.engine = create_owner_engine(self.owner_url)
        try:
            yield
        finally:
            engine, self.engine = self.engine, None
            await engine.dispose()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        media_type = media_type_for(request)
        request_id = request_id_of(request)
        services: Services = request.app.state.services
        try:
            if request.method != "POST":
                raise RequestError(
                    "platform operations are sent with POST",
                    code="METHOD_NOT_ALLOWED",
                    status=405,
                    headers={"Allow": "POST"},
                )
            tenant_credentials = services.authenticator
            authenticator = PlatformAuthenticator(tenant_credentials.verifier, tenant_credentials.api_keys)
            admin = await authenticator.authenticate(request.headers)
            if self.engine is None:
                raise RequestError(
                    "platform operations need the owner role: set DATABASE_OWNER_URL for this server",
                    code=ADMIN_NOT_CONFIGURED,
                    status=503,
                )
            query, variables, operation_name = text_operation(await request_payload(request, MAX_BODY_BYTES))
        except AuthError as error:
            headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
            return _response(error_body(error.message, error.code), error.status, media_type, request_id, headers)
        except RequestError as error:
            body = error_body(error.message, error.code)
            return _response(body, error.status, media_type, request_id, error.headers)
        except Exception as error:  # an API key is looked up in PostgreSQL
            if not database_unavailable(error):
                raise
            return database_unavailable_response(media_type, request_id, error, caching=CACHING)

        context = PlatformContext(
            admin=admin,
            engine=self.engine,
            request_id=request_id,
            forget=self._forgetter(services),
            tracking_domain=self.tracking_domain,
            unflushed_usage=services.costs.usage,
        )
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=_QUERY_OR_MUTATION,
            )
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
            body = error_body("send one query or mutation, named by operationName", "BAD_REQUEST")
            return _response(body, 400, media_type, request_id)
        body, refused = result_body(result, request_id)
        if lost_the_database(body):
            return database_unavailable_response(media_type, request_id, caching=CACHING)
        status = 400 if refused and media_type == GRAPHQL_RESPONSE else 200
        return _response(body, status, media_type, request_id)

    def _forgetter(self, services: Services) -> Callable[[uuid.UUID], None]:
        """What a change must clear in this process's caches for this process to apply it at once."""

        def forget(tenant_id: uuid.UUID) -> None:
            services.tenants.forget(tenant_id)
            if self.tracking_hosts is not None:
                self.tracking_hosts.forget()  # keyed by host, not tenant; refilled on the next visits

        return forget


def _response(
    body: dict[str, Any], status: int, media_type: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(body, status, media_type, request_id, headers, CACHING)


__all__ = ["ADMIN_NOT_CONFIGURED", "PATH", "AdminEndpoint"]
