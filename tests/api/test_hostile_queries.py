"""Hostile requests: each is refused with a clear code or answered with a bounded result, before
any SQL of the operation, and a live server under them keeps serving another tenant with its
memory bounded.

Each hostile request is tried twice: in process, where the SQL it caused can be counted, and
against a uvicorn server, sent several times at once (each copy a distinct text, as an attacker
would send them to get past the document cache) while another tenant's requests go on, with
the server's peak resident memory measured around it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from graphql import get_introspection_query
from sqlalchemy import text

from auth.tenant import Plan, Role
from db.transaction import tenant_transaction
from tests.conftest import TenantHandle, under_tenant
from tests.live import running_server, server_environment

MB = 1024 * 1024
MAX_RSS_GROWTH = 100 * MB
MAX_ANSWER_BYTES = 64 * 1024  # a refusal or a bounded answer: never an echo of the attack
BODY_READ_TIMEOUT_SECONDS = 2  # the live server's, so that slow bodies end quickly here
FINISHED_AT_ALL = 60.0  # seconds: generous, only to fail instead of hanging
COPIES = 4
NORMAL = "{ viewer { tenant { slug } } customers(first: 3) { edges { node { id } } } }"
_nonces = itertools.count(1)


# -- the hostile requests -----------------------------------------------------------------------


def query(document: str, variables: dict[str, Any] | None = None, **extra: Any) -> Callable[[int], Any]:
    """A request body for each nonce: the document made distinct by a trailing comment."""
    return lambda nonce: {"query": f"{document}\n# {nonce}", "variables": variables, **extra}


def raw(body: bytes) -> Callable[[int], bytes]:
    return lambda nonce: body


def fragment_bomb(levels: int, with_fields: bool = False) -> str:
    """Each fragment spreads the next twice: written out, 2**levels selections."""
    own = "role " if with_fields else ""
    fragments = [f"fragment F{i} on Viewer {{ {own}...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return "{ viewer { ...F0 } } " + " ".join(fragments) + f" fragment F{levels} on Viewer {{ role }}"


DEPTH_13 = (
    "{ customers(first: 1) { edges { node { shipments(first: 1) { edges { node { customer { "
    "shipments(first: 1) { edges { node { customer { shipments(first: 1) { pageInfo { hasNextPage } } } } } } "
    "} } } } } } } }"
)
SHIPMENTS_100 = "shipments(first: 100) { edges { node { trackingNumber customer { name } } } }"
INTROSPECTION_OPERATION = get_introspection_query(descriptions=True).strip().split("fragment", 1)[0]


@dataclass(frozen=True)
class Hostile:
    name: str
    body: Callable[[int], Any]  # nonce -> JSON body, or raw bytes
    code: str | None  # the error code; None: answered with `data`
    status: int = 200
    data: Any = None  # the answer expected when `code` is None


HOSTILE = [
    Hostile("nested 13 deep", query(DEPTH_13), "QUERY_TOO_DEEP"),
    Hostile(
        "nested 600 deep, past the parser's recursion",
        query("{ viewer " + "{ tenant " * 600 + "}" * 601),
        "QUERY_TOO_DEEP",
    ),
    Hostile(
        "31 aliases", query("{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(31)) + " }"), "TOO_MANY_ALIASES"
    ),
    Hostile(
        "30 aliases of a 100-item page: within the alias limit, stopped by cost",
        query("{ " + " ".join(f"a{i}: {SHIPMENTS_100}" for i in range(30)) + " }"),
        "MAX_COST_EXCEEDED",
    ),
    Hostile("fragment bomb, 2**25 spreads", query(fragment_bomb(25)), None, data={"viewer": {"role": "ADMIN"}}),
    Hostile(
        "fragment bomb with a field at every level",
        query(fragment_bomb(25, with_fields=True)),
        None,
        data={"viewer": {"role": "ADMIN"}},
    ),
    Hostile(
        "circular fragments",
        query("{ viewer { ...A } } fragment A on Viewer { role ...B } fragment B on Viewer { ...A }"),
        "GRAPHQL_VALIDATION_FAILED",
    ),
    Hostile(
        "a fragment spreading itself through fields",
        query(
            "{ customers(first: 1) { edges { node { ...C } } } } fragment C on Customer "
            "{ shipments(first: 1) { edges { node { customer { ...C } } } } }"
        ),
        "GRAPHQL_VALIDATION_FAILED",
    ),
    Hostile(
        "tenant { slug } 490 times", query("{ viewer { " + "tenant { slug } " * 490 + "} }"), "TOO_MANY_REPEATED_FIELDS"
    ),
    Hostile("role 1,990 times", query("{ viewer { " + "role " * 1990 + "} }"), "TOO_MANY_REPEATED_FIELDS"),
    Hostile("viewer 490 times at the root", query("{ " + "viewer { role } " * 490 + "}"), "TOO_MANY_REPEATED_FIELDS"),
    Hostile(
        "20 viewers of 20 tenants each",
        query("{ " + ("viewer { " + "tenant { slug } " * 20 + "} ") * 20 + "}"),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    Hostile(
        "150 fragments selecting one field",
        query(
            "{ viewer { "
            + " ".join(f"...F{i}" for i in range(150))
            + " } } "
            + " ".join(f"fragment F{i} on Viewer {{ role }}" for i in range(150))
        ),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    Hostile(
        "180 fragments spread side by side",
        query(
            "{ viewer { "
            + " ".join(f"...F{i}" for i in range(180))
            + " } } "
            + " ".join(f"fragment F{i} on Viewer {{ ...G }}" for i in range(180))
            + " fragment G on Viewer { role }"
        ),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    Hostile(
        "220 customers fields with conflicting arguments",
        query("{ " + " ".join(f"customers(first: {i}) {{ __typename }}" for i in range(220)) + " }"),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    Hostile(
        "introspection repeating types 1,200 times",
        query("{ __schema { " + "types { name } " * 1200 + "} }"),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    Hostile(
        "introspection of 200 operations, over its 5,000 tokens",
        query(
            " ".join(INTROSPECTION_OPERATION.replace("IntrospectionQuery", f"A{i}", 1) for i in range(200))
            + " fragment"
            + get_introspection_query(descriptions=True).split("fragment", 1)[1],
            operationName="A0",
        ),
        "TOO_MANY_TOKENS",
    ),
    Hostile(
        "2,001 tokens", query(" ".join(f"query A{i} {{ viewer {{ role }} }}" for i in range(251))), "TOO_MANY_TOKENS"
    ),
    Hostile("2,001 comments", query("{ viewer { role } }\n" + "#\n" * 2_001), "TOO_MANY_TOKENS"),
    Hostile(
        "one directive 280 times",
        query("{ viewer { role " + "@include(if: true) " * 280 + "} }"),
        "GRAPHQL_VALIDATION_FAILED",
    ),
    Hostile(
        "a 900 KB string in the document",
        query('{ shipment(trackingNumber: "' + "x" * 900_000 + '") { id } }'),
        None,
        data={"shipment": None},
    ),
    Hostile(
        "a 900 KB comment",
        query("#" + "x" * 900_000 + "\n{ viewer { role } }"),
        None,
        data={"viewer": {"role": "ADMIN"}},
    ),
    Hostile(
        "a 900 KB string in the variables",
        query("query($t: String!) { shipment(trackingNumber: $t) { id } }", {"t": "x" * 900_000}),
        None,
        data={"shipment": None},
    ),
    Hostile(
        "a list of 300,000 for an Int",
        query("query($n: Int) { customers(first: $n) { edges { node { id } } } }", {"n": [0] * 300_000}),
        "BAD_USER_INPUT",
    ),
    Hostile(
        "a list of 150,000 for an ID",
        query("query($id: ID!) { node(id: $id) { id } }", {"id": ["x"] * 150_000}),
        "BAD_USER_INPUT",
    ),
    Hostile(
        "60,000 variables nobody declared",
        query("{ viewer { role } }", {f"v{i}": i for i in range(60_000)}),
        None,
        data={"viewer": {"role": "ADMIN"}},
    ),
    Hostile(
        "variables nested 200,000 deep",
        raw(b'{"query": "{ viewer { role } }", "variables": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}"),
        "BAD_REQUEST",
        status=400,
    ),
    Hostile(
        "a batch of 1,000 operations",
        lambda nonce: (
            [{"query": f'mutation {{ createCustomer(input: {{name: "Batched {nonce}"}}) {{ customer {{ id }} }} }}'}]
            * 1_000
        ),
        "BATCH_TOO_LARGE",
        status=400,
    ),
]


def request_content(case: Hostile, nonce: int) -> bytes:
    body = case.body(nonce)
    return body if isinstance(body, bytes) else orjson.dumps(body)


def assert_outcome(case: Hostile, status: int, content: bytes) -> None:
    assert status == case.status, content[:500]
    assert len(content) <= MAX_ANSWER_BYTES, f"{len(content)} bytes answered"
    body = orjson.loads(content)
    if case.code is None:
        assert "errors" not in body, body
        assert body["data"] == case.data
        return
    assert "data" not in body or body["data"] is None, body
    codes = {error["extensions"]["code"] for error in body["errors"]}
    assert codes == {case.code}, body["errors"][:3]
    assert len(body["errors"]) <= 101  # validation stops at 100 errors


async def count_customers(owner_engine: Any, tenant: TenantHandle) -> int:
    async with tenant_transaction(owner_engine, tenant.id) as db:
        return (await db.all(text("SELECT count(*) FROM customers")))[0][0]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
async def test_a_hostile_request_is_refused_or_bounded_before_any_sql_of_its_operation(
    client, owner_engine, make_tenant, sql_statements, case
):
    tenant = await make_tenant(Plan.SCALE)
    customers = await count_customers(owner_engine, tenant)
    sql_statements.clear()
    response = await client.post(
        "/graphql",
        content=request_content(case, next(_nonces)),
        headers={**tenant.headers(), "Content-Type": "application/json"},
    )
    assert_outcome(case, response.status_code, response.content)
    if case.code is not None:
        assert under_tenant(sql_statements) == []
    assert await count_customers(owner_engine, tenant) == customers


# -- against a live server ------------------------------------------------------------------------


class PeakRSS:
    """The resident memory of a process: when measuring began, and the highest since.

    Sampled with psutil every few milliseconds, and, where Linux lets this process reset it,
    also read from the kernel's own high-water mark (VmHWM), which misses no spike."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._kernel = False

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._kernel = True
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._kernel:
            self.peak = max(self.peak, self._high_water_mark())

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def _high_water_mark(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


@dataclass
class LiveServer:
    base: str
    process: psutil.Process

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.base.removeprefix("http://").split(":")
        return host, int(port)


def server_process(base: str) -> psutil.Process:
    port = base.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        command = child.cmdline()
        if "uvicorn" in command and port in command:
            return child
    raise LookupError(f"no uvicorn child process serves {base}")


@pytest.fixture(scope="module")
def live(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = server_environment(settings, BODY_READ_TIMEOUT_SECONDS=str(BODY_READ_TIMEOUT_SECONDS))
    with running_server(env, cwd=tmp_path_factory.mktemp("hostile-server")) as base:
        yield LiveServer(base, server_process(base))


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base, timeout=FINISHED_AT_ALL) as client:
        yield client


async def served_meanwhile(http: httpx.AsyncClient, tenant: TenantHandle, attack: asyncio.Task[Any]) -> list[bool]:
    """Another tenant's normal requests, one after the other, until the attack is over (at least 3).

    Each is checked as it comes back; returns, for each, whether the attack was still going on."""
    during = []
    while not attack.done() or len(during) < 3:
        response = await http.post("/graphql", json={"query": NORMAL}, headers=tenant.headers(Role.VIEWER))
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        assert body["data"]["viewer"]["tenant"]["slug"] == tenant.slug
        assert len(body["data"]["customers"]["edges"]) == 3
        during.append(not attack.done())
        await asyncio.sleep(0.1)  # a steady client, well inside its plan's budget
    return during


@pytest.fixture
async def tenants(make_tenant: Callable[..., Any]) -> tuple[TenantHandle, TenantHandle]:
    """An attacker (SCALE, for the larger budget) and a bystander (STARTER)."""
    return await make_tenant(Plan.SCALE), await make_tenant(Plan.STARTER)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
async def test_a_live_server_under_a_hostile_request_serves_another_tenant_with_bounded_memory(
    live, http, tenants, owner_engine, case
):
    attacker, bystander = tenants
    customers = await count_customers(owner_engine, attacker)
    headers = {**attacker.headers(), "Content-Type": "application/json"}
    contents = [request_content(case, next(_nonces)) for _ in range(COPIES)]
    await http.post("/graphql", json={"query": NORMAL}, headers=bystander.headers())  # warm: memory starts settled

    async def attack() -> list[httpx.Response]:
        return await asyncio.gather(*(http.post("/graphql", content=content, headers=headers) for content in contents))

    with PeakRSS(live.process) as rss:
        task = asyncio.create_task(attack())
        await asyncio.wait_for(served_meanwhile(http, bystander, task), FINISHED_AT_ALL)
        responses = await task
    for response in responses:
        assert_outcome(case, response.status_code, response.content)
    assert await count_customers(owner_engine, attacker) == customers
    assert rss.growth < MAX_RSS_GROWTH, f"RSS grew by {rss.growth / MB:.1f} MB"
    print(f"\n{case.name}: peak RSS growth {rss.growth / MB:.1f} MB")


async def test_many_distinct_large_documents_do_not_pile_up_in_memory(live, http, tenants):
    """An attacker varying a 900 KB document: what the server caches of them stays bounded."""
    attacker, bystander = tenants
    headers = {**attacker.headers(), "Content-Type": "application/json"}
    document = '{ shipment(trackingNumber: "' + "x" * 900_000 + '") { id } }'
    with PeakRSS(live.process) as rss:
        for batch in range(30):
            contents = [orjson.dumps({"query": f"{document} # {uuid.uuid4()}"}) for _ in range(5)]

            async def attack(contents: list[bytes] = contents) -> list[httpx.Response]:
                return await asyncio.gather(*(http.post("/graphql", content=c, headers=headers) for c in contents))

            task = asyncio.create_task(attack())
            if batch % 10 == 0:
                await served_meanwhile(http, bystander, task)
            for response in await task:
                assert response.json()["data"] == {"shipment": None}
    assert rss.growth < MAX_RSS_GROWTH, f"150 distinct 900 KB documents: RSS grew by {rss.growth / MB:.1f} MB"
    print(f"\n150 distinct 900 KB documents: peak RSS growth {rss.growth / MB:.1f} MB")


# -- bodies that are too big, or too slow -------------------------------------------------------


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had written when the answer came
    closed: bool  # the server closed the connection after answering


async def raw_post(
    live: LiveServer,
    headers: dict[str, str],
    chunks: Iterable[bytes],
    *,
    chunked: bool = False,
    pause: float = 0.0,
) -> RawAnswer:
    """POST /graphql over a socket of its own, writing the body while reading the answer, so that
    a server that answers before the body is complete is seen doing so."""
    reader, writer = await asyncio.open_connection(*live.address)
    head = {"Host": "tenantql.test", "Content-Type": "application/json", **headers}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    writer.write(
        (
            "POST /graphql HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in head.items()) + "\r\n"
        ).encode()
    )
    sent = 0

    async def send() -> None:
        nonlocal sent
        try:
            for chunk in chunks:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
                await writer.drain()
                sent += len(chunk)
                if pause:
                    await asyncio.sleep(pause)
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server answered and closed: the rest is never read

    sending = asyncio.create_task(send())
    try:
        status = int((await reader.readline()).split()[1])
        answer_headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(answer_headers["content-length"]))
        at_answer = sent
        try:
            closed = await asyncio.wait_for(reader.read(1), 10) == b""
        except (ConnectionError, TimeoutError):
            closed = True
        return RawAnswer(status, answer_headers, body, at_answer, closed)
    finally:
        sending.cancel()
        writer.close()


