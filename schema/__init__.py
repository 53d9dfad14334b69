"""The GraphQL schema, assembled from its types and extensions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.types import ExecutionContext

from schema.execution import PlannedExecutionContext
from schema.extensions.documents import DocumentCache, Limits, PreparedDocuments
from schema.extensions.error_codes import ErrorCodes
from schema.mutation import Mutation
from schema.query import Query


class TenantQLSchema(strawberry.Schema):
    documents: DocumentCache  # what this process has parsed, limited and validated

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Errors are logged once, by ErrorCodes, and only those that are the server's fault."""


def build_schema(
    *,
    introspection: bool = True,
    limits: Limits | None = None,
    extensions: Sequence[type[SchemaExtension] | SchemaExtension | Any] = (),
) -> TenantQLSchema:
    """The schema with its standard extensions; `extensions` adds more (the cost limit, for one)."""
    documents = DocumentCache(limits or Limits(), maxsize=1024)
    # ErrorCodes comes first so that it wraps, and sees the errors of, every other extension.
    # Extensions are factories: each request gets its own instances around the shared cache.
    chain: list[Any] = [ErrorCodes, lambda: PreparedDocuments(documents), *extensions]
    if not introspection:
        chain.append(DisableIntrospection)
    schema = TenantQLSchema(
        query=Query, mutation=Mutation, extensions=chain, execution_context_class=PlannedExecutionContext
    )
    schema.documents = documents
    return schema


__all__ = ["TenantQLSchema", "build_schema"]
