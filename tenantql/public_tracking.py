"""Public tracking at `/track/graphql`: a courier's end customers follow a parcel without an account.

No credential: the tenant is the one the request host names (`db.public_tracking`), and an
unknown or suspended tenant's host gets a 404 before any tenant is set. The schema is a
separate one of three types, so nothing of the tenant API (customers, drivers, notes, ids)
is reachable from here, not even by introspection. Each tenant's page is rate limited per
client address, in the same shared buckets as query budgets.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import DisableIntrospection
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from auth.tenant import TenantStatus
from db.buckets import Budget
from db.engine import database_unavailable
from db.public_tracking import PublicShipment as ShipmentRecord
from db.public_tracking import TrackingHosts, find_public_shipment
from resolvers.errors import ClientError
from schema.extensions.cost_limit import THROTTLED
from schema.extensions.documents import DocumentCache, Limits, PreparedDocuments
from schema.extensions.error_codes import ErrorCodes
from schema.types.logistics import ShipmentStatus
from tenantql.graphql_http import (
    GRAPHQL_RESPONSE,
    Caching,
    RequestError,
    database_unavailable_response,
    error_body,
    json_response,
    lost_the_database,
    media_type_for,
    rate_limit_headers,
    request_id_of,
    request_payload,
    result_body,
    text_operation,
)
from tenantql.services import Services

# Public answers, the same for everyone at a host, but a status that changes: never cached.
CACHING = Caching("no-store")

log = logging.getLogger(__name__)

PATH = "/track/graphql"
UNKNOWN_HOST = "UNKNOWN_HOST"
REQUESTS_PER_MINUTE = 60  # per tenant and client address
MAX_BODY_BYTES = 16_384  # the largest honest request is an introspection query, a few kilobytes
LIMITS = Limits(max_depth=3, max_aliases=10, max_tokens=500)


@strawberry.type(description="A point in a shipment's journey.")
class PublicTrackingEvent:
    status: ShipmentStatus
    location: str | None
    occurred_at: datetime


@strawberry.type(description="What anyone holding the tracking number may know of a shipment.")
class PublicShipment:
    tracking_number: str
    status: ShipmentStatus
    events: list[PublicTrackingEvent] = strawberry.field(description="Newest first.")

    @classmethod
    def of(cls, record: ShipmentRecord) -> PublicShipment:
        events = [
            PublicTrackingEvent(status=e.status, location=e.location, occurred_at=e.occurred_at) for e in record.events
        ]
        return cls(tracking_number=record.tracking_number, status=record.status, events=events)


@dataclass(frozen=True, slots=True)
class PublicTenant:
    """The host's tenant; named and shaped like the tenant API's, so ErrorCodes quotes the request id."""

    tenant_id: uuid.UUID
    request_id: str


@dataclass(slots=True)
class PublicContext:
    tenant: PublicTenant
    engine: AsyncEngine
    lookups: int = 0


Info = strawberry.Info[PublicContext, None]


@strawberry.type
class Query:
    @strawberry.field(description="The shipment with this tracking number; null if there is none.")
    async def track_shipment(self, info: Info, tracking_number: str) -> PublicShipment | None:
        context = info.context
        # Aliases would let one request try many numbers past the per-request rate limit.
        context.lookups += 1
        if context.lookups > 1:
            raise ClientError("one trackShipment per request")
        found = await find_public_shipment(context.engine, context.tenant.tenant_id, tracking_number)
        return PublicShipment.of(found) if found is not None else None


class PublicSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Errors are logged once, by ErrorCodes, and only those that are the server's fault."""


def build_public_schema(*, introspection: bool = True) -> PublicSchema:
    documents = DocumentCache(LIMITS, maxsize=256)
    chain: list[Any] = [ErrorCodes, lambda: PreparedDocuments(documents)]
    if not introspection:
        chain.append(DisableIntrospection)
    return PublicSchema(query=Query, extensions=chain)


def visitor_key(tenant_id: uuid.UUID, address: str) -> uuid.UUID:
    """The bucket of one client address on one tenant's tracking host.

    A version-5 UUID can never be a tenant's id (those are version 4), so these buckets sit
    beside the tenants' query budgets in the same store and never draw from them."""
    return uuid.uuid5(tenant_id, f"public-tracking:{address}")


class PublicTrackingEndpoint:
    """Usage: `Route(PATH, PublicTrackingEndpoint(tracking_domain=...))` in `create_app`."""

    def __init__(
        self,
        *,
        tracking_domain: str | None,
        host_cache_seconds: float = 5.0,
        introspection: bool = True,
        requests_per_minute: int = REQUESTS_PER_MINUTE,
    ) -> None:
        self.hosts = TrackingHosts(tracking_domain, ttl_seconds=host_cache_seconds)
        self.schema = build_public_schema(introspection=introspection)
        self.budget = Budget.per_minute(requests_per_minute)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        media_type = media_type_for(request)
        request_id = request_id_of(request)
        services: Services = request.app.state.services
        headers: dict[str, str] = {}
        try:
            if request.method not in ("GET", "POST"):
                raise RequestError(
                    "GraphQL is served over GET and POST",
                    code="METHOD_NOT_ALLOWED",
                    status=405,
                    headers={"Allow": "GET, POST"},
                )
            site = await self.hosts.find(services.engine, request.headers.get("host", ""))
            if site is None or site.status is not TenantStatus.ACTIVE:
                # A suspended courier's customers learn no more than a stranger's.
                raise RequestError("no tracking is served at this host", code=UNKNOWN_HOST, status=404)
            address = request.client.host if request.client else "unknown"
            charge = await services.buckets.charge(visitor_key(site.tenant_id, address), self.budget, 1)
            headers = rate_limit_headers(charge)
            if not charge.charged:
                retry_after = str(max(1, math.ceil(charge.retry_after)))
                raise RequestError(
                    f"too many tracking requests from this address; retry in {retry_after} s",
                    code=THROTTLED,
                    status=429,
                    headers={**headers, "retry-after": retry_after},
                )
            query, variables, operation_name = text_operation(await request_payload(request, MAX_BODY_BYTES))
            context = PublicContext(tenant=PublicTenant(site.tenant_id, request_id), engine=services.engine)
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=frozenset({OperationType.QUERY}),
            )
        except RequestError as error:
            body = error_body(error.message, error.code)
            return _response(body, error.status, media_type, request_id, {**headers, **error.headers})
        except InvalidOperationTypeError:
            return _response(
                error_body("only queries are served here", "BAD_REQUEST"), 400, media_type, request_id, headers
            )
        except (MissingQueryError, CannotGetOperationTypeError):
            body = error_body("send one query operation, named by operationName", "BAD_REQUEST")
            return _response(body, 400, media_type, request_id, headers)
        except Exception as error:  # finding the host's tenant needs PostgreSQL
            if not database_unavailable(error):
                raise
            return database_unavailable_response(media_type, request_id, error, headers, CACHING)

        body, refused = result_body(result, request_id)
        if lost_the_database(body):
            return database_unavailable_response(media_type, request_id, headers=headers, caching=CACHING)
        status = 400 if refused and media_type == GRAPHQL_RESPONSE else 200
        return _response(body, status, media_type, request_id, headers)


def _response(
    body: dict[str, Any], status: int, media_type: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(body, status, media_type, request_id, headers, CACHING)


__all__ = ["PATH", "UNKNOWN_HOST", "PublicTrackingEndpoint", "build_public_schema", "visitor_key"]
