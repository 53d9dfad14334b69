"""The requested cost of an operation, computed from the document and its variables alone.

The rules (the contract's section 7):

- a scalar or enum field costs 0, an object field 1, a mutation field 10, each plus the
  cost of what is selected below it;
- a list field costs 2 + n x the cost of one item's selection, and a connection
  2 + n x the cost of one node's selection; `edges`, `node`, `pageInfo`, `cursor` and
  `__typename` cost nothing themselves;
- n is the value of the field's slicing argument (`first`, `last`, or those named by
  `@listSize(slicingArguments:)`), else that argument's default, else
  `@listSize(assumedSize:)`, else 10;
- `@cost(weight:)` on a field replaces the field's own cost;
- a field of an interface or union costs as much as its dearest possible type;
- fields skipped by `@skip`/`@include` cost nothing, aliases each cost in full, and
  introspection (`__schema`, `__type`) costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    is_abstract_type,
    is_leaf_type,
    value_from_ast_untyped,
)

DEFAULT_LIST_SIZE = 10
OBJECT_COST = 1
MUTATION_COST = 10
LIST_COST = 2
CONNECTION_FIELDS = frozenset({"edges", "pageInfo"})  # free on a connection
EDGE_FIELDS = frozenset({"node", "cursor"})  # free on an edge
SLICING_ARGUMENTS = ("first", "last")


class CostCalculator:
    """Built once per schema; `requested_cost` is then a walk over the document."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema

    def requested_cost(
        self, document: DocumentNode, variables: Mapping[str, Any] | None = None, operation_name: str | None = None
    ) -> int:
        operation = _operation(document, operation_name)
        if operation is None:
            return 0
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        walk = _Walk(self.schema, fragments, dict(variables or {}))
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return 0
        return walk.selection_cost(
            root, operation.selection_set, mutation=operation.operation is OperationType.MUTATION
        )


class _Walk:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection_cost(self, parent: Any, selection_set: SelectionSetNode | None, *, mutation: bool = False) -> int:
        if selection_set is None:
            return 0
        if is_abstract_type(parent):
            possible = self.schema.get_possible_types(parent)
            return max((self._fields_cost(t, selection_set, mutation) for t in possible), default=0)
        return self._fields_cost(parent, selection_set, mutation)

    def _fields_cost(self, parent: Any, selection_set: SelectionSetNode, mutation: bool) -> int:
        return sum(self.field_cost(parent, field, mutation) for field in self._fields(parent, selection_set, set()))

    def _fields(self, parent: Any, selection_set: SelectionSetNode, seen: set[str]) -> Iterable[FieldNode]:
        """The fields selected on `parent`, fragments applied, skipped fields left out."""
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, parent):
                    yield from self._fields(parent, selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen and self._applies(fragment.type_condition, parent):
                    yield from self._fields(parent, fragment.selection_set, seen | {name})

    def field_cost(self, parent: Any, node: FieldNode, mutation: bool) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        field: GraphQLField | None = getattr(parent, "fields", {}).get(name)
        if field is None:
            return 0
        directives = _directives(field)
        inner, is_list = _unwrap(field.type)
        free = (name in CONNECTION_FIELDS and _is_connection(parent)) or (name in EDGE_FIELDS and _is_edge(parent))
        if free:
            own = 0
        elif mutation:
            own = MUTATION_COST
        elif is_leaf_type(inner):
            own = 0
        else:
            own = OBJECT_COST
        if (weight := directives.get("Cost")) is not None:
            own = int(float(weight.weight))
        below = 0 if is_leaf_type(inner) else self.selection_cost(inner, node.selection_set)
        if not free and (is_list or _is_connection(inner)):
            return LIST_COST + self._size(field, node, directives.get("ListSize")) * below
        return own + below

    def _size(self, field: GraphQLField, node: FieldNode, list_size: Any) -> int:
        names = tuple(getattr(list_size, "slicing_arguments", None) or ()) or SLICING_ARGUMENTS
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        sizes = []
        for name in names:
            if name in given:
                value = self._value(given[name])
            elif name in field.args:
                value = field.args[name].default_value
            else:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                sizes.append(value)
        if sizes:
            return max(sizes)
        assumed = getattr(list_size, "assumed_size", None)
        return assumed if isinstance(assumed, int) else DEFAULT_LIST_SIZE

    def _value(self, value_node: Any) -> Any:
        if isinstance(value_node, VariableNode):
            return self.variables.get(value_node.name.value)
        return value_from_ast_untyped(value_node, self.variables)

    def _included(self, selection: Any) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
            value = bool(self._value(condition)) if condition is not None else False
            if (name == "skip" and value) or (name == "include" and not value):
                return False
        return True

    def _applies(self, type_condition: Any, parent: Any) -> bool:
        if type_condition is None:
            return True
        condition = self.schema.get_type(type_condition.name.value)
        if condition is None:
            return False
        if condition is parent:
            return True
        if is_abstract_type(condition) and isinstance(parent, GraphQLObjectType):
            return self.schema.is_sub_type(condition, parent)
        return False


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


def _is_connection(type_: Any) -> bool:
    return isinstance(type_, GraphQLObjectType) and "edges" in type_.fields and "pageInfo" in type_.fields


def _is_edge(type_: Any) -> bool:
    return isinstance(type_, GraphQLObjectType) and "node" in type_.fields and "cursor" in type_.fields


def _directives(field: GraphQLField) -> dict[str, Any]:
    definition = (field.extensions or {}).get("strawberry-definition")
    return {type(d).__name__: d for d in getattr(definition, "directives", None) or ()}


__all__ = ["DEFAULT_LIST_SIZE", "CostCalculator"]
