"""``TrustedHostMiddleware``: only answer requests for the hosts you serve.

A ``Host`` header naming another host (a DNS rebinding attack, a
misrouted request) gets ``400 Invalid host header``; with ``www_redirect``,
a request for ``example.com`` when only ``www.example.com`` is allowed is
redirected there instead. Websockets are checked too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

from .._http.requests import Receive, Scope, Send
from .._http.responses import PlainTextResponse, RedirectResponse, Response
from ._asgi import answer, header, netloc, parse_host, target
from ._stack import ASGIApp

__all__ = ["TrustedHostMiddleware"]


@final
class TrustedHostMiddleware:
    """Refuses requests whose ``Host`` is not one of ``allowed_hosts``.

    Args:
        app: The ASGI app to wrap.
        allowed_hosts: Host names (``"example.com"``), wildcard subdomains
            (``"*.example.com"``, which does not match ``example.com``
            itself), or ``"*"`` for any host (the default). Compared without
            the port, case-insensitively.
        www_redirect: Redirect ``example.com`` to ``www.example.com`` when
            only the latter is allowed.

    Raises:
        ValueError: A pattern with ``*`` anywhere but a leading ``*.``.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        patterns = ["*"] if allowed_hosts is None else list(allowed_hosts)
        for pattern in patterns:
            if pattern != "*" and (
                "*" in pattern[1:] or (pattern.startswith("*") and not pattern.startswith("*."))
            ):
                msg = (
                    f"allowed host {pattern!r} is not a valid pattern: a wildcard must be "
                    "a whole leading label, as in '*.example.com'"
                )
                raise ValueError(msg)
        self.app = app
        self.allowed_hosts = [pattern.lower() for pattern in patterns]
        self.allow_any = "*" in self.allowed_hosts
        self.www_redirect = www_redirect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        parsed = parse_host(header(scope, b"host"))
        if parsed is None:
            await answer(scope, send, PlainTextResponse("Invalid host header", status_code=400))
            return
        host = parsed.host.lower()
        www_match = False
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                await self.app(scope, receive, send)
                return
            if pattern == "www." + host:
                www_match = True
        response: Response
        location = netloc(scope)
        if www_match and self.www_redirect and location is not None:
            scheme = scope.get("scheme", "http")
            response = RedirectResponse(f"{scheme}://www.{location}{target(scope)}")
        else:
            response = PlainTextResponse("Invalid host header", status_code=400)
        await answer(scope, send, response)
