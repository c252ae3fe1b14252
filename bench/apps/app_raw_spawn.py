"""Diagnostic variant (not in the default run): raw ASGI, its write in a trio task.

The POST spawns the append as a trio task in a nursery that the lifespan
call holds open, after the response: the least a background runtime on
trio can cost. The difference to ``app_raw`` is one spawned task per request.
"""

from __future__ import annotations

from typing import Any

import trio
from _task import write_notification
from app_raw import HELLO, NOT_FOUND, PREFIX, SENT, respond

_nursery: trio.Nursery | None = None


async def _write(email: str) -> None:
    write_notification(email)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    global _nursery
    if scope["type"] == "lifespan":
        async with trio.open_nursery() as nursery:
            _nursery = nursery
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
    if scope["type"] != "http":
        return
    method = scope["method"]
    path: str = scope["path"]
    if method == "GET" and path == "/":
        await respond(send, 200, HELLO)
    elif method == "POST" and path.startswith(PREFIX) and "/" not in path[len(PREFIX) :]:
        await respond(send, 200, SENT)
        assert _nursery is not None
        _nursery.start_soon(_write, path[len(PREFIX) :])
    else:
        await respond(send, 404, NOT_FOUND)
