"""Engines for the two roles: the application role (requests) and the owner (migrations, onboarding)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_app_engine(url: str, *, pool_size: int = 10, statement_timeout_ms: int = 15_000) -> AsyncEngine:
    """The request path's engine.

    AUTOCOMMIT hands transaction control to `TenantDB`, which opens each transaction
    together with its tenant setting in one round trip. No pre-ping: it would cost a round
    trip per request, and a dead connection is invalidated on its first error anyway.
    """
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        pool_recycle=1800,
        connect_args={
            "timeout": 5,
            "server_settings": {
                "application_name": "tenantql",
                "statement_timeout": str(statement_timeout_ms),
                "idle_in_transaction_session_timeout": str(max(statement_timeout_ms * 2, 30_000)),
                "jit": "off",
            },
        },
    )


def create_owner_engine(url: str) -> AsyncEngine:
    """Onboarding and seeding as the owner. AUTOCOMMIT like the app engine, so that
    `tenant_transaction` works the same on both; migrations use their own engine."""
    return create_async_engine(
        url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=2, connect_args={"timeout": 5}
    )


__all__ = ["create_app_engine", "create_owner_engine"]
