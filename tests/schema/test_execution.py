"""The planned selections and the short path for scalar fields give exactly the results and
errors of graphql-core's own path, and they are taken where they apply."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from schema.execution import PlannedExecutionContext, plans_for


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Thing:
    name: str
    nickname: str | None
    count: int
    when: datetime
    colour: Colour
    missing: str  # holds None although declared non-null: must raise the usual error
    wrong: int  # holds a string: must raise the usual serialization error

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        return [
            Thing(name="a", nickname=None, count=1, when=when, colour=Colour.RED, missing="ok", wrong=2),
            Thing(name="b", nickname="bee", count=2, when=when, colour=Colour.RED, missing=None, wrong="x"),  # type: ignore[arg-type]
        ]


QUERIES = [
    "{ things { name nickname count when colour } }",
    "{ things { name missing } }",
    "{ things { name wrong } }",
    "{ things { n: name shout(times: 2) __typename } }",
    "query ($skip: Boolean!) { things { name @skip(if: $skip) count } }",
]


def result_of(context_class: Any, query: str) -> dict[str, Any]:
    schema = strawberry.Schema(query=Query, execution_context_class=context_class)
    result = schema.execute_sync(query, variable_values={"skip": True})
    return {"data": result.data, "errors": [error.formatted for error in result.errors or []]}


@pytest.mark.parametrize("query", QUERIES)
def test_the_short_path_answers_like_the_full_one(query):
    assert result_of(PlannedExecutionContext, query) == result_of(None, query)


def test_only_plain_scalar_fields_take_the_short_path():
    schema = strawberry.Schema(query=Query)
    thing = schema._schema.type_map["Thing"]
    planned = {name for name, field in thing.fields.items() if id(field) in plans_for(schema._schema)}
    assert planned == {"name", "nickname", "count", "when", "colour", "missing", "wrong"}


class Watch(SchemaExtension):
    seen: ClassVar[list[str]] = []

    def resolve(self, _next, root, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        Watch.seen.append(info.field_name)
        return _next(root, info, *args, **kwargs)


def test_an_extension_that_wraps_fields_still_sees_every_field():
    Watch.seen = []
    schema = strawberry.Schema(query=Query, extensions=[Watch], execution_context_class=PlannedExecutionContext)
    assert schema.execute_sync("{ things { name count } }").errors is None
    assert Watch.seen.count("name") == 2 and Watch.seen.count("count") == 2
