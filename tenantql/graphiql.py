"""The GraphiQL explorer page, served at `/graphql` to browsers."""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse

GRAPHIQL_VERSION = "3.8.3"
REACT_VERSION = "18.3.1"
CDN = "https://unpkg.com"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tenantql · GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
  <link rel="stylesheet" href="{assets}/graphiql@{graphiql}/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{assets}/react@{react}/umd/react.production.min.js"></script>
  <script src="{assets}/react-dom@{react}/umd/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql@{graphiql}/graphiql.min.js"></script>
  <script>
    const endpoint = window.location.pathname;
    const fetcher = GraphiQL.createFetcher({{ url: endpoint }});
    const root = ReactDOM.createRoot(document.getElementById("graphiql"));
    root.render(React.createElement(GraphiQL, {{
      fetcher,
      defaultHeaders: {headers},
      shouldPersistHeaders: true,
      defaultQuery: "{{\\n  viewer {{ role tenant {{ slug name plan }} }}\\n"
        + "  shipments(first: 5) {{ edges {{ node {{ trackingNumber status customer {{ name }} }} }} }}\\n}}\\n",
    }}));
  </script>
</body>
</html>
"""


def graphiql_page(*, token: str | None = None, assets: str = CDN):  # type: ignore[no-untyped-def]
    """A page renderer; with a demo token the headers editor is pre-filled with it."""
    headers = json.dumps(json.dumps({"Authorization": f"Bearer {token}"}, indent=2) if token else "")
    body = _PAGE.format(assets=html.escape(assets), graphiql=GRAPHIQL_VERSION, react=REACT_VERSION, headers=headers)

    def render(request: Request) -> HTMLResponse:
        return HTMLResponse(body, headers={"cache-control": "no-store"})

    return render


__all__ = ["graphiql_page"]
