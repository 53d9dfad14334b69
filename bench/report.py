"""The markdown a run leaves behind: results, ceiling, targets (bench/targets.py), and notes on the method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bench.ceiling import CeilingResult
from bench.config import BenchConfig
from bench.formatting import format_number, format_sql
from bench.load import WrkResult
from bench.machine import Machine
from bench.redis_stats import RedisDelta, served
from bench.sql_count import TRANSACTION_STATEMENTS, SqlCount, summarize_kinds
from bench.targets import find, targets

LABELS = {
    "Q1": "Q1 shipment by tracking number",
    "Q2": "Q2 50 shipments, nested",
    "Q3": "Q3 recordTrackingEvent",
    "Q1p": "Q1p Q1 persisted (hash only)",
    "Q2p": "Q2p Q2 persisted (hash only)",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    operation: str
    concurrency: int
    wrk: WrkResult | None
    redis: RedisDelta | None = None
    peak_rss_bytes: int = 0
    unavailable: str | None = None  # why there is no wrk result, e.g. "n/a (hash-only request failed ...)"
    first: int = 50
    tenants: int = 20

    @property
    def redis_per_request(self) -> float | None:
        if self.wrk is None or self.redis is None:
            return None
        return self.redis.per_request(served(self.wrk.requests, self.concurrency))


@dataclass(slots=True)
class RunInfo:
    machine: Machine
    config: BenchConfig
    started_at: datetime
    servers: str
    versions: str
    persisted_mode: str
    elapsed_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --- formatting --------------------------------------------------------------------------------


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    return [_row(header), _row(marks), *(_row(r) for r in rows)]


def header(info: RunInfo, title: str) -> list[str]:
    config, data = info.config, info.config.data
    return [
        f"# {title}, {info.started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {info.machine.describe()}.",
        f"- Code: commit {info.machine.commit}; {info.versions}.",
        f"- Server: `tenantql serve --workers {config.workers}` (DATABASE_POOL_SIZE={config.pool_size}, "
        f"PERSISTED_QUERIES={info.persisted_mode}), {info.servers}.",
        f"- Data: `tenantql seed --tenants {data.tenants} --shipments {data.shipments} --customers {data.customers} "
        f"--vehicles {data.vehicles} --drivers {data.drivers} --events {data.events} --prefix {data.prefix}`: "
        f"{data.tenants} tenants, each with {data.customers} customers, {data.vehicles} vehicles, {data.drivers} "
        f"drivers, {data.shipments:,} shipments and {data.events} tracking events per shipment "
        "(plus the events Q3 recorded in earlier runs on the same home).",
        f"- Load: wrk from a separate process on 127.0.0.1, {config.wrk_threads} threads, MEMBER tokens of the "
        f"tenants in rotation (each request names rows of its own tenant), {config.warmup_seconds} s warm-up per "
        f"operation, then {config.seconds} s per run. Whole bench: {info.elapsed_seconds:.0f} s.",
        "",
    ]


def measurement_rows(measurements: Sequence[Measurement], sql: Mapping[str, SqlCount]) -> list[list[str]]:
    rows = []
    for m in measurements:
        label = LABELS.get(m.operation, m.operation)
        if m.wrk is None:
            rows.append([label, str(m.concurrency), m.unavailable or "n/a", "", "", "", "", "", ""])
            continue
        redis = m.redis_per_request
        rows.append(
            [
                label,
                str(m.concurrency),
                format_number(m.wrk.rps),
                format_number(m.wrk.p50_ms),
                format_number(m.wrk.p99_ms),
                str(m.wrk.errors) if m.wrk.errors == 0 else f"**{m.wrk.errors}**",
                format_sql(sql.get(m.operation)),
                "-" if redis is None else f"{redis:.2f}",
                f"{m.peak_rss_bytes / 2**20:,.0f}",
            ]
        )
    return rows


RESULT_HEADER = [
    "operation",
    "concurrency",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "SQL/request",
    "Redis round trips/request",
    "peak RSS MiB",
]


def ceiling_rows(
    ceilings: Mapping[str, CeilingResult], measurements: Sequence[Measurement], concurrency: int, pool: int
) -> list[list[str]]:
    rows = []
    for name, result in ceilings.items():
        operation = name.split()[0]
        server = find(measurements, operation, concurrency)
        server_rps = server.wrk.rps if server and server.wrk else None
        rows.append(
            [
                name,
                str(concurrency),
                str(pool),
                format_number(result.rps),
                format_number(result.p50_ms, 2),
                format_number(result.p99_ms, 2),
                str(result.errors) if result.errors == 0 else f"**{result.errors}**",
                str(result.statements_per_request),
                "-" if server_rps is None else format_number(server_rps),
                "-" if server_rps is None or not result.rps else f"{server_rps / result.rps:.2f}",
            ]
        )
    return rows


CEILING_HEADER = [
    "ceiling",
    "concurrency",
    "pool",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "statements",
    "server req/s",
    "server ÷ ceiling",
]


def method_notes(sql: Mapping[str, SqlCount], measurements: Sequence[Measurement]) -> list[str]:
    notes = [
        "- **req/s, p50, p99** come from wrk's own latency histogram (printed by the Lua `done()`); "
        "wrk is closed-loop, so at a fixed concurrency lower latency and higher throughput go together.",
        "- **errors** = socket errors (connect, read, write, timeout) + non-2xx answers + 2xx answers whose body "
        'has `"errors"` + 2xx answers without the expected data (for Q3: a non-empty `userErrors`). '
        "Every count must be 0.",
        f"- **SQL/request** is `n + {TRANSACTION_STATEMENTS}`: n statements counted in process (the app built with "
        "`create_app` against the same servers, `db.statement_log.logged` on its engine, averaged over "
        f"several requests after the tenant cache is warm), plus the transaction's own {TRANSACTION_STATEMENTS}: "
        "`BEGIN; SELECT set_config(...)` sent as one simple query and `COMMIT`, which the log leaves out.",
        "- **Redis round trips/request**: the Redis server's `total_reads_processed` delta (one socket read per "
        "round trip) over the wrk run, the `INFO` probe's own taken off, divided by the requests the server served: "
        "those wrk completed and the one each connection had in flight when wrk stopped, which the server still "
        "served (both snapshots wait for the server to go quiet, so no run's tail lands in another's count). "
        "Commands are no measure of round trips: the budget script's TIME, HMGET, HSET and PEXPIRE run inside "
        "one EVALSHA and are counted as commands too. The reads that opened new pool connections (HELLO and "
        "CLIENT SETINFO, once per connection) are left out: they belong to the pool, not to the request. A "
        "request whose actual cost is below its requested cost (Q2: drivers without a vehicle, short pages) makes "
        "two round trips: the charge before execution and the refund after.",
        "- **peak RSS**: the sum of resident memory over `tenantql serve` and its worker processes, sampled every "
        "0.2 s during the run (the embedded PostgreSQL and Valkey are not included).",
        "- **ceiling**: the same data fetched in one process with asyncpg directly and the minimum SQL, one statement "
        "per level under RLS (see bench/README.md); its pool is as large as the server's (workers x "
        "DATABASE_POOL_SIZE) and it runs at the same concurrency for the same time.",
    ]
    if any(m.operation in ("Q1p", "Q2p") for m in measurements):
        notes.append(
            "- **Q1p, Q2p**: Q1 and Q2 as automatic persisted queries. Each document is registered once per server "
            "(query and hash together; the server keeps it in Redis for every worker and tenant), a hash-only request "
            "with every tenant's token must then answer the expected data, and wrk sends only "
            '`{"operationName", "variables", "extensions": {"persistedQuery": {"version": 1, "sha256Hash"}}}`, no '
            "`query`. The warm-up lets each worker cache the documents in memory.",
        )
    kinds = [f"{name}: {summarize_kinds(count.kinds)}" for name, count in sql.items() if count.kinds]
    if kinds:
        notes.append("- Statements seen per request: " + "; ".join(kinds) + ".")
    commands: dict[str, int] = {}
    for m in measurements:
        for command, calls in (m.redis.per_command if m.redis else {}).items():
            commands[command] = commands.get(command, 0) + calls
    if commands:
        listed = ", ".join(f"{name} x{calls}" for name, calls in sorted(commands.items(), key=lambda kv: -kv[1]))
        notes.append(f"- Redis commands seen during the runs: {listed}.")
    else:
        notes.append("- No Redis command was sent during any run.")
    for m in measurements:
        if m.wrk and m.wrk.errors:
            w = m.wrk
            sample = (w.sample or "").replace("`", "'").replace("\n", " ")[:300]
            notes.append(
                f"- {m.operation} at {m.concurrency}: {w.socket_errors} socket errors, {w.non2xx} non-2xx, "
                f"{w.graphql_errors} with `errors`, {w.unexpected} without the expected data; first: `{sample}`"
            )
    return notes


def render_main(
    info: RunInfo,
    measurements: Sequence[Measurement],
    sql: Mapping[str, SqlCount],
    ceilings: Mapping[str, CeilingResult],
) -> str:
    concurrency = info.config.concurrencies[0]
    lines = header(info, "tenantql benchmark")
    lines += ["## Results", "", *_table(RESULT_HEADER, measurement_rows(measurements, sql), "lrrrrrrrr"), ""]
    lines += [
        "## Ceiling: asyncpg, minimum SQL, one process",
        "",
        *_table(CEILING_HEADER, ceiling_rows(ceilings, measurements, concurrency, info.config.server_pool)),
        "",
    ]
    target_rows = [[t.name, t.measured, t.verdict] for t in targets(measurements, sql, ceilings, concurrency)]
    lines += ["## Targets", "", *_table(["target", "measured", "met"], target_rows, "lll"), ""]
    lines += ["## Notes", "", *method_notes(sql, measurements), *info.notes, ""]
    return "\n".join(lines)


def render_scaling(
    info: RunInfo,
    by_first: Sequence[Measurement],
    by_tenants: Sequence[Measurement],
    sql: Mapping[str, SqlCount],
    ceilings: Mapping[str, CeilingResult],
) -> str:
    lines = header(info, "tenantql benchmark: how Q2 scales")
    concurrency = by_first[0].concurrency if by_first else info.config.concurrencies[0]
    rows = []
    for m in by_first:
        ceiling = ceilings.get(f"Q2 first={m.first}")
        if m.wrk is None:
            rows.append([str(m.first), m.unavailable or "n/a", "", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                str(m.first),
                format_number(m.wrk.rps),
                format_number(m.wrk.p50_ms),
                format_number(m.wrk.p99_ms),
                str(m.wrk.errors),
                format_sql(sql.get(f"Q2 first={m.first}")),
                format_number(1000 / m.wrk.rps, 2) if m.wrk.rps else "-",
                format_number(ceiling.rps) if ceiling else "-",
                f"{m.wrk.rps / ceiling.rps:.2f}" if ceiling and ceiling.rps else "-",
            ]
        )
    lines += [
        f"## Q2 by page size ({info.config.data.tenants} tenants in rotation, concurrency {concurrency})",
        "",
        *_table(
            ["first", "req/s", "p50 ms", "p99 ms", "errors", "SQL/request", "ms/request", "ceiling req/s", "÷ ceiling"],
            rows,
        ),
        "",
        "ms/request is 1000 ÷ req/s: the machine time one request takes when the load keeps both cores busy.",
        "",
    ]
    tenant_rows = [
        [
            str(m.tenants),
            format_number(m.wrk.rps),
            format_number(m.wrk.p50_ms),
            format_number(m.wrk.p99_ms),
            str(m.wrk.errors),
        ]
        if m.wrk
        else [str(m.tenants), m.unavailable or "n/a", "", "", ""]
        for m in by_tenants
    ]
    lines += [
        f"## Q2 by tenants in rotation (first 50, concurrency {concurrency})",
        "",
        f"The data set has {info.config.data.tenants} tenants; the load rotates through the tokens of the first N.",
        "",
        *_table(["tenants", "req/s", "p50 ms", "p99 ms", "errors"], tenant_rows),
        "",
        "## How time grows",
        "",
        *growth(by_first, by_tenants),
        "",
        "## Notes",
        "",
        *method_notes(sql, [*by_first, *by_tenants]),
        *info.notes,
        "",
    ]
    return "\n".join(lines)


def growth(by_first: Sequence[Measurement], by_tenants: Sequence[Measurement]) -> list[str]:
    """Plain sentences: the ratios between the smallest and largest case, and a linear fit."""
    lines = []
    points = [(m.first, 1000 / m.wrk.rps) for m in by_first if m.wrk and m.wrk.rps]
    if len(points) >= 2:
        (f0, t0), (f1, t1) = points[0], points[-1]
        lines.append(
            f"- From first {f0} to first {f1} ({f1 / f0:.0f}x the shipments), machine time per request goes from "
            f"{t0:.2f} ms to {t1:.2f} ms (x{t1 / t0:.2f})."
        )
        n = len(points)
        mean_f = sum(f for f, _ in points) / n
        mean_t = sum(t for _, t in points) / n
        spread = sum((f - mean_f) ** 2 for f, _ in points)
        slope = sum((f - mean_f) * (t - mean_t) for f, t in points) / spread if spread else 0.0
        fixed = mean_t - slope * mean_f
        lines.append(
            f"- A straight line through the points: {fixed:.2f} ms per request plus {slope * 1000:.0f} µs per "
            "shipment on the page (each shipment brings its customer, driver, vehicle and 5 events)."
        )
    tenants = [m for m in by_tenants if m.wrk and m.wrk.rps]
    if len(tenants) >= 2:
        a, b = tenants[0], tenants[-1]
        assert a.wrk and b.wrk
        rps, p99 = (format_number(a.wrk.rps), format_number(b.wrk.rps)), (a.wrk.p99_ms, b.wrk.p99_ms)
        lines.append(
            f"- {a.tenants} vs {b.tenants} tenants in rotation: {rps[0]} vs {rps[1]} req/s "
            f"(x{b.wrk.rps / a.wrk.rps:.2f}), p99 {p99[0]:.1f} vs {p99[1]:.1f} ms."
        )
    return lines or ["- Not enough successful runs to say."]


__all__ = ["LABELS", "Measurement", "RunInfo", "render_main", "render_scaling"]
