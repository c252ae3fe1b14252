"""Diagnostic variant (not in the default run): raw ASGI, its POST without the append.

The same answers as ``app_raw``, and no line written: next to it, what the
append itself costs; next to ``app_trioapi_notask``, what trioapi's request
path costs (run.py does not count lost tasks for it).
"""

from __future__ import annotations

from typing import Any

from app_raw import lifespan, respond, route


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    status, reply, _ = route(scope)
    await respond(send, status, reply)
