"""Bad input is the client's error, never the server's: no 500, and always a code to switch on."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text

from auth.tenant import Role
from db.transaction import tenant_transaction
from resolvers.ids import to_global_id

GRAPHQL_RESPONSE = "application/graphql-response+json"
CUSTOMERS = "{ customers(first: 2) { edges { node { id } } } }"


def codes(response: Any) -> list[str]:
    """The error codes of a response, after checking it is a JSON error body and not a 500."""
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].split(";")[0] in ("application/json", GRAPHQL_RESPONSE)
    body = response.json()
    assert isinstance(body, dict) and body["errors"], body
    return [error["extensions"]["code"] for error in body["errors"]]


async def send(client: Any, tenant: Any, content: bytes | str, content_type: str = "application/json") -> Any:
    return await client.post("/graphql", content=content, headers={**tenant.headers(), "Content-Type": content_type})


async def ask(client: Any, tenant: Any, query: str, variables: Any = None, accept: str | None = None) -> Any:
    headers = tenant.headers() | ({"Accept": accept} if accept else {})
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def count_rows(owner_engine: Any, tenant: Any, table: str) -> int:
    async with tenant_transaction(owner_engine, tenant.id) as db:
        return (await db.all(text(f"SELECT count(*) FROM {table}")))[0][0]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json at all",
        b"",
        b'{"query": "{ viewer { role } }",}',
        b'{"query": "{ viewer { role } }", "variables": {"x": "\\ud800"}}',
        b"\xff\xfe{}",
    ],
    ids=repr,
)
async def test_a_body_that_is_not_json_is_400_bad_request(client, acme, body):
    response = await send(client, acme, body)
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "body",
    [
        b'"{ viewer { role } }"',
        b"42",
        b"null",
        b"true",
        b"[1, 2]",
        b'["{ viewer { role } }"]',
        b"[]",
        b"{}",
        b'{"query": null}',
        b'{"query": ""}',
        b'{"variables": {}}',
        b'{"query": 42}',
        b'{"query": ["{ viewer { role } }"]}',
        b'{"query": {"text": "{ viewer { role } }"}}',
        b'{"query": "{ viewer { role } }", "variables": []}',
        b'{"query": "{ viewer { role } }", "variables": "{}"}',
        b'{"query": "{ viewer { role } }", "variables": 1}',
        b'{"query": "{ viewer { role } }", "operationName": 7}',
        b'{"query": "{ viewer { role } }", "extensions": "x"}',
    ],
    ids=repr,
)
async def test_a_json_body_that_is_not_a_graphql_request_is_400_bad_request(client, acme, body):
    response = await send(client, acme, body)
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { role }",
        "query {",
        "{ customers(first: ) { edges { node { id } } } }",
        "}}}",
        "mutation",
        '{ shipment(trackingNumber: "unterminated) { id } }',
        "{ viewer { role } } \u0000",
    ],
    ids=repr,
)
async def test_a_syntax_error_is_graphql_parse_failed(client, acme, query):
    response = await ask(client, acme, query)
    assert response.status_code == 200
    assert codes(response) == ["GRAPHQL_PARSE_FAILED"]
    assert "data" not in response.json()


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { role } nosuchfield }",
        "{ customers { edges { node { id password } } } }",
        "{ shipments(nosucharg: 1) { edges { node { id } } } }",
        '{ shipments(first: "ten") { edges { node { id } } } }',
        "{ shipments(first: 99999999999) { edges { node { id } } } }",
        "{ shipments }",
        "{ viewer { role { name } } }",
        'mutation { createShipment(input: {origin: "a"}) { shipment { id } } }',
        'mutation { createShipment(input: {customerId: "x", origin: "a", destination: "b", weightKg: NaN})'
        " { shipment { id } } }",
        "query($first: String) { shipments(first: $first) { edges { node { id } } } }",
        "{ shipments(first: $undeclared) { edges { node { id } } } }",
        "query($unused: Int) { viewer { role } }",
    ],
    ids=repr,
)
async def test_an_invalid_query_is_graphql_validation_failed(client, acme, query):
    response = await ask(client, acme, query)
    assert response.status_code == 200
    assert set(codes(response)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "data" not in response.json()


@pytest.mark.parametrize(
    "variables",
    [{"first": "ten"}, {"first": 1.5}, {"first": 2**40}, {"first": [1]}, {"first": {"n": 1}}, {"first": True}],
    ids=repr,
)
async def test_a_variable_of_the_wrong_type_is_bad_user_input(client, acme, variables):
    response = await ask(
        client, acme, "query($first: Int) { shipments(first: $first) { edges { node { id } } } }", variables
    )
    assert response.status_code == 200
    assert codes(response) == ["BAD_USER_INPUT"]
    assert "data" not in response.json()


async def test_a_missing_required_variable_is_bad_user_input(client, acme):
    for variables in (None, {}, {"id": None}):
        response = await ask(client, acme, "query($id: ID!) { node(id: $id) { id } }", variables)
        assert codes(response) == ["BAD_USER_INPUT"]


async def test_an_enum_variable_with_an_unknown_value_is_bad_user_input(client, acme):
    response = await ask(
        client,
        acme,
        "query($s: ShipmentStatus) { shipments(status: $s) { edges { node { id } } } }",
        {"s": "LOST_IN_SPACE"},
    )
    assert codes(response) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("first", [101, 1000, -1, -100])
async def test_first_outside_0_to_100_is_bad_user_input(client, acme, first):
    for field in ("shipments", "customers", "drivers", "vehicles"):
        response = await ask(
            client, acme, f"query($n: Int) {{ {field}(first: $n) {{ edges {{ node {{ id }} }} }} }}", {"n": first}
        )
        assert response.status_code == 200
        assert codes(response) == ["BAD_USER_INPUT"], field
        assert response.json()["errors"][0]["path"] == [field]
    nested = await ask(
        client,
        acme,
        "query($n: Int) { customers(first: 1) { edges { node { shipments(first: $n) { edges { node { id } } } } } } }",
        {"n": first},
    )
    assert codes(nested) == ["BAD_USER_INPUT"]


async def test_first_of_0_and_100_are_accepted(client, acme):
    for first in (0, 100):
        response = await ask(
            client, acme, "query($n: Int) { shipments(first: $n) { edges { node { id } } } }", {"n": first}
        )
        assert "errors" not in response.json()


def b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


BAD_CURSORS = [
    "garbage",
    "!!!!",
    "",
    "x" * 10_000,
    b64("2026-01-01T00:00:00+00:00"),
    b64("not-a-date|" + str(uuid.uuid4())),
    b64("2026-01-01T00:00:00+00:00|not-a-uuid"),
    b64(b"\xff\xfe\xfd"),
    b64("\u0000|\u0000"),
]


@pytest.mark.parametrize("after", BAD_CURSORS, ids=lambda value: repr(value)[:40])
async def test_a_cursor_this_api_did_not_give_out_is_bad_user_input_or_ignored(client, acme, after):
    for query in (
        "query($a: String) { shipments(after: $a) { edges { node { id } } } }",
        "query($a: String) { customers(first: 1) { edges { node {"
        " shipments(after: $a) { edges { node { id } } } } } } }",
    ):
        response = await ask(client, acme, query, {"a": after})
        body = response.json()
        if after == "":  # no cursor: the first page
            assert "errors" not in body
        else:
            assert codes(response) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize(
    "global_id",
    [
        "",
        "garbage",
        "!!!!",
        "é",
        "\u0000",
        "x" * 10_000,
        b64("Shipment"),
        b64("Shipment:"),
        b64("Shipment:not-a-uuid"),
        b64(f"NoSuchType:{uuid.uuid4()}"),
        b64(f"TrackingEvent:{uuid.uuid4()}"),
        b64(f"User:{uuid.uuid4()}"),
        b64(f"shipment:{uuid.uuid4()}"),
        b64(b"\xff\xfe:" + str(uuid.uuid4()).encode()),
        str(uuid.uuid4()),
    ],
    ids=lambda value: repr(value)[:40],
)
async def test_node_of_a_garbage_id_is_null_without_error(client, acme, global_id):
    response = await ask(client, acme, "query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
    assert response.status_code == 200
    assert response.json()["data"] == {"node": None} and "errors" not in response.json()


HUGE = "x" * 200_000
CREATE_CUSTOMER = """
mutation($name: String!, $email: String, $phone: String) {
  createCustomer(input: {name: $name, email: $email, phone: $phone}) { customer { id } userErrors { field code } }
}"""
CREATE_SHIPMENT = """
mutation($customerId: ID!, $origin: String!, $destination: String!, $weightKg: Float!, $trackingNumber: String) {
  createShipment(input: {customerId: $customerId, origin: $origin, destination: $destination, weightKg: $weightKg,
                         trackingNumber: $trackingNumber}) { shipment { id } userErrors { field code } }
}"""
CREATE_VEHICLE = """
mutation($plate: String!, $capacityKg: Float) {
  createVehicle(input: {plate: $plate, kind: VAN, capacityKg: $capacityKg}) { vehicle { id } userErrors { field code } }
}"""
CREATE_DRIVER = """
mutation($name: String!, $phone: String) {
  createDriver(input: {name: $name, phone: $phone}) { driver { id } userErrors { field code } }
}"""
RECORD_EVENT = """
mutation($id: ID!, $location: String, $note: String) {
  recordTrackingEvent(input: {shipmentId: $id, status: IN_TRANSIT, location: $location, note: $note}) {
    trackingEvent { id } userErrors { field code }
  }
}"""


def shipment_input(tenant: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "customerId": to_global_id("Customer", tenant.ids["customers"][0]),
        "origin": "Berlin",
        "destination": "Oslo",
        "weightKg": 1.5,
        **overrides,
    }


def invalid_cases(tenant: Any) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """(mutation, query, variables, the field named invalid) for strings too long or not storable."""
    shipment = to_global_id("Shipment", tenant.ids["shipments"][0])
    cases = []
    for bad in (HUGE, "bad\u0000byte"):
        cases += [
            ("createCustomer", CREATE_CUSTOMER, {"name": bad}, ["input", "name"]),
            ("createCustomer", CREATE_CUSTOMER, {"name": "ok", "email": f"a@{bad}"}, ["input", "email"]),
            ("createCustomer", CREATE_CUSTOMER, {"name": "ok", "phone": bad}, ["input", "phone"]),
            ("createShipment", CREATE_SHIPMENT, shipment_input(tenant, origin=bad), ["input", "origin"]),
            ("createShipment", CREATE_SHIPMENT, shipment_input(tenant, destination=bad), ["input", "destination"]),
            (
                "createShipment",
                CREATE_SHIPMENT,
                shipment_input(tenant, trackingNumber=bad),
                ["input", "trackingNumber"],
            ),
            ("createVehicle", CREATE_VEHICLE, {"plate": bad}, ["input", "plate"]),
            ("createDriver", CREATE_DRIVER, {"name": bad}, ["input", "name"]),
            ("createDriver", CREATE_DRIVER, {"name": "ok", "phone": bad}, ["input", "phone"]),
            ("recordTrackingEvent", RECORD_EVENT, {"id": shipment, "location": bad}, ["input", "location"]),
            ("recordTrackingEvent", RECORD_EVENT, {"id": shipment, "note": bad}, ["input", "note"]),
        ]
    return cases


async def test_too_long_or_unstorable_strings_are_invalid_user_errors(client, owner_engine, acme):
    before = await count_rows(owner_engine, acme, "customers")
    for name, query, variables, field in invalid_cases(acme):
        response = await ask(client, acme, query, variables)
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, (name, field, body)
        payload = body["data"][name]
        assert payload["userErrors"] == [{"field": field, "code": "INVALID"}], (name, field)
        assert next(value for key, value in payload.items() if key != "userErrors") is None
    assert await count_rows(owner_engine, acme, "customers") == before


async def test_a_string_with_a_nul_byte_finds_no_shipment(client, acme):
    response = await ask(
        client,
        acme,
        "query($t: String!) { shipment(trackingNumber: $t) { id } }",
        {"t": acme.tracking_numbers[0] + "\u0000"},
    )
    assert response.json()["data"] == {"shipment": None} and "errors" not in response.json()


@pytest.mark.parametrize("weight", [0, -1, -0.001, 1e300, 100_000.5], ids=repr)
async def test_a_weight_that_is_not_positive_or_too_large_is_invalid(client, acme, weight):
    response = await ask(client, acme, CREATE_SHIPMENT, shipment_input(acme, weightKg=weight))
    assert response.json()["data"]["createShipment"] == {
        "shipment": None,
        "userErrors": [{"field": ["input", "weightKg"], "code": "INVALID"}],
    }


async def test_a_weight_literal_too_large_for_a_double_is_invalid(client, acme):
    customer = to_global_id("Customer", acme.ids["customers"][0])
    response = await ask(
        client,
        acme,
        f"""mutation {{ createShipment(input: {{customerId: "{customer}",
        origin: "a", destination: "b", weightKg: 1e999}}) {{ shipment {{ id }} userErrors {{ field code }} }} }}""",
    )
    assert response.json()["data"]["createShipment"]["userErrors"] == [
        {"field": ["input", "weightKg"], "code": "INVALID"}
    ]


@pytest.mark.parametrize("weight", ["NaN", "Infinity", "-Infinity", "1.5", None], ids=repr)
async def test_a_weight_that_is_not_a_json_number_is_bad_user_input(client, acme, weight):
    response = await ask(client, acme, CREATE_SHIPMENT, shipment_input(acme, weightKg=weight))
    assert codes(response) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("body", [b'{"weightKg": NaN}', b'{"weightKg": Infinity}', b'{"weightKg": -Infinity}'])
async def test_nan_or_infinity_in_the_json_body_is_400_bad_request(client, acme, body):
    variables = body.decode()
    response = await send(client, acme, '{"query": "{ viewer { role } }", "variables": ' + variables + "}")
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize("capacity", [-1, 1e12], ids=repr)
async def test_a_negative_or_huge_vehicle_capacity_is_invalid(client, acme, capacity):
    response = await ask(client, acme, CREATE_VEHICLE, {"plate": f"C{uuid.uuid4().hex[:6]}", "capacityKg": capacity})
    assert response.json()["data"]["createVehicle"]["userErrors"] == [
        {"field": ["input", "capacityKg"], "code": "INVALID"}
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        "application/xml",
        "",
    ],
)
async def test_a_body_that_is_not_json_by_content_type_is_415(client, acme, content_type):
    response = await send(client, acme, '{"query": "{ viewer { role } }"}', content_type=content_type)
    assert response.status_code == 415
    assert codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]


async def test_json_with_a_charset_is_accepted(client, acme):
    response = await send(client, acme, '{"query": "{ viewer { role } }"}', "application/json; charset=utf-8")
    assert response.json()["data"] == {"viewer": {"role": "ADMIN"}} and "errors" not in response.json()


async def test_a_body_over_one_megabyte_is_413(client, acme):
    response = await ask(client, acme, CREATE_CUSTOMER, {"name": "x" * 1_100_000})
    assert response.status_code == 413
    assert codes(response) == ["PAYLOAD_TOO_LARGE"]


async def test_a_mutation_over_get_is_405_and_never_runs(client, owner_engine, acme):
    before = await count_rows(owner_engine, acme, "customers")
    for params in (
        {"query": 'mutation { createCustomer(input: {name: "Over GET"}) { customer { id } } }'},
        {
            "query": 'query Q { viewer { role } } mutation M { createCustomer(input: {name: "Over GET"}) '
            "{ customer { id } } }",
            "operationName": "M",
        },
    ):
        response = await client.get("/graphql", params=params, headers=acme.headers())
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert codes(response) == ["METHOD_NOT_ALLOWED"]
    assert await count_rows(owner_engine, acme, "customers") == before


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_methods_are_405(client, acme, method):
    response = await client.request(method, "/graphql", json={"query": "{ viewer { role } }"}, headers=acme.headers())
    assert response.status_code == 405
    assert codes(response) == ["METHOD_NOT_ALLOWED"]


async def test_a_query_over_get_is_answered(client, acme):
    response = await client.get(
        "/graphql",
        params={"query": "query($n: Int) { customers(first: $n) { edges { node { id } } } }", "variables": '{"n": 2}'},
        headers=acme.headers(Role.VIEWER),
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["customers"]["edges"]) == 2


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"query": ""},
        {"query": "{ viewer { role } }", "variables": "{"},
        {"query": "{ viewer { role } }", "variables": "[1]"},
        {"query": "{ viewer { role } }", "extensions": "nope"},
    ],
    ids=repr,
)
async def test_a_get_without_a_usable_query_is_400(client, acme, params):
    response = await client.get("/graphql", params=params, headers=acme.headers())
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


async def test_an_operation_name_that_names_no_operation_is_400(client, acme):
    body = {"query": "query A { viewer { role } } query B { viewer { role } }", "operationName": "C"}
    response = await client.post("/graphql", json=body, headers=acme.headers())
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ viewer { role }", None, "GRAPHQL_PARSE_FAILED"),
        ("{ viewer { nosuchfield } }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { shipments(first: $n) { edges { node { id } } } }", {"n": "ten"}, "BAD_USER_INPUT"),
    ],
)
async def test_errors_before_execution_are_400_under_graphql_response_json_and_200_under_json(
    client, acme, query, variables, code
):
    strict = await ask(client, acme, query, variables, accept=GRAPHQL_RESPONSE)
    assert strict.status_code == 400
    assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert codes(strict) == [code]
    legacy = await ask(client, acme, query, variables, accept="application/json")
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json() == strict.json()


async def test_an_error_during_execution_is_200_under_both_media_types(client, acme):
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        response = await ask(client, acme, "{ shipments(first: 101) { edges { node { id } } } }", accept=accept)
        assert response.status_code == 200
        assert codes(response) == ["BAD_USER_INPUT"]
        assert response.json()["data"] is None


async def test_a_batch_of_11_operations_is_batch_too_large_and_runs_none(client, owner_engine, acme):
    before = await count_rows(owner_engine, acme, "customers")
    operation = {"query": 'mutation { createCustomer(input: {name: "Batched"}) { customer { id } } }'}
    response = await client.post("/graphql", json=[operation] * 11, headers=acme.headers())
    assert response.status_code == 400
    assert codes(response) == ["BATCH_TOO_LARGE"]
    assert await count_rows(owner_engine, acme, "customers") == before


async def test_a_batch_of_10_operations_is_answered_in_order(client, acme):
    operations = [
        {"query": "query($n: Int) { customers(first: $n) { edges { node { id } } } }", "variables": {"n": n}}
        for n in range(10)
    ]
    response = await client.post("/graphql", json=operations, headers=acme.headers())
    assert response.status_code == 200
    assert [len(item["data"]["customers"]["edges"]) for item in response.json()] == [
        min(n, len(acme.ids["customers"])) for n in range(10)
    ]


async def test_a_batch_holding_a_bad_operation_is_400(client, acme):
    for bad in ("not an object", 7, None, {"query": 7}, {}):
        response = await client.post("/graphql", json=[{"query": CUSTOMERS}, bad], headers=acme.headers())
        assert response.status_code == 400
        assert codes(response) == ["BAD_REQUEST"]


async def test_a_field_refused_while_its_siblings_read_answers_its_error_and_breaks_nothing(client, services, acme):
    """graphql-core cancels the fields being read beside one that fails: the request still
    answers the field's error (not 503), its connection stays usable, and none is left open."""
    invalidated: list[Any] = []

    def record(dbapi_connection: Any, connection_record: Any, error: Any) -> None:
        invalidated.append(error)

    pool = services.engine.sync_engine.pool
    event.listen(pool, "invalidate", record)
    try:
        for _ in range(3):
            response = await ask(
                client,
                acme,
                f"""{{
                  shipments(first: 1) {{ edges {{ node {{ events(last: -1) {{ status }} }} }} }}
                  shipment(trackingNumber: "{acme.tracking_numbers[0]}") {{ createdAt }}
                  customers(first: 2) {{ edges {{ node {{ name }} }} }}
                  drivers(first: 2) {{ edges {{ node {{ name }} }} }}
                }}""",
            )
            assert response.status_code == 200, response.text
            assert codes(response) == ["BAD_USER_INPUT"]
            assert response.json()["data"] is None
    finally:
        event.remove(pool, "invalidate", record)

    assert invalidated == []
    assert pool.checkedout() == 0
    after = await ask(client, acme, CUSTOMERS)
    assert after.status_code == 200 and "errors" not in after.json(), after.text


async def test_a_client_gone_before_its_body_ended_is_answered_not_raised(app, acme):
    """A client that disconnects half-way through its body (a load generator stopping, a phone
    losing signal) gets a 400 nobody reads, not an exception uvicorn logs as a crash."""
    body = b'{"query": "{ viewer { role } }"}'
    messages = iter([{"type": "http.request", "body": body[:10], "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in acme.headers().items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("tenantql.test", 80),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
    await app(scope, receive, send)

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
