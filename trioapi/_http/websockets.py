"""Websocket sessions: the ``WebSocket`` object and the runner of a websocket route.

(Being written: see the websocket work on issue 15.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import TrioAPI
    from .requests import Receive, Scope, Send
    from .routing import APIWebSocketRoute


class WebSocketDisconnect(Exception):
    """The client closed the websocket (``code`` says how)."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason or ""


class WebSocket:
    """One websocket connection."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send


async def run_websocket(
    app: TrioAPI,
    route: APIWebSocketRoute,
    params: dict[str, str],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> Any:
    """Runs one websocket session on ``route``."""
    await send({"type": "websocket.close", "code": 1011})
