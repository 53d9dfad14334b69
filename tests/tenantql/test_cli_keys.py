"""`tenantql keys create|list|revoke`: run as a user runs them, against the session's servers."""

from __future__ import annotations

import re
import subprocess

from auth.tenant import Plan
from tests.live import run_cli

VIEWER = {"query": "{ viewer { role tenant { slug } } }"}


def created_key(done: subprocess.CompletedProcess[str]) -> str:
    """The key `keys create` printed: stdout is that one line and nothing else."""
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"tql_[0-9a-f]{8}_\S+", lines[0]), done.stdout
    return lines[0]


async def test_a_created_key_authenticates_is_listed_by_prefix_and_stops_working_once_revoked(
    settings, client, make_tenant
):
    tenant = await make_tenant(Plan.SCALE)
    done = run_cli(settings, "keys", "create", "--tenant", tenant.slug, "--role", "member", "--name", "nightly sync")
    key = created_key(done)
    assert "shown this once" in done.stderr
    prefix = key[:12]

    response = await client.post("/graphql", json=VIEWER, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert viewer["tenant"]["slug"] == tenant.slug
    assert viewer["role"].lower() == "member"

    listed = run_cli(settings, "keys", "list", "--tenant", tenant.slug)
    assert listed.returncode == 0, listed.stderr
    assert prefix in listed.stdout and "nightly sync" in listed.stdout and "member" in listed.stdout
    assert key not in listed.stdout + listed.stderr and key[13:] not in listed.stdout

    revoked = run_cli(settings, "keys", "revoke", "--tenant", tenant.slug, prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    response = await client.post("/graphql", json=VIEWER, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    again = run_cli(settings, "keys", "revoke", "--tenant", tenant.slug, key)
    assert again.returncode == 0, again.stderr
    assert "already revoked" in again.stdout
    listed = run_cli(settings, "keys", "list", "--tenant", tenant.slug)
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(prefix)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row.split()[-1]), row  # when it was revoked


async def test_each_key_is_revoked_alone_and_by_its_id_or_full_text_too(settings, client, make_tenant):
    tenant = await make_tenant(Plan.ENTERPRISE)
    first = created_key(run_cli(settings, "keys", "create", "--tenant", tenant.slug, "--role", "viewer"))
    second = created_key(run_cli(settings, "keys", "create", "--tenant", tenant.slug, "--role", "admin"))
    done = run_cli(settings, "keys", "revoke", "--tenant", tenant.slug, first)
    assert done.returncode == 0, done.stderr

    assert (await client.post("/graphql", json=VIEWER, headers={"X-API-Key": first})).status_code == 401
    response = await client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {second}"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"]["role"].lower() == "admin"


async def test_a_key_of_another_tenant_or_an_unknown_key_is_not_revoked(settings, client, make_tenant):
    mine = await make_tenant(Plan.SCALE)
    theirs = await make_tenant(Plan.SCALE)
    key = created_key(run_cli(settings, "keys", "create", "--tenant", theirs.slug, "--role", "viewer"))

    for wanted in (key[:12], key, "tql_00000000", "00000000-0000-0000-0000-000000000000"):
        done = run_cli(settings, "keys", "revoke", "--tenant", mine.slug, wanted)
        assert done.returncode == 2, (wanted, done.stdout, done.stderr)
        assert "no API key" in done.stderr
    assert (await client.post("/graphql", json=VIEWER, headers={"X-API-Key": key})).status_code == 200


async def test_a_tenant_below_scale_gets_no_key(settings, make_tenant):
    for plan in (Plan.STARTER, Plan.GROWTH):
        tenant = await make_tenant(plan)
        done = run_cli(settings, "keys", "create", "--tenant", tenant.slug, "--role", "admin")
        assert done.returncode == 2, done.stdout
        assert done.stdout == ""
        assert plan.value in done.stderr and "SCALE" in done.stderr
        listed = run_cli(settings, "keys", "list", "--tenant", tenant.slug)
        assert listed.returncode == 0 and "tql_" not in listed.stdout


async def test_an_unknown_tenant_or_role_is_refused(settings):
    for command in (
        ("keys", "create", "--tenant", "no-such-tenant", "--role", "admin"),
        ("keys", "list", "--tenant", "no-such-tenant"),
        ("keys", "revoke", "--tenant", "no-such-tenant", "tql_00000000"),
    ):
        done = run_cli(settings, *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "no tenant with slug 'no-such-tenant'" in done.stderr and done.stdout == ""

    done = run_cli(settings, "keys", "create", "--tenant", "no-such-tenant", "--role", "owner")
    assert done.returncode == 2 and "admin, member, viewer" in done.stderr
