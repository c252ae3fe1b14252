"""Raw ASGI: the limit. The POST writes its line inline, right after the response.

No framework, no thread hop: what hypercorn's trio worker can do on its own.
"""

from __future__ import annotations

import json
from typing import Any

from _task import write_notification

PREFIX = "/send-notification/"


def _json(content: Any) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(content, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return headers, body


HELLO = _json({"message": "hello"})
SENT = _json({"message": "Notification sent in the background"})
NOT_FOUND = _json({"detail": "Not Found"})


async def respond(send: Any, status: int, reply: tuple[list[tuple[bytes, bytes]], bytes]) -> None:
    headers, body = reply
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def route(scope: dict[str, Any]) -> tuple[int, tuple[list[tuple[bytes, bytes]], bytes], str | None]:
    """The answer to an HTTP request, and the email whose line is due once it is sent."""
    method = scope["method"]
    path: str = scope["path"]
    if method == "GET" and path == "/":
        return 200, HELLO, None
    if method == "POST" and path.startswith(PREFIX) and "/" not in path[len(PREFIX) :]:
        return 200, SENT, path[len(PREFIX) :]
    return 404, NOT_FOUND, None


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
        write_notification(email)
