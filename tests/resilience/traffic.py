"""Mixed-tenant traffic for the outage tests: several concurrent clients per tenant, every answer kept.

Each client sends, in turn, reads (a page of shipments with their customers, one shipment
with its events, a page of customers with the viewer's tenant) and mutations
(`createCustomer`, and `recordTrackingEvent` on shipments no other client touches, so each
shipment's events are recorded one after another and its status must be its latest event's).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.transaction import tenant_transaction
from resolvers.ids import id_of
from tests.conftest import TenantHandle

SHIPMENTS = "{ shipments(first: 5) { edges { node { id trackingNumber status customer { name email } } } } }"
SHIPMENT = """query One($number: String!) {
  shipment(trackingNumber: $number) { id trackingNumber status events(last: 3) { status note } }
}"""
CUSTOMERS = "{ viewer { tenant { slug } } customers(first: 5) { edges { node { id name email } } } }"
CREATE_CUSTOMER = """mutation Create($input: CreateCustomerInput!) {
  createCustomer(input: $input) { customer { id name email } userErrors { code message } }
}"""
RECORD_EVENT = """mutation Record($input: RecordTrackingEventInput!) {
  recordTrackingEvent(input: $input) {
    trackingEvent { id status note }
    shipment { id status }
    userErrors { code message }
  }
}"""
OPEN_SHIPMENTS = "{ shipments(first: 100) { edges { node { id status } } } }"
KINDS = ("shipments", "createCustomer", "shipment", "recordTrackingEvent", "customers")
MOVES = ("IN_TRANSIT", "OUT_FOR_DELIVERY")
FINAL = frozenset({"DELIVERED", "CANCELLED"})


@dataclass
class Answer:
    """One request and what came back: an HTTP status and body, or the transport error instead."""

    tenant: TenantHandle
    kind: str
    started: float
    ended: float
    status: int | None = None
    body: Any = None
    text: str = ""
    content_type: str = ""
    failure: str | None = None  # no HTTP answer: a timeout or a broken connection
    note: str | None = None  # recordTrackingEvent: the event's note, to find it in the database

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def codes(self) -> list[str]:
        errors = self.body.get("errors", []) if isinstance(self.body, dict) else []
        return [(error.get("extensions") or {}).get("code") for error in errors]

    @property
    def ok(self) -> bool:
        """A 200 whose data holds no error, top-level or user error."""
        if self.status != 200 or not isinstance(self.body, dict) or "errors" in self.body:
            return False
        payload = next(iter((self.body.get("data") or {}).values()), None)
        return not (isinstance(payload, dict) and payload.get("userErrors"))

    def payload(self) -> dict[str, Any]:
        return next(iter(self.body["data"].values()))


@dataclass
class Client:
    number: int
    tenant: TenantHandle
    shipments: list[str]  # global ids of open shipments only this client records events on
    moves: dict[str, int] = field(default_factory=dict)


class MixedLoad:
    """Usage: `load = MixedLoad(http, [a, b]); await load.prepare(); load.start(); ...; answers = await load.stop()`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tenants: Iterable[TenantHandle],
        *,
        clients_per_tenant: int = 3,
        pause: float = 0.02,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.http = http
        self.tenants = list(tenants)
        self.clients_per_tenant = clients_per_tenant
        self.pause = pause
        self.kinds = kinds
        self.answers: list[Answer] = []
        self.clients: list[Client] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def prepare(self) -> None:
        """Read each tenant's open shipments through the API and share them out among its clients."""
        number = itertools.count()
        for tenant in self.tenants:
            response = await self.http.post("/graphql", json={"query": OPEN_SHIPMENTS}, headers=tenant.headers())
            assert response.status_code == 200, response.text
            nodes = [edge["node"] for edge in response.json()["data"]["shipments"]["edges"]]
            open_ids = [node["id"] for node in nodes if node["status"] not in FINAL]
            assert len(open_ids) >= self.clients_per_tenant, "too few open shipments to give each client its own"
            for i in range(self.clients_per_tenant):
                self.clients.append(Client(next(number), tenant, open_ids[i :: self.clients_per_tenant]))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(client)) for client in self.clients]

    async def stop(self) -> list[Answer]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.answers

    async def _run(self, client: Client) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            kind = self.kinds[(n + client.number) % len(self.kinds)]
            body, note = self._request(client, kind, n)
            self.answers.append(await self._send(client.tenant, kind, body, note))
            await asyncio.sleep(self.pause)

    def _request(self, client: Client, kind: str, n: int) -> tuple[dict[str, Any], str | None]:
        tenant = client.tenant
        if kind == "shipments":
            return {"query": SHIPMENTS}, None
        if kind == "shipment":
            return {
                "query": SHIPMENT,
                "variables": {"number": tenant.tracking_numbers[n % len(tenant.tracking_numbers)]},
            }, None
        if kind == "customers":
            return {"query": CUSTOMERS}, None
        if kind == "createCustomer":
            tag = f"{client.number}-{n}"
            customer = {"name": f"{tenant.slug} customer {tag}", "email": f"c{tag}@{tenant.slug}.example"}
            return {"query": CREATE_CUSTOMER, "variables": {"input": customer}}, None
        shipment = client.shipments[n % len(client.shipments)]
        move = client.moves.get(shipment, 0)
        client.moves[shipment] = move + 1
        note = f"load {client.number}-{n}"
        event = {"shipmentId": shipment, "status": MOVES[move % 2], "note": note}
        return {"query": RECORD_EVENT, "variables": {"input": event}}, note

    async def _send(self, tenant: TenantHandle, kind: str, body: dict[str, Any], note: str | None) -> Answer:
        answer = Answer(tenant, kind, time.monotonic(), 0.0, note=note)
        try:
            response = await self.http.post("/graphql", json=body, headers=tenant.headers())
        except httpx.HTTPError as error:
            answer.failure = f"{type(error).__name__}: {error}"
        else:
            answer.status, answer.text = response.status_code, response.text
            answer.content_type = response.headers.get("content-type", "")
            try:
                answer.body = response.json()
            except ValueError:
                answer.body = None
        answer.ended = time.monotonic()
        return answer


