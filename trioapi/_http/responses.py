"""Response classes and the JSON encoder.

A response knows how to send itself over ASGI. When background tasks depend
on it, its last body message cannot be cut in two by a cancellation: when
hypercorn's ``graceful_timeout`` expires it cancels the request call, and it
can do so after the final bytes are already on the wire. Either the final
message is sent inside a shielded cancel scope, or, where the server writes
a body message whole or not at all (hypercorn's HTTP/1, see ``_hypercorn``),
the body goes out as its own message and the empty end after it. Both make
"the client got the whole response" and "the request's background tasks were
handed over" the same event, so a client can never get a 2xx for work that
was then dropped. Hypercorn already shields the socket write itself, so
neither adds an unbounded wait of its own.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import enum
import importlib
import json
import logging
import uuid
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from http.cookies import SimpleCookie
from typing import Any, Literal, final

import attrs
import trio

from .._runtime.anyio_threads import in_worker
from .._runtime.background import checked_background
from .convert import body_converter
from .datastructures import URL
from .requests import Receive, Scope, Send

logger = logging.getLogger("trioapi")


def _default(value: Any) -> Any:
    if attrs.has(type(value)):
        return body_converter.unstructure(value)
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, URL):
        return str(value)
    # Models of other libraries (pydantic, dataclasses), paths, timedeltas...:
    # FastAPI's encoder knows them. Its ValueError for what nobody knows
    # becomes the TypeError the JSON encoder expects from a default.
    from ..encoders import jsonable_encoder

    try:
        return jsonable_encoder(value)
    except ValueError:
        msg = f"Object of type {type(value).__name__} is not JSON serializable"
        raise TypeError(msg) from None


def _compact_encoder(ensure_ascii: bool) -> Callable[[Any], str]:
    """A compact JSON encoder that refuses NaN and renders with :func:`_default`.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs
    twice the encoding of a small response; this one is built once. Built
    without circular-reference tracking (shared state, and responses may be
    rendered in several threads at once), it meets a cycle as a
    ``RecursionError``; the standard encoder then renders the same content
    again, and raises its own clear error for a cycle.
    """
    full = json.JSONEncoder(
        ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":"), default=_default
    ).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has the C encoder
        return full
    strings = (
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    )
    # (markers, default, encoder, indent, key_separator, item_separator,
    #  sort_keys, skipkeys, allow_nan), as JSONEncoder.iterencode passes them.
    one_shot = make(None, _default, strings, None, ":", ",", False, False, False)

    def encode(content: Any) -> str:
        try:
            return "".join(one_shot(content, 0))
        except RecursionError:
            return full(content)

    return encode


_encode = _compact_encoder(ensure_ascii=False)
_encode_ascii = _compact_encoder(ensure_ascii=True)


def render_json(content: Any) -> bytes:
    """Encodes ``content`` as compact UTF-8 JSON.

    Strings holding lone surrogates (which valid JSON input can produce) cannot
    be UTF-8 encoded; those responses fall back to ``\\uXXXX`` escapes instead
    of failing.
    """
    text = _encode(content)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(content).encode("ascii")


@final
class MutableHeaders(MutableMapping[str, str]):
    """Response headers: case-insensitive, ordered, with ``append`` for repeats."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def __getitem__(self, key: str) -> str:
        name = key.lower().encode("latin-1")
        for header, value in self.raw:
            if header == name:
                return value.decode("latin-1")
        raise KeyError(key)

    def __setitem__(self, key: str, value: str) -> None:
        name = key.lower().encode("latin-1")
        encoded = value.encode("latin-1")
        for index, (header, _) in enumerate(self.raw):
            if header == name:
                self.raw[index] = (name, encoded)
                self.raw[index + 1 :] = [pair for pair in self.raw[index + 1 :] if pair[0] != name]
                return
        self.raw.append((name, encoded))

    def __delitem__(self, key: str) -> None:
        name = key.lower().encode("latin-1")
        kept = [pair for pair in self.raw if pair[0] != name]
        if len(kept) == len(self.raw):
            raise KeyError(key)
        self.raw[:] = kept

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for header, _ in self.raw:
            seen.setdefault(header.decode("latin-1"), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({header for header, _ in self.raw})

    def append(self, key: str, value: str) -> None:
        """Adds a header line without replacing earlier ones (``Set-Cookie``)."""
        self.raw.append((key.lower().encode("latin-1"), value.encode("latin-1")))

    def getlist(self, key: str) -> list[str]:
        name = key.lower().encode("latin-1")
        return [value.decode("latin-1") for header, value in self.raw if header == name]


class Response:
    """A complete HTTP response with a body held in memory.

    Args:
        content: ``bytes`` are sent as they are; ``str`` is UTF-8 encoded;
            subclasses render other types (``JSONResponse``).
        status_code: The status code.
        headers: Extra headers.
        media_type: The ``Content-Type`` (``charset=utf-8`` is added to text types).
        background: A ``BackgroundTask`` or ``BackgroundTasks`` to run after
            the response (Starlette's ``background=``): the app adds them to
            the request's background tasks, which its runtime runs once the
            last byte is sent.
    """

    media_type: str | None = None
    background: Any = None
    charset = "utf-8"
    # True when the body is produced while it is sent (streams, files): an
    # error then comes after the head went out, and goes on to the server.
    _produces_body = False
    # Set on the 500 that answers an unhandled error, which then goes on to the server.
    _unhandled = False

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        if background is not None:
            self.background = checked_background(background)
        self.body = self.render(content)
        self._raw_headers: list[tuple[bytes, bytes]] = []
        if headers:
            for key, value in headers.items():
                self._raw_headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        self._complete_headers()

    def render(self, content: Any) -> bytes:
        """Turns ``content`` into the body bytes."""
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        msg = (
            f"{type(self).__name__} takes bytes or str content, not {type(content).__name__}; "
            "return the value itself or use JSONResponse"
        )
        raise TypeError(msg)

    def _complete_headers(self) -> None:
        raw = self._raw_headers
        names = {name for name, _ in raw} if raw else ()
        if b"content-length" not in names and not _no_body(self.status_code):
            raw.append((b"content-length", str(len(self.body)).encode()))
        if self.media_type is not None and b"content-type" not in names:
            raw.append((b"content-type", self._content_type()))

    def _content_type(self) -> bytes:
        media_type = self.media_type
        assert media_type is not None
        cached = _CONTENT_TYPES.get((media_type, self.charset))
        if cached is None:
            text = media_type
            if media_type.startswith("text/") and "charset=" not in media_type:
                text += f"; charset={self.charset}"
            cached = _CONTENT_TYPES[(media_type, self.charset)] = text.encode("latin-1")
        return cached

    @property
    def headers(self) -> MutableHeaders:
        """The response headers, editable."""
        return MutableHeaders(self._raw_headers)

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw_headers

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime.datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Adds a ``Set-Cookie`` header."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime.datetime):
                morsel["expires"] = expires.strftime("%a, %d %b %Y %H:%M:%S GMT")
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            morsel["samesite"] = samesite
        self._raw_headers.append((b"set-cookie", morsel.OutputString().encode("latin-1")))

    def delete_cookie(self, key: str, *, path: str = "/", domain: str | None = None) -> None:
        """Tells the client to drop cookie ``key``."""
        self.set_cookie(key, max_age=0, expires=0, path=path, domain=domain)

    def _start_message(self) -> dict[str, Any]:
        return {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self._raw_headers,
        }

    async def send_to(
        self,
        send: Send,
        *,
        head: bool = False,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> None:
        """Sends the response.

        Args:
            send: The ASGI send callable.
            head: Leave the body out (a ``HEAD`` request).
            shield: Keep a cancellation from splitting the final message; the
                app asks for it when background tasks depend on the response
                going out.
            receive: The request's receive callable, for responses that watch
                for the client leaving (``StreamingResponse``); unused here.
            whole_body_sends: The server writes a body message whole or
                raises ``Cancelled`` before writing any of it (hypercorn's
                HTTP/1); ``shield`` then needs no cancel scope, because the
                ``Content-Length`` body completes the response on its own.
        """
        await send(self._start_message())
        if whole_body_sends and shield and not self._framed_by_length():
            whole_body_sends = False  # chunked: the end message writes the last chunk
        await send_final(send, b"" if head else self.body, shield, whole_body_sends)

    def _bind(self, scope: Scope) -> None:
        """Sees the request before being sent (a file answers its ``Range``); no-op here.

        The app calls it only for classes with ``_produces_body``.
        """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Sends the response as an ASGI app (Starlette's ``await response(scope, receive, send)``).

        A stream or file then watches ``receive`` for the client leaving.
        """
        self._bind(scope)
        await self.send_to(
            send,
            head=scope.get("method") == "HEAD",
            receive=receive if self._produces_body else None,
        )

    def _framed_by_length(self) -> bool:
        # Always true unless someone removed the Content-Length this class sets.
        # (A loop: any() over a generator costs six times as much, per request.)
        for name, _ in self._raw_headers:  # noqa: SIM110
            if name == b"content-length":
                return True
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}>"


_CONTENT_TYPES: dict[tuple[str, str], bytes] = {}

TRANSPORT_GONE = (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError)


async def send_final(send: Send, body: bytes, shield: bool, whole_body_sends: bool = False) -> None:
    """Sends the last body message: once it returns, the response is handed over.

    With ``shield``, a cancellation cannot split "bytes on the wire" from
    "tasks handed to the runtime"; the app shields whenever the request has
    background tasks (without any there is nothing to keep consistent, and a
    cancel scope costs about as much as the rest of a small response).

    With ``whole_body_sends`` too (only for a body whose length the headers
    give), no cancel scope is needed: the body is sent with ``more_body`` and
    the server either raises ``Cancelled`` before writing it (nothing
    delivered, and the exception says so) or writes all of it, which
    completes the response. The empty end message after it writes nothing
    the client needs; a cancellation raised there is dropped, so this returns
    as a shielded send would. Trio raises it again at the task's next
    checkpoint: the scope is still cancelled.

    Transport errors are swallowed here: hypercorn's trio ``TCPServer`` closes
    the stream (``send_eof``) outside its send lock when the client hangs up,
    which races this very write and raises ``BusyResourceError`` although the
    body already went out (a client that closes right after reading a 413
    triggers it on most tries).
    """
    try:
        if not shield:
            await send({"type": "http.response.body", "body": body})
        elif whole_body_sends:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            try:
                await send({"type": "http.response.body", "body": b""})
            except trio.Cancelled:
                logger.debug("the request was cancelled after its whole response was written")
        else:
            with trio.CancelScope(shield=True):
                await send({"type": "http.response.body", "body": body})
    except TRANSPORT_GONE as error:
        logger.debug("the client closed the connection as the response ended: %r", error)


_END: Any = object()


def _next_chunk(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


def _no_body(status_code: int) -> bool:
    return status_code < 200 or status_code in (204, 304)


class JSONResponse(Response):
    """A response whose content is encoded as JSON (attrs instances included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)


class PlainTextResponse(Response):
    """A ``text/plain`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html`` response."""

    media_type = "text/html"


class RedirectResponse(Response):
    """Redirects to ``url`` (``307 Temporary Redirect`` unless told otherwise)."""

    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: Any = None,
    ) -> None:
        super().__init__(b"", status_code=status_code, headers=headers, background=background)
        self.headers["location"] = url


class StreamingResponse(Response):
    """A response whose body comes from an iterator, sent as it is produced.

    Args:
        content: An async iterable, or a sync iterable (advanced in a worker
            thread so a slow generator never blocks the event loop), of
            ``bytes`` or ``str`` chunks.
        status_code: The status code.
        headers: Extra headers.
        media_type: The ``Content-Type``.
        background: A ``BackgroundTask`` or ``BackgroundTasks``, run after
            the last chunk with the request's own tasks.

    An error raised by the iterator goes on to the server once the head is
    out (FastAPI's rule): the response stays incomplete, so the client can
    tell, and the request's background tasks are skipped.
    """

    # The body is produced while it is sent: an error in it is the server's.
    _produces_body = True

    def __init__(
        self,
        content: AsyncIterable[bytes | str] | Iterable[bytes | str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        self.body_iterator = self.iterator = content
        if background is not None:
            self.background = checked_background(background)
        super().__init__(None, status_code=status_code, headers=headers, media_type=media_type)

    def _complete_headers(self) -> None:
        # The length is unknown: the server frames it (chunked for HTTP/1.1).
        if self.media_type is not None and not any(
            name == b"content-type" for name, _ in self._raw_headers
        ):
            self._raw_headers.append((b"content-type", self._content_type()))

    def _keepalive(self) -> tuple[float, bytes] | None:
        """``(seconds, chunk)``: send ``chunk`` whenever the iterator is idle that long."""
        return None

    async def _chunks(self) -> AsyncGenerator[bytes | str, None]:
        # Whatever ends the stream (done, the client gone, a cancellation),
        # the user's iterator is closed now, not left to the garbage collector.
        source = self.body_iterator
        if isinstance(source, AsyncIterable):
            try:
                async for piece in source:
                    yield piece
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    with trio.CancelScope(shield=True):
                        await aclose()
            return
        iterator = iter(source)
        try:
            while True:
                chunk = await trio.to_thread.run_sync(in_worker(_next_chunk), iterator)
                if chunk is _END:
                    return
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(in_worker(close))

    def _encode(self, chunk: Any) -> bytes:
        if isinstance(chunk, bytes):
            return chunk
        if isinstance(chunk, str):
            return chunk.encode(self.charset)
        if isinstance(chunk, bytearray | memoryview):
            return bytes(chunk)
        msg = (
            f"{type(self).__name__} streams bytes or str chunks, not {type(chunk).__name__}; "
            "encode the items first (a generator path operation without a response_class "
            "streams JSON lines)"
        )
        raise TypeError(msg)

    async def send_to(
        self,
        send: Send,
        *,
        head: bool = False,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> None:
        """Sends the head, then each chunk as the iterator produces it.

        Args:
            receive: When given (the request's body has been read), it is
                watched during the stream: ``http.disconnect`` then means the
                client left, and the stream stops with ``BrokenResourceError``
                (hypercorn silently drops writes to a closed connection, so an
                endless stream would otherwise run on until shutdown).
            whole_body_sends: Not used: the server frames a stream itself
                (chunked), so its end message writes bytes the client needs,
                and ``shield`` always takes a cancel scope.
        """
        await send(self._start_message())
        if not head:
            await self._stream(send, receive)
        await send_final(send, b"", shield)

    async def _stream(self, send: Send, receive: Receive | None) -> None:
        gone = False
        # The iterator's own error, raised after the nursery (not inside one of its groups).
        failure: list[Exception] = []
        async with trio.open_nursery() as nursery:
            if receive is not None:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    nursery.cancel_scope.cancel("the client left during the stream")

                nursery.start_soon(watch)
            keepalive = self._keepalive()
            try:
                if keepalive is None:
                    async with contextlib.aclosing(self._chunks()) as chunks:
                        async for chunk in chunks:
                            await self._send_chunk(send, chunk)
                else:
                    await self._stream_with_keepalive(send, nursery, *keepalive)
            except Exception as error:
                failure.append(error)
            nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if gone:
            msg = "the client left during the streaming response"
            raise trio.BrokenResourceError(msg)

    async def _send_chunk(self, send: Send, chunk: Any) -> None:
        data = self._encode(chunk)
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        # A send that never blocks (an in-process client) must still let the
        # watch and a cancellation in, between chunks of a busy iterator.
        await trio.lowlevel.checkpoint()

    async def _stream_with_keepalive(
        self, send: Send, nursery: trio.Nursery, seconds: float, ping: bytes
    ) -> None:
        # A producer task advances the iterator, so the wait for its next
        # chunk can time out without cancelling the iterator itself (a sync
        # one in a thread could not be interrupted anyway).
        to_stream, from_producer = trio.open_memory_channel[Any](0)
        failure: list[Exception] = []

        async def produce() -> None:
            async with to_stream, contextlib.aclosing(self._chunks()) as chunks:
                try:
                    async for chunk in chunks:
                        await to_stream.send(chunk)
                except Exception as error:
                    failure.append(error)

        nursery.start_soon(produce)
        async with from_producer:
            while True:
                with trio.move_on_after(seconds) as waited:
                    try:
                        chunk = await from_producer.receive()
                    except trio.EndOfChannel:
                        break
                if waited.cancelled_caught:
                    chunk = ping
                await self._send_chunk(send, chunk)
        if failure:
            raise failure[0]


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response: server-sent events (FastAPI's ``EventSourceResponse``).

    As ``response_class=`` of a path operation that ``yield``s, each item is
    one event (``trioapi.sse.ServerSentEvent`` for full control, any other
    value as JSON ``data:``), with any HTTP method. Returned directly, its
    content is sent as it is. Either way, while the content produces nothing
    for ``trioapi.routing._PING_INTERVAL`` seconds (15), a ``: ping``
    comment keeps proxies from closing the idle connection, and a client
    that leaves stops the stream. ``Cache-Control: no-cache`` and
    ``X-Accel-Buffering: no`` (no buffering in nginx) are set unless given.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[bytes | str] | Iterable[bytes | str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type, background)
        names = {name for name, _ in self._raw_headers}
        if b"cache-control" not in names:
            self._raw_headers.append((b"cache-control", b"no-cache"))
        if b"x-accel-buffering" not in names:
            self._raw_headers.append((b"x-accel-buffering", b"no"))

    def _keepalive(self) -> tuple[float, bytes] | None:
        from .. import routing

        seconds = routing._PING_INTERVAL
        return None if seconds is None else (float(seconds), KEEPALIVE_COMMENT)


KEEPALIVE_COMMENT = b": ping\n\n"
"""The SSE comment sent on an idle event stream (the SSE specification's advice)."""


def _deprecated(name: str) -> None:
    from .._exceptions import TrioAPIDeprecationWarning

    warnings.warn(
        f"{name} is deprecated: trioapi serializes data directly to JSON when a return "
        "type or response model is set, which needs no custom response class",
        TrioAPIDeprecationWarning,
        stacklevel=3,
    )


class ORJSONResponse(JSONResponse):
    """JSON rendered by ``orjson`` (needs ``pip install orjson``). Deprecated, as in FastAPI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _deprecated("ORJSONResponse")
        super().__init__(*args, **kwargs)

    def render(self, content: Any) -> bytes:
        orjson = importlib.import_module("orjson")
        rendered: bytes = orjson.dumps(
            content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        )
        return rendered


class UJSONResponse(JSONResponse):
    """JSON rendered by ``ujson`` (needs ``pip install ujson``). Deprecated, as in FastAPI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _deprecated("UJSONResponse")
        super().__init__(*args, **kwargs)

    def render(self, content: Any) -> bytes:
        ujson = importlib.import_module("ujson")
        rendered: str = ujson.dumps(content, ensure_ascii=False)
        return rendered.encode("utf-8")
