"""Diagnostic variant (not in the default run): raw ASGI, its write in a trio task.

The POST spawns the append as a trio task in a nursery that the lifespan
call holds open, after the response: the least a background runtime on
trio can cost. The difference to ``app_raw`` is one spawned task per request.
"""

from __future__ import annotations

from typing import Any

import trio
from _task import write_notification
from app_raw import lifespan, respond, route

_nursery: trio.Nursery | None = None


async def _write(email: str) -> None:
    write_notification(email)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    global _nursery
    if scope["type"] == "lifespan":
        async with trio.open_nursery() as nursery:
            _nursery = nursery
            await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    status, reply, email = route(scope)
    await respond(send, status, reply)
    if email is not None:
        assert _nursery is not None
        _nursery.start_soon(_write, email)
