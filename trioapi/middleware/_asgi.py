"""What the middleware modules share: reading a scope, parsing a Host, answering early."""

from __future__ import annotations

import ipaddress
import re
from typing import final

import attrs

from .._http.requests import Scope, Send
from .._http.responses import Response

_HOST = re.compile(
    # reg-name | [IPv6] | [vFuture], then an optional :port (RFC 3986, section 3.2.2)
    r"(?P<host>[a-z0-9\-._~%!$&'()*+,;=]+"
    r"|\[(?P<ipv6>[0-9a-f:.]+)\]"
    r"|\[v[0-9a-f]+\.[a-z0-9\-._~!$&'()*+,;=:]+\])"
    r"(?::(?P<port>[0-9]+))?",
    re.IGNORECASE,
)

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@final
@attrs.frozen
class Host:
    """A parsed ``Host`` header: the host (IP literals keep their brackets) and the port."""

    host: str
    port: str | None

    @property
    def authority(self) -> str:
        """``host[:port]`` as it was given."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def port_number(self) -> int | None:
        """The port as a number; None when absent or out of range."""
        if self.port is None:
            return None
        number = int(self.port)
        return number if number <= 65535 else None


def parse_host(value: str | None) -> Host | None:
    """Parses a ``Host`` header value; None when absent or malformed."""
    if value is None:
        return None
    match = _HOST.fullmatch(value)
    if match is None:
        return None
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return None
    return Host(match["host"], match["port"])


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lowercase), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def netloc(scope: Scope) -> str | None:
    """``host[:port]`` of the request: a valid ``Host`` header, else the server's address."""
    host = parse_host(header(scope, b"host"))
    if host is not None and (host.port is None or host.port_number is not None):
        return host.authority
    server = scope.get("server")
    if server is None:
        return None
    name, port = server[0], server[1]
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return name if port == DEFAULT_PORTS.get(scope.get("scheme", "http")) else f"{name}:{port}"


def target(scope: Scope) -> str:
    """The request target as the client sent it: path (with ``root_path``) and query."""
    raw = scope.get("raw_path")
    path = (
        raw.decode("latin-1")
        if raw is not None
        else scope["path"].replace("?", "%3F").replace("#", "%23")
    )
    root = scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def answer(scope: Scope, send: Send, response: Response) -> None:
    """Answers the request with ``response`` instead of calling the app.

    A websocket gets it as a denial response where the server supports
    that extension (``websocket.http.response``); otherwise it is closed,
    which the server answers with 403.
    """
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    await response.send_to(send, head=scope["method"] == "HEAD")
