"""What a benchmark run measures and for how long, read once from the environment.

Defaults are the standard run; BENCH_* variables shorten it (say, BENCH_SECONDS=5 while
iterating) without touching the code, so a published table always names its settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class DataSet:
    """The standard data set, seeded through `tenantql seed` (deterministic ids and rows)."""

    tenants: int = 20
    shipments: int = 2000
    customers: int = 200
    vehicles: int = 30
    drivers: int = 40
    events: int = 5
    prefix: str = "bench"

    def seed_args(self) -> list[str]:
        return [
            "seed",
            f"--tenants={self.tenants}",
            f"--shipments={self.shipments}",
            f"--customers={self.customers}",
            f"--vehicles={self.vehicles}",
            f"--drivers={self.drivers}",
            f"--events={self.events}",
            f"--prefix={self.prefix}",
        ]

    def slug(self, n: int) -> str:
        return f"{self.prefix}-{n:03d}"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    seconds: int = 10
    warmup_seconds: int = 3
    concurrencies: tuple[int, ...] = (16, 64)
    wrk_threads: int = 2
    rotation_tenants: int = 20  # tenants whose tokens the load rotates through
    workers: int = 2
    pool_size: int = 10  # the server's DATABASE_POOL_SIZE, per worker
    home: Path = ROOT / ".tenantql-bench"
    results: Path = ROOT / "bench" / "results"
    data: DataSet = DataSet()

    @classmethod
    def from_env(cls) -> BenchConfig:
        env = os.environ
        return cls(
            seconds=int(env.get("BENCH_SECONDS", "10")),
            warmup_seconds=int(env.get("BENCH_WARMUP_SECONDS", "3")),
            concurrencies=tuple(int(c) for c in env.get("BENCH_CONCURRENCY", "16,64").split(",") if c.strip()),
            wrk_threads=int(env.get("BENCH_WRK_THREADS", "2")),
            rotation_tenants=int(env.get("BENCH_TENANTS", "20")),
            pool_size=int(env.get("DATABASE_POOL_SIZE", "10")),
            # Not TENANTQL_HOME: that names the developer's own data, which the bench must not fill.
            home=Path(env.get("BENCH_TENANTQL_HOME", str(ROOT / ".tenantql-bench"))).resolve(),
        )

    @property
    def server_pool(self) -> int:
        """Connections the server may hold at once without overflow: the ceiling's pool size."""
        return self.workers * self.pool_size


__all__ = ["ROOT", "BenchConfig", "DataSet"]
