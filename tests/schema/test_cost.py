"""The requested cost of operations, worked out by hand from the contract's rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, ClassVar

import pytest
import strawberry
from graphql import DocumentNode, FragmentDefinitionNode, parse

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


# -- variable defaults, merging by response key, fragment bombs and cycles ----------------------

DEFAULTED = "query ($n: Int = 5) { shipments(first: $n) { edges { node { customer { name } } } } }"
NESTED_DEFAULT = (
    "query ($n: Int = 2) { customers(first: 3) { edges { node { "
    "shipments(first: $n) { edges { node { customer { name } } } } } } } }"
)
FIELD_CYCLE = (
    "{ shipments(first: 10) { edges { node { ...F } } } } "
    "fragment F on Shipment { customer { shipments(first: 2) { edges { node { ...F } } } } }"
)


def fragment_bomb(levels: int) -> str:
    """F1 spreads F2 twice, F2 spreads F3 twice, ...: 2^(levels-1) paths to one `customer` field."""
    fragments = [f"fragment F{i} on Shipment {{ ...F{i + 1} ...F{i + 1} }}" for i in range(1, levels)]
    fragments.append(f"fragment F{levels} on Shipment {{ customer {{ name }} }}")
    return "{ shipments(first: 10) { edges { node { ...F1 } } } } " + " ".join(fragments)


# (operation, variables, expected requested cost, why)
MERGING_CASES = [
    (DEFAULTED, {}, 7, "a variable not given takes its default: 2 + 5 x 1"),
    (DEFAULTED, {"n": 3}, 5, "a variable given overrides its default"),
    (DEFAULTED, {"n": None}, 22, "a variable given as null is null: the assumed page of 20"),
    (NESTED_DEFAULT, {}, 14, "a default inside a nested connection: 2 + 3 x (2 + 2 x 1)"),
    ("{ viewer { tenant { slug } } viewer { tenant { name } } }", {}, 2, "a field selected twice costs once"),
    (
        "{ shipments(first: 10) { edges { node { customer { name } customer { id } } } } }",
        {},
        12,
        "a repeated field inside a connection costs once per item",
    ),
    (
        "{ shipments(first: 10) { edges { node { customer: customer { name } customer { id } } } } }",
        {},
        12,
        "an alias equal to the field's name is the same response key",
    ),
    (
        "{ shipments(first: 10) { edges { node { ...P ...P } } } } fragment P on Shipment { customer { name } }",
        {},
        12,
        "a fragment spread twice in one selection set is expanded once",
    ),
    (
        "{ shipments(first: 10) { edges { node { customer { name } ...P } } } } "
        "fragment P on Shipment { customer { id } driver { name } }",
        {},
        22,
        "a fragment's field merges with the same field outside it",
    ),
    (
        "{ shipments(first: 10) { edges { node { driver { name } ...D } } } } "
        "fragment D on Shipment { driver { vehicle { plate } } }",
        {},
        22,
        "merged fields merge their sub-selections: driver 1 + vehicle 1",
    ),
    (
        "query ($id: ID!) { node(id: $id) { ... on Shipment { customer { name } } ... on Node { ... on Shipment { "
        "customer { id } } } } }",
        {"id": "x"},
        2,
        "inline fragments merge too",
    ),
    (fragment_bomb(3), {}, 12, "a small fragment bomb: 4 paths, one customer"),
    (
        "{ shipments(first: 10) { edges { node { ...A } } } } "
        "fragment A on Shipment { customer { name } ...B } fragment B on Shipment { ...A driver { name } }",
        {},
        22,
        "a fragment cycle within one selection set stops at the visited fragment",
    ),
    (FIELD_CYCLE, {}, 52, "a fragment cycle through fields is cut where it repeats: 2 + 10 x (1 + 2 + 2 x 1)"),
]


@pytest.mark.parametrize(("query", "variables", "expected", "why"), MERGING_CASES, ids=[c[3] for c in MERGING_CASES])
def test_requested_cost_merges_fields_like_graphql_core(calculator, query, variables, expected, why):
    assert calculator.requested_cost(parse(query), variables) == expected


class _CountedSelections(tuple):
    """A fragment's selections, counting how often they are read; a budget makes an exponential walk fail."""

    reads: ClassVar[Counter[int]] = Counter()

    def __iter__(self):
        _CountedSelections.reads[id(self)] += 1
        assert _CountedSelections.reads.total() <= 1_000, "fragments expanded exponentially often"
        return super().__iter__()