def ten_megabytes(piece: int = 64 * 1024) -> Iterator[bytes]:
    """A 10 MB JSON body, in pieces: a query with one huge variable."""
    yield b'{"query": "{ viewer { role } }", "variables": {"x": "'
    for _ in range(10 * MB // piece):
        yield b"x" * piece
    yield b'"}}'


def error_code(body: bytes) -> str:
    [error] = orjson.loads(body)["errors"]
    return error["extensions"]["code"]


async def test_ten_megabyte_bodies_are_413_without_being_read_whole(live, http, tenants):
    attacker, bystander = tenants
    size = sum(len(piece) for piece in ten_megabytes())
    declared = [raw_post(live, {**attacker.headers(), "Content-Length": str(size)}, ten_megabytes()) for _ in range(4)]
    streamed = [raw_post(live, attacker.headers(), ten_megabytes(), chunked=True) for _ in range(4)]
    with PeakRSS(live.process) as rss:
        task = asyncio.create_task(asyncio.wait_for(asyncio.gather(*declared, *streamed), FINISHED_AT_ALL))
        await served_meanwhile(http, bystander, task)
        answers = await task
    for answer in answers:
        assert answer.status == 413 and error_code(answer.body) == "PAYLOAD_TOO_LARGE"
    assert rss.growth < MAX_RSS_GROWTH, f"eight 10 MB bodies: RSS grew by {rss.growth / MB:.1f} MB"
    print(
        f"\neight 10 MB bodies: peak RSS growth {rss.growth / MB:.1f} MB; sent before the answer: "
        f"{[round(answer.sent / MB, 1) for answer in answers]} MB"
    )


async def test_slow_bodies_end_with_408_while_other_tenants_are_served(live, http, tenants):
    """A slow-loris client trickling its body a byte at a time is cut off after BODY_READ_TIMEOUT_SECONDS."""
    attacker, bystander = tenants
    body = orjson.dumps({"query": "{ viewer { role } }", "variables": {"pad": "x" * 200}})
    headers = {**attacker.headers(), "Content-Length": str(len(body))}
    slow = [raw_post(live, headers, (body[i : i + 1] for i in range(len(body))), pause=0.2) for _ in range(20)]
    with PeakRSS(live.process) as rss:
        task = asyncio.create_task(asyncio.wait_for(asyncio.gather(*slow), FINISHED_AT_ALL))
        during = await served_meanwhile(http, bystander, task)
        answers = await task
    assert any(during), "the bystander's requests should have been answered while the slow bodies were arriving"
    for answer in answers:
        assert answer.status == 408 and error_code(answer.body) == "REQUEST_TIMEOUT"
        assert answer.sent < len(body)  # cut off, not waited for
        assert answer.closed  # the rest of the body is never read as a request
    assert rss.growth < MAX_RSS_GROWTH


async def test_connections_that_never_finish_their_headers_cost_a_socket_each_and_nothing_more(live, http, tenants):
    """Uvicorn waits for headers without a deadline and calls no application before they end, so
    the server cannot cut these off (a proxy in front must: docs/SECURITY.md). What it can do is
    keep serving: each such connection holds a socket and a few kilobytes, no request."""
    _, bystander = tenants
    opened = []
    with PeakRSS(live.process) as rss:
        for _ in range(200):
            reader, writer = await asyncio.open_connection(*live.address)
            writer.write(b"POST /graphql HTTP/1.1\r\nHost: tenantql.test\r\nAuthorization: Bearer ")
            opened.append((reader, writer))
        await asyncio.gather(*(writer.drain() for _, writer in opened))
        pause = asyncio.create_task(asyncio.sleep(1))
        during = await served_meanwhile(http, bystander, pause)
    try:
        assert all(during[:3])
        assert not any(reader.at_eof() for reader, _ in opened)  # still waiting: a proxy's job to end them
        assert rss.growth < MAX_RSS_GROWTH
    finally:
        for _, writer in opened:
            writer.close()


async def test_a_slow_body_without_a_credential_is_answered_401_at_once(live):
    """Authentication comes before the body is read: a stranger cannot even make the server wait."""
    body = b'{"query": "{ viewer { role } }"}'
    answer = await asyncio.wait_for(
        raw_post(live, {"Content-Length": str(len(body))}, (body[i : i + 1] for i in range(len(body))), pause=0.5),
        FINISHED_AT_ALL,
    )
    assert answer.status == 401 and error_code(answer.body) == "UNAUTHENTICATED"
    assert answer.sent < len(body)
