"""What an operation costs: requested from the document and its variables, actual from the data it returned.

The rules (the contract's section 7):

- a scalar or enum field costs 0, an object field 1, a mutation field 10, each plus the
  cost of what is selected below it;
- a list field costs 2 + n x the cost of one item's selection, and a connection
  2 + n x the cost of one node's selection; `edges`, `node`, `pageInfo`, `cursor` and
  `__typename` cost nothing themselves;
- n is the value of the field's slicing argument (`first`, `last`, or those named by
  `@listSize(slicingArguments:)`), else that argument's default, else
  `@listSize(assumedSize:)`, else 10; a variable not given takes the default of its definition;
- `@cost(weight:)` on a field replaces the field's own cost;
- a field of an interface or union costs as much as its dearest possible type;
- fields skipped by `@skip`/`@include` cost nothing, aliases each cost in full, and
  introspection (`__schema`, `__type`) costs nothing;
- fields are merged by response key as graphql-core's `collect_fields` does, each fragment
  expanded at most once per selection set: a field selected twice costs once, and a "fragment
  bomb" is costed in linear time. A fragment cycle (an invalid document) is cut where it repeats.

The actual cost applies the same rules to what was returned: a null or absent field costs 0
(a mutation field that ran costs its 10 even so), and a list or connection costs 2 + the items
really returned, so a page of `first: 50` that held 7 shipments costs 2 + 7 x one shipment.

Both come from a `CostPlan` (`schema.cost_plan`), the document compiled once into the few
fields that can cost anything. Clients send the same query text again and again with the same
page sizes, so a plan is cached by the text, the operation and the values of just the variables
it read (slicing arguments, `@skip`/`@include`): a repeated request is priced without walking
its document.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from threading import Lock
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
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    is_abstract_type,
    is_leaf_type,
    value_from_ast_untyped,
)

from schema.cost_plan import FREE, NOTHING, AnyOf, CostPlan, Field, Fields, Selection

DEFAULT_LIST_SIZE = 10
OBJECT_COST = 1
MUTATION_COST = 10
LIST_COST = 2
CONNECTION_FIELDS = frozenset({"edges", "pageInfo"})  # free on a connection
EDGE_FIELDS = frozenset({"node", "cursor"})  # free on an edge
SLICING_ARGUMENTS = ("first", "last")
_ABSENT: Any = object()  # a variable not given, which is not the same as one given as null


# -- what the schema says ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """What the schema alone says about one field's cost: the same for every document."""

    definition: GraphQLField
    below: Any  # the named type whose selection is costed; None for a scalar or an enum
    sized: bool  # costs 2 + n x one item: a list or a connection, but not a free `edges`
    own: int
    mutation_own: int  # the same field at the root of a mutation
    list_size: Any  # the field's @listSize, if any


def _rule_of(parent: GraphQLObjectType, name: str) -> _Rule | None:
    definition = None if name.startswith("__") else parent.fields.get(name)
    if definition is None:
        return None
    directives = _directives(definition)
    inner, is_list = _unwrap(definition.type)
    leaf = is_leaf_type(inner)
    free = (name in CONNECTION_FIELDS and _is_connection(parent)) or (name in EDGE_FIELDS and _is_edge(parent))
    if (weight := directives.get("Cost")) is not None:
        own = mutation_own = int(float(weight.weight))
    else:
        own, mutation_own = (0 if free or leaf else OBJECT_COST), (0 if free else MUTATION_COST)
    sized = not free and (is_list or _is_connection(inner))
    return _Rule(definition, None if leaf else inner, sized, own, mutation_own, directives.get("ListSize"))


# -- the calculator ---------------------------------------------------------------------------


