"""A PgBouncer in transaction pooling mode, in front of the tests' PostgreSQL, started by the tests.

It listens on a Unix socket in a folder of its own (no port to clash with), trusts the
application role as PostgreSQL itself does, and keeps `pool_size` server connections at
most, so every client connection and every tenant shares them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from tenantql.embedded import EmbeddedPostgres

INSTALL = "install Debian's package: apt-get install -y pgbouncer (`make test` does)"
PORT = 6432  # only names the socket file, `.s.PGSQL.6432`, in the folder
READY_SECONDS = 20


class PgBouncer:
    def __init__(self, postgres: EmbeddedPostgres, *, pool_size: int) -> None:
        self.postgres = postgres
        self.pool_size = pool_size
        self.directory = Path(tempfile.mkdtemp(prefix="tql-pgbouncer-"))  # short: a socket path has ~100 bytes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "pgbouncer.log"

    def url(self, role: str) -> str:
        return f"postgresql+asyncpg://{role}@/{self.postgres.roles.database}?host={self.directory}&port={PORT}"

    async def connect(self, role: str) -> asyncpg.Connection:
        """A plain asyncpg connection through the pooler, for checks below the application."""
        return await asyncpg.connect(
            host=str(self.directory), port=PORT, user=role, database=self.postgres.roles.database,
            statement_cache_size=0,
        )  # fmt: skip

    def write_config(self) -> Path:
        roles = self.postgres.roles
        (self.directory / "users.txt").write_text(f'"{roles.app}" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
{roles.database} = host={self.postgres.socket_dir} dbname={roles.database}

[pgbouncer]
listen_addr =
listen_port = {PORT}
unix_socket_dir = {self.directory}
auth_type = trust
auth_file = {self.directory}/users.txt
pool_mode = transaction
default_pool_size = {self.pool_size}
max_db_connections = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
logfile = {self.log}
pidfile = {self.directory}/pgbouncer.pid
"""
        )
        return config

    async def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            pytest.fail(f"pgbouncer is not installed, and the transaction pooler tests need it: {INSTALL}")
        self.process = self._launch(binary)
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                connection = await self.connect(self.postgres.roles.app)
            except (OSError, asyncpg.PostgresError) as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self._log_tail()
                    self.stop()
                    pytest.fail(f"pgbouncer did not start ({error}); its log:\n{log}")
                await asyncio.sleep(0.1)
            else:
                await connection.close()
                return

    def _launch(self, binary: str) -> subprocess.Popen[bytes]:
        command = [binary, "-q"]  # quiet: it logs to its file only
        if self.postgres.user:  # running as root: PgBouncer refuses to, so it runs as PostgreSQL's user
            shutil.chown(self.directory, self.postgres.user)
            command += ["-u", self.postgres.user]
        return subprocess.Popen([*command, str(self.write_config())], stdin=subprocess.DEVNULL)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return "(none)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["PgBouncer"]
