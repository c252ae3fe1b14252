"""Helpers for tests that call an ASGI app directly, without a client."""

from __future__ import annotations

from typing import Any


def http_scope(path: str, method: str = "GET") -> dict[str, Any]:
    """A minimal HTTP scope, as a server would build it for ``method path``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
