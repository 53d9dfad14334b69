"""An identity provider's JWKS endpoint on 127.0.0.1, for the tests of tokens signed with
public keys: real HTTP, documents a test can change, and a count of fetches per path."""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from typing import Any

JWKS_PATH = "/.well-known/jwks.json"


class KeyServer:
    """Serves `documents[path]` as JSON (404 for any other path); `url` is that of `JWKS_PATH`.

    Usage: `server = KeyServer(); server.publish(jwk, …)`, then `server.close()`."""

    def __init__(self, documents: dict[str, Any] | None = None) -> None:
        self.documents: dict[str, Any] = {JWKS_PATH: {"keys": []}, **(documents or {})}
        self.fetches: Counter[str] = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches[self.path] += 1
                found = self.path in server.documents
                body = json.dumps(server.documents.get(self.path, {})).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = self.url_of(JWKS_PATH)
        self._thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()

    def url_of(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}{path}"

    def publish(self, *keys: dict[str, Any]) -> None:
        """The provider's keys from now on (a rotation, for one)."""
        self.documents[JWKS_PATH] = {"keys": list(keys)}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self._thread.join()


__all__ = ["JWKS_PATH", "KeyServer"]
