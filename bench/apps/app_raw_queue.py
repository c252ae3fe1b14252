"""Diagnostic variant (not in the default run): raw ASGI, its write handed to a bare thread.

The POST puts the email on a queue after the response; one thread of the
app's own appends the lines. Nothing comes back to the event loop: the
difference to ``app_raw`` is the least a worker-thread hop can cost (a
wake-up, and the GIL shared between the loop and the thread on one core).
"""

from __future__ import annotations

from typing import Any

from _handoff import HandOffThread
from app_raw import lifespan, respond, route

_writer = HandOffThread()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    if scope["type"] == "lifespan":
        _writer.start()
        try:
            await lifespan(receive, send)
        finally:
            await _writer.stop()
        return
    if scope["type"] != "http":
        return
    status, reply, email = route(scope)
    await respond(send, status, reply)
    if email is not None:
        _writer.put(email)
