"""The operations under load, as GraphQL documents and the request bodies that carry them.

Each operation knows the substring a successful answer must contain, so the wrk script
can count a 200 that carries `errors`, `userErrors` or nothing at all as a failure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

Q1 = """query Q1($trackingNumber: String!) {
  shipment(trackingNumber: $trackingNumber) { trackingNumber status customer { name } }
}"""

Q2 = """query Q2($first: Int!) {
  shipments(first: $first) {
    edges {
      node {
        trackingNumber
        status
        customer { name }
        driver { name vehicle { plate } }
        events(last: 5) { status occurredAt }
      }
    }
  }
}"""

Q3 = """mutation Q3($shipmentId: ID!) {
  recordTrackingEvent(input: {shipmentId: $shipmentId, status: IN_TRANSIT, location: "Bench Hub"}) {
    trackingEvent { id status occurredAt }
    shipment { id status }
    userErrors { field message code }
  }
}"""

PLAN = """query Plan($first: Int!) {
  shipments(first: $first) { edges { node { id trackingNumber status } } }
}"""


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    query: str
    operation_name: str
    expect: str  # a successful body contains this
    persisted: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.query.encode()).hexdigest()

    def body(self, variables: dict[str, Any]) -> bytes:
        """The body a client sends: the full query, or only its hash when persisted."""
        payload: dict[str, Any] = {"operationName": self.operation_name, "variables": variables}
        if self.persisted:
            payload["extensions"] = apq_extension(self.sha256)
        else:
            payload["query"] = self.query
        return orjson.dumps(payload)

    def registration_body(self, variables: dict[str, Any]) -> bytes:
        """Automatic persisted queries: query and hash together register the hash."""
        return orjson.dumps(
            {
                "operationName": self.operation_name,
                "query": self.query,
                "variables": variables,
                "extensions": apq_extension(self.sha256),
            }
        )


def apq_extension(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


SHIPMENT_BY_TRACKING_NUMBER = Operation("Q1", Q1, "Q1", expect='"shipment":{"trackingNumber"')
NESTED_SHIPMENTS = Operation("Q2", Q2, "Q2", expect='"edges":[{"node"')
RECORD_TRACKING_EVENT = Operation("Q3", Q3, "Q3", expect='"userErrors":[]')
PERSISTED_Q1 = Operation("Q1p", Q1, "Q1", expect=SHIPMENT_BY_TRACKING_NUMBER.expect, persisted=True)
PERSISTED_Q2 = Operation("Q2p", Q2, "Q2", expect=NESTED_SHIPMENTS.expect, persisted=True)

OPERATIONS = (SHIPMENT_BY_TRACKING_NUMBER, NESTED_SHIPMENTS, RECORD_TRACKING_EVENT, PERSISTED_Q1, PERSISTED_Q2)

__all__ = [
    "NESTED_SHIPMENTS",
    "OPERATIONS",
    "PERSISTED_Q1",
    "PERSISTED_Q2",
    "PLAN",
    "RECORD_TRACKING_EVENT",
    "SHIPMENT_BY_TRACKING_NUMBER",
    "Operation",
    "apq_extension",
]
