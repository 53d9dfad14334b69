"""Strawberry's parser cache, minus its one flaw: a query that does not parse."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import ParserCache


class TolerantParserCache(ParserCache):
    """Usage: `build_schema()` adds it as `lambda: TolerantParserCache(maxsize=1024)`.

    Strawberry's ParserCache raises a syntax error from its hook, outside the operation,
    where ErrorCodes never sees it (strawberry#1439) and the client gets no code. Left
    without a document, Strawberry parses the query itself and reports the error inside.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            context.graphql_document = None
        yield


__all__ = ["TolerantParserCache"]
