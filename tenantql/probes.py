"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse


async def health(request: Request) -> JSONResponse:
    """200 while the process runs: restart it only if this stops answering."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """200 only while PostgreSQL and Redis both answer: send traffic here only then."""
    services = request.app.state.services
    postgres, redis = await asyncio.gather(_postgres_ok(services.engine), _redis_ok(services.redis))
    ok = postgres and redis
    body = {"status": "ready" if ok else "unavailable", "postgres": postgres, "redis": redis}
    return JSONResponse(body, status_code=200 if ok else 503, headers={"cache-control": "no-store"})


async def _postgres_ok(engine) -> bool:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(2):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def _redis_ok(redis) -> bool:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(1):
            return bool(await redis.ping())
    except Exception:
        return False


__all__ = ["health", "ready"]
