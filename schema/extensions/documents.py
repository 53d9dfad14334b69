"""Parse, limit and validate each distinct document once per process, not once per request.

A document is refused before validation, and long before execution, when it is bigger
than any honest client needs (`schema.document_limits`): more than 2,000 tokens, nested
more than 12 levels deep, using more than 30 aliases, or repeating selections so often
that validation would compare more than 2,000 pairs of them (ADR 0009). Introspection, as
GraphiQL sends it (about 15 levels deep), is exempt from the first three.

Strawberry's QueryDepthLimiter, MaxAliasesLimiter and MaxTokensLimiter do the same
counting but give their errors no code and cannot exempt introspection from the alias
limit; the limits also need to run before validation to protect it, which validation
rules cannot. So the limits, the parser cache and the validation cache are one extension
here, sharing one cache keyed by the query text and bounded by the memory it holds.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, GraphQLSyntaxError, parse, validate
from strawberry.extensions import SchemaExtension

from schema.document_limits import (
    INTROSPECTION_FIELDS,
    QUERY_TOO_DEEP,
    TOO_MANY_ALIASES,
    TOO_MANY_REPEATED_FIELDS,
    TOO_MANY_TOKENS,
    Limits,
    is_introspection,
    is_nesting_limit_error,
    is_token_limit_error,
    refusals,
)

# What a parsed document holds per token, its text aside: measured 0.4 to 0.62 KB (the nodes,
# their locations, and the tokens those start and end at).
_BYTES_PER_TOKEN = 640


DEFAULT_LIMITS = Limits()
CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])  # as functools reports it


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    weight: int  # bytes it is estimated to hold
    checks: dict[tuple[GraphQLSchema, tuple[Any, ...]], tuple[GraphQLError, ...]] = field(default_factory=dict)


class _Counted:
    """One use of the cache, counted like a `functools.lru_cache` (its `cache_info()`)."""

    def __init__(self, cache: DocumentCache, lookup: Callable[..., tuple[Any, bool]]) -> None:
        self.cache, self.lookup = cache, lookup
        self.hits = self.misses = 0

    def __call__(self, *args: Any) -> Any:
        value, cached = self.lookup(*args)
        if cached:
            self.hits += 1
        else:
            self.misses += 1
        return value

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, self.cache.maxsize, len(self.cache))


class DocumentCache:
    """The parsed documents and their refusals, shared by every request of one schema.

    Bounded by count and by weight, an estimate of the memory an entry holds: its text and
    every token of its parse. Counted alone, 1,024 request bodies of 1 MB or introspection
    documents of thousands of tokens would hold gigabytes in every process; weighed, the
    entries hold at most `max_bytes`, least recently used first out, and a document weighing
    more than a sixteenth of that is not kept at all (ADR 0009).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, maxsize: int = 1024, max_bytes: int = 32 * 2**20) -> None:
        self.limits = limits
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.weight = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._last: tuple[str, DocumentNode] | None = None  # kept even if too heavy: a request parses once
        self._lock = Lock()  # sync resolvers run in threads
        self.parse = _Counted(self, self._document)
        self.check = _Counted(self, self._checked)

    def __len__(self) -> int:
        return len(self._entries)

    def parsed(self, query: str) -> DocumentNode | None:
        """The document of `query` if this cache holds it; never parses. For reports on what ran."""
        if (entry := self._entry(query)) is not None:
            return entry.document
        if (last := self._last) is not None and last[0] == query:
            return last[1]
        return None

    def _document(self, query: str) -> tuple[DocumentNode, bool]:
        if (known := self.parsed(query)) is not None:
            return known, True
        document, tokens = self._parse(query)
        self._last = (query, document)
        if (weight := 2 * sys.getsizeof(query) + _BYTES_PER_TOKEN * tokens) <= self.max_bytes // 16:
            self._store(query, _Entry(document, weight))
        return document, False

    def _checked(
        self, query: str, schema: GraphQLSchema, rules: tuple[Any, ...]
    ) -> tuple[tuple[GraphQLError, ...], bool]:
        """The refusals of the limits, else the validation errors; empty when executable."""
        document = self.parse(query)
        entry = self._entry(query)
        if entry is not None and (found := entry.checks.get((schema, rules))) is not None:
            return found, True
        found = refusals(document, self.limits) or tuple(validate(schema, document, rules))
        if entry is not None and entry.document is document:
            entry.checks[schema, rules] = found
        return found, False

    def _entry(self, query: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
            return entry

    def _store(self, query: str, entry: _Entry) -> None:
        with self._lock:
            if (replaced := self._entries.pop(query, None)) is not None:
                self.weight -= replaced.weight
            self._entries[query] = entry
            self.weight += entry.weight
            while self._entries and (len(self._entries) > self.maxsize or self.weight > self.max_bytes):
                _, dropped = self._entries.popitem(last=False)
                self.weight -= dropped.weight

    def _parse(self, query: str) -> tuple[DocumentNode, int]:
        """The document and its number of tokens; a GraphQLSyntaxError is raised, not cached, and
        Strawberry reports it."""
        try:
            return _unlinked(parse(query, **self.limits.parse_options))
        except GraphQLSyntaxError as error:
            if not is_token_limit_error(error) or not any(name in query for name in INTROSPECTION_FIELDS):
                raise
            refusal = error
        limits = self.limits
        document, tokens = _unlinked(
            parse(query, max_lexical_tokens=limits.max_introspection_tokens, max_comments=limits.max_tokens)
        )
        if is_introspection(document):
            return document, tokens
        try:
            raise refusal
        finally:
            del refusal  # the traceback holds this frame: no cycle through it


def _unlinked(document: DocumentNode) -> tuple[DocumentNode, int]:
    """The document with its tokens no longer linked to each other, as graphql-core pickles them.

    Linked both ways, the tokens are one reference cycle holding the text: a document dropped
    by the cache, or never kept, would stay in memory until a full garbage collection, which a
    few requests of a megabyte each, being few objects, do not bring about. Unlinked, it goes
    as soon as nothing refers to it, with the tokens no node's location starts or ends at."""
    tokens, token = 0, document.loc.start_token if document.loc else None
    while token is not None:
        tokens, token.prev, token.next, token = tokens + 1, None, None, token.next
    return document, tokens


class PreparedDocuments(SchemaExtension):
    """Usage: `build_schema()` adds it as `lambda: PreparedDocuments(cache)`, one cache per schema."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache

    def on_operation(self) -> Iterator[None]:
        # Also bounds Strawberry's own parse, which reports a document that does not parse.
        self.execution_context.parse_options.update(self.cache.limits.parse_options)
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            try:
                context.graphql_document = self.cache.parse(context.query)
            except GraphQLError:
                context.graphql_document = None
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            # Setting the errors, even to none, is what tells Strawberry validation has run.
            rules = tuple(context.validation_rules)
            context.pre_execution_errors = list(self.cache.check(context.query, context.schema._schema, rules))
        yield


__all__ = [  # the limits' names too, for the modules that import them from here
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_REPEATED_FIELDS",
    "TOO_MANY_TOKENS",
    "DocumentCache",
    "Limits",
    "PreparedDocuments",
    "is_nesting_limit_error",
    "is_token_limit_error",
]
