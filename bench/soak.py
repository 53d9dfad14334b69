"""`make soak`: mixed-tenant traffic against `tenantql serve --workers 2` for ten minutes, looking for leaks.

Usage: `python -m bench.soak` (SOAK_SECONDS=60 shortens it). It starts the embedded
PostgreSQL and Valkey under SOAK_TENANTQL_HOME itself, so they outlive the server and show
what it left behind; seeds a few tenants with `tenantql seed`; starts the server as a user
would; and drives Q1, Q2 (first 20) and Q3 of bench/operations.py at once with three wrk
processes, every tenant in rotation, in intervals. Between intervals, with the load paused,
it takes a sample: the server's memory, file descriptors and threads, the application
role's PostgreSQL connections (and how many sit idle in a transaction) and the Redis
clients. At the end it stops the server with SIGTERM and checks that nothing of it is left
connected. It prints requests, errors, leaks found (must be 0) and RSS at the start (after
the warm-up) and at the end, and exits 1 unless errors and leaks are 0, RSS grew less than
10% and the shutdown was clean.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from bench.config import ROOT, DataSet
from bench.dataset import TenantPlan, lift_budgets, mint_tokens, plan_tenants, requests_for, seed
from bench.load import WrkResult, run_wrk, write_plan, wrk_executable
from bench.operations import NESTED_SHIPMENTS, RECORD_TRACKING_EVENT, SHIPMENT_BY_TRACKING_NUMBER, Operation
from bench.server import ServeProcess, api_processes, free_port, serve_env, tenantql_executable, tree_rss

OPERATIONS = (SHIPMENT_BY_TRACKING_NUMBER, NESTED_SHIPMENTS, RECORD_TRACKING_EVENT)
RSS_GROWTH_LIMIT = 0.10
FD_SLACK = 16  # descriptors a pool may still open after the warm-up (PostgreSQL and Redis connections)
MIB = 1024 * 1024
# Six tenants are enough to mix; small enough to seed in seconds on a first run.
SOAK_DATA = DataSet(tenants=6, shipments=300, customers=30, vehicles=10, drivers=12, events=3, prefix="soak")


def log(message: str) -> None:
    print(f"[soak {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class SoakConfig:
    seconds: int = 600
    warmup_seconds: int = 20
    interval_seconds: int = 60
    connections: int = 4  # per operation; three operations run at once
    workers: int = 2
    pool_size: int = 10  # the server's DATABASE_POOL_SIZE, per worker
    grace_seconds: int = 20  # the server's SHUTDOWN_GRACE_SECONDS
    home: Path = ROOT / ".tenantql-bench" / "soak"
    data: DataSet = SOAK_DATA

    @classmethod
    def from_env(cls) -> SoakConfig:
        env = os.environ
        seconds = int(env.get("SOAK_SECONDS", "600"))
        return cls(
            seconds=seconds,
            warmup_seconds=int(env.get("SOAK_WARMUP_SECONDS", "20")),
            interval_seconds=int(env.get("SOAK_INTERVAL_SECONDS", str(min(60, max(10, seconds // 6))))),
            connections=int(env.get("SOAK_CONNECTIONS", "4")),
            pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            grace_seconds=int(env.get("SHUTDOWN_GRACE_SECONDS", "20")),
            home=Path(env.get("SOAK_TENANTQL_HOME", str(ROOT / ".tenantql-bench" / "soak"))).resolve(),
        )

    @property
    def postgres_bound(self) -> int:
        """Application-role connections a quiet server may hold: each worker's pool, and its usage flusher's one."""
        return self.workers * (self.pool_size + 1)

    @property
    def redis_bound(self) -> int:
        """Redis clients a quiet server may hold: per worker, one per request it ever ran at once, plus a few
        of its own (the usage flusher's)."""
        return self.workers * (len(OPERATIONS) * self.connections + 3)


@dataclass(frozen=True, slots=True)
class Sample:
    """The server at a quiet moment, the load paused."""

    at: float  # seconds of load so far
    rss_bytes: int
    fds: int
    threads: int
    app_connections: int
    idle_in_transaction: int
    redis_clients: int

    def describe(self) -> str:
        return (
            f"RSS {self.rss_bytes / MIB:.1f} MiB, {self.fds} fds, {self.threads} threads, "
            f"PostgreSQL {self.app_connections} connections ({self.idle_in_transaction} idle in transaction), "
            f"Redis {self.redis_clients} clients"
        )


@dataclass
class Totals:
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_failure: str | None = None

    def add(self, name: str, result: WrkResult) -> None:
        self.requests[name] = self.requests.get(name, 0) + result.requests
        self.errors[name] = self.errors.get(name, 0) + result.errors
        if result.errors and self.first_failure is None:
            self.first_failure = f"{name}: {result.sample}"


class Monitor:
    """What the server holds in PostgreSQL (read as the embedded server's superuser, who alone
    sees other roles' session states) and in Redis."""

    def __init__(self, postgres_url: str, app_role: str, redis_url: str) -> None:
        import redis

        self.postgres_url = postgres_url
        self.app_role = app_role
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.own_redis_id = self.redis.client_id()

    def postgres(self) -> tuple[int, int]:
        """The application role's connections, and those of them idle in a transaction."""

        async def read() -> tuple[int, int]:
            import asyncpg

            connection = await asyncpg.connect(self.postgres_url)
            try:
                row = await connection.fetchrow(
                    "SELECT count(*) AS connections, count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle "
                    "FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
                    self.app_role,
                )
            finally:
                await connection.close()
            return int(row["connections"]), int(row["idle"])

        return asyncio.run(read())

    def redis_clients(self) -> int:
        return sum(1 for client in self.redis.client_list() if int(client["id"]) != self.own_redis_id)

    def close(self) -> None:
        self.redis.close()


def sample(server: ServeProcess, monitor: Monitor, at: float) -> Sample:
    fds = threads = 0
    for process in api_processes(server.pid):
        try:
            fds += process.num_fds()
            threads += process.num_threads()
        except psutil.NoSuchProcess:
            continue
    connections, idle = monitor.postgres()
    return Sample(at, tree_rss(server.pid), fds, threads, connections, idle, monitor.redis_clients())


def leaks_in(config: SoakConfig, baseline: Sample, samples: Sequence[Sample]) -> list[str]:
    """Each quiet moment that shows something held beyond its bound."""
    found = []
    for s in samples:
        when = f"after {s.at:.0f} s"
        if s.idle_in_transaction:
            found.append(f"{when}: {s.idle_in_transaction} PostgreSQL connections idle in a transaction")
        if s.app_connections > config.postgres_bound:
            found.append(f"{when}: {s.app_connections} PostgreSQL connections (bound {config.postgres_bound})")
        if s.redis_clients > config.redis_bound:
            found.append(f"{when}: {s.redis_clients} Redis clients (bound {config.redis_bound})")
        if s.fds > baseline.fds + FD_SLACK:
            found.append(f"{when}: {s.fds} file descriptors ({baseline.fds} after the warm-up)")
    return found


def load(config: SoakConfig, url: str, plans: dict[str, Path], seconds: int, totals: Totals) -> None:
    """The three operations at once for `seconds`, each from its own wrk process."""
    with ThreadPoolExecutor(len(plans)) as pool:
        futures = {
            name: pool.submit(run_wrk, url, plan, connections=config.connections, seconds=seconds, threads=1)
            for name, plan in plans.items()
        }
        for name, future in futures.items():
            totals.add(name, future.result())


def stop_server(server: ServeProcess, timeout: float) -> tuple[int | None, float]:
    """SIGTERM, as an orchestrator sends it: the exit code (None if it had to be killed) and how long it took."""
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code: int | None = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.stop(timeout=1)
        code = None
    return code, time.monotonic() - started


async def unlimited_budgets(config: SoakConfig) -> None:
    """The soak looks for leaks, not for budgets: its tenants never run out."""
    from tenantql.cli import local_jwt_secret, servers_for
    from tenantql.settings import Settings

    slugs = [config.data.slug(n) for n in range(1, config.data.tenants + 1)]
    async with servers_for(local_jwt_secret(Settings.from_env())) as configured:
        assert configured.database_owner_url is not None
        await lift_budgets(configured.database_owner_url, slugs, reason="soak: look for leaks, not budgets")


async def tenants_for_load(config: SoakConfig, base_url: str) -> list[TenantPlan]:
    from tenantql.cli import local_jwt_secret, servers_for
    from tenantql.settings import Settings

    slugs = [config.data.slug(n) for n in range(1, config.data.tenants + 1)]
    async with servers_for(local_jwt_secret(Settings.from_env())) as configured:
        tokens = await mint_tokens(configured, slugs)
    return await plan_tenants(base_url, tokens)


def write_plans(workdir: Path, tenants: Sequence[TenantPlan]) -> dict[str, Path]:
    plans = {}
    for operation in OPERATIONS:
        first = 20 if operation is NESTED_SHIPMENTS else 50
        name = _label(operation)
        plans[name] = write_plan(
            workdir / f"{operation.name}.lua", requests_for(operation, tenants, first=first), operation.expect
        )
    return plans


def _label(operation: Operation) -> str:
    return f"{operation.name} first=20" if operation is NESTED_SHIPMENTS else operation.name


def report(
    config: SoakConfig,
    totals: Totals,
    warmup: Totals,
    baseline: Sample,
    end: Sample,
    leaks: list[str],
    shutdown: tuple[int | None, float],
    left: tuple[int, int],
) -> bool:
    requests, errors = sum(totals.requests.values()), sum(totals.errors.values())
    errors += sum(warmup.errors.values())
    growth = (end.rss_bytes - baseline.rss_bytes) / baseline.rss_bytes
    rss_met = growth < RSS_GROWTH_LIMIT
    code, seconds = shutdown
    clean = code == 0 and seconds < config.grace_seconds and left == (0, 0)
    per_operation = ", ".join(f"{name} {count:,}" for name, count in totals.requests.items())
    lines = [
        "",
        f"soak: {config.seconds} s of mixed-tenant traffic ({config.data.tenants} tenants, "
        f"{len(OPERATIONS)} x {config.connections} connections) against tenantql serve --workers {config.workers}, "
        f"after a {config.warmup_seconds} s warm-up",
        f"  requests      {requests:,} ({requests / config.seconds:,.1f}/s: {per_operation}); "
        f"warm-up {sum(warmup.requests.values()):,}",
        f"  errors        {errors}"
        + (f" (first: {(totals.first_failure or warmup.first_failure or '')[:300]})" if errors else ""),
        f"  leaks found   {len(leaks)}",
        *(f"                - {leak}" for leak in leaks),
        f"                PostgreSQL: at most {max(end.app_connections, baseline.app_connections)} connections of the "
        f"application role when quiet (bound {config.postgres_bound}), none idle in a transaction"
        if not any("PostgreSQL" in leak for leak in leaks)
        else "                PostgreSQL: see above",
        f"                Redis clients {baseline.redis_clients} -> {end.redis_clients} (bound {config.redis_bound}); "
        f"file descriptors {baseline.fds} -> {end.fds}; threads {baseline.threads} -> {end.threads}",
        "                asyncio tasks: not measured (the server exposes no count of them)",
        f"  RSS           start {baseline.rss_bytes / MIB:.1f} MiB, end {end.rss_bytes / MIB:.1f} MiB: "
        f"{growth:+.1%} (growth under {RSS_GROWTH_LIMIT:.0%}: {'met' if rss_met else 'NOT met'})",
        f"  shutdown      SIGTERM -> exit {code} after {seconds:.1f} s (grace {config.grace_seconds} s); "
        f"left connected: {left[0]} PostgreSQL, {left[1]} Redis" + ("" if clean else "  <- NOT clean"),
    ]
    print("\n".join(lines), flush=True)
    return errors == 0 and not leaks and rss_met and clean


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    config = SoakConfig.from_env()
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        raise SystemExit("make soak runs on embedded servers of its own: unset DATABASE_URL and REDIS_URL")
    wrk_executable()
    from tenantql.embedded import EmbeddedServers

    env = serve_env(config.home)
    env.update(USAGE_FLUSH_SECONDS="30", SHUTDOWN_GRACE_SECONDS=str(config.grace_seconds))
    os.environ["TENANTQL_HOME"] = str(config.home)  # the tokens minted here and the server's: one secret
    servers = EmbeddedServers(config.home)
    urls = asyncio.run(servers.start())
    monitor: Monitor | None = None
    try:
        tenantql = tenantql_executable()
        log(f"seeding {config.data.tenants} tenants under {config.home}")
        seed(tenantql, config.data, env)
        asyncio.run(unlimited_budgets(config))
        server = ServeProcess(
            tenantql, workers=config.workers, port=free_port(), env=env, log=config.home / "serve.log"
        )
        log(f"starting tenantql serve --workers {config.workers} on {server.url}")
        server.start()
        try:
            tenants = asyncio.run(tenants_for_load(config, server.url))
            postgres = servers.postgres
            monitor = Monitor(
                postgres.url("postgres", "postgres", driver="postgresql"), postgres.roles.app, urls.redis_url
            )
            with tempfile.TemporaryDirectory(prefix="tenantql-soak-") as workdir:
                plans = write_plans(Path(workdir), tenants)
                warmup, totals = Totals(), Totals()
                log(f"warm-up: {config.warmup_seconds} s")
                load(config, server.url, plans, config.warmup_seconds, warmup)
                time.sleep(1)
                baseline = sample(server, monitor, 0)
                samples = [baseline]
                log(f"after the warm-up: {baseline.describe()}")
                done = 0
                while done < config.seconds:
                    seconds = min(config.interval_seconds, config.seconds - done)
                    load(config, server.url, plans, seconds, totals)
                    done += seconds
                    time.sleep(1)  # the last answers go out before the server is looked at
                    samples.append(sample(server, monitor, done))
                    requests, errors = sum(totals.requests.values()), sum(totals.errors.values())
                    log(f"{done}/{config.seconds} s: {requests:,} requests, {errors} errors; {samples[-1].describe()}")
        except BaseException:
            log(f"failed; the server's log ends with:\n{server.log_tail()}")
            server.stop()
            raise
        log("stopping the server (SIGTERM)")
        shutdown = stop_server(server, config.grace_seconds + 30)
        time.sleep(0.5)  # PostgreSQL's backends end a moment after their clients close
        left = (monitor.postgres()[0], monitor.redis_clients())
        leaks = leaks_in(config, baseline, samples[1:])
        ok = report(config, totals, warmup, baseline, samples[-1], leaks, shutdown, left)
    finally:
        if monitor is not None:
            monitor.close()
        servers.stop()
    return 0 if ok else 1


__all__ = ["SoakConfig", "main"]

if __name__ == "__main__":
    sys.exit(main())
