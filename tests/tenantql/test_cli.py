"""`tenantql` as a newcomer runs it: serve on fresh embedded servers, then again on the same data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tenantql.cli import build_parser, parse_role, parse_ttl

VIEWER_QUERY = {"query": "{ viewer { role tenant { slug plan } } shipments(first: 1) { edges { node { id } } } }"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "JWT_SECRET", "JWT_JWKS_URL")
    }
    return {**env, "TENANTQL_HOME": str(home)}


def start_serve(home: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tenantql", "serve", "--port", str(port)],
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tokens: dict[str, str] = {}
    output = []
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if match := re.match(r"\s+(\w+) admin token", line):
            tokens[match[1]] = process.stdout.readline().strip()
        if len(tokens) == 2:
            break
    assert len(tokens) == 2, "".join(output)
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process, tokens
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("the server never became ready:\n" + "".join(output))


def stop(process: subprocess.Popen[str], how: signal.Signals) -> None:
    process.send_signal(how)
    process.wait(timeout=60)


def shipment_count(port: int, token: str) -> int:
    query = {"query": "{ shipments(first: 100) { edges { cursor } pageInfo { hasNextPage } } }"}
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json=query, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return len(response.json()["data"]["shipments"]["edges"])


def test_serve_starts_everything_and_a_signal_stops_it_and_a_second_run_reuses_the_data(tmp_path):
    home, port = tmp_path / "home", free_port()
    process, tokens = start_serve(home, port)
    try:
        base = f"http://127.0.0.1:{port}"
        for slug, plan in (("acme", "STARTER"), ("globex", "SCALE")):
            body = httpx.post(
                f"{base}/graphql", json=VIEWER_QUERY, headers={"Authorization": f"Bearer {tokens[slug]}"}, timeout=10
            ).json()
            assert body["data"]["viewer"]["tenant"] == {"slug": slug, "plan": plan}
        page = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and tokens["acme"] in page.text  # the headers editor is pre-filled

        printed = subprocess.run(
            [sys.executable, "-m", "tenantql", "token", "--tenant", "globex", "--role", "viewer", "--ttl", "10m"],
            env=environment(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        body = httpx.post(
            f"{base}/graphql", json=VIEWER_QUERY, headers={"Authorization": f"Bearer {printed}"}, timeout=10
        ).json()
        assert body["data"]["viewer"] == {"role": "VIEWER", "tenant": {"slug": "globex", "plan": "SCALE"}}
        before = shipment_count(port, tokens["acme"])
        assert before == 100
    finally:
        stop(process, signal.SIGTERM)  # as an orchestrator stops it
    assert process.returncode == 0
    assert_stopped(home)

    process, tokens = start_serve(home, port)
    try:
        assert shipment_count(port, tokens["acme"]) == before
    finally:
        stop(process, signal.SIGINT)  # Ctrl-C
    assert process.returncode in (0, 130)
    assert_stopped(home)


def assert_stopped(home: Path) -> None:
    """Nothing that serve started is left running."""
    assert not (home / "postgres" / "postmaster.pid").exists()
    assert not (home / "redis" / "valkey.pid").exists()


def test_the_cli_explains_each_command():
    parser = build_parser()
    help_text = parser.format_help()
    for command in ("serve", "migrate", "token", "seed"):
        assert command in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["token", "--tenant", "acme", "--role", "owner"])


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("45", 45)])
def test_durations(text, seconds):
    assert parse_ttl(text) == seconds


def test_roles_are_lowercase_on_the_command_line():
    assert parse_role("admin").value == "ADMIN"
    assert parse_role("VIEWER").value == "VIEWER"
