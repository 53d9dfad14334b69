"""`tenantql tenants create|list|set-plan|suspend|resume|set-domain` and `token --platform-admin`: run as an
operator runs them, seen by a running app."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from auth.tenant import Plan, Role, TenantStatus
from db import platform
from db.models import Shipment, Tenant, User
from db.transaction import tenant_transaction
from tenantql.admin import PATH as ADMIN_PATH
from tenantql.cli import build_parser, cmd_tenants_set_domain, cmd_token
from tenantql.public_tracking import PATH as TRACKING_PATH
from tests.audit import audit_rows
from tests.live import run_cli
from tests.tenant_cache import within_the_tenant_cache_time

VIEWER = {"query": "{ viewer { role tenant { slug plan } } }"}
RATE_LIMIT = {"query": "{ rateLimit { maximumAvailable } }"}


def new_slug() -> str:
    return f"onboard-{uuid.uuid4().hex[:10]}"


def create(settings, slug: str, *extra: str, email: str = "boss@example.com") -> uuid.UUID:
    done = run_cli(
        settings, "tenants", "create", "--slug", slug, "--name", "New Couriers", "--admin-email", email, *extra
    )
    assert done.returncode == 0, done.stderr
    return uuid.UUID(done.stdout.strip())


async def tenant_row(owner_engine, slug: str) -> Any:
    async with owner_engine.connect() as connection:
        return (await connection.execute(select(Tenant).where(Tenant.slug == slug))).one_or_none()


async def test_creating_a_tenant_twice_returns_the_same_tenant_and_changes_nothing(settings, owner_engine):
    slug = new_slug()
    first = run_cli(
        settings, "tenants", "create", "--slug", slug, "--name", "New Couriers", "--admin-email", "boss@example.com",
        "--admin-name", "Bo Ss", "--reason", "signed up on the website",
    )  # fmt: skip
    again = run_cli(
        settings, "tenants", "create", "--slug", slug, "--name", "Other Name", "--admin-email", "other@example.com",
        "--plan", "scale",
    )  # fmt: skip

    assert first.returncode == 0 and again.returncode == 0, (first.stderr, again.stderr)
    tenant_id = uuid.UUID(first.stdout.strip())
    assert uuid.UUID(again.stdout.strip()) == tenant_id
    assert "created" in first.stderr and "already existed" in again.stderr and "nothing changed" in again.stderr
    tenant = await tenant_row(owner_engine, slug)
    assert (tenant.name, tenant.plan, tenant.status.value) == ("New Couriers", Plan.STARTER, "ACTIVE")
    async with tenant_transaction(owner_engine, tenant_id) as db:
        users = await db.all(select(User.email, User.name, User.role).where(User.tenant_id == tenant_id))
    assert [tuple(user) for user in users] == [("boss@example.com", "Bo Ss", Role.ADMIN)]
    [row] = await audit_rows(owner_engine, tenant_id)
    assert (row.action, row.target_id) == ("tenant.create", tenant_id)
    assert row.actor.startswith("platform:cli:") and len(row.actor) > len("platform:cli:")
    assert row.changes["reason"] == "signed up on the website" and row.changes["plan"] == "STARTER"

    listed = run_cli(settings, "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(slug + " ")]
    assert line.split()[1:4] == ["STARTER", "ACTIVE", "-"] and line.endswith("New Couriers")


async def test_the_first_admin_gets_a_token_that_the_running_app_accepts(settings, client):
    slug = new_slug()
    create(settings, slug, "--plan", "GROWTH")
    token = run_cli(settings, "token", "--tenant", slug, "--role", "admin")
    assert token.returncode == 0, token.stderr

    response = await client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert viewer["tenant"] == {"slug": slug, "plan": "GROWTH"} and viewer["role"].lower() == "admin"


async def test_a_plan_change_reaches_the_running_app_and_is_audited(settings, client, owner_engine):
    slug = new_slug()
    tenant_id = create(settings, slug)
    token = run_cli(settings, "token", "--tenant", slug, "--role", "admin").stdout.strip()  # its only user
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.post("/graphql", json=RATE_LIMIT, headers=headers)
    assert response.json()["data"]["rateLimit"]["maximumAvailable"] == 1_000  # cached by the app now

    done = run_cli(settings, "tenants", "set-plan", slug, "enterprise", "--budget", "2500", "--reason", "contract #7")
    assert done.returncode == 0, done.stderr
    assert "now on ENTERPRISE" in done.stdout

    def budget(response: Any) -> int:
        return response.json()["data"]["rateLimit"]["maximumAvailable"]

    await within_the_tenant_cache_time(settings, client, RATE_LIMIT, headers, lambda r: budget(r) == 2_500)
    same = run_cli(settings, "tenants", "set-plan", slug, "ENTERPRISE", "--budget", "2500")
    assert same.returncode == 0 and "nothing changed" in same.stdout, same.stderr
    listed = run_cli(settings, "tenants", "list").stdout
    [line] = [line for line in listed.splitlines() if line.startswith(slug + " ")]
    assert line.split()[1:4] == ["ENTERPRISE", "ACTIVE", "2500"]

    _, set_plan_row = await audit_rows(owner_engine, tenant_id)  # the unchanged call wrote nothing
    assert set_plan_row.action == "tenant.set_plan" and set_plan_row.actor.startswith("platform:cli:")
    assert set_plan_row.changes == {
        "plan": "ENTERPRISE",
        "plan_before": "STARTER",
        "rate_limit_per_minute": 2_500,
        "rate_limit_per_minute_before": None,
        "reason": "contract #7",
    }


async def test_a_suspended_tenant_is_refused_keeps_its_data_and_is_served_again_once_resumed(
    settings, client, owner_engine, make_tenant
):
    tenant = await make_tenant(Plan.SCALE)
    headers = tenant.headers(Role.VIEWER)
    assert (await client.post("/graphql", json=VIEWER, headers=headers)).status_code == 200

    done = run_cli(settings, "tenants", "suspend", tenant.slug, "--reason", "invoice 42 unpaid")
    assert done.returncode == 0, done.stderr
    refused = await within_the_tenant_cache_time(settings, client, VIEWER, headers, lambda r: r.status_code != 200)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "TENANT_SUSPENDED"
    async with tenant_transaction(owner_engine, tenant.id) as db:
        [shipments] = await db.all(select(func.count()).select_from(Shipment).where(Shipment.tenant_id == tenant.id))
    assert shipments[0] == len(tenant.ids["shipments"]) > 0
    again = run_cli(settings, "tenants", "suspend", tenant.slug, "--reason", "still unpaid")
    assert again.returncode == 0 and "already suspended" in again.stdout, again.stderr

    done = run_cli(settings, "tenants", "resume", tenant.slug, "--reason", "paid")
    assert done.returncode == 0, done.stderr
    served = await within_the_tenant_cache_time(settings, client, VIEWER, headers, lambda r: r.status_code == 200)
    assert served.json()["data"]["viewer"]["tenant"]["slug"] == tenant.slug

    rows = await audit_rows(owner_engine, tenant.id)
    assert [(row.action, row.changes["status"], row.changes["reason"]) for row in rows] == [
        ("tenant.suspend", "SUSPENDED", "invoice 42 unpaid"),
        ("tenant.resume", "ACTIVE", "paid"),
    ]
    assert all(row.actor.startswith("platform:cli:") and row.target_id == tenant.id for row in rows)


async def test_bad_input_and_unknown_tenants_are_refused_and_change_nothing(settings, owner_engine, make_tenant):
    for slug in ("Upper-Case", "-leading"):
        done = run_cli(settings, "tenants", "create", f"--slug={slug}", "--name", "N", "--admin-email", "a@example.com")
        assert done.returncode == 2, (slug, done.stdout, done.stderr)
        assert "invalid slug" in done.stderr and done.stdout == ""
    for slug in ("ab", "under_score", "trailing-", "x" * 64, "dots.in.it"):  # the same check, without a process each
        with pytest.raises(platform.PlatformError, match="invalid slug"):
            await platform.create_tenant(
                owner_engine, slug=slug, name="N", plan=Plan.STARTER, admin_email="a@example.com", actor="platform:test"
            )
        assert await tenant_row(owner_engine, slug) is None
    slug = new_slug()
    done = run_cli(settings, "tenants", "create", "--slug", slug, "--name", "N", "--admin-email", "not-an-email")
    assert done.returncode == 2 and "invalid admin email" in done.stderr, done.stderr
    assert await tenant_row(owner_engine, slug) is None

    for command in (
        ("set-plan", "no-such-tenant", "SCALE"),
        ("suspend", "no-such-tenant", "--reason", "test"),
        ("resume", "no-such-tenant"),
    ):
        done = run_cli(settings, "tenants", *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "no tenant with slug 'no-such-tenant'" in done.stderr and done.stdout == ""

    tenant = await make_tenant(Plan.STARTER)
    done = run_cli(settings, "tenants", "set-plan", tenant.slug, "SCALE", "--budget", "99999")
    assert done.returncode == 2 and "only an ENTERPRISE" in done.stderr, done.stderr
    row = await tenant_row(owner_engine, tenant.slug)
    assert (row.plan, row.status.value, row.rate_limit_per_minute) == (Plan.STARTER, "ACTIVE", None)
    assert await audit_rows(owner_engine, tenant.id) == []


def test_the_command_line_itself_refuses_an_unknown_plan_a_budget_below_1_and_a_suspension_without_reason(capsys):
    for command in (
        ("set-plan", "acme", "PLATINUM"),
        ("set-plan", "acme", "ENTERPRISE", "--budget", "0"),
        ("suspend", "acme"),
    ):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["tenants", *command])
        assert exited.value.code == 2, command
    assert "STARTER, GROWTH, SCALE, ENTERPRISE" in capsys.readouterr().err
    assert build_parser().parse_args(["tenants", "set-plan", "acme", "enterprise"]).plan is Plan.ENTERPRISE


async def test_two_operators_creating_one_slug_at_once_make_one_tenant(owner_engine):
    slug = new_slug()
    results = await asyncio.gather(
        *(
            platform.create_tenant(
                owner_engine,
                slug=slug,
                name="Race",
                plan=Plan.STARTER,
                admin_email=f"admin{n}@example.com",
                actor=f"platform:test:{n}",
            )
            for n in range(2)
        )
    )
    assert sorted(created for _, created in results) == [False, True]
    assert len({tenant.id for tenant, _ in results}) == 1
    assert len(await audit_rows(owner_engine, results[0][0].id)) == 1


async def test_a_change_whose_audit_row_fails_is_rolled_back(owner_engine, make_tenant, monkeypatch):
    tenant = await make_tenant(Plan.STARTER)

    async def failing_audit(*args: Any) -> None:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(platform, "_audit", failing_audit)
    for change in (
        lambda: platform.suspend(owner_engine, tenant.slug, actor="platform:test", reason="test"),
        lambda: platform.set_plan(owner_engine, tenant.slug, Plan.SCALE, actor="platform:test", reason=None),
    ):
        with pytest.raises(RuntimeError, match="audit log is unavailable"):
            await change()
    row = await tenant_row(owner_engine, tenant.slug)
    assert (row.plan, row.status) == (Plan.STARTER, TenantStatus.ACTIVE)


async def test_set_domain_serves_public_tracking_at_that_host_and_clear_removes_it(
    settings, client, owner_engine, make_tenant
):
    tenant = await make_tenant(Plan.STARTER)
    domain = f"track.{tenant.slug}.example"
    number = tenant.tracking_numbers[0]
    track = {
        "query": "query T($n: String!) { trackShipment(trackingNumber: $n) { status } }",
        "variables": {"n": number},
    }

    done = run_cli(settings, "tenants", "set-domain", tenant.slug, domain.upper(), "--reason", "go-live")
    assert done.returncode == 0 and f"now serves public tracking at {domain}" in done.stdout, done.stderr
    listed = run_cli(settings, "tenants", "list").stdout
    [line] = [line for line in listed.splitlines() if line.startswith(tenant.slug + " ")]
    assert line.split()[1:5] == ["STARTER", "ACTIVE", "-", domain]
    response = await client.post(TRACKING_PATH, json=track, headers={"Host": domain})
    assert response.status_code == 200 and response.json()["data"]["trackShipment"]["status"], response.text

    done = run_cli(settings, "tenants", "set-domain", tenant.slug, "--clear")
    assert done.returncode == 0 and "at no custom domain" in done.stdout, done.stderr
    deadline = time.monotonic() + 10
    while (response := await client.post(TRACKING_PATH, json=track, headers={"Host": domain})).status_code == 200:
        assert time.monotonic() < deadline, "the cleared domain is still served"
        await asyncio.sleep(0.1)
    assert response.status_code == 404 and response.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_HOST"

    rows = await audit_rows(owner_engine, tenant.id)
    assert [(row.action, row.changes["custom_domain"], row.changes["reason"]) for row in rows] == [
        ("tenant.set_custom_domain", domain, "go-live"),
        ("tenant.set_custom_domain", None, None),
    ]
    assert all(row.actor.startswith("platform:cli:") for row in rows)
    for wrong in ([tenant.slug], [tenant.slug, domain, "--clear"]):  # refused before anything runs
        assert cmd_tenants_set_domain(build_parser().parse_args(["tenants", "set-domain", *wrong]), settings) == 2


async def test_token_platform_admin_is_accepted_by_the_admin_endpoint_and_refused_by_graphql(settings, client):
    done = run_cli(settings, "token", "--platform-admin", "--subject", "ops-bob", "--ttl", "10m")
    assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {done.stdout.strip()}"}

    listed = await client.post(ADMIN_PATH, json={"query": "{ tenants { slug } }"}, headers=headers)
    assert listed.status_code == 200 and listed.json()["data"]["tenants"], listed.text
    refused = await client.post("/graphql", json=VIEWER, headers=headers)
    assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for wrong in (
        ["--platform-admin", "--tenant", "acme"],
        ["--platform-admin", "--subject", "two words"],
        ["--tenant", "acme"],
        ["--subject", "x"],
    ):
        assert cmd_token(build_parser().parse_args(["token", *wrong]), settings) == 2, wrong