class _LRU:
    """A bounded mapping that forgets the least recently used key; locked, as sync views run in threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)


class CostCalculator:
    """Built once per schema; `plan` compiles an operation for costing, cached when given its text as `key`."""

    def __init__(self, schema: GraphQLSchema, *, cache_size: int = 1024) -> None:
        self.schema = schema
        self._plans = _LRU(cache_size)  # (text, operation, variable names, their values) -> CostPlan
        self._reads = _LRU(cache_size)  # (text, operation) -> the variable names its plans read
        self._rules: dict[tuple[str, str], _Rule] = {}  # (type, field): only fields the schema has

    def plan(
        self,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        key: str | None = None,
    ) -> CostPlan:
        """The operation's cost plan; `key`, the document's text, caches it."""
        variables = variables or {}
        if key is None:
            return self._compile(document, variables, operation_name)[0]
        return self._cached(document, variables, operation_name, key)

    def requested_cost(
        self, document: DocumentNode, variables: Mapping[str, Any] | None = None, operation_name: str | None = None
    ) -> int:
        return self.plan(document, variables, operation_name).requested

    def _cached(
        self, document: DocumentNode, variables: Mapping[str, Any], operation_name: str | None, key: str
    ) -> CostPlan:
        # By digest: a key holding the text itself would keep up to 1,024 request bodies alive.
        text = (hashlib.sha256(key.encode()).digest(), operation_name)
        names: tuple[str, ...] = self._reads.get(text) or ()
        try:
            found = self._plans.get((*text, names, _values(variables, names)))
        except TypeError:  # an unhashable variable value: priced without the cache
            found = None
        if found is not None:
            return found
        plan, read = self._compile(document, variables, operation_name)
        # The names only grow, so a text's key settles even when skipped fields read other variables.
        names = tuple(sorted(read.union(names)))
        with suppress(TypeError):
            self._plans.put((*text, names, _values(variables, names)), plan)
            self._reads.put(text, names)
        return plan

    def _rule(self, parent: GraphQLObjectType, name: str) -> _Rule | None:
        found = self._rules.get((parent.name, name))
        if found is None and (found := _rule_of(parent, name)) is not None:
            self._rules[parent.name, name] = found
        return found

    def _compile(
        self, document: DocumentNode, variables: Mapping[str, Any], operation_name: str | None
    ) -> tuple[CostPlan, set[str]]:
        operation = _operation(document, operation_name)
        root = self.schema.get_root_type(operation.operation) if operation is not None else None
        if operation is None or root is None:
            return FREE, set()
        compiler = _Compiler(self, document, operation, variables)
        mutation = operation.operation is OperationType.MUTATION
        selection = compiler.object_selection(root, (operation.selection_set,), mutation=mutation)
        return CostPlan(selection.requested, selection), compiler.read


# -- compiling a document ---------------------------------------------------------------------


class _Compiler:
    """One walk over a document for one set of variable values, noting which variables it read."""

    def __init__(
        self,
        calculator: CostCalculator,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = calculator.schema
        self.rule = calculator._rule
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.variables = {**_defaults(operation), **variables}
        self.read: set[str] = set()
        # A type's selection depends only on the selection sets merged into it: compiled once, and
        # a key met again inside its own compilation is a fragment cycle.
        self._done: dict[tuple[str, tuple[int, ...]], Fields] = {}
        self._active: set[tuple[str, tuple[int, ...]]] = set()

    def selection(self, type_: Any, selection_sets: tuple[SelectionSetNode, ...]) -> Selection:
        if not is_abstract_type(type_):
            return self.object_selection(type_, selection_sets)
        compiled = (self.object_selection(t, selection_sets) for t in self.schema.get_possible_types(type_))
        options = tuple(option for option in dict.fromkeys(compiled) if option is not NOTHING)
        if len(options) <= 1:
            return options[0] if options else NOTHING
        return AnyOf(options, max(option.requested for option in options))

    def object_selection(
        self, type_: GraphQLObjectType, selection_sets: tuple[SelectionSetNode, ...], *, mutation: bool = False
    ) -> Fields:
        key = (type_.name, tuple(map(id, selection_sets)))
        if (done := self._done.get(key)) is not None:
            return done
        if key in self._active:
            return NOTHING
        self._active.add(key)
        fields = tuple(
            planned
            for response_key, nodes in self._collect(type_, selection_sets).items()
            if (planned := self._field(type_, response_key, nodes, mutation)) is not None
        )
        self._active.discard(key)
        compiled = Fields(fields, sum(planned.requested for planned in fields)) if fields else NOTHING
        self._done[key] = compiled
        return compiled

    def _collect(self, type_: GraphQLObjectType, selection_sets: tuple[SelectionSetNode, ...]) -> dict[str, list[Any]]:
        """The field nodes selected on `type_` by response key; one visited set, as graphql-core's."""
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect_into(type_, selection_set, fields, visited)
        return fields

    def _collect_into(
        self, type_: GraphQLObjectType, selection_set: SelectionSetNode, fields: dict[str, list[Any]], visited: set[str]
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                response_key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(response_key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, type_):
                    self._collect_into(type_, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None or fragment.name.value in visited:
                    continue
                if self._applies(fragment.type_condition, type_):
                    visited.add(fragment.name.value)
                    self._collect_into(type_, fragment.selection_set, fields, visited)

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode], mutation: bool) -> Field | None:
        """The plan of one response key, or None when it can cost nothing (a scalar, `__typename`)."""
        rule = self.rule(parent, nodes[0].name.value)
        if rule is None:
            return None
        below: Selection = NOTHING
        if rule.below is not None:
            below = self.selection(rule.below, tuple(node.selection_set for node in nodes if node.selection_set))
        if rule.sized:
            return Field(key, LIST_COST, self._size(rule, nodes[0]), below, mutation)
        own = rule.mutation_own if mutation else rule.own
        if own == 0 and below is NOTHING:
            return None
        return Field(key, own, 1, below, mutation)

    def _size(self, rule: _Rule, node: FieldNode) -> int:
        names = tuple(getattr(rule.list_size, "slicing_arguments", None) or ()) or SLICING_ARGUMENTS
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        sizes = []
        for name in names:
            value = self._value(given[name]) if name in given else _ABSENT
            if value is _ABSENT and name in rule.definition.args:  # not given, or given a variable that was not
                value = rule.definition.args[name].default_value
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                sizes.append(value)
        if sizes:
            return max(sizes)
        assumed = getattr(rule.list_size, "assumed_size", None)
        return assumed if isinstance(assumed, int) else DEFAULT_LIST_SIZE

    def _value(self, value_node: Any) -> Any:
        self.read.update(_variable_names(value_node))
        if isinstance(value_node, VariableNode):
            return self.variables.get(value_node.name.value, _ABSENT)
        return value_from_ast_untyped(value_node, self.variables)

    def _included(self, selection: Any) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
            value = self._value(condition) if condition is not None else _ABSENT
            value = value is not _ABSENT and bool(value)
            if (name == "skip" and value) or (name == "include" and not value):
                return False
        return True

    def _applies(self, type_condition: Any, parent: GraphQLObjectType) -> bool:
        if type_condition is None:
            return True
        condition = self.schema.get_type(type_condition.name.value)
        if condition is None:
            return False
        if condition is parent:
            return True
        return is_abstract_type(condition) and self.schema.is_sub_type(condition, parent)  # type: ignore[arg-type]


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _values(variables: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple([variables.get(name, _ABSENT) for name in names])


def _defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    return {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }


def _variable_names(value_node: Any) -> list[str]:
    if isinstance(value_node, VariableNode):
        return [value_node.name.value]
    if isinstance(value_node, ListValueNode):
        return [name for value in value_node.values for name in _variable_names(value)]
    if isinstance(value_node, ObjectValueNode):
        return [name for field in value_node.fields for name in _variable_names(field.value)]
    return []


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


__all__ = ["DEFAULT_LIST_SIZE", "CostCalculator", "CostPlan"]
