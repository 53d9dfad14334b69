"""CPU time per request, in process: where a request's time goes, without HTTP sockets or load.

    python -m bench.profile                    # Q1, Q2, Q3, Q1p and Q2p, 200 requests each
    python -m bench.profile Q2 --requests 500
    python -m bench.profile Q2 --cprofile q2.prof   # then: python -m pstats q2.prof
    python -m bench.profile viewer --cprofile viewer.prof   # what every request pays

Run `make bench` once first: it seeds `.tenantql-bench`, whose embedded servers this reuses
(or starts). The app is built with `tenantql.app.create_app` and called one request at a
time through httpx's ASGI transport, after a warm-up; each operation rotates over the same
tenants and rows as the load. `process_time` counts this process's CPU only (the app, the
client and the event loop, not PostgreSQL or Redis), so it is the server's share of a
request plus the in-process client's, which `{ viewer { role } }` shows on its own.
Operations are measured in interleaved rounds and the best round is kept, so a burst of
other work on the machine does not land on one operation only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bench.config import BenchConfig
from bench.dataset import mint_tokens, plan_tenants, requests_for
from bench.load import PlannedRequest
from bench.operations import (
    NESTED_SHIPMENTS,
    PERSISTED_Q1,
    PERSISTED_Q2,
    RECORD_TRACKING_EVENT,
    SHIPMENT_BY_TRACKING_NUMBER,
)
from bench.sql_count import post_in_process

VIEWER = b'{"query": "{ viewer { role } }"}'
OPERATIONS = {
    op.name: op
    for op in (SHIPMENT_BY_TRACKING_NUMBER, NESTED_SHIPMENTS, RECORD_TRACKING_EVENT, PERSISTED_Q1, PERSISTED_Q2)
}


@dataclass(slots=True)
class Timing:
    name: str
    best_ms: float = float("inf")
    rounds: list[float] | None = None

    def add(self, ms: float) -> None:
        self.rounds = [*(self.rounds or []), ms]
        self.best_ms = min(self.best_ms, ms)


async def measure(names: Sequence[str], requests: int, rounds: int, profile_path: str | None) -> list[Timing]:
    from asgi_lifespan import LifespanManager

    from tenantql.app import create_app
    from tenantql.cli import local_jwt_secret, servers_for
    from tenantql.settings import Settings

    config = BenchConfig.from_env()
    os.environ.setdefault("TENANTQL_HOME", str(config.home))
    settings = local_jwt_secret(Settings.from_env())
    async with servers_for(settings) as configured:
        slugs = [config.data.slug(n) for n in range(1, config.rotation_tenants + 1)]
        tokens = await mint_tokens(configured, slugs)
        app = create_app(configured)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench.invalid", timeout=30) as client:
                tenants = await plan_tenants("http://bench.invalid", tokens, client=client)
                plans = {"viewer": [PlannedRequest(t.token, VIEWER) for t in tenants]}
                plans |= {name: requests_for(OPERATIONS[name], tenants) for name in names}
                for name in names:  # a persisted document is registered once, as an APQ client does
                    if OPERATIONS[name].persisted:
                        await post_in_process(client, requests_for(OPERATIONS[name], tenants, register=True)[0])
                timings = {name: Timing(name) for name in plans}
                for planned in plans.values():  # warm-up: caches, prepared statements, plans
                    await _send(client, planned, 30)
                profiler = cProfile.Profile(time.process_time) if profile_path else None  # CPU, not waits
                for _ in range(rounds):
                    for name, planned in plans.items():
                        if profiler is not None and (name != "viewer" or not names):
                            profiler.enable()
                        started = time.process_time()
                        await _send(client, planned, requests)
                        timings[name].add((time.process_time() - started) * 1000 / requests)
                        if profiler is not None:
                            profiler.disable()
                if profiler is not None and profile_path:
                    profiler.dump_stats(profile_path)
    return list(timings.values())


async def _send(client: httpx.AsyncClient, planned: Sequence[PlannedRequest], count: int) -> None:
    for request in itertools.islice(itertools.cycle(planned), count):
        await post_in_process(client, request)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("operations", nargs="*", metavar="OPERATION", help=f"any of {', '.join(OPERATIONS)} (all)")
    parser.add_argument("--requests", type=int, default=200, help="requests per operation per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cprofile", metavar="PATH", help="write cProfile stats of the operations (with `viewer` alone: of it)"
    )
    args = parser.parse_args(argv)
    if unknown := set(args.operations) - {*OPERATIONS, "viewer"}:
        parser.error(f"unknown operations {sorted(unknown)}: choose from viewer, {', '.join(OPERATIONS)}")
    # `viewer` is always measured: it is what every other operation pays first.
    args.operations = [name for name in args.operations if name != "viewer"] if args.operations else list(OPERATIONS)
    try:
        import uvloop

        uvloop.install()  # as `tenantql serve` runs
    except ImportError:
        pass
    timings = asyncio.run(measure(args.operations, args.requests, args.rounds, args.cprofile))
    print(f"CPU ms per request, best of {args.rounds} rounds of {args.requests} (all rounds in brackets):")
    for timing in timings:
        rounds = ", ".join(f"{ms:.2f}" for ms in timing.rounds or [])
        print(f"  {timing.name:<7} {timing.best_ms:6.2f}   [{rounds}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
