"""The GraphiQL explorer: its page, served at `/graphql` to browsers, and the page's assets.

The assets are pinned npm packages that `make install` puts in `graphiql/node_modules` (see
`graphiql/package.json`) and the app serves itself, so the explorer works where no CDN can be
reached; `GRAPHIQL_ASSETS=cdn` loads the same versions from unpkg.com instead.
Usage: `GraphQLEndpoint(graphiql_page=graphiql_page(token=demo_token))` plus `graphiql_static()`
among the routes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from tenantql.settings import GraphiQLAssets

log = logging.getLogger(__name__)

# Equal to graphiql/package.json's pins (a test checks). Plain <script> files, no bundler: GraphiQL
# 3's UMD build on React 18's UMD builds (React 19 ships none; GraphiQL 4 deprecated its UMD build
# and 5 ships ES modules only). Its CodeMirror 5 editors need neither workers nor eval.
PACKAGES = {"graphiql": "3.8.3", "react": "18.3.1", "react-dom": "18.3.1"}
CDN = "https://unpkg.com"
STATIC_PATH = "/graphiql/static"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "graphiql" / "node_modules"
JAVASCRIPT = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of a pinned package, at `{base}/{package}@{version}/{path}` as on unpkg."""

    package: str
    path: str
    media_type: str
    integrity: str  # Subresource Integrity: a CDN must serve exactly the pinned file

    @property
    def name(self) -> str:
        return f"{self.package}@{PACKAGES[self.package]}/{self.path}"

    def url(self, base: str) -> str:
        return f"{base}/{self.name}"

    def installed_file(self, directory: Path) -> Path | None:
        """The file if `directory` holds the pinned version of its package, else None."""
        try:
            manifest = json.loads((directory / self.package / "package.json").read_text())
        except (OSError, ValueError):
            return None
        file = directory / self.package / self.path
        return file if manifest.get("version") == PACKAGES[self.package] and file.is_file() else None


