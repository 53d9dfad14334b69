"""The long-lived resources of one server process, opened in the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.authenticate import Authenticator
from auth.jwt import JWKSKeys, JWTVerifier
from db.api_keys import ApiKeyDirectory
from db.bucket_failover import FailoverBuckets
from db.engine import create_app_engine
from db.persisted_queries import PersistedQueryStore, read_manifest
from db.redis_client import open_redis
from db.roles import check_application_role
from db.tenants import TenantDirectory
from db.usage import PendingUsage
from db.usage_flusher import UsageFlusher
from schema import TenantQLSchema, build_schema
from schema.extensions.cost_limit import CostLimit, CostPolicy
from tenantql.persisted import PersistedQueries
from tenantql.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    tenants: TenantDirectory
    authenticator: Authenticator
    buckets: FailoverBuckets
    costs: CostPolicy
    persisted: PersistedQueries
    schema: TenantQLSchema
    usage: UsageFlusher

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError(
                "DATABASE_URL and REDIS_URL must be set (`tenantql serve` sets them for embedded servers)"
            )
        engine = create_app_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            statement_timeout_ms=settings.database_statement_timeout_ms,
            connect_timeout=settings.database_connect_timeout_seconds,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        try:
            await check_application_role(engine)
        except BaseException:
            await engine.dispose()
            raise
        redis = open_redis(settings.redis_url, socket_timeout=1.0)
        tenants = TenantDirectory(engine, ttl_seconds=settings.tenant_cache_seconds)
        buckets = FailoverBuckets(redis)
        costs = CostPolicy(buckets, usage=PendingUsage(redis, buckets.usage))
        store = PersistedQueryStore(redis)
        if settings.persisted_query_manifest:
            operations = read_manifest(settings.persisted_query_manifest)
            store.pin(operations)
            try:
                await store.load_manifest(operations)
            except (RedisError, OSError) as error:
                log.warning("could not share the persisted query manifest through Redis: %s", error)
            log.info("trusted %d operations of %s", len(operations), settings.persisted_query_manifest)
        persisted = PersistedQueries(store, settings.persisted_queries, settings.persisted_query_strict_clients)
        usage = UsageFlusher.connect(
            settings.database_url,
            settings.redis_url,
            buckets.usage,
            every=settings.usage_flush_seconds,
            statement_timeout_ms=settings.database_statement_timeout_ms,
        )
        return cls(
            settings=settings,
            engine=engine,
            redis=redis,
            tenants=tenants,
            authenticator=Authenticator(verifier_for(settings), tenants, ApiKeyDirectory(engine)),
            buckets=buckets,
            costs=costs,
            persisted=persisted,
            schema=build_schema(introspection=settings.introspection, extensions=[lambda: CostLimit(costs)]),
            usage=usage,
        )

    async def close(self) -> None:
        try:
            await self.usage.aclose()  # first: its last flush needs Redis and PostgreSQL
            await self.buckets.aclose()
            await self.redis.aclose()
        finally:
            await self.engine.dispose()


def verifier_for(settings: Settings) -> JWTVerifier:
    return JWTVerifier(
        secret=str(settings.jwt_secret) if settings.jwt_secret else None,
        jwks=JWKSKeys(settings.jwt_jwks_url) if settings.jwt_jwks_url else None,
        algorithms=settings.jwt_algorithms,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


__all__ = ["Services", "verifier_for"]
