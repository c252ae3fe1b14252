"""``HTTPSRedirectMiddleware``: send every ``http``/``ws`` request to ``https``/``wss``."""

from __future__ import annotations

from typing import final

from .._http.requests import Receive, Scope, Send
from .._http.responses import PlainTextResponse, RedirectResponse
from ._asgi import answer, netloc, parse_host, target
from ._stack import ASGIApp

__all__ = ["HTTPSRedirectMiddleware"]

_SECURE = {"http": "https", "ws": "wss"}


@final
class HTTPSRedirectMiddleware:
    """Redirects plain ``http``/``ws`` requests to the same URL on ``https``/``wss`` (307).

    The standard ports (80 and 443) are left out of the new URL; any other
    port is kept. A request whose host cannot be told gets 400. Behind a
    proxy that terminates TLS, the server must report the original scheme
    (hypercorn's and uvicorn's forwarded-headers support), or every request
    is redirected.

    Args:
        app: The ASGI app to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scheme = scope.get("scheme", "http")
        if scope["type"] not in ("http", "websocket") or scheme not in _SECURE:
            await self.app(scope, receive, send)
            return
        location = netloc(scope)
        if location is None:
            await answer(scope, send, PlainTextResponse("Invalid host header", status_code=400))
            return
        host = parse_host(location)
        if host is not None and host.port_number in (80, 443):
            location = host.host
        url = f"{_SECURE[scheme]}://{location}{target(scope)}"
        await answer(scope, send, RedirectResponse(url, status_code=307))
