"""The pieces of a selection plan (`schema.execution`), as exact closures and as generated code.

Each way a value is completed (a leaf, a non-null, a list, an object) comes as a
`Completion`: `complete`, a closure that answers any value exactly as graphql-core would or
raises `Unplanned`, and `inline`, which writes a Python expression for the common case (a
`str` in a String field, a known enum member, a list, an object of its type's own class)
and calls `complete` for everything else. A selection's plan is one generated function
whose body is a dict display of those expressions, the way graphql-jit compiles a query
for JavaScript: on a page of fifty shipments it spends its time reading attributes instead
of calling two closures and unpacking a step per value.

Generated code holds names only: every value it uses (closures, enum names, classes,
nested plans) is bound in the function's namespace, never written into its text, and the
text itself is made only of quoted response keys, identifiers checked with
`str.isidentifier` and the names this module makes.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from enum import EnumMeta
from functools import lru_cache
from typing import Any, NamedTuple

from graphql import GraphQLID, GraphQLLeafType, GraphQLObjectType, GraphQLString
from graphql.pyutils import Undefined
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE

# Turns one value into its part of the response, or raises Unplanned.
Complete = Callable[[Any], Any]
ObjectPlan = Callable[[Any], dict[str, Any]]

_STRAWBERRY_DEFINITION = "strawberry-definition"  # where Strawberry keeps a GraphQL type's own definition


class Unplanned(Exception):
    """The planned path met something only graphql-core's path can answer properly."""


class Code:
    """The namespace of one generated plan: each value it refers to gets a name of its own."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def name(self, value: Any) -> str:
        name = f"_{len(self._values)}"
        self._values[name] = value
        return name

    def plan(self, entries: list[tuple[str, str]]) -> ObjectPlan:
        """`def plan(source): return {key: expression, ...}` for (response key, expression) pairs."""
        body = ", ".join(f"{key!r}: {expression}" for key, expression in entries)
        namespace = dict(self._values)
        exec(f"def plan(source):\n    return {{{body}}}\n", namespace)  # the text made above; values by name
        return namespace["plan"]  # type: ignore[no-any-return]


# (the expression whose value is completed, the closure for what the fast path does not take,
#  the code being written, the nesting depth for the names of locals) → an expression
Inline = Callable[[str, Complete, Code, int], str]


class Completion(NamedTuple):
    complete: Complete
    inline: Inline


class Read(NamedTuple):
    """How a field's value is read from its object: a call, and the same as an expression
    of `source` when it can be written as one (an attribute, a constant)."""

    call: Callable[[Any], Any]
    expression: str | None = None

    def inline(self, code: Code) -> str:
        return self.expression or f"{code.name(self.call)}(source)"


Step = tuple[str, Read, Completion]  # a response key, how its value is read and how it is completed


def closure_plan(steps: list[Step]) -> ObjectPlan:
    """A plan made of the steps' closures: cheap to make, for a selection seen once."""
    calls = [(response_key, read.call, completion.complete) for response_key, read, completion in steps]

    def plan(source: Any) -> dict[str, Any]:
        return {response_key: complete(read(source)) for response_key, read, complete in calls}

    return plan


def generated_plan(steps: list[Step]) -> ObjectPlan:
    """A plan generated as one function: dearer to make, cheaper to run, for a selection seen again."""
    code = Code()
    return code.plan(
        [
            (response_key, completion.inline(read.inline(code), completion.complete, code, 0))
            for response_key, read, completion in steps
        ]
    )


def attribute(python_name: str) -> str | None:
    """`source.<name>` when the name can be written as one; otherwise the read is called."""
    return f"source.{python_name}" if python_name.isidentifier() and not keyword.iskeyword(python_name) else None


def _called(value: str, fallback: Complete, code: Code, depth: int) -> str:
    return f"{code.name(fallback)}({value})"


def _as_is(value: str, fallback: Complete, code: Code, depth: int) -> str:
    return value


ITSELF = Completion(lambda value: value, _as_is)


def non_null(inner: Completion) -> Completion:
    """Every fast path below takes only values that are not None, so the inner one serves as
    it is, with this closure (which raises Unplanned on None) for the rest."""
    inner_complete = inner.complete

    def complete(value: Any) -> Any:
        completed = inner_complete(value)
        if completed is None:
            raise Unplanned  # graphql-core raises the non-null error, at the right path
        return completed

    return Completion(complete, inner.inline)


def list_of(inner: Completion) -> Completion:
    inner_complete = inner.complete

    def complete(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise Unplanned  # iterables of other kinds, async ones included
        return [inner_complete(item) for item in value]

    def inline(value: str, fallback: Complete, code: Code, depth: int) -> str:
        v, i = f"v{depth}", f"i{depth}"
        item = inner.inline(i, inner_complete, code, depth + 1)
        return f"([{item} for {i} in {v}] if ({v} := {value}).__class__ is list else {code.name(fallback)}({v}))"

    return Completion(complete, inline)


@lru_cache(maxsize=512)  # a leaf's completion depends on its type alone, and most fields are leaves
def leaf(leaf_type: GraphQLLeafType, *, non_null: bool = False) -> Completion:
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

    def inline_text(value: str, fallback: Complete, code: Code, depth: int) -> str:
        v = f"v{depth}"
        return f"({v} if ({v} := {value}).__class__ is str else {code.name(fallback)}({v}))"

    def inline_enum(value: str, fallback: Complete, code: Code, depth: int) -> str:
        # A member's name is a non-empty string; anything else (None included) goes to `fallback`.
        v = f"v{depth}"
        return f"({code.name(names)}.get({v} := {value}) or {code.name(fallback)}({v}))"

    return Completion(complete, inline_text if text else inline_enum if names else _called)


def object_of(object_type: GraphQLObjectType, plan: ObjectPlan) -> Completion:
    is_type_of = object_type.is_type_of

    def complete(value: Any) -> Any:
        if value is None:
            return None
        if is_type_of is not None and is_type_of(value, None) is not True:  # Strawberry's never reads its info
            raise Unplanned
        return plan(value)

    def inline(value: str, fallback: Complete, code: Code, depth: int) -> str:
        v = f"v{depth}"
        if is_type_of is None:  # nothing to check: any object is answered by the plan
            test = f"({v} := {value}) is not None"
        elif (own_class := _own_class(object_type)) is not None:  # passes Strawberry's own check
            uncast = f"{TYPE_CAST_ATTRIBUTE!r} not in {v}.__dict__"
            test = f"({v} := {value}).__class__ is {code.name(own_class)} and {uncast}"
        else:
            return _called(value, fallback, code, depth)
        return f"({code.name(plan)}({v}) if {test} else {code.name(fallback)}({v}))"

    return Completion(complete, inline)


def _own_class(object_type: GraphQLObjectType) -> type | None:
    """The class whose objects, uncast, Strawberry's `is_type_of` accepts as this type (it checks
    `isinstance` against the type's own class), or None when that check is another one: a
    type's own `is_type_of`, a generic's specialization, a class without a `__dict__`."""
    definition = object_type.extensions.get(_STRAWBERRY_DEFINITION)
    if definition is None or definition.is_type_of is not None or definition.concrete_of is not None:
        return None
    origin = getattr(definition, "origin", None)
    return origin if isinstance(origin, type) and origin.__dictoffset__ != 0 else None


__all__ = [
    "ITSELF",
    "Code",
    "Complete",
    "Completion",
    "ObjectPlan",
    "Read",
    "Step",
    "Unplanned",
    "attribute",
    "closure_plan",
    "generated_plan",
    "leaf",
    "list_of",
    "non_null",
    "object_of",
]
