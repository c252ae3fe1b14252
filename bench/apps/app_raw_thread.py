"""Diagnostic variant (not in the default run): raw ASGI, its write in a trio worker thread.

The POST runs the append with ``trio.to_thread.run_sync`` after the
response, as Starlette and FastAPI run a sync background task: the
difference to ``app_raw`` is one thread round trip per request.
"""

from __future__ import annotations

from typing import Any

import trio
from _task import write_notification
from app_raw import HELLO, NOT_FOUND, PREFIX, SENT, lifespan, respond


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    method = scope["method"]
    path: str = scope["path"]
    if method == "GET" and path == "/":
        await respond(send, 200, HELLO)
    elif method == "POST" and path.startswith(PREFIX) and "/" not in path[len(PREFIX) :]:
        await respond(send, 200, SENT)
        await trio.to_thread.run_sync(write_notification, path[len(PREFIX) :])
    else:
        await respond(send, 404, NOT_FOUND)
