"""The requested cost of operations, worked out by hand from the contract's rules."""

from __future__ import annotations

import pytest
import strawberry
from graphql import parse

from schema import build_schema
from schema.cost import CostCalculator
from schema.directives import Cost, ListSize

Q2 = """query Q2($first: Int) { shipments(first: $first) { edges { node {
  trackingNumber status customer { name } driver { name vehicle { plate } } events(last: 5) { status occurredAt }
} } } }"""

SKIPPABLE = (
    "query ($s: Boolean!) { viewer { role } shipments(first: 10) @skip(if: $s) { edges { node { customer { id } } } } }"
)

# (operation, variables, expected requested cost, why)
CASES = [
    ("{ viewer { role } }", {}, 1, "one object"),
    ("{ viewer { role tenant { slug } } }", {}, 2, "object inside object"),
    ("{ shipments { edges { node { trackingNumber } } } }", {}, 2, "first defaults to 20; scalars are free"),
    ("{ shipments(first: 50) { edges { node { customer { name } } } } }", {}, 52, "2 + 50 x 1"),
    (Q2, {"first": 50}, 252, "2 + 50 x (customer 1 + driver 2 + events 2)"),
    (Q2, {"first": 5}, 27, "first from a variable"),
    (Q2, {}, 102, "a variable left unset: the assumed page of 20"),
    (
        "{ shipments(first: 10) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }",
        {},
        2,
        "edges, node, pageInfo and cursor are free",
    ),
    (
        "{ customers(first: 10) { edges { node { name "
        "shipments(first: 5) { edges { node { customer { name } } } } } } } }",
        {},
        72,
        "nested connections multiply: 2 + 10 x (2 + 5 x 1)",
    ),
    (
        "{ shipments(first: 10) { edges { node { ...Parts } } } } fragment Parts on Shipment { customer { name } "
        "driver { name } }",
        {},
        22,
        "a named fragment",
    ),
    (
        "query ($id: ID!) { node(id: $id) { ... on Shipment { customer { name } driver { vehicle { plate } } } "
        "... on Customer { name } } }",
        {"id": "x"},
        4,
        "an interface costs as its dearest type: 1 + 3",
    ),
    (
        SKIPPABLE,
        {"s": True},
        1,
        "@skip(if: true) costs nothing",
    ),
    (
        SKIPPABLE,
        {"s": False},
        13,
        "@skip(if: false) costs in full",
    ),
    (
        "{ shipments(first: 10) { edges { node { customer @include(if: false) { name } driver { name } } } } }",
        {},
        12,
        "@include(if: false) inside a node",
    ),
    (
        "{ a: shipments(first: 5) { edges { node { customer { name } } } } "
        "b: shipments(first: 5) { edges { node { customer { name } } } } }",
        {},
        14,
        "aliases each cost in full",
    ),
    (
        'mutation { createCustomer(input: {name: "x"}) { customer { id } userErrors { message } } }',
        {},
        13,
        "mutation 10 + customer 1 + userErrors list 2",
    ),
    (
        'mutation { createCustomer(input: {name: "x"}) { customer { id } userErrors { message } } '
        'cancelShipment(id: "x") { shipment { status } userErrors { code } } }',
        {},
        26,
        "two mutations",
    ),
    ("{ shipments(first: 2) { edges { node { events { status } } } } }", {}, 6, "events(last:) defaults to 10"),
    ("{ __schema { types { name fields { name } } } }", {}, 0, "introspection is free"),
    ("{ __typename viewer { __typename } }", {}, 1, "__typename is free"),
]


@pytest.fixture(scope="module")
def calculator() -> CostCalculator:
    return CostCalculator(build_schema()._schema)


@pytest.mark.parametrize(("query", "variables", "expected", "why"), CASES, ids=[case[3] for case in CASES])
def test_requested_cost(calculator, query, variables, expected, why):
    assert calculator.requested_cost(parse(query), variables) == expected


@strawberry.type
class Item:
    name: str


@strawberry.type
class Query:
    heavy: int = strawberry.field(default=0, directives=[Cost(weight="5")])
    expensive_item: Item = strawberry.field(default_factory=lambda: Item(name="x"), directives=[Cost(weight="4")])
    items: list[Item] = strawberry.field(default_factory=list, directives=[ListSize(assumed_size=3)])

    @strawberry.field(directives=[ListSize(assumed_size=7, slicing_arguments=["limit"])])
    def page(self, limit: int | None = None) -> list[Item]:
        return []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{ heavy }", 5),
        ("{ expensiveItem { name } }", 4),
        ("{ items { name } }", 2),
        ("{ page { name } }", 2),
        ("{ page(limit: 4) { name } }", 2),
        ("{ heavy expensiveItem { name } items { name } }", 11),
    ],
)
def test_the_cost_directives_override_the_defaults(query, expected):
    assert CostCalculator(strawberry.Schema(query=Query)._schema).requested_cost(parse(query)) == expected


@strawberry.type
class Priced:
    name: str = strawberry.field(directives=[Cost(weight="1")])


@strawberry.type
class Sized:
    @strawberry.field(directives=[ListSize(assumed_size=7, slicing_arguments=["limit"])])
    def page(self, limit: int | None = None) -> list[Priced]:
        return []

    @strawberry.field(directives=[ListSize(assumed_size=3)])
    def few(self) -> list[Priced]:
        return []


def test_list_sizes_come_from_slicing_arguments_or_the_assumed_size():
    calculator = CostCalculator(strawberry.Schema(query=Sized)._schema)
    assert calculator.requested_cost(parse("{ page { name } }")) == 2 + 7
    assert calculator.requested_cost(parse("{ page(limit: 4) { name } }")) == 2 + 4
    assert calculator.requested_cost(parse("query ($n: Int) { page(limit: $n) { name } }"), {"n": 30}) == 2 + 30
    assert calculator.requested_cost(parse("{ few { name } }")) == 2 + 3
