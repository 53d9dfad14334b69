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
    """200 while PostgreSQL answers: send traffic here only then.

    Without Redis the server still serves, limiting each tenant with per-process buckets,
    so a Redis outage makes it `degraded`, still 200, rather than unready.
    """
    services = request.app.state.services
    postgres, redis = await asyncio.gather(_postgres_ok(services.engine), _redis_ok(services.redis))
    shared = services.buckets.shared
    status = "unavailable" if not postgres else "ready" if redis and shared else "degraded"
    body = {
        "status": status,
        "postgres": postgres,
        "redis": redis,
        "budgets": "shared" if shared else "per-process",
    }
    return JSONResponse(body, status_code=200 if postgres else 503, headers={"cache-control": "no-store"})


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