STYLESHEET = Asset(
    "graphiql",
    "graphiql.min.css",
    CSS,
    "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
)
SCRIPTS = (
    Asset(
        "react",
        "umd/react.production.min.js",
        JAVASCRIPT,
        "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    ),
    Asset(
        "react-dom",
        "umd/react-dom.production.min.js",
        JAVASCRIPT,
        "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    ),
    Asset(
        "graphiql",
        "graphiql.min.js",
        JAVASCRIPT,
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
)
ASSETS = (STYLESHEET, *SCRIPTS)

DEFAULT_QUERY = (
    "{\n  viewer { role tenant { slug name plan } }\n"
    "  shipments(first: 5) { edges { node { trackingNumber status customer { name } } } }\n}\n"
)
# Constant, so the Content-Security-Policy can allow it by hash; what varies is in the JSON block.
_START = """
const config = JSON.parse(document.getElementById("graphiql-config").textContent);
const root = document.getElementById("graphiql");
if (typeof GraphiQL === "undefined" || typeof ReactDOM === "undefined") {
  root.textContent = config.unavailable;
} else {
  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: window.location.pathname }),
    defaultHeaders: config.headers,
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: true,
    defaultQuery: config.query,
  }));
}
"""
_START_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_START.encode()).digest()).decode()

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tenantql · GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
  {stylesheet}
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <noscript>GraphiQL needs JavaScript.</noscript>
  <script id="graphiql-config" type="application/json">{config}</script>
  {scripts}
  <script>{start}</script>
</body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tenantql · GraphiQL is not installed</title>
  <style>body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; }}
  code {{ background: #f2f2f2; padding: 0 .2em; }}</style>
</head>
<body>
  <h1>GraphiQL's files are not installed</h1>
  <p>This server serves the explorer's JavaScript and CSS itself (<code>GRAPHIQL_ASSETS=local</code>),
  so that it works without internet access, but it does not have {packages}.</p>
  <p>Install them from the npm registry with <code>make install</code>
  (or <code>npm ci --omit=dev</code> in the <code>graphiql/</code> folder of the source tree), then reload.
  Where browsers can reach unpkg.com, <code>GRAPHIQL_ASSETS=cdn</code> loads them from there instead.</p>
  <p>The API itself works meanwhile: <code>POST {endpoint}</code> with a JSON body
  <code>{{"query": "{{ viewer {{ tenant {{ slug }} }} }}"}}</code> and the header
  <code>Authorization: Bearer &lt;token&gt;</code>.</p>
  {token}
</body>
</html>
"""


def _csp(script_src: str, style_src: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script_src} '{_START_HASH}'",
            f"style-src {style_src} 'unsafe-inline'",  # GraphiQL and CodeMirror set inline styles
            "img-src 'self' data:",
            "font-src 'self' data:",  # graphiql.min.css embeds its fonts
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _script_json(value: object) -> str:
    """JSON that cannot end the `<script>` element it sits in."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _render_page(base: str, config: str, *, integrity: bool) -> str:
    def attributes(asset: Asset) -> str:
        checked = f' integrity="{asset.integrity}" crossorigin="anonymous"' if integrity else ""
        return f'"{html.escape(asset.url(base))}"{checked}'

    return _PAGE.format(
        stylesheet=f"<link rel=stylesheet href={attributes(STYLESHEET)}>",
        scripts="\n  ".join(f"<script src={attributes(asset)}></script>" for asset in SCRIPTS),
        config=config,
        start=_START,
    )


def missing_assets(directory: Path) -> list[str]:
    """The pinned packages that `directory` lacks (empty when all the assets are there)."""
    return sorted({asset.package for asset in ASSETS if asset.installed_file(directory) is None})


def graphiql_page(
    *,
    token: str | None = None,
    assets: GraphiQLAssets = GraphiQLAssets.LOCAL,
    directory: Path = DEFAULT_DIRECTORY,
) -> Callable[[Request], Response]:
    """A page renderer; with a demo token the headers editor is pre-filled with it."""
    headers = json.dumps({"Authorization": f"Bearer {token or ''}"}, indent=2)
    config = _script_json(
        {
            "headers": headers,
            "query": DEFAULT_QUERY,
            "unavailable": "GraphiQL's scripts did not load: see the server's GRAPHIQL_ASSETS setting.",
        }
    )
    if assets is GraphiQLAssets.CDN:
        body, policy = _render_page(CDN, config, integrity=True), _csp(CDN, CDN)
    else:
        body, policy = _render_page(STATIC_PATH, config, integrity=False), _csp("'self'", "'self'")
        if missing := missing_assets(directory):
            log.warning("GraphiQL's assets (%s) are not in %s: run `make install`", ", ".join(missing), directory)
    missing_policy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
    common = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}

    def render(request: Request) -> HTMLResponse:
        # Checked per request, so running `make install` next to a running server is enough.
        if assets is GraphiQLAssets.LOCAL and (missing := missing_assets(directory)):
            packages = " and ".join(f"{name} {PACKAGES[name]}" for name in missing)
            shown = f"<p>The demo token: <code>{html.escape(token)}</code></p>" if token else ""
            page = _MISSING.format(packages=packages, endpoint=html.escape(request.url.path), token=shown)
            return HTMLResponse(page, headers={**common, "content-security-policy": missing_policy})
        return HTMLResponse(body, headers={**common, "content-security-policy": policy})

    return render


def graphiql_static(directory: Path = DEFAULT_DIRECTORY) -> Route:
    """The route that serves the pinned assets, and nothing else of `directory`."""
    by_name = {asset.name: asset for asset in ASSETS}

    def serve(request: Request) -> Response:
        asset = by_name.get(request.path_params["name"])
        file = asset.installed_file(directory) if asset else None
        if asset is None or file is None:
            return PlainTextResponse("Not Found", status_code=404)
        # The URL names the version, so a browser may keep the file for good.
        cache = {"cache-control": "public, max-age=31536000, immutable", "x-content-type-options": "nosniff"}
        return FileResponse(file, media_type=asset.media_type, headers=cache)

    return Route(STATIC_PATH + "/{name:path}", serve, methods=["GET", "HEAD"])


__all__ = ["ASSETS", "CDN", "PACKAGES", "STATIC_PATH", "graphiql_page", "graphiql_static", "missing_assets"]