def counted(document: DocumentNode) -> DocumentNode:
    """The document with each fragment's selections counting their reads (nodes are frozen: rebuilt)."""
    definitions = [
        replace(d, selection_set=replace(d.selection_set, selections=_CountedSelections(d.selection_set.selections)))
        if isinstance(d, FragmentDefinitionNode)
        else d
        for d in document.definitions
    ]
    return replace(document, definitions=tuple(definitions))


def test_a_fragment_bomb_expands_each_fragment_once(calculator):
    document = counted(parse(fragment_bomb(30)))
    _CountedSelections.reads.clear()

    assert calculator.requested_cost(document) == 12
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    assert [_CountedSelections.reads[id(f.selection_set.selections)] for f in fragments] == [1] * 30


# -- the actual cost ----------------------------------------------------------------------------

NODE = (
    "query ($id: ID!) { node(id: $id) { "
    "... on Shipment { customer { name } driver { vehicle { plate } } } "
    "... on Customer { name shipments(first: 3) { edges { node { customer { id } } } } } "
    "... on Driver { vehicle { plate } } ... on Vehicle { plate } ... on Tenant { slug } } }"
)
CREATE_CUSTOMER = 'mutation { createCustomer(input: {name: "x"}) { customer { id } userErrors { message } } }'
EVENTS = '{ shipment(trackingNumber: "T1") { events(last: 5) { status } } }'
ALIASES = (
    "{ a: shipments(first: 5) { edges { node { customer { name } } } } "
    "b: shipments(first: 5) { edges { node { customer { name } } } } }"
)
NESTED = (
    "{ customers(first: 10) { edges { node { name shipments(first: 5) { edges { node { customer { name } } } } } } } }"
)


def shipment(*, driver: bool = True, events: int = 5) -> dict[str, Any]:
    return {
        "trackingNumber": "T1",
        "status": "IN_TRANSIT",
        "customer": {"name": "Ada"},
        "driver": {"name": "Bo", "vehicle": {"plate": "AB-1"}} if driver else None,
        "events": [{"status": "CREATED", "occurredAt": "2025-03-01T09:30:00"}] * events,
    }


def page(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"edges": [{"cursor": str(i), "node": node} for i, node in enumerate(nodes)]}


# (operation, variables, data, expected actual cost, why)
ACTUAL_CASES = [
    (Q2, {"first": 50}, {"shipments": page(*[shipment()] * 7)}, 37, "a short page: 2 + 7 x (1 + 2 + 2)"),
    (Q2, {"first": 50}, {"shipments": page()}, 2, "an empty page costs the list alone"),
    (Q2, {"first": 50}, {"shipments": page(*[shipment()] * 50)}, 252, "a full page costs what was requested"),
    (
        Q2,
        {"first": 3},
        {"shipments": page(shipment(), shipment(driver=False), shipment(driver=False))},
        13,
        "a null driver inside items costs nothing: 2 + 5 + 3 + 3",
    ),
    (
        '{ shipment(trackingNumber: "T1") { customer { name } } }',
        {},
        {"shipment": None},
        0,
        "a null object costs nothing, nor what is below it",
    ),
    (
        ALIASES,
        {},
        {"a": page({"customer": {"name": "Ada"}}, {"customer": {"name": "Bo"}}), "b": page()},
        6,
        "aliases are read by response key: (2 + 2) + 2",
    ),
    (
        NESTED,
        {},
        {"customers": page({"name": "Ada", "shipments": page(*[{"customer": {"name": "Ada"}}] * 3)}, {"name": "Bo"})},
        7,
        "nested connections: 2 + (2 + 3 x 1) + a customer whose shipments were not returned",
    ),
    (
        NODE,
        {"id": "s"},
        {"node": {"customer": {"name": "Ada"}, "driver": {"vehicle": {"plate": "P"}}}},
        4,
        "a Shipment",
    ),
    (NODE, {"id": "s"}, {"node": {"customer": {"name": "Ada"}, "driver": None}}, 2, "a Shipment without a driver"),
    (
        NODE,
        {"id": "c"},
        {"node": {"name": "Ada", "shipments": page({"customer": {"id": "c"}})}},
        4,
        "a Customer: 1 + 2 + 1 x 1",
    ),
    (NODE, {"id": "d"}, {"node": {"vehicle": {"plate": "P"}}}, 2, "a Driver: 1 + vehicle 1"),
    (NODE, {"id": "v"}, {"node": {"plate": "P"}}, 1, "a Vehicle"),
    (NODE, {"id": "t"}, {"node": {"slug": "acme"}}, 1, "a Tenant"),
    (NODE, {"id": "x"}, {"node": None}, 0, "no such node"),
    (
        CREATE_CUSTOMER,
        {},
        {"createCustomer": {"customer": {"id": "c"}, "userErrors": []}},
        13,
        "a mutation that succeeded: 10 + 1 + 2",
    ),
    (
        CREATE_CUSTOMER,
        {},
        {"createCustomer": {"customer": None, "userErrors": [{"message": "taken"}]}},
        12,
        "a mutation that refused: 10 + 0 + 2",
    ),
    (CREATE_CUSTOMER, {}, {"createCustomer": None}, 10, "a mutation that ran costs 10 even when its payload is null"),
    (CREATE_CUSTOMER, {}, None, 0, "no data: nothing ran"),
    (EVENTS, {}, {"shipment": {"events": [{"status": "CREATED"}] * 2}}, 3, "events shorter than `last`: 1 + 2"),
    (
        "{ viewer { tenant { slug } } viewer { tenant { name } } }",
        {},
        {"viewer": {"tenant": {"slug": "acme", "name": "Acme"}}},
        2,
        "a field selected twice is counted once",
    ),
]


