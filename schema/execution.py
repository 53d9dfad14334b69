"""Execution that answers most of a large response without graphql-core's per-field path.

graphql-core executes every field of a response the same general way: it builds a resolve
info, looks for arguments, calls the resolver through Strawberry's wrapper, checks for an
awaitable and walks its completion logic. On a page of fifty shipments with their
customer, driver, vehicle and last five events that is about 950 fields, and it was most
of the request's time. Two shorter paths take their place where they give the same answer:

- **Planned selections.** Below the root, a selection set whose fields are all plain
  attributes, `__typename`, methods of the object that need nothing else (a computed `id`),
  or relations already loaded by the resolver above (`schema.prefetched`) is compiled into a
  plan: a generated function (`schema.plan_code`) that turns each object, and the objects
  under it, straight into the response's dictionaries. Plans are kept across requests
  (`schema.plan_cache`), so the same query is compiled once, not once per request.
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
from inspect import isawaitable
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.plan_cache import selection_plans
from schema.plan_code import (
    ITSELF,
    Completion,
    ObjectPlan,
    Read,
    Step,
    Unplanned,
    attribute,
    closure_plan,
    generated_plan,
    leaf,
    list_of,
    non_null,
    object_of,
)
from schema.prefetched import PREFETCHED, prefetch_key

# (resolve, coerce, non_null) for each leaf field that can take the short path
Plan = tuple[Any, Any, bool]

_STRAWBERRY_FIELD = "strawberry-definition"  # where Strawberry keeps a GraphQL field's own definition


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
        self._shared_plans = selection_plans(self.schema)

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

    # Compiling plans: found in the schema's shared plans, or made and kept there.

    def _selection_plan(self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> ObjectPlan | None:
        assert self._selection_plans is not None
        key = (object_type, id(grouped_field_set))
        known = self._selection_plans.get(key)
        if known is None:
            plan = self._shared_plans.find(object_type, grouped_field_set, self)
            known = self._selection_plans[key] = (grouped_field_set, plan)
        return known[1]

    def compile_selection(
        self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet, *, generate: bool
    ) -> ObjectPlan | None:
        """The plan of one selection, as closures or as generated code, or None when some field
        needs graphql-core's path."""
        steps: list[Step] = []
        for response_key, field_details_list in grouped_field_set.items():
            step = self._compile_field(object_type, field_details_list)
            if step is None:
                return None
            steps.append((response_key, *step))
        return generated_plan(steps) if generate else closure_plan(steps)

    def _compile_field(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[Read, Completion] | None:
        """How the field's value is read from its object, and how that value is completed."""
        if any(details.defer_usage or details.fragment_variable_values for details in field_details_list):
            return None
        node = field_details_list[0].node
        name = node.name.value
        if name == "__typename":
            type_name = object_type.name
            return Read(lambda _source: type_name, repr(type_name)), ITSELF
        field = object_type.fields.get(name)
        definition = field.extensions.get(_STRAWBERRY_FIELD) if field is not None else None
        if field is None or definition is None or definition.extensions:  # meta fields, permission checks
            return None
        read: Read
        if definition.is_basic_field and getattr(field.resolve, "_is_default", False):
            if definition.default_resolver is getattr:
                read = Read(attrgetter(definition.python_name), attribute(definition.python_name))
            else:
                read = Read(_default(field))
        elif is_leaf_type(get_named_type(field.type)) and (method := _plain_method(definition)) is not None:
            read = Read(method)
        elif definition.base_resolver is not None and _keeps_prefetched(object_type):
            try:
                arguments = get_argument_values(field, node, self.variable_values)
            except Exception:  # a bad argument: the resolver's path reports it
                return None
            read = Read(_prefetched(prefetch_key(name, arguments)))
        else:
            return None
        completion = self._compile_completion(field.type, field_details_list)
        return (read, completion) if completion is not None else None

    def _compile_completion(
        self, return_type: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> Completion | None:
        if isinstance(return_type, GraphQLNonNull):
            if is_leaf_type(return_type.of_type):  # the commonest field: one step, not two
                return leaf(return_type.of_type, non_null=True)  # type: ignore[arg-type]
            inner = self._compile_completion(return_type.of_type, field_details_list)
            return non_null(inner) if inner is not None else None
        if isinstance(return_type, GraphQLList):
            inner = self._compile_completion(return_type.of_type, field_details_list)
            return list_of(inner) if inner is not None else None
        if is_leaf_type(return_type):
            return leaf(return_type)  # type: ignore[arg-type]
        if isinstance(return_type, GraphQLObjectType):
            collected = self.collect_subfields(return_type, field_details_list)
            if collected.new_defer_usages or collected.forbidden_directive_instances:
                return None
            plan = self._selection_plan(return_type, collected.grouped_field_set)
            return object_of(return_type, plan) if plan is not None else None
        return None  # interfaces and unions: graphql-core resolves the runtime type


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


def leaf_plans(schema: GraphQLSchema) -> dict[int, Plan]:
    """The plans of a schema, made on first use and kept on the schema itself: its fields
    live as long as it does, so their ids stay theirs."""
    plans = getattr(schema, "_tenantql_leaf_plans", None)
    if plans is None:
        plans = plans_for(schema)
        schema._tenantql_leaf_plans = plans  # type: ignore[attr-defined]
    return plans


__all__ = ["PlannedExecutionContext", "Unplanned", "leaf_plans", "plans_for"]
