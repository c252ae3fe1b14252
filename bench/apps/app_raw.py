"""Raw ASGI: the limit. The POST writes its line inline, right after the response.

No framework, no thread hop: what hypercorn's trio worker can do on its own.

The two request-body routes (``_bodies``) are the least the same work can
cost: ``POST /items`` hands the body's bytes to pydantic's own JSON parser
(``model_validate_json``) and dumps ``ItemOut`` to JSON in one call;
``POST /upload`` feeds python-multipart's parser (what the frameworks use)
chunk by chunk and keeps the file's bytes in one buffer, with no
``UploadFile`` and no spooled file.
"""

from __future__ import annotations

import json
from typing import Any

from _bodies import Item, ItemOut, upload_answer
from _task import write_notification
from pydantic import ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header

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


async def read_body(receive: Any) -> bytes | None:
    """The whole body, or None when the client left first (wrk stopping mid-request)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def create_item(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await read_body(receive)
    if body is None:
        return
    try:
        item = Item.model_validate_json(body)
    except ValidationError as error:
        await respond(send, 422, _json({"detail": json.loads(error.json())}))
        return
    body = ItemOut.model_validate(item, from_attributes=True).model_dump_json().encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await respond(send, 201, (headers, body))


class _Form:
    """python-multipart callbacks: the ``note`` field's text and the ``file`` part's bytes."""

    def __init__(self) -> None:
        self.fields: dict[str, bytearray] = {}
        self.filename: str | None = None
        self.content_type: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header = [bytearray(), bytearray()]
        self._into = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._header[0].extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header[1].extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._into.extend(data[start:end]),
        }

    def _header_end(self) -> None:
        name, value = self._header
        self._headers[bytes(name).lower()] = bytes(value)
        self._header = [bytearray(), bytearray()]

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("latin-1")
        if b"filename" in options:
            self.filename = options[b"filename"].decode()
            self.content_type = self._headers.get(b"content-type", b"").decode("latin-1") or None
        self._into = self.fields[name] = bytearray()


async def upload(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = dict(scope["headers"])
    _, options = parse_options_header(headers.get(b"content-type"))
    form = _Form()
    parser = MultipartParser(options.get(b"boundary", b""), form.callbacks())
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        parser.write(message.get("body", b""))
        more = message.get("more_body", False)
    parser.finalize()
    data, note = form.fields.get("file"), form.fields.get("note", b"").decode()
    if form.filename is None or data is None or not 0 < len(note) <= 200:
        await respond(send, 422, _json({"detail": "a file and a note of at most 200 characters"}))
        return
    answer = upload_answer(form.filename, form.content_type, data, note)
    await respond(send, 200, _json(answer))


BODY_ROUTES = {"/items": create_item, "/upload": upload}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI 3 callable."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST" and scope["path"] in BODY_ROUTES:
        await BODY_ROUTES[scope["path"]](scope, receive, send)
        return
    status, reply, email = route(scope)
    await respond(send, status, reply)
    if email is not None:
        write_notification(email)
