"""Planned selections answer exactly as graphql-core does, and skip its per-field path where they apply.

Each query runs over the same objects through Strawberry's own execution context and through
`PlannedExecutionContext`, three times: a selection seen for the first time is answered by a
plan of closures, and seen again by generated code (`schema.plan_code`). Documents are
parsed once per text, as the server's document cache does, so the same nodes come back.
Data and errors (messages, paths, locations) must match every time. A counting subclass
shows which fields still went through `execute_field`.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache

from schema.execution import PlannedExecutionContext
from schema.prefetched import prefetch_key


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Tag:
    label: str

    @strawberry.field
    def shout(self) -> str:  # a plain method: the plan calls it with the object alone
        return self.label.upper()


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Person(Named):
    email: str | None


@strawberry.type
class Parcel:
    code: str
    colour: Colour | None
    weight: float
    tags: list[Tag]
    prefetched: strawberry.Private[dict[Any, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field
    def sender(self) -> Person | None:
        if "sender" in self.prefetched:
            return self.prefetched["sender"]
        return self._load_sender()  # type: ignore[return-value]  # awaited by graphql-core

    async def _load_sender(self) -> Person | None:
        LOADS.append(self.code)
        return Person(name=f"loaded for {self.code}", email=None)

    @strawberry.field
    def history(self, last: int = 2) -> list[Tag]:
        if (key := prefetch_key("history", {"last": last})) in self.prefetched:
            return self.prefetched[key]
        return [Tag(label=f"{self.code} loaded {index}") for index in range(last)]

    @strawberry.field
    def owner(self) -> Named:  # an interface: graphql-core picks the runtime type
        return Person(name="owner", email="owner@example.com")


def prefetched_parcel(code: str, colour: Colour | None = Colour.RED) -> Parcel:
    parcel = Parcel(code=code, colour=colour, weight=1.5, tags=[Tag(label="a"), Tag(label="b")])
    parcel.prefetched["sender"] = Person(name=f"sender of {code}", email=f"{code}@example.com")
    parcel.prefetched[prefetch_key("history", {"last": 2})] = [Tag(label=f"{code} early"), Tag(label=f"{code} late")]
    return parcel


def broken_parcel() -> Parcel:
    parcel = prefetched_parcel("broken")
    parcel.tags = [Tag(label="fine"), Tag(label=None)]  # type: ignore[arg-type]  # a null in a non-null field
    return parcel


class Sender(Person):
    """Not decorated: a Person to GraphQL, but not of the class the generated check looks for."""


def odd_parcel() -> Parcel:
    parcel = prefetched_parcel("odd")
    parcel.prefetched["sender"] = Sender(name="subclassed", email=None)
    parcel.tags = (Tag(label=5), Tag(label="b"))  # type: ignore[assignment,arg-type]  # a tuple; a number for a String
    parcel.colour = "red"  # type: ignore[assignment]  # the value, not the member
    return parcel


def cast_parcel() -> Parcel:
    parcel = prefetched_parcel("cast")
    parcel.prefetched["sender"] = strawberry.cast(Tag, Person(name="cast away", email=None))
    return parcel


PARCELS: dict[str, Any] = {}
LOADS: list[str] = []  # senders loaded on demand


@strawberry.type
class Query:
    @strawberry.field
    def parcels(self, kind: str = "prefetched") -> list[Parcel]:
        return PARCELS[kind]()


PARCELS.update(
    prefetched=lambda: [prefetched_parcel("p1"), prefetched_parcel("p2", colour=None)],
    mixed=lambda: [prefetched_parcel("p1"), Parcel(code="p2", colour=Colour.BLUE, weight=2.0, tags=[])],
    broken=lambda: [prefetched_parcel("p1"), broken_parcel()],
    odd=lambda: [prefetched_parcel("p1"), odd_parcel()],
    cast=lambda: [prefetched_parcel("p1"), cast_parcel()],
)


class Counting(PlannedExecutionContext):
    """Records the fields that went through graphql-core's per-field path."""

    fields: list[str] = []  # noqa: RUF012  reset by each test

    def execute_field(self, parent_type, source, field_details_list, path, position_context=None):  # type: ignore[no-untyped-def]
        Counting.fields.append(f"{parent_type.name}.{field_details_list[0].node.name.value}")
        return super().execute_field(parent_type, source, field_details_list, path, position_context)


PLANNED = strawberry.Schema(query=Query, execution_context_class=Counting, extensions=[ParserCache])
STRAWBERRY = strawberry.Schema(query=Query)


