"""What makes a document bigger than any honest client needs, worked out from the parsed document alone.

The limits (depth, aliases, repeated selections) are checked before validation, because
validation itself is what they protect: graphql-core's overlapping-fields rule is quadratic
in repeated selections (ADR 0009). Tokens and comments are bounded by the parser.
Introspection fields count for neither depth nor aliases; GraphiQL's document is about 15
levels deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
TOO_MANY_REPEATED_FIELDS = "TOO_MANY_REPEATED_FIELDS"
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
_ROOT_INTROSPECTION_FIELDS = INTROSPECTION_FIELDS | {"__typename"}
# Pairs compared deeper than this below where they started can only come from fragment
# cycles, which validation refuses: the count stops there instead of recursing forever.
_MAX_PAIR_LEVEL = 64


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2_000
    # An introspection document may be longer than `max_tokens`, up to this (the standard one has 183).
    max_introspection_tokens: int = 5_000
    # Comparisons of graphql-core's OverlappingFieldsCanBeMerged rule: pairs of fields that
    # share a response key, and of fragments spread side by side. Introspection included.
    max_field_pairs: int = 2_000

    @property
    def parse_options(self) -> dict[str, Any]:
        return {"max_lexical_tokens": self.max_tokens, "max_comments": self.max_tokens}


def is_token_limit_error(error: GraphQLError) -> bool:
    """The parser's refusal of a document with too many tokens or comments."""
    return isinstance(error, GraphQLSyntaxError) and (
        " tokens. Parsing aborted." in error.message or " comments. Parsing aborted." in error.message
    )


def is_nesting_limit_error(error: GraphQLError) -> bool:
    """The parser's refusal of a document nested deeper than Python's recursion allows."""
    return isinstance(error, GraphQLSyntaxError) and "nested too deeply" in error.message


def refusals(document: DocumentNode, limits: Limits) -> tuple[GraphQLError, ...]:
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
    definitions = [*shape.operations, *shape.fragments.values()]
    overlaps = _Overlaps(shape.fragments, limits.max_field_pairs)
    if overlaps.exceeded(definitions):
        errors.append(_repeated_fields_error(*overlaps.most_repeated(definitions), limits.max_field_pairs))
    return tuple(errors)


def _repeated_fields_error(key: str, times: int, max_pairs: int) -> GraphQLError:
    extensions: dict[str, Any] = {"code": TOO_MANY_REPEATED_FIELDS, "maxFieldPairs": max_pairs}
    message = (
        "The document repeats selections too often: checking that they can be merged would compare "
        f"more than {max_pairs} pairs of fields or fragments"
    )
    if times > 1:
        message += f" (`{key}` is selected {times} times in one selection set)"
        extensions |= {"field": key, "times": times}
    return GraphQLError(message + ". Select each field once.", extensions=extensions)


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


class _BudgetSpent(Exception):
    pass


