"""Execution that answers most of a large response without graphql-core's per-field path.

graphql-core executes every field of a response the same general way: it builds a resolve
info, looks for arguments, calls the resolver through Strawberry's wrapper, checks for an
awaitable and walks its completion logic. On a page of fifty shipments with their
customer, driver, vehicle and last five events that is about 950 fields, and it was most
of the request's time. Two shorter paths take their place where they give the same answer:

- **Planned selections.** Below the root, a selection set whose fields are all plain
  attributes, `__typename`, methods of the object that need nothing else (a computed `id`),
  or relations already loaded by the resolver above (`schema.prefetched`) is compiled once
  per request into a small plan, which then turns each object, and the objects under it,
  straight into the response's dictionaries.
  Whatever the plan meets that it does not expect (a relation not loaded ahead, a null in a
  non-null field, a value that will not serialize, an object of another type) abandons it
  for that object, and graphql-core's own path answers instead, with its exact results and
  errors. The plan only reads, so answering again costs time, never correctness.
- **Plain scalar fields.** In objects the plans do not cover, a field with no arguments,
  Strawberry's default resolver and a leaf type is read and serialized directly.

Both are off when an extension wraps fields (a `resolve` hook): it must see every field.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import EnumMeta
from inspect import isawaitable
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    get_named_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.prefetched import PREFETCHED, prefetch_key

# (resolve, coerce, non_null) for each leaf field that can take the short path
Plan = tuple[Any, Any, bool]
# Turns one value into its part of the response, or raises Unplanned.
Completion = Callable[[Any], Any]
ObjectPlan = Callable[[Any], dict[str, Any]]

_STRAWBERRY_FIELD = "strawberry-definition"  # where Strawberry keeps a GraphQL field's own definition


class Unplanned(Exception):
    """The planned path met something only graphql-core's path can answer properly."""


def plans_for(schema: GraphQLSchema) -> dict[int, Plan]:
    """The short path's plan per field, keyed by the field's identity; made once per schema."""
    plans: dict[int, Plan] = {}
    for named_type in schema.type_map.values():
        if not isinstance(named_type, GraphQLObjectType) or named_type.name.startswith("__"):
            continue
        for field in named_type.fields.values():
            if plan := _plan(field):
                plans[id(field)] = plan
    return plans


def _plan(field: GraphQLField) -> Plan | None:
    if field.args or not getattr(field.resolve, "_is_default", False):
        return None
    non_null = isinstance(field.type, GraphQLNonNull)
    leaf = field.type.of_type if non_null else field.type
    if not is_leaf_type(leaf):
        return None
    return field.resolve, leaf.coerce_output_value, non_null


class PlannedExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Usage: `TenantQLSchema(..., execution_context_class=PlannedExecutionContext)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Decided once per operation: an extension that wraps fields must see every one of them.
        wrapped = self.middleware_manager is not None and bool(self.middleware_manager.middlewares)
        self._leaf_plans = {} if wrapped else leaf_plans(self.schema)
        # Per (object type, grouped field set): the set is kept alive with its plan, so its id stays its own.
        self._selection_plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, ObjectPlan | None]] | None
        self._selection_plans = None if wrapped else {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if path is not None and self._selection_plans is not None:  # below the root
            plan = self._selection_plan(parent_type, grouped_field_set)
            if plan is not None:
                try:
                    return plan(source_value)
                except Exception:  # graphql-core's path below answers it, errors and all
                    pass
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any = None,
    ) -> Any:
        node = field_details_list[0].node
        field_def = parent_type.fields.get(node.name.value)
        plan = self._leaf_plans.get(id(field_def)) if field_def is not None and not node.arguments else None
        if plan is not None:
            resolve, coerce, non_null = plan
            try:
                value = resolve(source, None)
                if value is not None:
                    coerced = coerce(value)
                    if coerced is not Undefined and coerced is not None:
                        return coerced
                elif not non_null:
                    return None
            except Exception:  # the full path below reports it properly
                pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    # Compiling plans. Each is made at most once per request, on first use.

    def _selection_plan(self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> ObjectPlan | None:
        assert self._selection_plans is not None
        key = (object_type, id(grouped_field_set))
        known = self._selection_plans.get(key)
        if known is None:
            plan = self._compile_selection(object_type, grouped_field_set)
            known = self._selection_plans[key] = (grouped_field_set, plan)
        return known[1]

    def _compile_selection(
        self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> ObjectPlan | None:
        steps: list[tuple[str, Callable[[Any], Any], Completion]] = []
        for response_key, field_details_list in grouped_field_set.items():
            step = self._compile_field(object_type, field_details_list)
            if step is None:
                return None
            steps.append((response_key, *step))

        def plan(source: Any) -> dict[str, Any]:
            return {response_key: complete(read(source)) for response_key, read, complete in steps}

        return plan

    def _compile_field(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[Callable[[Any], Any], Completion] | None:
        if any(details.defer_usage or details.fragment_variable_values for details in field_details_list):
            return None
        node = field_details_list[0].node
        name = node.name.value
        if name == "__typename":
            type_name = object_type.name
            return (lambda _source: type_name), _itself
        field = object_type.fields.get(name)
        definition = field.extensions.get(_STRAWBERRY_FIELD) if field is not None else None
        if field is None or definition is None or definition.extensions:  # meta fields, permission checks
            return None
        read: Callable[[Any], Any]
        if definition.is_basic_field and getattr(field.resolve, "_is_default", False):
            read = attrgetter(definition.python_name) if definition.default_resolver is getattr else _default(field)
        elif is_leaf_type(get_named_type(field.type)) and (method := _plain_method(definition)) is not None:
            read = method
        elif definition.base_resolver is not None and _keeps_prefetched(object_type):
            try:
                arguments = get_argument_values(field, node, self.variable_values)
            except Exception:  # a bad argument: the resolver's path reports it
                return None
            read = _prefetched(prefetch_key(name, arguments))
        else:
            return None
        complete = self._compile_completion(field.type, field_details_list)
        return (read, complete) if complete is not None else None

    def _compile_completion(
        self, return_type: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> Completion | None:
        if isinstance(return_type, GraphQLNonNull):
            if is_leaf_type(return_type.of_type):  # the commonest field: one step, not two
                return _leaf(return_type.of_type, non_null=True)  # type: ignore[arg-type]
            inner = self._compile_completion(return_type.of_type, field_details_list)
            return _non_null(inner) if inner is not None else None
        if isinstance(return_type, GraphQLList):
            inner = self._compile_completion(return_type.of_type, field_details_list)
            return _list_of(inner) if inner is not None else None
        if is_leaf_type(return_type):
            return _leaf(return_type)  # type: ignore[arg-type]
        if isinstance(return_type, GraphQLObjectType):
            collected = self.collect_subfields(return_type, field_details_list)
            if collected.new_defer_usages or collected.forbidden_directive_instances:
                return None
            plan = self._selection_plan(return_type, collected.grouped_field_set)
            return _object(return_type, plan) if plan is not None else None
        return None  # interfaces and unions: graphql-core resolves the runtime type


def _itself(value: Any) -> Any:
    return value


def _default(field: GraphQLField) -> Callable[[Any], Any]:
    resolve = field.resolve
    assert resolve is not None
    return lambda source: resolve(source, None)


def _plain_method(definition: Any) -> Callable[[Any], Any] | None:
    """A scalar computed by a plain method of its object (`def id(self) -> ID`): no arguments,
    no info, not async. Strawberry would call it with the object alone, and so can the plan.
    Relations are never read this way (a method may start a load); they need `prefetched`."""
    resolver = definition.base_resolver
    if resolver is None or resolver.is_async or resolver.self_parameter is None:
        return None
    if len(resolver.signature.parameters) != 1 or not callable(resolver.wrapped_func):
        return None
    method = resolver.wrapped_func

    def read(source: Any) -> Any:
        value = method(source)
        if isawaitable(value):  # declared sync, answered async: graphql-core awaits it
            raise Unplanned
        return value

    return read


def _keeps_prefetched(object_type: GraphQLObjectType) -> bool:
    """Whether the type's objects carry the `prefetched` relations of `schema.prefetched`."""
    definition = object_type.extensions.get(_STRAWBERRY_FIELD)
    origin = getattr(definition, "origin", None)
    return PREFETCHED in getattr(origin, "__dataclass_fields__", {})


def _prefetched(key: Any) -> Callable[[Any], Any]:
    def read(source: Any) -> Any:
        try:
            return getattr(source, PREFETCHED)[key]
        except (AttributeError, KeyError, TypeError):
            raise Unplanned from None  # not loaded ahead: the resolver loads it

    return read


def _non_null(inner: Completion) -> Completion:
    def complete(value: Any) -> Any:
        completed = inner(value)
        if completed is None:
            raise Unplanned  # graphql-core raises the non-null error, at the right path
        return completed

    return complete


def _list_of(inner: Completion) -> Completion:
    def complete(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise Unplanned  # iterables of other kinds, async ones included
        return [inner(item) for item in value]

    return complete


def _leaf(leaf_type: GraphQLLeafType, *, non_null: bool = False) -> Completion:
    coerce = leaf_type.coerce_output_value
    text = leaf_type is GraphQLString or leaf_type is GraphQLID  # a `str` is its own answer
    # Strawberry's enums find a member's name by scanning all values; their answers, made once:
    members = getattr(leaf_type, "wrapped_cls", None)
    names = {member: coerce(member) for member in members} if isinstance(members, EnumMeta) else {}

    def complete(value: Any) -> Any:
        if text and value.__class__ is str:
            return value
        if value is None:
            if non_null:
                raise Unplanned  # graphql-core raises the non-null error, at the right path
            return None
        coerced = names.get(value) if value.__hash__ is not None else None
        if coerced is None:
            coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise Unplanned
        return coerced

    return complete


def _object(object_type: GraphQLObjectType, plan: ObjectPlan) -> Completion:
    is_type_of = object_type.is_type_of

    def complete(value: Any) -> Any:
        if value is None:
            return None
        if is_type_of is not None and is_type_of(value, None) is not True:  # Strawberry's never reads its info
            raise Unplanned
        return plan(value)

    return complete


def leaf_plans(schema: GraphQLSchema) -> dict[int, Plan]:
    """The plans of a schema, made on first use and kept on the schema itself: its fields
    live as long as it does, so their ids stay theirs."""
    plans = getattr(schema, "_tenantql_leaf_plans", None)
    if plans is None:
        plans = plans_for(schema)
        schema._tenantql_leaf_plans = plans  # type: ignore[attr-defined]
    return plans


__all__ = ["PlannedExecutionContext", "Unplanned", "leaf_plans", "plans_for"]
