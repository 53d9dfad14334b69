"""Waiting for a running app to see a change to a tenant made elsewhere (another app, the CLI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

MARGIN_SECONDS = 2.0  # for a busy test machine


async def within_the_tenant_cache_time(
    settings: Any,
    http: httpx.AsyncClient,
    query: dict[str, Any],
    headers: dict[str, str],
    until: Callable[[httpx.Response], bool],
) -> httpx.Response:
    """Ask `http` until `until(response)`; fails if that takes longer than TENANT_CACHE_SECONDS
    plus a margin, the most a change to a tenant may take to reach a process that cached it."""
    deadline = time.monotonic() + settings.tenant_cache_seconds + MARGIN_SECONDS
    while True:
        response = await http.post("/graphql", json=query, headers=headers)
        if until(response):
            return response
        assert time.monotonic() < deadline, f"not seen within the tenant cache time: {response.text}"
        await asyncio.sleep(0.05)


__all__ = ["within_the_tenant_cache_time"]