def foreign_markers(tenant: TenantHandle, shipment_ids: Iterable[str]) -> list[str]:
    """Strings only `tenant`'s data holds: its id, its slug (in its emails and new customers'
    names), its tracking numbers and its shipments' global ids."""
    return [str(tenant.id), tenant.slug, *tenant.tracking_numbers, *shipment_ids]


def leaks(answers: Iterable[Answer], markers: dict[uuid.UUID, list[str]]) -> list[str]:
    """Answers that carry a string of a tenant other than their own."""
    found = []
    for answer in answers:
        for tenant_id, strings in markers.items():
            if tenant_id != answer.tenant.id:
                found += [f"{answer.kind} of {answer.tenant.slug}: {s}" for s in strings if s in answer.text]
    return found


async def mutations_lost_or_half_done(owner: AsyncEngine, answers: list[Answer]) -> list[str]:
    """Every mutation answered with success is in the database, read as the owner; nothing
    is half done: each event and each new customer has its audit row and each audit row its
    change, and each shipment the load moved has the status of its latest event."""
    problems: list[str] = []
    events: dict[uuid.UUID, Any] = {}
    customers: set[uuid.UUID] = set()
    load_customers: set[uuid.UUID] = set()
    audits: list[Any] = []
    latest: list[Any] = []
    for tenant_id in {answer.tenant.id for answer in answers}:
        async with tenant_transaction(owner, tenant_id) as db:  # RLS is forced on the owner too

            async def rows(sql: str) -> list[Any]:
                return list(await db.all(text(sql)))

            events |= {
                row.id: row
                for row in await rows("SELECT id, shipment_id, status FROM tracking_events WHERE note LIKE 'load %'")
            }
            customers |= {row.id for row in await rows("SELECT id FROM customers")}
            load_customers |= {row.id for row in await rows("SELECT id FROM customers WHERE name LIKE '% customer %'")}
            audits += await rows(
                "SELECT action, target_id, changes FROM audit_log "
                "WHERE action IN ('shipment.record_event', 'customer.create')"
            )
            latest += await rows(
                "SELECT DISTINCT ON (e.shipment_id) e.shipment_id, e.status AS event_status, "
                "s.status AS shipment_status "
                "FROM tracking_events e JOIN shipments s ON (s.tenant_id, s.id) = (e.tenant_id, e.shipment_id) "
                "WHERE e.note LIKE 'load %' ORDER BY e.shipment_id, e.occurred_at DESC, e.id DESC"
            )
    audited_events = {uuid.UUID(row.changes["event_id"]) for row in audits if row.action == "shipment.record_event"}
    audited_customers = {row.target_id for row in audits if row.action == "customer.create"}

    for answer in answers:
        if not answer.ok or answer.kind not in ("createCustomer", "recordTrackingEvent"):
            continue
        payload = answer.payload()
        if answer.kind == "createCustomer":
            customer_id = id_of(payload["customer"]["id"], "Customer")
            if customer_id not in customers:
                problems.append(f"customer {customer_id} answered as created is missing")
        else:
            event_id = id_of(payload["trackingEvent"]["id"], "TrackingEvent")
            if event_id not in events:
                problems.append(f"tracking event {event_id} answered as recorded is missing")
    problems += [f"event {event_id} without its audit row" for event_id in events.keys() - audited_events]
    problems += [f"audit row of event {event_id} without the event" for event_id in audited_events - events.keys()]
    problems += [f"audit row of customer {c} without the customer" for c in audited_customers - customers]
    problems += [f"customer {c} without its audit row" for c in load_customers - audited_customers]
    problems += [
        f"shipment {row.shipment_id} is {row.shipment_status} but its latest event says {row.event_status}"
        for row in latest
        if row.shipment_status != row.event_status
    ]
    return problems


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.1)


__all__ = ["Answer", "MixedLoad", "eventually", "foreign_markers", "leaks", "mutations_lost_or_half_done"]
