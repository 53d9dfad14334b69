"""Opening Redis: every client of the service is made here, with the same settings."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.maint_notifications import MaintNotificationsConfig


def open_redis(url: str, *, socket_timeout: float) -> Redis:
    """A client whose pooled connections are checked before reuse.

    Maintenance notifications are off: left on ("auto"), redis-py skips its check of pooled
    connections, so after a Redis restart each stale connection failed one command (and the
    budgets failed over again, once per stale connection)."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


__all__ = ["open_redis"]