class _Overlaps:
    """Counts the comparisons graphql-core's OverlappingFieldsCanBeMerged rule would make.

    In each selection set it compares every two fields written there under one response key,
    those fields with the fields of each fragment spread there, and every two of those
    fragments, fragments written out; two fields compared also have their sub-selections
    compared, pair by pair. That is quadratic in repeats and multiplies at each level of
    nesting. Counting the same way stops as soon as the budget is spent.
    """

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], budget: int) -> None:
        self.fragments = fragments
        self.left = budget
        self._written: dict[int, tuple[dict[str, list[FieldNode]], list[str]]] = {}
        self._expanded: dict[int, dict[str, list[FieldNode]]] = {}

    def exceeded(self, definitions: list[OperationDefinitionNode | FragmentDefinitionNode]) -> bool:
        try:
            for selection_set in _selection_sets(definitions):
                self._within(selection_set)
        except _BudgetSpent:
            return True
        return False

    def most_repeated(self, definitions: list[OperationDefinitionNode | FragmentDefinitionNode]) -> tuple[str, int]:
        """The response key selected most often in one selection set, fragments written out."""
        counts = (
            (key, len(nodes))
            for selection_set in _selection_sets(definitions)
            for key, nodes in self._expand(selection_set).items()
        )
        return max(counts, key=lambda count: count[1], default=("", 0))

    def _within(self, selection_set: SelectionSetNode) -> None:
        fields, spreads = self._written_in(selection_set)
        self._spend(len(spreads) * (len(spreads) - 1) // 2)
        for nodes in fields.values():
            for i, first in enumerate(nodes):
                for second in nodes[i + 1 :]:
                    self._pair(first, second, 1)
        spread = [self._expand(self.fragments[name].selection_set) for name in spreads if name in self.fragments]
        for i, one in enumerate(spread):
            self._between(fields, one, 1)
            for other in spread[i + 1 :]:
                self._between(one, other, 1)

    def _between(self, firsts: dict[str, list[FieldNode]], seconds: dict[str, list[FieldNode]], level: int) -> None:
        for key, nodes in firsts.items():
            for first in nodes:
                for second in seconds.get(key, ()):
                    self._pair(first, second, level)

    def _pair(self, first: FieldNode, second: FieldNode, level: int) -> None:
        if first is second:
            return  # one fragment reached twice: the rule never compares a field with itself
        self._spend(1)
        if first.selection_set is not None and second.selection_set is not None and level < _MAX_PAIR_LEVEL:
            self._between(self._expand(first.selection_set), self._expand(second.selection_set), level + 1)

    def _spend(self, comparisons: int) -> None:
        self.left -= comparisons
        if self.left < 0:
            raise _BudgetSpent

    def _written_in(self, selection_set: SelectionSetNode) -> tuple[dict[str, list[FieldNode]], list[str]]:
        """The fields written in a selection set (inline fragments merged) by response key, and
        the fragments it spreads."""
        found = self._written.get(id(selection_set))
        if found is None:
            fields: dict[str, list[FieldNode]] = {}
            spreads: dict[str, None] = {}
            self._merge(selection_set, fields, spreads, None)
            found = self._written[id(selection_set)] = (fields, list(spreads))
        return found

    def _expand(self, selection_set: SelectionSetNode) -> dict[str, list[FieldNode]]:
        """Its fields by response key, each fragment it reaches written out once, as execution
        collects them."""
        found = self._expanded.get(id(selection_set))
        if found is None:
            found = self._expanded[id(selection_set)] = {}
            self._merge(selection_set, found, None, set())
        return found

    def _merge(
        self,
        selection_set: SelectionSetNode,
        fields: dict[str, list[FieldNode]],
        spreads: dict[str, None] | None,
        expanded: set[str] | None,
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields.setdefault((selection.alias or selection.name).value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                self._merge(selection.selection_set, fields, spreads, expanded)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if spreads is not None:
                    spreads[name] = None
                fragment = self.fragments.get(name)
                if expanded is not None and fragment is not None and name not in expanded:
                    expanded.add(name)
                    self._merge(fragment.selection_set, fields, None, expanded)


def _selection_sets(
    definitions: list[OperationDefinitionNode | FragmentDefinitionNode],
) -> Iterator[SelectionSetNode]:
    """Every selection set written in the definitions, each once, as the validator visits them."""
    pending = [definition.selection_set for definition in definitions]
    while pending:
        selection_set = pending.pop()
        yield selection_set
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                pending.append(selection.selection_set)


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


def is_introspection(document: DocumentNode) -> bool:
    """Every operation asks only for introspection fields at its root."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return bool(operations) and all(
        isinstance(s, FieldNode) and s.name.value in _ROOT_INTROSPECTION_FIELDS
        for operation in operations
        for s in operation.selection_set.selections
    )


__all__ = [
    "INTROSPECTION_FIELDS",
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_REPEATED_FIELDS",
    "TOO_MANY_TOKENS",
    "Limits",
    "is_introspection",
    "is_nesting_limit_error",
    "is_token_limit_error",
    "refusals",
]
