"""Documents bigger than any honest client needs are refused before validation and before any SQL."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query

from tests.conftest import under_tenant


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(count)) + " }"


def tokens(count: int) -> str:
    """A valid document of exactly `count` lexical tokens: operations `query A0 { viewer { role } }` of 8 each."""
    operations = [f"query A{i} {{ viewer {{ role }} }}" for i in range(count // 8)]
    operations[0] = operations[0].replace("role", "role " * (1 + count % 8))
    return " ".join(operations)


async def post(client, tenant, query: str, accept: str = "application/json"):
    body = {"query": query, "operationName": "A0" if query.startswith("query A0") else None}
    return await client.post("/graphql", json=body, headers={**tenant.headers(), "Accept": accept})


def code(response) -> str:
    [error] = response.json()["errors"]
    return error["extensions"]["code"]


@pytest.mark.parametrize(
    ("allowed", "refused", "error_code"),
    [
        (aliased(30), aliased(31), "TOO_MANY_ALIASES"),
        (tokens(2_000), tokens(2_001), "TOO_MANY_TOKENS"),
    ],
    ids=["aliases", "tokens"],
)
async def test_limits_allow_up_to_and_refuse_beyond(client, acme, sql_statements, allowed, refused, error_code):
    assert "errors" not in (await post(client, acme, allowed)).json()
    sql_statements.clear()
    response = await post(client, acme, refused)
    assert response.status_code == 200 and code(response) == error_code
    assert "data" not in response.json()
    assert under_tenant(sql_statements) == []


async def test_depth_of_12_is_served_and_13_is_query_too_deep(client, acme, sql_statements):
    # Fields on the longest path, less one: customers edges node shipments edges node customer
    # shipments edges node customer shipments __typename.
    query_12 = (
        "{ customers(first: 1) { edges { node { shipments(first: 1) { edges { node { customer { "
        "shipments(first: 1) { edges { node { customer { shipments(first: 1) { __typename } } } } } "
        "} } } } } } } }"
    )
    query_13 = query_12.replace("__typename", "pageInfo { hasNextPage }")
    assert "errors" not in (await post(client, acme, query_12)).json()
    sql_statements.clear()
    response = await post(client, acme, query_13, accept="application/graphql-response+json")
    assert response.status_code == 400 and code(response) == "QUERY_TOO_DEEP"
    assert response.json()["errors"][0]["extensions"]["depth"] == 13
    assert under_tenant(sql_statements) == []


async def test_depth_counts_through_fragments(client, acme, sql_statements):
    query = (
        "{ customers(first: 1) { edges { node { ...C } } } } "
        "fragment C on Customer { shipments(first: 1) { edges { node { customer { ...D } } } } } "
        "fragment D on Customer { shipments(first: 1) { edges { node { customer { ...E } } } } } "
        "fragment E on Customer { shipments(first: 1) { edges { node { id } } } }"
    )
    response = await post(client, acme, query)
    assert code(response) == "QUERY_TOO_DEEP"
    assert under_tenant(sql_statements) == []


async def test_graphiqls_introspection_is_exempt(client, acme):
    query = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True)
    response = await post(client, acme, query)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_a_long_introspection_document_is_exempt_from_the_token_limit(client, acme):
    introspection = get_introspection_query(descriptions=True).strip()
    operation, fragments = introspection.split("fragment", 1)
    # The operation is 38 tokens, its fragments 125: 60 operations make 2,405 tokens, the first one run.
    operations = " ".join(operation.replace("IntrospectionQuery", f"A{i}", 1) for i in range(60))
    response = await post(client, acme, f"{operations} fragment{fragments}")
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert code(await post(client, acme, tokens(3_000))) == "TOO_MANY_TOKENS"


async def test_comments_count_towards_the_token_limit(client, acme):
    query = "{ viewer { role } }\n" + "#\n" * 2_001
    assert code(await post(client, acme, query)) == "TOO_MANY_TOKENS"


async def test_aliases_in_fragments_count(client, acme):
    fragment = "fragment V on Viewer { " + " ".join(f"r{i}: role" for i in range(31)) + " }"
    response = await post(client, acme, "{ viewer { ...V } } " + fragment)
    assert code(response) == "TOO_MANY_ALIASES"


async def test_a_fragment_bomb_is_answered_as_the_small_query_it_is(client, acme):
    """Each fragment spreads the next twice: written out it would be 2^25 selections."""
    fragments = [f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(25)]
    query = "{ viewer { ...F0 } } " + " ".join(fragments) + " fragment F25 on Viewer { role }"
    response = await post(client, acme, query)
    body = response.json()
    assert body["data"] == {"viewer": {"role": "ADMIN"}}
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1


async def test_a_nesting_deeper_than_the_parser_allows_is_refused_without_a_traceback(client, acme):
    query = "{ viewer " + "{ tenant " * 3_000 + "}" * 3_001
    response = await post(client, acme, query)
    assert response.status_code == 200
    assert code(response) in ("QUERY_TOO_DEEP", "TOO_MANY_TOKENS")
