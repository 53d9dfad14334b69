"""An execution context with a short path for the commonest field: a plain scalar attribute.

Most fields of a large response (`trackingNumber`, `status`, `occurredAt`, …) are read
straight off an object and serialized. graphql-core still builds a resolve info, checks
for arguments and awaitables, and walks its completion logic for each of them, which on a
page of fifty shipments is most of the request's time. For a field with no arguments,
Strawberry's default resolver and a leaf type, this context reads and serializes the value
directly. Anything unusual (a null for a non-null field, a value that will not serialize,
middleware installed by an extension) takes graphql-core's own path, so results and errors
are exactly what they would be without it.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, is_leaf_type
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# (resolve, serialize, non_null) for each leaf field that can take the short path
Plan = tuple[Any, Any, bool]


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
    return field.resolve, leaf.serialize, non_null


class FastLeavesExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Usage: `TenantQLSchema(..., execution_context_class=FastLeavesExecutionContext)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Decided once per operation: an extension that wraps fields must see every one of them.
        wrapped = self.middleware_manager is not None and bool(self.middleware_manager.middlewares)
        self._plans = {} if wrapped else leaf_plans(self.schema)

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
        plan = self._plans.get(id(field_def)) if field_def is not None and not node.arguments else None
        if plan is not None:
            resolve, serialize, non_null = plan
            try:
                value = resolve(source, None)
                if value is not None:
                    serialized = serialize(value)
                    if serialized is not Undefined and serialized is not None:
                        return serialized
                elif not non_null:
                    return None
            except Exception:  # the full path below reports it properly
                pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)


def leaf_plans(schema: GraphQLSchema) -> dict[int, Plan]:
    """The plans of a schema, made on first use and kept on the schema itself: its fields
    live as long as it does, so their ids stay theirs."""
    plans = getattr(schema, "_tenantql_leaf_plans", None)
    if plans is None:
        plans = plans_for(schema)
        schema._tenantql_leaf_plans = plans  # type: ignore[attr-defined]
    return plans


__all__ = ["FastLeavesExecutionContext", "leaf_plans", "plans_for"]
