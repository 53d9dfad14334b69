"""`make bench`: seed, serve, load with wrk, count SQL and Redis, compare with the ceiling, write the table.

Usage: `python -m bench.run` (the standard run) or `python -m bench.run --scaling` (Q2 by
page size and by tenants in rotation). BENCH_SECONDS and the other BENCH_* variables in
bench/config.py shorten or widen a run; see bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.ceiling import CeilingResult, CeilingSpec, asyncpg_dsn
from bench.config import ROOT, BenchConfig
from bench.dataset import TenantPlan, lift_budgets, mint_tokens, plan_tenants, requests_for, seed, vacuum_analyze
from bench.load import run_wrk, write_plan, wrk_executable, wrk_version
from bench.machine import busy_cpu_percent, this_machine
from bench.operations import (
    NESTED_SHIPMENTS,
    PERSISTED_Q1,
    PERSISTED_Q2,
    RECORD_TRACKING_EVENT,
    SHIPMENT_BY_TRACKING_NUMBER,
    Operation,
)
from bench.persisted import register_persisted
from bench.redis_stats import RedisCounter, served
from bench.report import Measurement, RunInfo, render_main, render_scaling
from bench.server import RssSampler, ServeProcess, free_port, serve_env, tenantql_executable
from bench.sql_count import SqlCount, count_statements

if TYPE_CHECKING:
    from tenantql.settings import Settings


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Session:
    """Everything the runs share once the server is up."""

    config: BenchConfig
    server: ServeProcess
    settings: Settings  # with the servers' URLs and the JWT secret the server uses
    tenants: list[TenantPlan]
    redis: RedisCounter
    workdir: Path
    versions: str = ""


@dataclass(slots=True)
class Outcome:
    measurements: list[Measurement] = field(default_factory=list)
    by_tenants: list[Measurement] = field(default_factory=list)
    sql: dict[str, SqlCount] = field(default_factory=dict)
    ceilings: dict[str, CeilingResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def prepare(config: BenchConfig, base_url: str) -> tuple[Settings, list[TenantPlan], str]:
    """Tokens and per-tenant rows, through the running server's databases and its API."""
    import asyncpg

    from tenantql.cli import local_jwt_secret, servers_for
    from tenantql.settings import Settings

    settings = local_jwt_secret(Settings.from_env())
    async with servers_for(settings) as configured:  # reuses the servers `serve` started: stops nothing
        slugs = [config.data.slug(n) for n in range(1, config.data.tenants + 1)]
        tokens = await mint_tokens(configured, slugs)
        if not configured.database_url or not configured.database_owner_url or not configured.redis_url:
            raise SystemExit("the bench needs DATABASE_URL, DATABASE_OWNER_URL and REDIS_URL, or none of them")
        await vacuum_analyze(configured.database_owner_url)
        await lift_budgets(
            configured.database_owner_url, slugs, reason="load benchmark: measure the server, not budgets"
        )
        connection = await asyncpg.connect(asyncpg_dsn(configured.database_url))
        try:
            version = str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()
    return configured, await plan_tenants(base_url, tokens), version


def load(
    session: Session, operation: Operation, tenants: Sequence[TenantPlan], *, first: int = 50, warm: bool = True
) -> list[Measurement]:
    """Warm up once, then one wrk run per concurrency, with Redis counters and memory around each."""
    config = session.config
    plan = write_plan(
        session.workdir / f"{operation.name}-{first}-{len(tenants)}.lua",
        requests_for(operation, tenants, first=first),
        operation.expect,
    )
    url = session.server.url
    label = f"{operation.name}{f' first={first}' if operation.operation_name == 'Q2' else ''} tenants={len(tenants)}"
    if warm and config.warmup_seconds > 0:
        log(f"{label}: {config.warmup_seconds} s warm-up")
        warmup = config.warmup_seconds
        run_wrk(url, plan, connections=config.concurrencies[0], seconds=warmup, threads=config.wrk_threads)
    measured = []
    for concurrency in config.concurrencies:
        session.redis.settle()  # the previous run's last requests are served before counting starts
        before = session.redis.snapshot()
        with RssSampler(session.server.pid) as rss:
            result = run_wrk(url, plan, connections=concurrency, seconds=config.seconds, threads=config.wrk_threads)
        session.redis.settle()  # ... and this run's own, which Redis saw and wrk did not count
        delta = session.redis.since(before)
        measured.append(
            Measurement(
                operation=operation.name,
                concurrency=concurrency,
                wrk=result,
                redis=delta,
                peak_rss_bytes=rss.peak_bytes,
                first=first,
                tenants=len(tenants),
            )
        )
        log(
            f"{label} c={concurrency}: {result.rps:.1f} req/s, "
            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, {result.errors} errors, "
            f"{delta.per_request(served(result.requests, concurrency)):.2f} Redis/request"
        )
    return measured


