"""Selection plans kept across requests, so a request only looks its plans up.

A plan (`schema.execution`) is generated code, and generating it costs more than running
it once. What it depends on is fixed by its selection, which comes from the parsed
document (cached per text and per hash by `schema.extensions`, so the same query brings
back the very same AST nodes), and by the variables read below it: `@include`/`@skip` on
nested fields and the arguments of relations loaded ahead. So a plan is found again by its
object type and the identities of its field nodes, then by the values of the variables
used anywhere beneath those nodes. Q2, whose only variable (`$first`) sits on the root
field, has one plan for every request, whatever tenant sends it.

Each entry holds its nodes, so their ids cannot be reused by another document while the
entry exists. Entries are bounded (oldest out first); a variable value that cannot be
hashed (a list, an input object) gets a plan made for that request alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import FragmentSpreadNode, GraphQLObjectType, GraphQLSchema, Node, VariableNode
from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet
from graphql.execution.values import VariableValues
from graphql.language.visitor import QUERY_DOCUMENT_KEYS

from schema.plan_code import ObjectPlan


class Compiler(Protocol):
    """What the plans are made by: the execution context of the request that first needs one."""

    fragments: dict[str, FragmentDetails]
    variable_values: VariableValues

    def compile_selection(
        self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet, *, generate: bool
    ) -> ObjectPlan | None: ...


_NOT_GIVEN = object()  # a variable left out, whose argument takes its default: not the same as null


@dataclass(slots=True)
class _Selection:
    nodes: tuple[Node, ...]  # held so that the ids in the key stay theirs
    variables: tuple[str, ...] | None = None  # the names of the variables read beneath them, once seen again
    plans: dict[tuple[Any, ...], ObjectPlan | None] = field(default_factory=dict)  # by those variables' values


class SelectionPlans:
    """One schema's plans. Usage: `plans.find(object_type, grouped_field_set, context)`."""

    max_selections = 2_000
    max_variants = 32  # plans per selection, one per combination of its variables' values

    def __init__(self) -> None:
        self._selections: dict[tuple[Any, ...], _Selection] = {}

    def __len__(self) -> int:
        return len(self._selections)

    def find(
        self, object_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet, compiler: Compiler
    ) -> ObjectPlan | None:
        """The selection's plan (None: it has none), made by `compiler` if it is not kept yet."""
        nodes = tuple(details.node for details_list in grouped_field_set.values() for details in details_list)
        key = (object_type, *grouped_field_set, *map(id, nodes))
        selection = self._selections.get(key)
        if selection is None:  # seen for the first time: a plan of closures, cheap to make, and kept for no one
            if len(self._selections) >= self.max_selections:
                del self._selections[next(iter(self._selections))]
            self._selections[key] = _Selection(nodes)
            return compiler.compile_selection(object_type, grouped_field_set, generate=False)
        if selection.variables is None:  # seen again: worth keeping
            selection.variables = variables_in(nodes, compiler.fragments)
        given = compiler.variable_values.coerced
        values = tuple(given.get(name, _NOT_GIVEN) for name in selection.variables)
        try:
            plan = selection.plans[values]
        except TypeError:  # a value without a hash: a plan for this request only
            return compiler.compile_selection(object_type, grouped_field_set, generate=False)
        except KeyError:
            if len(selection.plans) >= self.max_variants:
                selection.plans.clear()
            plan = selection.plans[values] = compiler.compile_selection(object_type, grouped_field_set, generate=True)
        return plan


def variables_in(nodes: Iterable[Node], fragments: dict[str, FragmentDetails]) -> tuple[str, ...]:
    """The names of the variables used in the nodes or anywhere beneath them, fragments included."""
    names: set[str] = set()
    spread: set[str] = set()
    pending = list(nodes)
    while pending:
        node = pending.pop()
        if isinstance(node, VariableNode):
            names.add(node.name.value)
            continue
        if isinstance(node, FragmentSpreadNode) and node.name.value not in spread:
            spread.add(node.name.value)
            if (fragment := fragments.get(node.name.value)) is not None:
                pending.append(fragment.definition)
        for key in QUERY_DOCUMENT_KEYS.get(node.kind, ()):
            child = getattr(node, key, None)
            if isinstance(child, Node):
                pending.append(child)
            elif isinstance(child, tuple | list):
                pending.extend(item for item in child if isinstance(item, Node))
    return tuple(sorted(names))


def selection_plans(schema: GraphQLSchema) -> SelectionPlans:
    """The schema's plans, kept on the schema itself: its types live as long as it does."""
    plans = getattr(schema, "_tenantql_selection_plans", None)
    if plans is None:
        plans = SelectionPlans()
        schema._tenantql_selection_plans = plans  # type: ignore[attr-defined]
    return plans


__all__ = ["Compiler", "SelectionPlans", "selection_plans", "variables_in"]
