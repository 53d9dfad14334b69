"""The service's settings: read once from the environment (and `.env`), typed and frozen."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from db.engine import Pooler, with_pooler


class PersistedMode(StrEnum):
    OFF = "off"
    APQ = "apq"
    STRICT = "strict"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class GraphiQLAssets(StrEnum):
    LOCAL = "local"  # served by the app from the npm packages `make install` fetched: works offline
    CDN = "cdn"  # the same pinned versions from unpkg.com


def _flag(value: str) -> bool:
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _database_url(url: str | None, pooler: Pooler | None) -> str | None:
    """DATABASE_URL, naming DATABASE_POOLER if set: the engines read it from the URL
    (docs/adr/0008-transaction-poolers.md), worker processes included."""
    return with_pooler(url, pooler) if url and pooler else url


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, named as in the contract's section 10.

    `database_url` and `redis_url` are None when the embedded servers should be started.
    """

    database_url: str | None = None
    database_owner_url: str | None = None
    redis_url: str | None = None
    jwt_secret: Secret | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    persisted_queries: PersistedMode = PersistedMode.APQ
    persisted_query_manifest: str | None = None
    persisted_query_strict_clients: tuple[str, ...] = ()
    graphiql: bool = True
    graphiql_assets: GraphiQLAssets = GraphiQLAssets.LOCAL
    graphiql_assets_dir: Path | None = None  # None: graphiql/node_modules in the source tree
    introspection: bool = True
    cors_origins: tuple[str, ...] = ()
    log_format: LogFormat = LogFormat.CONSOLE
    home: Path = Path(".tenantql")
    database_pool_size: int = 10
    database_statement_timeout_ms: int = 15_000
    database_connect_timeout_seconds: float = 5.0  # a new connection, or the request fails with 503
    database_pool_timeout_seconds: float = 10.0  # waiting for a pooled connection, likewise
    shutdown_grace_seconds: int = 20  # `serve`: how long SIGTERM waits for requests in flight
    body_read_timeout_seconds: float = 30.0  # a request body must arrive within this, or 408
    tenant_cache_seconds: float = 5.0
    tracking_domain: str | None = None  # public tracking at <slug>.<tracking_domain>; None: custom domains only
    usage_flush_seconds: float = 60.0  # how often metered usage moves from Redis to PostgreSQL
    graphiql_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env_file: str | None = ".env") -> Settings:
        env = Config(env_file if env_file and Path(env_file).is_file() else None)
        home = Path(env("TENANTQL_HOME", default=".tenantql")).expanduser()
        secret = env("JWT_SECRET", cast=Secret, default=None)
        jwks_url = env("JWT_JWKS_URL", default=None) or None
        assets_dir = env("GRAPHIQL_ASSETS_DIR", default=None) or None
        return cls(
            database_url=_database_url(
                env("DATABASE_URL", default=None) or None, env("DATABASE_POOLER", cast=Pooler, default=None)
            ),
            database_owner_url=env("DATABASE_OWNER_URL", default=None) or None,
            redis_url=env("REDIS_URL", default=None) or None,
            jwt_secret=secret if secret and str(secret) else None,
            jwt_jwks_url=jwks_url,
            jwt_issuer=env("JWT_ISSUER", default=None) or None,
            jwt_audience=env("JWT_AUDIENCE", default=None) or None,
            jwt_algorithms=tuple(env("JWT_ALGORITHMS", cast=CommaSeparatedStrings, default="")),
            persisted_queries=env("PERSISTED_QUERIES", cast=PersistedMode, default="apq"),
            persisted_query_manifest=env("PERSISTED_QUERY_MANIFEST", default=None) or None,
            persisted_query_strict_clients=tuple(
                env("PERSISTED_QUERIES_STRICT_CLIENTS", cast=CommaSeparatedStrings, default="")
            ),
            graphiql=env("GRAPHIQL", cast=_flag, default="true"),
            graphiql_assets=env("GRAPHIQL_ASSETS", cast=GraphiQLAssets, default="local"),
            graphiql_assets_dir=Path(assets_dir).expanduser() if assets_dir else None,
            introspection=env("INTROSPECTION", cast=_flag, default="true"),
            cors_origins=tuple(env("CORS_ORIGINS", cast=CommaSeparatedStrings, default="")),
            log_format=env("LOG_FORMAT", cast=LogFormat, default="console"),
            home=home,
            database_pool_size=env("DATABASE_POOL_SIZE", cast=int, default=10),
            database_statement_timeout_ms=env("DATABASE_STATEMENT_TIMEOUT_MS", cast=int, default=15_000),
            database_connect_timeout_seconds=env("DATABASE_CONNECT_TIMEOUT_SECONDS", cast=float, default=5.0),
            database_pool_timeout_seconds=env("DATABASE_POOL_TIMEOUT_SECONDS", cast=float, default=10.0),
            shutdown_grace_seconds=env("SHUTDOWN_GRACE_SECONDS", cast=int, default=20),
            body_read_timeout_seconds=env("BODY_READ_TIMEOUT_SECONDS", cast=float, default=30.0),
            tenant_cache_seconds=env("TENANT_CACHE_SECONDS", cast=float, default=5.0),
            tracking_domain=env("TRACKING_DOMAIN", default="").strip().strip(".").lower() or None,
            usage_flush_seconds=env("USAGE_FLUSH_SECONDS", cast=float, default=60.0),
            graphiql_token=env("TENANTQL_GRAPHIQL_TOKEN", default=None) or None,
        )

    def with_servers(self, *, database_url: str, database_owner_url: str, redis_url: str) -> Settings:
        return replace(
            self,
            database_url=database_url,
            database_owner_url=database_owner_url,
            redis_url=redis_url,
        )

    def export(self) -> None:
        """Put what `serve` worked out (server addresses, secret, demo token) into the
        environment, for its worker processes to read."""
        for name, value in (
            ("DATABASE_URL", self.database_url),
            ("JWT_SECRET", str(self.jwt_secret) if self.jwt_secret else None),
            ("DATABASE_OWNER_URL", self.database_owner_url),
            ("REDIS_URL", self.redis_url),
            ("TENANTQL_GRAPHIQL_TOKEN", self.graphiql_token),
        ):
            if value:
                os.environ[name] = value


__all__ = ["GraphiQLAssets", "LogFormat", "PersistedMode", "Settings"]