def ceiling(session: Session, operation: str, tenants: Sequence[TenantPlan], *, first: int = 50) -> CeilingResult:
    """The asyncpg ceiling in a process of its own, as long as one wrk run."""
    config = session.config
    spec = CeilingSpec(
        dsn=asyncpg_dsn(str(session.settings.database_url)),
        operation=operation,
        tenants=[(str(t.tenant_id), list(t.tracking_numbers)) for t in tenants],
        first=first,
        concurrency=config.concurrencies[0],
        pool_size=config.server_pool,
        seconds=config.seconds,
        warmup_seconds=min(config.warmup_seconds, 2),
    )
    path = session.workdir / f"ceiling-{operation}-{first}.json"
    path.write_text(json.dumps(asdict(spec)))
    completed = subprocess.run(
        [sys.executable, "-m", "bench.ceiling", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=config.seconds + 120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the ceiling failed:\n{completed.stderr[-3000:]}")
    result = CeilingResult(**json.loads(completed.stdout.strip().splitlines()[-1]))
    shown = f"{operation} first={first}" if operation == "Q2" else operation
    log(f"ceiling {shown}: {result.rps:.1f} req/s, p50 {result.p50_ms:.2f} ms, {result.errors} errors")
    return result


def check_idle(outcome: Outcome) -> None:
    """Note it when something else keeps the CPUs busy while the server idles: the numbers are then low."""
    busy = busy_cpu_percent(2.0)
    log(f"CPU use with the server idle: {busy:.0f}%")
    if busy > 15:
        outcome.notes.append(
            f"- **Warning**: the machine was {busy:.0f}% busy with other work just before the runs; "
            "the numbers are lower than this code can do on an idle machine."
        )


def standard(session: Session) -> Outcome:
    outcome = Outcome()
    check_idle(outcome)
    rotation = session.tenants[: session.config.rotation_tenants]
    log("registering Q1p and Q2p's documents once (query and hash), then checking hash-only for every tenant")
    unavailable = {
        op.name: reason
        for op in (PERSISTED_Q1, PERSISTED_Q2)
        if (reason := asyncio.run(register_persisted(session.server.url, op, rotation))) is not None
    }
    for name, reason in unavailable.items():
        log(f"{name} not measured: {reason}")

    requests = {
        "Q1": requests_for(SHIPMENT_BY_TRACKING_NUMBER, rotation),
        "Q2": requests_for(NESTED_SHIPMENTS, rotation),
        "Q2 first=10": requests_for(NESTED_SHIPMENTS, rotation, first=10),
        "Q2 first=100": requests_for(NESTED_SHIPMENTS, rotation, first=100),
        "Q3": requests_for(RECORD_TRACKING_EVENT, rotation),
    }
    for op in (PERSISTED_Q1, PERSISTED_Q2):
        if op.name not in unavailable:  # registered above, in the Redis the in-process app shares
            requests[op.name] = requests_for(op, rotation)
    log("counting SQL statements in process")
    outcome.sql = asyncio.run(count_statements(session.settings, requests))
    log("SQL per request: " + ", ".join(f"{k} {v.per_request:.1f}+2" for k, v in outcome.sql.items()))

    for op in (SHIPMENT_BY_TRACKING_NUMBER, NESTED_SHIPMENTS, RECORD_TRACKING_EVENT, PERSISTED_Q1, PERSISTED_Q2):
        reason = unavailable.get(op.name)
        if reason is not None:
            outcome.measurements += [
                Measurement(op.name, c, None, unavailable=reason, tenants=len(rotation))
                for c in session.config.concurrencies
            ]
            continue
        outcome.measurements += load(session, op, rotation)

    outcome.ceilings["Q2"] = ceiling(session, "Q2", rotation)
    outcome.ceilings["Q1"] = ceiling(session, "Q1", rotation)
    return outcome


def scaling(session: Session) -> Outcome:
    outcome = Outcome()
    check_idle(outcome)
    config = replace(session.config, concurrencies=session.config.concurrencies[:1])
    session = replace(session, config=config)
    everyone = session.tenants
    requests = {f"Q2 first={n}": requests_for(NESTED_SHIPMENTS, everyone, first=n) for n in (10, 50, 100)}
    log("counting SQL statements in process")
    outcome.sql = asyncio.run(count_statements(session.settings, requests))
    for first in (10, 50, 100):
        outcome.measurements += load(session, NESTED_SHIPMENTS, everyone, first=first)
        outcome.ceilings[f"Q2 first={first}"] = ceiling(session, "Q2", everyone, first=first)
    outcome.by_tenants += load(session, NESTED_SHIPMENTS, everyone[:2], first=50)
    outcome.by_tenants += [m for m in outcome.measurements if m.first == 50]
    return outcome


def write_results(config: BenchConfig, text: str, started_at: datetime, suffix: str = "") -> Path:
    config.results.mkdir(parents=True, exist_ok=True)
    dated = config.results / f"{started_at:%Y-%m-%dT%H%M%SZ}{suffix}.md"
    dated.write_text(text)
    (config.results / f"latest{suffix}.md").write_text(text)
    return dated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scaling", action="store_true", help="Q2 at first 10/50/100 and with 2 vs 20 tenants")
    parser.add_argument("--seconds", type=int, help="length of each run (default BENCH_SECONDS or 10)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, via the embedded servers
    config = BenchConfig.from_env()
    if args.seconds:
        config = replace(config, seconds=args.seconds)
    started_at, started = datetime.now(UTC), time.monotonic()
    wrk_executable()

    env = serve_env(config.home)
    for name in ("TENANTQL_HOME", "PERSISTED_QUERIES"):  # the in-process app reads the same settings
        os.environ[name] = env[name]
    external = bool(os.environ.get("DATABASE_URL"))
    tenantql = tenantql_executable()
    log(f"seeding the standard data set under {config.home if not external else 'DATABASE_URL'}")
    seed(tenantql, config.data, env)

    server = ServeProcess(
        tenantql, workers=config.workers, port=free_port(), env=env, log=config.results / "serve-log.tmp"
    )
    with tempfile.TemporaryDirectory(prefix="tenantql-bench-") as workdir:
        try:
            log(f"starting tenantql serve --workers {config.workers} on {server.url}")
            server.start()
            settings, tenants, pg_version = asyncio.run(prepare(config, server.url))
            redis = RedisCounter(str(settings.redis_url))
            session = Session(config, server, settings, tenants, redis, Path(workdir))
            session.versions = f"PostgreSQL {pg_version}, {redis.server_version()}, wrk {wrk_version()}"
            outcome = scaling(session) if args.scaling else standard(session)
            redis.close()
        except BaseException:
            log(f"failed; the server's log ends with:\n{server.log_tail()}")
            raise
        finally:
            log("stopping the server (SIGTERM)")
            server.stop()

    info = RunInfo(
        machine=this_machine(),
        config=session.config,
        started_at=started_at,
        servers="PostgreSQL and Redis from DATABASE_URL / REDIS_URL"
        if external
        else f"embedded PostgreSQL and Valkey under {_relative(config.home)} (TENANTQL_HOME)",
        versions=session.versions,
        persisted_mode=env["PERSISTED_QUERIES"],
        elapsed_seconds=time.monotonic() - started,
        notes=outcome.notes,
    )
    if args.scaling:
        text = render_scaling(info, outcome.measurements, outcome.by_tenants, outcome.sql, outcome.ceilings)
        path = write_results(config, text, started_at, "-scaling")
    else:
        text = render_main(info, outcome.measurements, outcome.sql, outcome.ceilings)
        path = write_results(config, text, started_at)
    print(text)
    log(f"written to {_relative(path)} (and latest{'-scaling' if args.scaling else ''}.md beside it)")
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
