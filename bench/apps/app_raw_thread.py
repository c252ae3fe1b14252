"""Diagnostic variant (not in the default run): raw ASGI, its write in a trio worker thread.

The POST runs the append with ``trio.to_thread.run_sync`` after the
response, as Starlette and FastAPI run a sync background task: the
difference to ``app_raw`` is one thread round trip per request.
"""

from __future__ import annotations

from typing import Any

import trio
from _task import write_notification
from app_raw import lifespan, respond, route


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    status, reply, email = route(scope)
    await respond(send, status, reply)
    if email is not None:
        await trio.to_thread.run_sync(write_notification, email)
