"""GraphiQL's page and assets: served by the app itself by default, from the pinned CDN on request."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tenantql.app import create_app
from tenantql.graphiql import ASSETS, CDN, DEFAULT_DIRECTORY, PACKAGES, STATIC_PATH, missing_assets
from tenantql.settings import GraphiQLAssets, Settings
from tests.live import npm_install

GRAPHIQL = DEFAULT_DIRECTORY.parent
HTML = {"Accept": "text/html"}
REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]*)\"""")


@pytest.fixture(scope="session")
def graphiql_assets() -> Path:
    """`graphiql/node_modules` as `package-lock.json` pins it: what `make install` does, done if it was not."""
    if missing_assets(DEFAULT_DIRECTORY):
        npm_install(GRAPHIQL, "GraphiQL's assets", options=["--omit=dev"], how="`make install`")
    assert missing_assets(DEFAULT_DIRECTORY) == []
    return DEFAULT_DIRECTORY


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # The page and the assets need no database: the app serves them without its lifespan.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantql.test") as http:
        yield http


@pytest.fixture
async def cdn_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(replace(settings, graphiql_assets=GraphiQLAssets.CDN, graphiql_token="demo.token")) as http:
        yield http


@pytest.fixture
async def uninstalled_client(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    stale = tmp_path / "react"  # an older React than the pinned one counts as missing too
    stale.mkdir()
    (stale / "package.json").write_text(json.dumps({"name": "react", "version": "18.2.0"}))
    async with client_for(replace(settings, graphiql_assets_dir=tmp_path, graphiql_token="demo.token")) as http:
        yield http


def references(page: str) -> list[str]:
    return REFERENCE.findall(page)


def test_the_pins_agree_with_package_json_and_its_lockfile():
    manifest = json.loads((GRAPHIQL / "package.json").read_text())
    lock = json.loads((GRAPHIQL / "package-lock.json").read_text())
    for name, version in PACKAGES.items():
        assert manifest["dependencies"][name] == version  # exact: no ^ or ~
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", pin) for pin in manifest["dependencies"].values())


def test_the_integrity_hashes_are_the_installed_files(graphiql_assets: Path):
    for asset in ASSETS:
        digest = hashlib.sha384((graphiql_assets / asset.package / asset.path).read_bytes()).digest()
        assert asset.integrity == "sha384-" + base64.b64encode(digest).decode(), asset.name


async def test_the_page_loads_only_the_apps_own_assets(client: httpx.AsyncClient, graphiql_assets: Path):
    page = await client.get("/graphql", headers=HTML)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = references(page.text)
    assert len(found) == len(ASSETS) + 1  # and the empty favicon
    assert {url for url in found if not url.startswith("data:")} == {asset.url(STATIC_PATH) for asset in ASSETS}
    assert "://" not in page.text.split("<body>")[1], "nothing on the page may name another host"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-eval" not in policy and "https:" not in policy
    assert "connect-src 'self'" in policy
    assert page.headers["cache-control"] == "no-store"

    for asset in ASSETS:
        served = await client.get(asset.url(STATIC_PATH))
        assert served.status_code == 200, asset.name
        expected = "text/css" if asset.path.endswith(".css") else "text/javascript"
        assert served.headers["content-type"].split(";")[0] == expected
        assert served.content == (graphiql_assets / asset.package / asset.path).read_bytes()
        assert "immutable" in served.headers["cache-control"]


async def test_nothing_else_of_node_modules_is_served(client: httpx.AsyncClient, graphiql_assets: Path):
    for path in (
        f"graphiql@{PACKAGES['graphiql']}/package.json",
        "graphiql@3.0.0/graphiql.min.js",  # another version than the pinned one
        f"graphiql@{PACKAGES['graphiql']}/../react/package.json",
        "graphql/package.json",
    ):
        assert (await client.get(f"{STATIC_PATH}/{path}")).status_code == 404, path


async def test_the_headers_editor_is_pre_filled_with_the_demo_token(settings: Settings, graphiql_assets: Path):
    async with client_for(replace(settings, graphiql_token="demo.token")) as http:
        page = (await http.get("/graphql", headers=HTML)).text
        assert '"headers": "{\\n  \\"Authorization\\": \\"Bearer demo.token\\"\\n}"' in page
    async with client_for(settings) as http:
        page = (await http.get("/graphql", headers=HTML)).text
        assert '\\"Bearer \\"' in page  # a blank to paste a token into


async def test_cdn_mode_loads_the_same_versions_from_the_cdn(cdn_client: httpx.AsyncClient):
    page = await cdn_client.get("/graphql", headers=HTML)

    assert page.status_code == 200
    found = [url for url in references(page.text) if not url.startswith("data:")]
    assert found and all(url.startswith(f"{CDN}/") for url in found)
    assert set(found) == {asset.url(CDN) for asset in ASSETS}
    for asset in ASSETS:  # the browser checks that the CDN served exactly the pinned files
        assert f'"{asset.url(CDN)}" integrity="{asset.integrity}" crossorigin="anonymous"' in page.text
    assert f"script-src {CDN} 'sha256-" in page.headers["content-security-policy"]
    assert (await cdn_client.get(ASSETS[0].url(STATIC_PATH))).status_code == 404  # not mounted


async def test_without_installed_assets_the_page_says_how_to_get_them(uninstalled_client: httpx.AsyncClient):
    page = await uninstalled_client.get("/graphql", headers=HTML)

    assert page.status_code == 200
    assert "make install" in page.text and "npm ci --omit=dev" in page.text and "GRAPHIQL_ASSETS=cdn" in page.text
    assert "<script" not in page.text
    assert "demo.token" in page.text  # still usable with curl
    for asset in ASSETS:
        assert (await uninstalled_client.get(asset.url(STATIC_PATH))).status_code == 404


async def test_no_graphiql_no_assets(settings: Settings, graphiql_assets: Path):
    async with client_for(replace(settings, graphiql=False)) as http:
        assert (await http.get(ASSETS[0].url(STATIC_PATH))).status_code == 404


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("GRAPHIQL_ASSETS", raising=False)
    monkeypatch.delenv("GRAPHIQL_ASSETS_DIR", raising=False)
    assert Settings.from_env(env_file=None).graphiql_assets is GraphiQLAssets.LOCAL
    monkeypatch.setenv("GRAPHIQL_ASSETS", "cdn")
    monkeypatch.setenv("GRAPHIQL_ASSETS_DIR", str(tmp_path))
    settings = Settings.from_env(env_file=None)
    assert (settings.graphiql_assets, settings.graphiql_assets_dir) == (GraphiQLAssets.CDN, tmp_path)
    monkeypatch.setenv("GRAPHIQL_ASSETS", "internet")
    with pytest.raises(ValueError):
        Settings.from_env(env_file=None)
