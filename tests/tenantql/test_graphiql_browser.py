"""A person's path through GraphiQL, in headless Chromium, with no network beyond this machine.

The browser is the system's Chromium (Debian's `chromium`, which `make test` installs), driven
by Playwright; Playwright's own browser downloads are never used. The page and everything it
loads come from one uvicorn process on the session's PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from auth.tenant import Role
from tests.conftest import TenantHandle
from tests.live import running_server, server_environment
from tests.tenantql.test_graphiql import graphiql_assets  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "test-artifacts" / "graphiql.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
QUERY = "{ viewer { tenant { slug } } }"


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's `chromium` with apt-get "
            "(or run `apt-get install chromium`, or point CHROMIUM at another Chromium)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def demo_tenant(make_tenant: Callable[..., Any]) -> TenantHandle:
    return await make_tenant(slug=f"acme-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def server(settings: Any, demo_tenant: TenantHandle, graphiql_assets: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """`tenantql` in a uvicorn process whose GraphiQL is pre-filled with the demo tenant's token."""
    env = server_environment(
        settings,
        TENANTQL_HOME=str(tmp_path),
        TENANTQL_GRAPHIQL_TOKEN=demo_tenant.token(Role.VIEWER),
        GRAPHIQL="true",
        GRAPHIQL_ASSETS="local",
        GRAPHIQL_ASSETS_DIR=str(graphiql_assets),
    )
    with running_server(env, cwd=tmp_path) as base:  # no .env of the work tree
        yield base


async def test_graphiql_runs_a_query_offline_with_the_demo_token(chromium: str, server: str, demo_tenant):
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.fail("Playwright is not installed: `pip install -e '.[test]'` (or `make install`)", pytrace=False)

    outside: list[str] = []  # requests for any host but this server's: refused, and must be none
    problems: list[str] = []  # script errors, CSP violations, failed loads
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})

            async def only_this_machine(route: Any) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await context.route("**/*", only_this_machine)
            page = await context.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.extend([message.text] if message.type == "error" else []))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))

            await page.goto(f"{server}/graphql")
            headers = page.locator(".graphiql-editor-tool .graphiql-editor:visible")  # the Headers tab is open
            await expect(headers).to_contain_text('"Authorization": "Bearer ey', timeout=30_000)

            editor = page.locator(".graphiql-query-editor .CodeMirror")
            await editor.click()
            await page.keyboard.press("Control+A")
            await page.keyboard.press("Delete")
            await page.keyboard.type(QUERY)
            # CodeMirror closes brackets as one types and steps over them when typed: the text is the query.
            assert await editor.evaluate("node => node.CodeMirror.getValue()") == QUERY
            await page.keyboard.press("Escape")  # an open autocomplete list
            await page.locator(".graphiql-execute-button").click()

            result = page.locator(".graphiql-response")
            await expect(result).to_contain_text(f'"slug": "{demo_tenant.slug}"', timeout=30_000)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=SCREENSHOT)
        finally:
            await browser.close()

    assert outside == []
    assert problems == []
