"""Persisted query documents in Redis: registered by clients (APQ) or trusted from a manifest.

Documents are not tenant data: one store serves every tenant and every process. A
document is stored under the SHA-256 of its text, so what a hash names can never change,
and each process keeps the documents it has seen in memory for good (bounded by an LRU):
a known hash costs no Redis round trip after its first use.

Registered (APQ) documents expire after `apq_ttl` seconds without being registered again,
so clients cannot fill Redis for ever. Trusted documents come from an Apollo persisted
query manifest: loading one replaces the trusted set (or adds to it, when asked), and a
process trusts what it remembers for only `trusted_ttl` seconds before asking Redis
again, so an operation taken out of the manifest stops running everywhere within that time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("tenantql.persisted")

APQ_PREFIX = "tql:pq:apq:"
TRUSTED_PREFIX = "tql:pq:trusted:"
TRUSTED_KEYS = "tql:pq:trusted-keys"  # the keys the last loaded manifests wrote
MANIFEST_FORMAT = "apollo-persisted-query-manifest"


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ManifestOperation:
    id: str
    name: str | None
    type: str | None
    body: str


class ManifestError(ValueError):
    """The file is not an Apollo persisted query manifest this server can use."""


def read_manifest(path: str | Path) -> list[ManifestOperation]:
    """The operations of an Apollo persisted query manifest, checked for shape."""
    try:
        data: Any = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ManifestError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or data.get("version") != 1:
        raise ManifestError(f'{path} is not {{"format": "{MANIFEST_FORMAT}", "version": 1, ...}}')
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{path} has no list of operations")
    found = []
    for item in operations:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("body"), str):
            raise ManifestError(f"{path}: every operation needs a string `id` and `body`")
        found.append(ManifestOperation(item["id"], item.get("name"), item.get("type"), item["body"]))
    return found


class PersistedQueryStore:
    """Usage: `text = await store.lookup(hash)`; `await store.register(text)` after checking its hash."""

    def __init__(
        self, redis: Redis, *, apq_ttl: int = 7 * 24 * 3600, trusted_ttl: float = 30.0, cache_size: int = 4096
    ) -> None:
        self.redis = redis
        self.apq_ttl = apq_ttl
        self.trusted_ttl = trusted_ttl
        self.cache_size = cache_size
        # (kind, id) -> (text, monotonic time until which it may be answered from memory)
        self._documents: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._pinned: dict[str, str] = {}  # id or SHA-256 -> text: this process's own manifest

    def pin(self, operations: list[ManifestOperation]) -> None:
        """Trust a manifest in this process for its whole life, whatever Redis holds or says.

        For the manifest a server is configured with: it keeps running its operations
        through a Redis outage, and a manifest loaded later elsewhere does not take them away."""
        for operation in operations:
            self._pinned[operation.id] = self._pinned[sha256_of(operation.body)] = operation.body

    async def trusted(self, document_id: str) -> str | None:
        """The manifest's document under this id (its own or its text's SHA-256)."""
        if (pinned := self._pinned.get(document_id)) is not None:
            return pinned
        return await self._get("trusted", TRUSTED_PREFIX, document_id)

    async def lookup(self, sha256: str) -> str | None:
        """A trusted document or, failing that, a registered one.

        Either is the text whose SHA-256 this is, so one seen before, of either kind, is
        answered from memory: a known hash costs no round trip."""
        for kind in ("trusted", "apq"):
            if (cached := self._cached((kind, sha256))) is not None:
                return cached
        return await self.trusted(sha256) or await self._get("apq", APQ_PREFIX, sha256)

    async def is_trusted(self, text: str) -> bool:
        return await self.trusted(sha256_of(text)) is not None

    async def register(self, text: str) -> None:
        """Store a document whose hash the caller has checked; a failure only costs a later miss."""
        sha256 = sha256_of(text)
        self._remember(("apq", sha256), text)
        try:
            await self.redis.set(APQ_PREFIX + sha256, text, ex=self.apq_ttl)
        except (RedisError, OSError) as error:
            log.warning("could not register a persisted query: %s", error)

    async def load_manifest(self, operations: list[ManifestOperation], *, replace: bool = True) -> int:
        """Trust a manifest's documents, by id and by the SHA-256 of their text.

        With `replace`, documents of earlier manifests that this one lacks stop being trusted."""
        mapping = {}
        for operation in operations:
            mapping[TRUSTED_PREFIX + operation.id] = operation.body
            mapping[TRUSTED_PREFIX + sha256_of(operation.body)] = operation.body
        earlier = {key.decode() for key in await self.redis.smembers(TRUSTED_KEYS)} if replace else set()
        async with self.redis.pipeline(transaction=True) as pipe:
            if mapping:
                pipe.mset(mapping)
            if stale := earlier - mapping.keys():
                pipe.delete(*stale)
            if replace:
                pipe.delete(TRUSTED_KEYS)
            if mapping:
                pipe.sadd(TRUSTED_KEYS, *mapping)
            await pipe.execute()
        for key in stale:
            self._documents.pop(("trusted", key.removeprefix(TRUSTED_PREFIX)), None)
        for key, text in mapping.items():
            self._remember(("trusted", key.removeprefix(TRUSTED_PREFIX)), text)
        return len(operations)

    def _cached(self, key: tuple[str, str]) -> str | None:
        entry = self._documents.get(key)
        if entry is None:
            return None
        text, fresh_until = entry
        if fresh_until < time.monotonic():
            del self._documents[key]
            return None
        self._documents.move_to_end(key)
        return text

    async def _get(self, kind: str, prefix: str, key: str) -> str | None:
        if (cached := self._cached((kind, key))) is not None:
            return cached
        try:
            value = await self.redis.get(prefix + key)
        except (RedisError, OSError) as error:
            log.warning("could not look up a persisted query: %s", error)
            return None
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        self._remember((kind, key), text)
        return text

    def _remember(self, key: tuple[str, str], text: str) -> None:
        # What a hash names never changes; whether a document is trusted can.
        fresh_until = time.monotonic() + self.trusted_ttl if key[0] == "trusted" else math.inf
        self._documents[key] = (text, fresh_until)
        self._documents.move_to_end(key)
        while len(self._documents) > self.cache_size:
            self._documents.popitem(last=False)


__all__ = [
    "APQ_PREFIX",
    "MANIFEST_FORMAT",
    "TRUSTED_KEYS",
    "TRUSTED_PREFIX",
    "ManifestError",
    "ManifestOperation",
    "PersistedQueryStore",
    "read_manifest",
    "sha256_of",
]