@pytest.mark.parametrize(
    ("query", "variables", "data", "expected", "why"), ACTUAL_CASES, ids=[case[4] for case in ACTUAL_CASES]
)
def test_actual_cost(calculator, query, variables, data, expected, why):
    plan = calculator.plan(parse(query), variables)

    assert plan.actual(data) == expected
    assert plan.actual(data) <= plan.requested


def test_the_actual_cost_counts_the_items_returned():
    calculator = CostCalculator(strawberry.Schema(query=Sized)._schema)
    plan = calculator.plan(parse("{ page(limit: 4) { name } }"))

    assert plan.requested == 2 + 4
    assert [plan.actual({"page": [{"name": "x"}] * n}) for n in (0, 1, 4)] == [2, 3, 6]
    assert plan.actual({"page": [{"name": "x"}, None]}) == 3  # a null item costs nothing


def test_the_plan_keeps_only_fields_that_can_cost(calculator):
    plan = calculator.plan(parse(Q2), {"first": 50})

    (shipments,) = plan.selection.fields
    (edges,) = shipments.selection.fields
    (node,) = edges.selection.fields
    assert [field.key for field in node.selection.fields] == ["customer", "driver", "events"]


# -- cached plans -------------------------------------------------------------------------------

PAGED = (
    "query ($first: Int, $after: String) { shipments(first: $first, after: $after) { edges { node { "
    "customer { name } } } } }"
)


def test_a_plan_is_cached_by_text_and_the_variables_it_read(calculator):
    document = parse(PAGED)

    five = calculator.plan(document, {"first": 5}, key=PAGED)
    assert calculator.plan(document, {"first": 5}, key=PAGED) is five
    assert calculator.plan(document, {"first": 5, "after": "c2"}, key=PAGED) is five  # `after` costs nothing
    six = calculator.plan(document, {"first": 6}, key=PAGED)
    assert six is not five
    assert (five.requested, six.requested) == (7, 8)


def test_a_cached_plan_does_not_walk_the_document_again(calculator):
    calculator.plan(parse(Q2), {"first": 5}, "Q2", key=Q2)

    unrelated = parse("query Q2 { viewer { role } }")
    assert calculator.plan(unrelated, {"first": 5}, "Q2", key=Q2).requested == 27


def test_skip_and_include_variables_key_the_cache(calculator):
    document = parse(SKIPPABLE)

    skipped = calculator.plan(document, {"s": True}, key=SKIPPABLE)
    kept = calculator.plan(document, {"s": False}, key=SKIPPABLE)
    assert (skipped.requested, kept.requested) == (1, 13)
    assert calculator.plan(document, {"s": True}, key=SKIPPABLE) is skipped
    assert calculator.plan(document, {"s": False}, key=SKIPPABLE) is kept


def test_plans_are_not_cached_without_a_key_or_with_unhashable_variables(calculator):
    document = parse(PAGED)

    assert calculator.plan(document, {"first": 5}) is not calculator.plan(document, {"first": 5})
    unhashable = calculator.plan(document, {"first": [5]}, key=PAGED)
    assert unhashable.requested == 22  # not a number of items: the assumed page of 20
    assert calculator.plan(document, {"first": [5]}, key=PAGED) is not unhashable


def test_the_cache_forgets_the_least_recently_used_plan():
    calculator = CostCalculator(build_schema()._schema, cache_size=2)
    document = parse(PAGED)
    plans = {first: calculator.plan(document, {"first": first}, key=PAGED) for first in (1, 2)}

    assert calculator.plan(document, {"first": 1}, key=PAGED) is plans[1]  # now the most recently used
    calculator.plan(document, {"first": 3}, key=PAGED)
    assert calculator.plan(document, {"first": 1}, key=PAGED) is plans[1]
    assert calculator.plan(document, {"first": 2}, key=PAGED) is not plans[2]
