"""Parse, limit and validate each distinct document once per process, not once per request.

A document is refused before validation, and long before execution, when it is bigger
than any honest client needs: more than 2,000 tokens, nested more than 12 levels deep,
or using more than 30 aliases. Those are the shapes of the attacks that make GraphQL
servers burn CPU (alias and fragment bombs hit the validator's overlapping-fields rule
quadratically) and they are cheap to spot on the parsed document. Introspection, as
GraphiQL sends it (about 15 levels deep), is exempt.

Strawberry's QueryDepthLimiter, MaxAliasesLimiter and MaxTokensLimiter do the same
counting but give their errors no code and cannot exempt introspection from the alias
limit; the limits also need to run before validation to protect it, which validation
rules cannot. So the three limits, the parser cache and the validation cache are one
extension here, sharing one cache keyed by the query text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    validate,
)
from strawberry.extensions import SchemaExtension

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
_ROOT_INTROSPECTION_FIELDS = INTROSPECTION_FIELDS | {"__typename"}


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2_000
    # An introspection document may be longer than `max_tokens`, up to this.
    max_introspection_tokens: int = 20_000

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"max_lexical_tokens": self.max_tokens, "max_comments": self.max_tokens}


class DocumentCache:
    """The parsed documents and their refusals, shared by every request of one schema."""

    def __init__(self, limits: Limits = Limits(), maxsize: int = 1024) -> None:
        self.limits = limits
        self.parse = lru_cache(maxsize=maxsize)(self._parse)
        self.check = lru_cache(maxsize=maxsize)(self._check)

    def _parse(self, query: str) -> DocumentNode:
        """The document; a GraphQLSyntaxError is raised, not cached, and Strawberry reports it."""
        try:
            return parse(query, **self.limits.parse_options)
        except GraphQLSyntaxError as error:
            if not is_token_limit_error(error) or not any(name in query for name in INTROSPECTION_FIELDS):
                raise
            refusal = error
        limits = self.limits
        document = parse(query, max_lexical_tokens=limits.max_introspection_tokens, max_comments=limits.max_tokens)
        if not _is_introspection(document):
            raise refusal
        return document

    def _check(self, query: str, schema: GraphQLSchema, rules: tuple[Any, ...]) -> tuple[GraphQLError, ...]:
        """The refusals of the limits, else the validation errors; empty when executable."""
        document = self.parse(query)
        refusals = _refusals(document, self.limits)
        if refusals:
            return refusals
        return tuple(validate(schema, document, rules))


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


def is_token_limit_error(error: GraphQLError) -> bool:
    """The parser's refusal of a document with too many tokens or comments."""
    return isinstance(error, GraphQLSyntaxError) and (
        " tokens. Parsing aborted." in error.message or " comments. Parsing aborted." in error.message
    )


def is_nesting_limit_error(error: GraphQLError) -> bool:
    """The parser's refusal of a document nested deeper than Python's recursion allows."""
    return isinstance(error, GraphQLSyntaxError) and "nested too deeply" in error.message


def _refusals(document: DocumentNode, limits: Limits) -> tuple[GraphQLError, ...]:
    shape = _Shape(document)
    errors = []
    if (depth := shape.depth()) > limits.max_depth:
        errors.append(
            GraphQLError(
                f"The operation is nested {depth} levels deep; at most {limits.max_depth} are allowed.",
                extensions={"code": QUERY_TOO_DEEP, "depth": depth, "maxDepth": limits.max_depth},
            )
        )
    if (aliases := shape.aliases()) > limits.max_aliases:
        errors.append(
            GraphQLError(
                f"The document uses {aliases} aliases; at most {limits.max_aliases} are allowed.",
                extensions={"code": TOO_MANY_ALIASES, "aliases": aliases, "maxAliases": limits.max_aliases},
            )
        )
    return tuple(errors)


class _Shape:
    """Depth and alias count of a document, introspection fields left out.

    Depth counts nested selection sets below the operation (`{ viewer { role } }` is 1
    deep), following fragment spreads; each fragment's depth is worked out once, so a
    fragment that spreads another many times costs no more than writing it out once.
    """

    def __init__(self, document: DocumentNode) -> None:
        self.operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._fragment_depths: dict[str, int] = {}

    def depth(self) -> int:
        return max((self._depth(o.selection_set, set()) - 1 for o in self.operations), default=0)

    def aliases(self) -> int:
        definitions = [*self.operations, *self.fragments.values()]
        return sum(_aliases(d.selection_set) for d in definitions)

    def _depth(self, selection_set: SelectionSetNode | None, expanding: set[str]) -> int:
        """Fields on the longest path through `selection_set`."""
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in INTROSPECTION_FIELDS:
                    continue
                depth = 1 + self._depth(selection.selection_set, expanding)
            elif isinstance(selection, InlineFragmentNode):
                depth = self._depth(selection.selection_set, expanding)
            elif isinstance(selection, FragmentSpreadNode):
                depth = self._spread_depth(selection.name.value, expanding)
            else:
                continue
            deepest = max(deepest, depth)
        return deepest

    def _spread_depth(self, name: str, expanding: set[str]) -> int:
        if name in self._fragment_depths:
            return self._fragment_depths[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in expanding:
            return 0  # unknown or cyclic: validation refuses the document
        depth = self._depth(fragment.selection_set, expanding | {name})
        self._fragment_depths[name] = depth
        return depth


def _aliases(selection_set: SelectionSetNode | None) -> int:
    if selection_set is None:
        return 0
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION_FIELDS:
                continue
            count += selection.alias is not None
        if isinstance(selection, FieldNode | InlineFragmentNode):
            count += _aliases(selection.selection_set)
    return count


def _is_introspection(document: DocumentNode) -> bool:
    """Every operation asks only for introspection fields at its root."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return bool(operations) and all(
        isinstance(s, FieldNode) and s.name.value in _ROOT_INTROSPECTION_FIELDS
        for operation in operations
        for s in operation.selection_set.selections
    )


__all__ = [
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_TOKENS",
    "DocumentCache",
    "Limits",
    "PreparedDocuments",
    "is_nesting_limit_error",
    "is_token_limit_error",
]