async def answer(schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await schema.execute(query, variable_values=variables)
    return {"data": result.data, "errors": [error.formatted for error in result.errors or []]}


async def both(query: str, variables: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The planned answer, checked against graphql-core's on the first sight of the query (closures)
    and on two more (generated code); the fields that took graphql-core's path the last time."""
    expected = await answer(STRAWBERRY, query, variables)
    for _ in range(3):
        Counting.fields = []
        planned = await answer(PLANNED, query, variables)
        assert planned == expected
    return planned, Counting.fields


def generated_plans() -> list[Any]:
    """The plans the planned schema keeps that are generated code rather than closures."""
    kept = PLANNED._schema._tenantql_selection_plans._selections.values()  # type: ignore[attr-defined]
    return [plan for selection in kept for plan in selection.plans.values() if plan is not None]


DIRECTIVES = "query ($with: Boolean!) { parcels { code colour @include(if: $with) sender @skip(if: $with) { name } } }"
EVERYTHING = (
    "code colour weight tags { label shout } sender { name ... on Person { email } } history { label } __typename"
)


async def test_a_fully_prefetched_page_takes_no_field_path_below_the_root():
    planned, fields = await both(f"{{ parcels {{ {EVERYTHING} }} }}")
    assert planned["errors"] == [] and len(planned["data"]["parcels"]) == 2
    assert planned["data"]["parcels"][0]["sender"]["email"] == "p1@example.com"
    assert planned["data"]["parcels"][1]["colour"] is None
    assert fields == ["Query.parcels"]


async def test_a_relation_not_loaded_ahead_is_resolved_by_its_resolver():
    LOADS.clear()
    planned, fields = await both(f'{{ parcels(kind: "mixed") {{ {EVERYTHING} }} }}')
    assert LOADS == ["p2"] * 4  # once by each run: the plan never started a load of its own
    assert planned["data"]["parcels"][1]["sender"] == {"name": "loaded for p2", "email": None}
    assert planned["data"]["parcels"][1]["history"] == [{"label": "p2 loaded 0"}, {"label": "p2 loaded 1"}]
    assert "Parcel.sender" in fields  # the second parcel went the general way
    assert fields.count("Parcel.code") == 1  # the first did not


async def test_a_null_in_a_non_null_field_gives_graphql_cores_error_and_path():
    planned, _ = await both('{ parcels(kind: "broken") { code tags { label } } }')
    assert planned["data"] is None  # every level is non-null, so the null reaches the root
    [error] = planned["errors"]
    assert error["path"] == ["parcels", 1, "tags", 1, "label"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ parcels { c: code code x: colour tags { l: label label } } }", None),
        (DIRECTIVES, {"with": True}),
        (DIRECTIVES, {"with": False}),
        ("{ parcels { ...Parts ... on Parcel { weight } } } fragment Parts on Parcel { code tags { label } }", None),
        ("query ($last: Int!) { parcels { history(last: $last) { label } } }", {"last": 2}),
        ("query ($last: Int!) { parcels { history(last: $last) { label } } }", {"last": 3}),
        ("{ parcels { owner { name __typename ... on Person { email } } } }", None),
        ("{ parcels { sender { __typename name } history(last: 1) { label } } }", None),
    ],
)
async def test_aliases_directives_fragments_arguments_and_interfaces_answer_alike(query, variables):
    planned, _ = await both(query, variables)
    assert planned["errors"] == []


async def test_a_prefetched_page_of_another_size_is_not_used():
    planned, fields = await both("{ parcels { history(last: 3) { label } } }")
    assert planned["data"]["parcels"][0]["history"][0] == {"label": "p1 loaded 0"}
    assert "Parcel.history" in fields


async def test_a_query_seen_again_is_answered_by_generated_code():
    before = generated_plans()
    _, fields = await both("{ parcels { weight code tags { shout label } } }")
    made = [plan for plan in generated_plans() if plan not in before]
    assert len(made) == 2  # Parcel's selection and Tag's, nested in it
    assert all(plan.__code__.co_filename == "<string>" for plan in made)
    assert fields == ["Query.parcels"]


async def test_values_the_fast_paths_do_not_take_are_answered_alike():
    planned, _ = await both('{ parcels(kind: "odd") { colour tags { label } sender { name __typename } } }')
    odd = planned["data"]["parcels"][1]
    assert odd["tags"] == [{"label": "5"}, {"label": "b"}] and odd["sender"]["name"] == "subclassed"
    planned, _ = await both('{ parcels(kind: "cast") { code sender { name } } }')
    assert planned["errors"]  # an object cast to another type is refused by graphql-core, and so by the plan


async def test_a_kept_plan_answers_only_the_variables_it_was_made_for():
    """Variables beneath a selection (a nested @include, a relation's argument) choose its plan."""
    nested = "query ($with: Boolean!) { parcels { code sender { name email @include(if: $with) } } }"
    for value in (True, False, True, False):
        planned, _ = await both(nested, {"with": value})
        assert ("email" in planned["data"]["parcels"][0]["sender"]) is value
    history = "query ($last: Int) { parcels { history(last: $last) { label } } }"
    for variables, first_label in [
        ({"last": 2}, "p1 early"),  # loaded ahead
        ({"last": 3}, "p1 loaded 0"),  # not: the resolver answers
        ({}, "p1 early"),  # left out: the argument's default, 2
        ({"last": 3}, "p1 loaded 0"),
        ({"last": 2}, "p1 early"),
    ]:
        planned, _ = await both(history, variables)
        assert planned["data"]["parcels"][0]["history"][0]["label"] == first_label
