"""Redis work per request, measured on the server itself: `INFO` counters before and after a run.

The delta of `total_reads_processed` (socket reads: one per round trip a client makes)
over a wrk run, less the reads that opened new pool connections, divided by the requests
the server served in it, is the round trips each request cost. Both snapshots are taken
once the server has gone quiet (`settle`): wrk stops with one request in flight on each
connection, which the server still serves, charges and refunds, so without waiting the
tail of one run (the warm-up's, say) would land in the next, and a run's own tail would be
counted in Redis but not in wrk's completed requests. The served requests are therefore
wrk's completed ones plus one per connection. `total_commands_processed` is no
measure of them: it also counts the commands a Lua script runs inside Redis (the budget
script's TIME, HMGET, HSET and PEXPIRE), so it is kept for the notes only. Every `INFO`
call also shows up in the counters, so the delta of two back-to-back snapshots (the
probe's own cost) is taken off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

_CONNECTION_SETUP = frozenset({"hello", "client|setinfo", "client|setname", "auth", "select"})


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    commands: int
    reads: int
    per_command: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RedisDelta:
    commands: int
    reads: int
    per_command: dict[str, int]

    @property
    def connection_setups(self) -> int:
        """Reads spent opening connections (HELLO and CLIENT SETINFO), not serving requests."""
        return sum(calls for name, calls in self.per_command.items() if name in _CONNECTION_SETUP)

    def per_request(self, requests: int) -> float:
        """Round trips per request served, the set-up of new pool connections left out: a pool
        opens its connections once, and a short run at high concurrency would otherwise charge
        their handshakes to the requests that happened to open them."""
        return max(0, self.reads - self.connection_setups) / requests if requests else 0.0

    def commands_per_request(self, requests: int) -> float:
        return self.commands / requests if requests else 0.0


def served(completed: int, connections: int) -> int:
    """Requests the server served in a wrk run: those wrk completed, and the one each of its
    connections had in flight when it stopped (wrk is closed-loop: every connection always
    has one), which the server serves all the same."""
    return completed + connections if completed else 0


class RedisCounter:
    """Snapshots of one Redis server's command counters. Usage: `delta = counter.measure(run)`."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5)
        first, second = self.snapshot(), self.snapshot()
        self.probe_cost = _difference(first, second, RedisDelta(0, 0, {}))

    def snapshot(self) -> RedisSnapshot:
        stats: dict[str, Any] = self.client.info("stats")
        commandstats: dict[str, Any] = self.client.info("commandstats")
        return RedisSnapshot(
            commands=int(stats["total_commands_processed"]),
            reads=int(stats.get("total_reads_processed", 0)),
            per_command={name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in commandstats.items()},
        )

    def settle(self, timeout: float = 5.0, interval: float = 0.1) -> None:
        """Wait until nothing but this probe talks to the server: the requests still in flight when
        wrk stopped have been served. Each look is one `INFO stats`, one read of its own."""
        last = self._reads()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(interval)
            now = self._reads()
            if now - last <= 1:
                return
            last = now

    def _reads(self) -> int:
        stats: dict[str, Any] = self.client.info("stats")
        return int(stats.get("total_reads_processed", 0))

    def server_version(self) -> str:
        info: dict[str, Any] = self.client.info("server")
        if "valkey_version" in info:
            return f"Valkey {info['valkey_version']}"
        return f"Redis {info.get('redis_version', '?')}"

    def since(self, before: RedisSnapshot) -> RedisDelta:
        return _difference(before, self.snapshot(), self.probe_cost)

    def close(self) -> None:
        self.client.close()


def _difference(before: RedisSnapshot, after: RedisSnapshot, probe: RedisDelta) -> RedisDelta:
    per_command = {
        name: calls - before.per_command.get(name, 0) - probe.per_command.get(name, 0)
        for name, calls in after.per_command.items()
    }
    return RedisDelta(
        commands=max(0, after.commands - before.commands - probe.commands),
        reads=max(0, after.reads - before.reads - probe.reads),
        per_command={name: calls for name, calls in per_command.items() if calls > 0},
    )


__all__ = ["RedisCounter", "RedisDelta", "RedisSnapshot", "served"]
