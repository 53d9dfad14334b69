"""From a request's persisted-query fields to the query text to run, by the Apollo protocols.

- Automatic persisted queries: `extensions.persistedQuery = {"version": 1, "sha256Hash": h}`.
  A hash alone runs the document stored under it, or answers PERSISTED_QUERY_NOT_FOUND
  (HTTP 200, so Apollo clients send the text); hash and text together register the text
  once its SHA-256 is checked, so nobody can store a document under another's hash.
- Trusted documents: `documentId` (or the APQ hash) names a document of the loaded
  manifest.
- Modes: `off` refuses hash-only requests (PERSISTED_QUERY_NOT_SUPPORTED), `apq` runs
  anything valid, `strict` runs only the manifest's documents
  (PERSISTED_QUERY_NOT_IN_LIST). Strict can also apply to some clients only, named by
  the `apollographql-client-name` header, while the web frontend and GraphiQL stay open.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from db.persisted_queries import PersistedQueryStore, sha256_of
from tenantql.settings import PersistedMode

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueryError(Exception):
    """The operation cannot run as sent; `status` is the HTTP status whatever the media type, if fixed."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True, slots=True)
class PersistedQueries:
    store: PersistedQueryStore
    mode: PersistedMode = PersistedMode.APQ
    strict_clients: Collection[str] = ()

    def mode_for(self, client_name: str | None) -> PersistedMode:
        if client_name and client_name in self.strict_clients:
            return PersistedMode.STRICT
        return self.mode

    async def query_text(
        self,
        query: str | None,
        extensions: Mapping[str, Any] | None,
        document_id: str | None,
        *,
        client_name: str | None = None,
    ) -> str | None:
        """The text to execute; None when the request names no document at all."""
        mode = self.mode_for(client_name)
        sha256 = _persisted_hash(extensions)
        if document_id is not None or (sha256 is not None and query is None):
            if mode is PersistedMode.OFF:
                raise PersistedQueryError(NOT_SUPPORTED, "persisted queries are not enabled on this server")
            found = await self._find(document_id, sha256, mode)
            if found is None:
                raise PersistedQueryError(NOT_FOUND, "PersistedQueryNotFound", status=200)
            return found
        if query is None:
            return None
        if sha256 is not None and mode is not PersistedMode.OFF and sha256_of(query) != sha256:
            raise PersistedQueryError(
                HASH_MISMATCH, "the persisted query's hash is not the SHA-256 of its text", status=400
            )
        if mode is PersistedMode.STRICT:
            if not await self.store.is_trusted(query):
                raise PersistedQueryError(NOT_IN_LIST, "only the operations of the published manifest may run")
        elif mode is PersistedMode.APQ and sha256 is not None:
            await self.store.register(query)
        return query

    async def _find(self, document_id: str | None, sha256: str | None, mode: PersistedMode) -> str | None:
        if document_id is not None:
            return await self.store.trusted(document_id)
        assert sha256 is not None
        if mode is PersistedMode.STRICT:
            return await self.store.trusted(sha256)
        return await self.store.lookup(sha256)


def _persisted_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The APQ hash, if the request carries a well-formed `persistedQuery` extension."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            "BAD_REQUEST", '`extensions.persistedQuery` must be {"version": 1, "sha256Hash": ...}', status=400
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
        raise PersistedQueryError("BAD_REQUEST", "`sha256Hash` must be 64 hexadecimal digits", status=400)
    return sha256.lower()


__all__ = [
    "HASH_MISMATCH",
    "NOT_FOUND",
    "NOT_IN_LIST",
    "NOT_SUPPORTED",
    "PersistedQueries",
    "PersistedQueryError",
]
